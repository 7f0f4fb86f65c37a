package machine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"replaydesk/shared/abi"
	"replaydesk/shared/snapshot"
)

// FramebufferHash hashes the visible pixels of the last presented frame
// (rows of width*4 bytes; the stride's padding is not part of the picture)
// and its geometry. 0 before the first present.
func (m *Machine) FramebufferHash() uint64 {
	f := m.dev.fb
	px := m.Pixels()
	if px == nil {
		return 0
	}
	h := xxh3.New()
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[0:], f.Width)
	binary.LittleEndian.PutUint32(hdr[4:], f.Height)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(f.Format))
	h.Write(hdr[:])
	row := f.Width * 4
	if f.Stride == row {
		h.Write(px)
	} else {
		for y := uint32(0); y < f.Height; y++ {
			h.Write(px[y*f.Stride : y*f.Stride+row])
		}
	}
	return h.Sum64() | 1 // never 0: 0 means "no frame"
}

// StateHash hashes guest memory and every mutable global: the machine state
// that a replay must reproduce exactly.
func (m *Machine) StateHash() uint64 {
	h := xxh3.New()
	h.Write(m.mem.Bytes())
	var b [8]byte
	for _, v := range m.globals() {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum64() | 1
}

// MemorySize is the guest's linear memory size in bytes.
func (m *Machine) MemorySize() int { return len(m.mem.Bytes()) }

func (m *Machine) globals() []uint64 {
	out := make([]uint64, len(m.e.globals))
	for i, g := range m.e.globals {
		out[i] = m.mod.ExportedGlobal(g.Export).Get()
	}
	return out
}

// deviceState is the host-side state a snapshot carries. Its small fields
// are JSON (readable when debugging a snapshot); the disk overlay's blocks
// follow the JSON as raw bytes, in OverlayBlocks order, because a
// base64-encoded 12 MiB overlay cost ~50 ms of stall (encodeDevice). That
// order is the order the guest first wrote them (devices.overlayOrder):
// any order decodes, but this one lets a background snapshot lay the
// blocks out before it finishes (overlaySnapshot).
type deviceState struct {
	Tick           uint64      `json:"tick"`
	Steps          uint64      `json:"steps"`
	SleepUntil     uint64      `json:"sleep_until"`
	SleepForever   bool        `json:"sleep_forever,omitempty"`
	LastCheckpoint uint64      `json:"last_checkpoint"`
	Checkpoints    uint64      `json:"checkpoints"`
	Frame          Frame       `json:"frame"`
	Queue          []abi.Event `json:"queue,omitempty"`
	Handles        []string    `json:"handles,omitempty"`
	OverlayBlocks  []uint64    `json:"overlay_blocks,omitempty"`
}

// encodeDevice writes uvarint(len(json)), the JSON, then each overlay block.
func encodeDevice(ds deviceState, overlay map[uint64][]byte) ([]byte, error) {
	hdr, err := deviceHeader(ds)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(hdr)+len(ds.OverlayBlocks)*abi.BlockSize)
	out = append(out, hdr...)
	for _, b := range ds.OverlayBlocks {
		out = append(out, overlay[b]...)
	}
	return out, nil
}

// deviceHeader is what precedes the overlay's blocks: uvarint(len(json)),
// then the JSON.
func deviceHeader(ds deviceState) ([]byte, error) {
	j, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(j))
	out = binary.AppendUvarint(out, uint64(len(j)))
	return append(out, j...), nil
}

func decodeDevice(b []byte) (deviceState, map[uint64][]byte, error) {
	var ds deviceState
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return ds, nil, errors.New("bad length")
	}
	if err := json.Unmarshal(b[k:k+int(n)], &ds); err != nil {
		return ds, nil, err
	}
	rest := b[k+int(n):]
	if uint64(len(rest)) != uint64(len(ds.OverlayBlocks))*abi.BlockSize {
		return ds, nil, fmt.Errorf("%d bytes of overlay for %d blocks", len(rest), len(ds.OverlayBlocks))
	}
	overlay := make(map[uint64][]byte, len(ds.OverlayBlocks))
	for i, blk := range ds.OverlayBlocks {
		if _, dup := overlay[blk]; dup {
			return ds, nil, fmt.Errorf("overlay block %d listed twice", blk)
		}
		overlay[blk] = rest[i*abi.BlockSize : (i+1)*abi.BlockSize : (i+1)*abi.BlockSize]
	}
	return ds, overlay, nil
}

