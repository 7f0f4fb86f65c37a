package machine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"replaydesk/shared/abi"
)

// devices is the host side of guest ABI v1: state that belongs to the
// machine (and so to its snapshots) but lives outside guest memory.
type devices struct {
	cfg *Config

	queue []abi.Event // input not yet polled (live and record)

	fb     Frame // the last presented framebuffer
	damage []Rect

	disk []byte // base image (snapshotted) or the real disk (replayed)
	// overlay holds, in snapshotted mode, the blocks the guest wrote. A
	// stored block is never modified: a write stores a fresh copy. That is
	// what lets a background snapshot copy blocks while the guest runs and,
	// when it finishes, recopy only those whose slice changed
	// (overlaySnapshot).
	overlay map[uint64][]byte
	// overlayOrder lists the overlay's blocks in the order they were first
	// written. Snapshots store blocks in this order, so a block written for
	// the first time while a background snapshot runs goes at the end and
	// moves no other.
	overlayOrder []uint64

	handles [abi.MaxNetHandles]string // open net handles: endpoint names
	streams [abi.MaxNetHandles]Stream // live and record only
}

// Frame describes the last framebuffer the guest presented.
type Frame struct {
	Ptr, Width, Height, Stride uint32
	Format                     int32
	Seq                        uint64 // presents so far
}

// Rect is a damage rectangle in framebuffer pixels.
type Rect struct{ X, Y, W, H int32 }

func (d *devices) init(cfg Config) {
	d.cfg = &cfg
	d.disk = cfg.Disk
	d.overlay = map[uint64][]byte{}
}

// writeOverlay stores a fresh copy of block blk (see overlay).
func (d *devices) writeOverlay(blk uint64, data []byte) {
	if _, ok := d.overlay[blk]; !ok {
		d.overlayOrder = append(d.overlayOrder, blk)
	}
	d.overlay[blk] = data
}

func (d *devices) console(b []byte) {
	if d.cfg.Console != nil && len(b) > 0 {
		d.cfg.Console.Write(b)
	}
}

func (d *devices) netPending() bool {
	for _, s := range d.streams {
		if s != nil && s.Pending() {
			return true
		}
	}
	return false
}

func (d *devices) closeStreams() {
	for i, s := range d.streams {
		if s != nil {
			s.Close()
			d.streams[i] = nil
		}
	}
}

// Frame returns the last presented framebuffer's description.
func (m *Machine) Frame() Frame { return m.dev.fb }

// TakeDamage returns the rectangles presented since the last call.
func (m *Machine) TakeDamage() []Rect {
	r := m.dev.damage
	m.dev.damage = nil
	return r
}

// Pixels returns the framebuffer rows (w*4 bytes each at the frame's
// stride) as a view into guest memory, valid until the next step; nil
// before the first present.
func (m *Machine) Pixels() []byte {
	f := m.dev.fb
	if f.Seq == 0 {
		return nil
	}
	b, ok := m.mod.Memory().Read(f.Ptr, f.Stride*(f.Height-1)+f.Width*4)
	if !ok {
		return nil
	}
	return b
}

const evTable = 256 // most events one input_poll hands out

func init() {
	register(
		&hostFunc{module: abi.Module, name: abi.ImportPresent, params: sig(i32, i32, i32, i32, i32, i32, i32), logID: -1, run: present},
		&hostFunc{module: abi.Module, name: abi.ImportConsoleWrite, params: sig(i32, i32), logID: -1, run: func(c *call) {
			c.m.dev.console(c.read(c.u32(0), c.u32(1)))
		}},
		&hostFunc{module: abi.Module, name: abi.ImportInputPoll, params: sig(i32, i32), results: sig(i32), logID: logInputPoll,
			live: func(c *call) outcome {
				max := min(c.u32(1), evTable)
				c.read(c.u32(0), max*abi.EventSize) // fault before consuming input
				q := &c.m.dev.queue
				n := min(int(max), len(*q))
				data := encodeEvents((*q)[:n])
				*q = (*q)[n:]
				return outcome{ret: uint64(n), data: data}
			},
			apply: func(c *call, o outcome) {
				evs, err := decodeEvents(o.data)
				if err != nil || uint64(len(evs)) != o.ret || o.ret > uint64(c.u32(1)) {
					c.diverge("malformed input events in the log")
				}
				var b [abi.EventSize]byte
				for i := range evs {
					evs[i].Put(b[:])
					c.write(c.u32(0)+uint32(i)*abi.EventSize, b[:])
				}
				c.ret(int32(len(evs)))
			}},
		&hostFunc{module: abi.Module, name: abi.ImportDiskInfo, params: sig(i32), results: sig(i32), logID: -1, run: func(c *call) {
			p := c.m.p
			if p.DiskMode == abi.DiskNone {
				c.ret(abi.ErrnoNodev)
				return
			}
			var b [abi.DiskInfoSize]byte
			binary.LittleEndian.PutUint64(b[0:], p.DiskBlocks)
			binary.LittleEndian.PutUint32(b[8:], abi.BlockSize)
			binary.LittleEndian.PutUint32(b[12:], uint32(p.DiskMode))
			c.write(c.u32(0), b[:])
			c.ret(0)
		}},
		&hostFunc{module: abi.Module, name: abi.ImportDiskRead, params: sig(i64, i32), results: sig(i32), logID: logDiskRead,
			loggedIf: func(m *Machine) bool { return m.p.DiskMode == abi.DiskReplayed },
			run: func(c *call) { // snapshotted (or no) disk: deterministic
				if e := c.diskCheck(); e != 0 {
					c.ret(e)
					return
				}
				c.write(c.u32(1), c.block(c.u64(0)))
				c.ret(0)
			},
			live: func(c *call) outcome {
				if e := c.diskCheck(); e != 0 {
					return outcome{ret: errnoRet(e)}
				}
				return outcome{data: slices.Clone(c.block(c.u64(0)))}
			},
			apply: func(c *call, o outcome) {
				if o.ret != 0 {
					c.stack[0] = o.ret
					return
				}
				if len(o.data) != abi.BlockSize {
					c.diverge("disk block in the log has the wrong size")
				}
				c.write(c.u32(1), o.data)
				c.ret(0)
			}},
		&hostFunc{module: abi.Module, name: abi.ImportDiskWrite, params: sig(i64, i32), results: sig(i32), logID: logDiskWrite,
			loggedIf: func(m *Machine) bool { return m.p.DiskMode == abi.DiskReplayed },
			run: func(c *call) { // snapshotted (or no) disk: the overlay is machine state
				if e := c.diskCheck(); e != 0 {
					c.ret(e)
					return
				}
				c.m.dev.writeOverlay(c.u64(0), slices.Clone(c.read(c.u32(1), abi.BlockSize)))
				c.ret(0)
			},
			live: func(c *call) outcome { // replayed mode: the real disk, never touched by a replay
				if e := c.diskCheck(); e != 0 {
					return outcome{ret: errnoRet(e)}
				}
				blk := c.u64(0)
				copy(c.m.dev.disk[blk*abi.BlockSize:], c.read(c.u32(1), abi.BlockSize))
				return outcome{}
			},
			apply: func(c *call, o outcome) { c.stack[0] = o.ret }},
		&hostFunc{module: abi.Module, name: abi.ImportNetOpen, params: sig(i32, i32), results: sig(i32), logID: logNetOpen,
			live: netOpen,
			apply: func(c *call, o outcome) {
				h := int32(uint32(o.ret))
				if h >= 0 {
					if h >= abi.MaxNetHandles || c.m.dev.handles[h] != "" {
						c.diverge("net handle in the log is not free")
					}
					c.m.dev.handles[h] = string(c.read(c.u32(0), c.u32(1)))
				}
				c.ret(h)
			}},
		&hostFunc{module: abi.Module, name: abi.ImportNetSend, params: sig(i32, i32, i32), results: sig(i32), logID: logNetSend,
			live: func(c *call) outcome {
				s, e := c.stream(c.i32(0))
				if e != 0 {
					return outcome{ret: errnoRet(-e)}
				}
				n, err := s.Send(c.read(c.u32(1), min(c.u32(2), abi.MaxNetChunk)))
				if err != nil && n == 0 {
					return outcome{ret: errnoRet(-abi.ErrnoPipe)}
				}
				return outcome{ret: uint64(n)}
			},
			apply: func(c *call, o outcome) { c.stack[0] = o.ret }},
		&hostFunc{module: abi.Module, name: abi.ImportNetRecv, params: sig(i32, i32, i32), results: sig(i32), logID: logNetRecv,
			live: func(c *call) outcome {
				s, e := c.stream(c.i32(0))
				if e != 0 {
					return outcome{ret: errnoRet(-e)}
				}
				buf := make([]byte, min(c.u32(2), abi.MaxNetChunk))
				c.read(c.u32(1), uint32(len(buf)))
				n, err := s.Recv(buf)
				if n == 0 && errors.Is(err, io.EOF) {
					return outcome{ret: errnoRet(-abi.ErrnoPipe)}
				}
				if n == 0 && err != nil {
					return outcome{ret: errnoRet(-abi.ErrnoIO)}
				}
				return outcome{ret: uint64(n), data: buf[:n]}
			},
			apply: func(c *call, o outcome) {
				n := int32(uint32(o.ret))
				if n > 0 {
					if int(n) != len(o.data) || uint32(n) > c.u32(2) {
						c.diverge("received bytes in the log have the wrong length")
					}
					c.write(c.u32(1), o.data)
				}
				c.ret(n)
			}},
		&hostFunc{module: abi.Module, name: abi.ImportNetClose, params: sig(i32), results: sig(i32), logID: -1, run: func(c *call) {
			h := c.i32(0)
			d := &c.m.dev
			if h < 0 || h >= abi.MaxNetHandles || d.handles[h] == "" {
				c.ret(abi.ErrnoBadf)
				return
			}
			if d.streams[h] != nil {
				d.streams[h].Close()
				d.streams[h] = nil
			}
			d.handles[h] = ""
			c.ret(0)
		}},
	)
}