// Snapshot captures the machine between two steps. In record mode call Sync
// first (so the log covers every tick), flush the log, and set LogPos to
// where the next block starts.
func (m *Machine) Snapshot() (*snapshot.Snapshot, error) {
	if m.inCall {
		return nil, fmt.Errorf("machine: snapshot inside a step")
	}
	if m.failed != nil {
		return nil, m.failed
	}
	if m.pendingIdle != 0 {
		return nil, fmt.Errorf("machine: snapshot with %d idle ticks not yet logged; call Sync first", m.pendingIdle)
	}
	return m.captureState(captureMemory(m.mem.Bytes()), nil)
}

// captureState builds a snapshot around a copy of memory taken at this
// point between two steps. ov, if not nil, holds the overlay's blocks as a
// background snapshot laid them out; only what changed since is copied.
func (m *Machine) captureState(mem []byte, ov *overlaySnapshot) (*snapshot.Snapshot, error) {
	ds := m.deviceState()
	var dev []byte
	var err error
	if ov != nil {
		dev, err = ov.finish(ds, m.dev.overlay)
	}
	if ov == nil || errors.Is(err, errOverlayOutgrown) {
		dev, err = encodeDevice(ds, m.dev.overlay)
	}
	if err != nil {
		return nil, err
	}
	return &snapshot.Snapshot{
		ModuleHash: m.e.hash,
		Tick:       m.tick,
		Step:       m.steps,
		Globals:    m.globals(),
		Device:     dev,
		Memory:     mem,
	}, nil
}

// deviceState is the host-side state now, overlay blocks in the order they
// were first written.
func (m *Machine) deviceState() deviceState {
	ds := deviceState{
		Tick: m.tick, Steps: m.steps, SleepUntil: m.sleepUntil, SleepForever: m.sleepForever,
		LastCheckpoint: m.lastCheckpoint, Checkpoints: m.checkpoints,
		Frame: m.dev.fb, Queue: m.dev.queue,
	}
	for _, h := range m.dev.handles {
		ds.Handles = append(ds.Handles, h)
	}
	ds.OverlayBlocks = slices.Clone(m.dev.overlayOrder)
	return ds
}

// captureMemory copies guest memory into a buffer whose pages were
// pre-faulted in one madvise: first-touch faults, not the copy, dominate a
// naive copy on these machines (~10 µs a page).
func captureMemory(src []byte) []byte {
	dst := make([]byte, len(src))
	populate(dst)
	copy(dst, src)
	return dst
}

func populate(b []byte) {
	if len(b) < 1<<20 {
		return
	}
	// madvise wants page-aligned ranges; a large Go allocation is, nearly.
	const page = 4096
	start := (uintptrOf(b) + page - 1) &^ (page - 1)
	off := int(start - uintptrOf(b))
	n := (len(b) - off) &^ (page - 1)
	if n > 0 {
		_ = unix.Madvise(b[off:off+n], unix.MADV_POPULATE_WRITE)
	}
}

// Restore makes a machine from a snapshot without running _initialize:
// eager restore (every page copied before the first step). cfg.Mode decides
// what happens next: Replay from the snapshot's log position, or Record/Live
// onwards from it (a recovering server).
func Restore(ctx context.Context, e *Engine, cfg Config, s *snapshot.Snapshot) (*Machine, error) {
	m, err := restoreInstance(ctx, e, cfg, s, len(s.Memory))
	if err != nil {
		return nil, err
	}
	if err := m.loadMemory(s.Memory); err != nil {
		m.Close(ctx)
		return nil, err
	}
	return m, nil
}