func present(c *call) {
	fb, w, h, stride, format, rp, nr := c.u32(0), c.u32(1), c.u32(2), c.u32(3), c.i32(4), c.u32(5), c.i32(6)
	switch {
	case w == 0 || h == 0 || w > abi.MaxWidth || h > abi.MaxHeight:
		c.trap("present: bad size")
	case format != abi.FormatRGBA8888:
		c.trap("present: unknown pixel format")
	case stride < w*4:
		c.trap("present: stride shorter than a row")
	case nr < 0 || nr > abi.MaxRects:
		c.trap("present: bad damage rectangle count")
	}
	c.read(fb, stride*(h-1)+w*4)
	d := &c.m.dev
	d.fb = Frame{Ptr: fb, Width: w, Height: h, Stride: stride, Format: format, Seq: d.fb.Seq + 1}
	c.m.stats.Presents++
	if nr == 0 {
		d.damage = append(d.damage, Rect{0, 0, int32(w), int32(h)})
		return
	}
	raw := c.read(rp, uint32(nr)*16)
	for i := int32(0); i < nr; i++ {
		r := Rect{
			X: int32(binary.LittleEndian.Uint32(raw[i*16:])), Y: int32(binary.LittleEndian.Uint32(raw[i*16+4:])),
			W: int32(binary.LittleEndian.Uint32(raw[i*16+8:])), H: int32(binary.LittleEndian.Uint32(raw[i*16+12:])),
		}
		if r = r.clip(int32(w), int32(h)); r.W > 0 && r.H > 0 {
			d.damage = append(d.damage, r)
		}
	}
}

func (r Rect) clip(w, h int32) Rect {
	x0, y0 := max(r.X, 0), max(r.Y, 0)
	x1, y1 := min(int64(r.X)+int64(r.W), int64(w)), min(int64(r.Y)+int64(r.H), int64(h))
	if int64(x0) >= x1 || int64(y0) >= y1 {
		return Rect{}
	}
	return Rect{x0, y0, int32(x1) - x0, int32(y1) - y0}
}

func (c *call) diskCheck() int32 {
	p := c.m.p
	if p.DiskMode == abi.DiskNone {
		return abi.ErrnoNodev
	}
	if c.u64(0) >= p.DiskBlocks {
		return abi.ErrnoInval
	}
	return 0
}

// block returns disk block n as the guest sees it: its overlay copy, the
// base image's, or the block source's. A block the source cannot deliver
// stops the machine (the recording read it, so an error here would diverge).
func (c *call) block(n uint64) []byte {
	d := &c.m.dev
	if b, ok := d.overlay[n]; ok {
		return b
	}
	if d.disk != nil {
		return d.disk[n*abi.BlockSize : (n+1)*abi.BlockSize]
	}
	b, err := d.cfg.DiskSource.Block(n)
	if err == nil && len(b) != abi.BlockSize {
		err = fmt.Errorf("%d bytes", len(b))
	}
	if err != nil {
		c.m.fault = fmt.Errorf("machine: disk block %d: %w", n, err)
		panic(c.m.fault)
	}
	return b
}

func (c *call) stream(h int32) (Stream, int32) {
	d := &c.m.dev
	if h < 0 || h >= abi.MaxNetHandles || d.handles[h] == "" || d.streams[h] == nil {
		return nil, abi.ErrnoBadf
	}
	return d.streams[h], 0
}

func netOpen(c *call) outcome {
	fail := func(e int32) outcome { return outcome{ret: errnoRet(-e)} }
	if c.u32(1) == 0 || c.u32(1) > abi.MaxNetName {
		return fail(abi.ErrnoInval)
	}
	name := string(c.read(c.u32(0), c.u32(1)))
	if !slices.Contains(c.m.p.Endpoints, name) || c.m.cfg.Net == nil {
		return fail(abi.ErrnoAcces)
	}
	d := &c.m.dev
	h := slices.Index(d.handles[:], "")
	if h < 0 {
		return fail(abi.ErrnoAgain)
	}
	s, err := c.m.cfg.Net.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(abi.ErrnoNoent)
	}
	if err != nil {
		c.m.cfg.Log.Warn().Err(err).Str("endpoint", name).Msg("net_open failed")
		return fail(abi.ErrnoConnrefused)
	}
	d.streams[h] = s
	return outcome{ret: uint64(h)}
}

// Input events in the log: type, flags, uvarint user, then what the type
// needs. About 4 bytes a key event instead of the 32 a guest sees.
func encodeEvents(evs []abi.Event) []byte {
	var b []byte
	for _, e := range evs {
		flags := byte(0)
		if e.Down {
			flags |= 1
		}
		if e.Repeat {
			flags |= 2
		}
		b = append(b, byte(e.Type), flags)
		b = binary.AppendUvarint(b, uint64(e.User))
		switch e.Type {
		case abi.EvKey:
			b = binary.AppendUvarint(b, uint64(e.Code))
		case abi.EvButton:
			b = binary.AppendUvarint(b, uint64(e.Button))
		case abi.EvText, abi.EvUser:
			t := e.Text
			if len(t) > abi.MaxText { // as the guest will see it (abi.Event.Put)
				t = abi.SplitText(t)[0]
			}
			b = binary.AppendUvarint(b, uint64(len(t)))
			b = append(b, t...)
		case abi.EvMove, abi.EvWheel:
			b = binary.AppendVarint(b, int64(e.X))
			b = binary.AppendVarint(b, int64(e.Y))
		}
	}
	return b
}

var errBadEvents = errors.New("malformed events")

func decodeEvents(b []byte) ([]abi.Event, error) {
	var out []abi.Event
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 1 << 40 // fails every range check below
		}
		b = b[n:]
		return v
	}
	sv := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 1 << 40
		}
		b = b[n:]
		return v
	}
	for len(b) > 0 {
		if len(b) < 2 || b[1] > 3 {
			return nil, errBadEvents
		}
		e := abi.Event{Type: abi.EventType(b[0]), Down: b[1]&1 != 0, Repeat: b[1]&2 != 0}
		b = b[2:]
		u := uv()
		if u > 0xffff {
			return nil, errBadEvents
		}
		e.User = uint16(u)
		switch e.Type {
		case abi.EvKey:
			v := uv()
			if v > 0xffffffff {
				return nil, errBadEvents
			}
			e.Code = abi.KeyCode(v)
		case abi.EvButton:
			v := uv()
			if v > 0xffffffff {
				return nil, errBadEvents
			}
			e.Button = uint32(v)
		case abi.EvText, abi.EvUser:
			n := uv()
			if n > abi.MaxText || n > uint64(len(b)) {
				return nil, errBadEvents
			}
			e.Text = string(b[:n])
			b = b[n:]
		case abi.EvMove, abi.EvWheel:
			x, y := sv(), sv()
			if x != int64(int32(x)) || y != int64(int32(y)) {
				return nil, errBadEvents
			}
			e.X, e.Y = int32(x), int32(y)
		default:
			return nil, errBadEvents
		}
		out = append(out, e)
	}
	return out, nil
}