// restoreInstance instantiates the module without _initialize, sizes its
// memory to memSize bytes (the contents are the caller's business: a copy,
// or a lazy page server) and restores globals and device state.
func restoreInstance(ctx context.Context, e *Engine, cfg Config, s *snapshot.Snapshot, memSize int) (*Machine, error) {
	if s.ModuleHash != e.hash {
		return nil, &snapshot.ModuleMismatchError{File: "(snapshot)", Want: e.hash, Got: s.ModuleHash}
	}
	if len(s.Globals) != len(e.globals) {
		return nil, fmt.Errorf("machine: snapshot has %d globals, the module has %d mutable globals", len(s.Globals), len(e.globals))
	}
	ds, overlay, err := decodeDevice(s.Device)
	if err != nil {
		return nil, fmt.Errorf("machine: snapshot device state: %w", err)
	}
	if ds.Tick != s.Tick || ds.Steps != s.Step || len(ds.Handles) > abi.MaxNetHandles {
		return nil, fmt.Errorf("machine: snapshot device state disagrees with its header")
	}
	m, err := newInstance(ctx, e, cfg)
	if err != nil {
		return nil, err
	}
	if err := m.growTo(memSize); err != nil {
		m.Close(ctx)
		return nil, err
	}
	for i, g := range e.globals {
		mg, ok := m.mod.ExportedGlobal(g.Export).(api.MutableGlobal)
		if !ok {
			m.Close(ctx)
			return nil, fmt.Errorf("machine: global %d is not writable", g.Index)
		}
		mg.Set(s.Globals[i])
	}
	m.tick, m.steps = ds.Tick, ds.Steps
	m.sleepUntil, m.sleepForever = ds.SleepUntil, ds.SleepForever
	m.lastCheckpoint, m.checkpoints = ds.LastCheckpoint, ds.Checkpoints
	m.dev.fb = ds.Frame
	m.dev.queue = slices.Clone(ds.Queue)
	copy(m.dev.handles[:], ds.Handles)
	for _, blk := range ds.OverlayBlocks { // in the snapshot's order: later snapshots keep it
		if blk >= m.p.DiskBlocks {
			m.Close(ctx)
			return nil, fmt.Errorf("machine: snapshot overlay block %d is beyond the disk", blk)
		}
		m.dev.writeOverlay(blk, overlay[blk])
	}
	m.wallStart = time.Now().Add(-time.Duration(m.tickTime(m.tick)))
	if cfg.Mode != Replay {
		for h, name := range m.dev.handles {
			if name != "" && cfg.Net != nil {
				// Streams are the world, not machine state: reopen them.
				if st, err := cfg.Net.Open(name); err == nil {
					m.dev.streams[h] = st
				}
			}
		}
	}
	return m, nil
}

// growTo grows guest memory to exactly size bytes.
func (m *Machine) growTo(size int) error {
	const wasmPage = 65536
	if size%wasmPage != 0 {
		return fmt.Errorf("machine: snapshot memory size %d is not whole wasm pages", size)
	}
	mem := m.mod.Memory()
	if cur := uint64(mem.Size()); cur < uint64(size) {
		if _, ok := mem.Grow(uint32((uint64(size) - cur) / wasmPage)); !ok {
			return fmt.Errorf("machine: cannot grow guest memory to %d bytes", size)
		}
	}
	if got := len(m.mem.Bytes()); got != size {
		return fmt.Errorf("machine: guest memory is %d bytes after instantiation, the snapshot has %d", got, size)
	}
	return nil
}

func (m *Machine) loadMemory(img []byte) error {
	// Drop what instantiation wrote (data segments), pre-fault, copy.
	if err := m.mem.Zero(); err != nil {
		return err
	}
	if err := m.mem.Populate(); err != nil {
		m.cfg.Log.Debug().Err(err).Msg("MADV_POPULATE_WRITE unavailable; restore will fault page by page")
	}
	copy(m.mem.Bytes(), img)
	return nil
}
