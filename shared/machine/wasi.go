package machine

import (
	"crypto/rand"
	"encoding/binary"
	"sort"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero/api"

	"replaydesk/shared/abi"
)

// WASI preview 1, as far as a guest needs it: clocks, random and
// poll_oneoff are logged; the rest is deterministic (no files, no
// arguments, no environment: a guest's world comes only through the ABI).

const wasi = "wasi_snapshot_preview1"

// WASI clock ids.
const (
	clockRealtime  = 0
	clockMonotonic = 1
	clockProcess   = 2
	clockThread    = 3
)

// MaxRandom caps one random_get (the Go runtime asks for a few bytes).
const maxRandom = 64 << 10

func errnoRet(e int32) uint64 { return uint64(uint32(e)) }

// predictClock is what a clock reads at the start of the current tick on a
// virtual clock. Logged readings are stored as a difference from it, so a
// virtual-clock log spends one byte a reading.
func (m *Machine) predictClock(id uint32) int64 {
	t := m.tickTime(m.tick)
	if id == clockRealtime {
		return m.p.RealtimeBase + t
	}
	return MonotonicBase + t
}

// tickTime is the virtual time of a tick since tick 0, in ns.
func (m *Machine) tickTime(tick uint64) int64 {
	return int64(tick) * int64(time.Second) / int64(m.p.TickHz)
}

func (m *Machine) readClock(id uint32) int64 {
	if m.p.VirtualClock {
		return m.predictClock(id) + m.intra
	}
	if id == clockRealtime {
		return time.Now().UnixNano()
	}
	return MonotonicBase + int64(time.Since(m.wallStart))
}

func init() {
	register(
		&hostFunc{module: wasi, name: "clock_time_get", params: sig(i32, i64, i32), results: sig(i32), logID: logClockTimeGet,
			live: func(c *call) outcome {
				id := c.u32(0)
				if id > clockThread {
					return outcome{ret: errnoRet(abi.ErrnoInval)}
				}
				d := c.m.readClock(id) - c.m.predictClock(id)
				return outcome{data: binary.AppendUvarint(nil, zigzag(d))}
			},
			apply: func(c *call, o outcome) {
				if o.ret != 0 {
					c.stack[0] = o.ret
					return
				}
				u, n := binary.Uvarint(o.data)
				if n <= 0 || n != len(o.data) {
					c.diverge("malformed clock reading in the log")
				}
				v := c.m.predictClock(c.u32(0)) + unzigzag(u)
				if c.u32(0) == clockMonotonic {
					c.m.lastMono = max(c.m.lastMono, v)
				}
				c.write64(c.u32(2), uint64(v))
				c.ret(0)
			}},
		&hostFunc{module: wasi, name: "random_get", params: sig(i32, i32), results: sig(i32), logID: logRandomGet,
			live: func(c *call) outcome {
				n := c.u32(1)
				if n > maxRandom {
					return outcome{ret: errnoRet(abi.ErrnoInval)}
				}
				b := make([]byte, n)
				rand.Read(b)
				return outcome{data: b}
			},
			apply: func(c *call, o outcome) {
				if o.ret != 0 {
					c.stack[0] = o.ret
					return
				}
				if uint32(len(o.data)) != c.u32(1) {
					c.diverge("random bytes in the log have the wrong length")
				}
				c.write(c.u32(0), o.data)
				c.ret(0)
			}},
		&hostFunc{module: wasi, name: "poll_oneoff", params: sig(i32, i32, i32, i32), results: sig(i32), logID: logPollOneoff,
			live: pollOneoff,
			apply: func(c *call, o outcome) {
				if o.ret != 0 {
					c.stack[0] = o.ret
					return
				}
				if len(o.data)%32 != 0 || uint32(len(o.data)/32) > c.u32(2) {
					c.diverge("malformed poll events in the log")
				}
				c.write(c.u32(1), o.data)
				c.write32(c.u32(3), uint32(len(o.data)/32))
				c.ret(0)
			}},
		&hostFunc{module: wasi, name: "clock_res_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: func(c *call) {
			if c.u32(0) > clockThread {
				c.ret(abi.ErrnoInval)
				return
			}
			c.write64(c.u32(1), 1)
			c.ret(0)
		}},
		&hostFunc{module: wasi, name: "args_sizes_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: zeroSizes},
		&hostFunc{module: wasi, name: "environ_sizes_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: zeroSizes},
		&hostFunc{module: wasi, name: "args_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: retOK},
		&hostFunc{module: wasi, name: "environ_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: retOK},
		&hostFunc{module: wasi, name: "sched_yield", results: sig(i32), logID: -1, run: retOK},
		&hostFunc{module: wasi, name: "fd_write", params: sig(i32, i32, i32, i32), results: sig(i32), logID: -1, run: fdWrite},
		&hostFunc{module: wasi, name: "fd_read", params: sig(i32, i32, i32, i32), results: sig(i32), logID: -1, run: func(c *call) {
			if c.u32(0) != 0 {
				c.ret(abi.ErrnoBadf)
				return
			}
			c.write32(c.u32(3), 0) // stdin is always at its end
			c.ret(0)
		}},
		&hostFunc{module: wasi, name: "fd_fdstat_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: func(c *call) {
			if c.u32(0) > 2 {
				c.ret(abi.ErrnoBadf)
				return
			}
			var st [24]byte
			st[0] = 2 // character device
			binary.LittleEndian.PutUint64(st[8:], ^uint64(0))
			binary.LittleEndian.PutUint64(st[16:], ^uint64(0))
			c.write(c.u32(1), st[:])
			c.ret(0)
		}},
		&hostFunc{module: wasi, name: "fd_fdstat_set_flags", params: sig(i32, i32), results: sig(i32), logID: -1, run: stdioOnly},
		&hostFunc{module: wasi, name: "fd_close", params: sig(i32), results: sig(i32), logID: -1, run: stdioOnly},
		&hostFunc{module: wasi, name: "fd_sync", params: sig(i32), results: sig(i32), logID: -1, run: stdioOnly},
		&hostFunc{module: wasi, name: "fd_datasync", params: sig(i32), results: sig(i32), logID: -1, run: stdioOnly},
		&hostFunc{module: wasi, name: "fd_prestat_get", params: sig(i32, i32), results: sig(i32), logID: -1, run: badf},
		&hostFunc{module: wasi, name: "fd_prestat_dir_name", params: sig(i32, i32, i32), results: sig(i32), logID: -1, run: badf},
		&hostFunc{module: wasi, name: "proc_exit", params: sig(i32), logID: -1, run: func(c *call) {
			c.trap("the guest exited (proc_exit " + strconv.Itoa(int(c.i32(0))) + ")")
		}},
	)
	// The rest of preview 1 exists so that any guest links; none of it does
	// anything in a machine without files or sockets.
	names := make([]string, 0, len(unsupportedWASI))
	for name := range unsupportedWASI {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		register(&hostFunc{module: wasi, name: name, params: unsupportedWASI[name], results: sig(i32), logID: -1,
			run: func(c *call) { c.ret(abi.ErrnoNosys) }})
	}
}

// unsupportedWASI lists the rest of preview 1 with its signatures.
var unsupportedWASI = map[string][]api.ValueType{
	"fd_advise":               sig(i32, i64, i64, i32),
	"fd_allocate":             sig(i32, i64, i64),
	"fd_fdstat_set_rights":    sig(i32, i64, i64),
	"fd_filestat_get":         sig(i32, i32),
	"fd_filestat_set_size":    sig(i32, i64),
	"fd_filestat_set_times":   sig(i32, i64, i64, i32),
	"fd_pread":                sig(i32, i32, i32, i64, i32),
	"fd_pwrite":               sig(i32, i32, i32, i64, i32),
	"fd_readdir":              sig(i32, i32, i32, i64, i32),
	"fd_renumber":             sig(i32, i32),
	"fd_seek":                 sig(i32, i64, i32, i32),
	"fd_tell":                 sig(i32, i32),
	"path_create_directory":   sig(i32, i32, i32),
	"path_filestat_get":       sig(i32, i32, i32, i32, i32),
	"path_filestat_set_times": sig(i32, i32, i32, i32, i64, i64, i32),
	"path_link":               sig(i32, i32, i32, i32, i32, i32, i32),
	"path_open":               sig(i32, i32, i32, i32, i32, i64, i64, i32, i32),
	"path_readlink":           sig(i32, i32, i32, i32, i32, i32),
	"path_remove_directory":   sig(i32, i32, i32),
	"path_rename":             sig(i32, i32, i32, i32, i32, i32),
	"path_symlink":            sig(i32, i32, i32, i32, i32),
	"path_unlink_file":        sig(i32, i32, i32),
	"proc_raise":              sig(i32),
	"sock_accept":             sig(i32, i32, i32),
	"sock_recv":               sig(i32, i32, i32, i32, i32, i32),
	"sock_send":               sig(i32, i32, i32, i32, i32),
	"sock_shutdown":           sig(i32, i32),
}

func retOK(c *call) { c.ret(0) }
func badf(c *call)  { c.ret(abi.ErrnoBadf) }

func stdioOnly(c *call) {
	if c.u32(0) > 2 {
		c.ret(abi.ErrnoBadf)
		return
	}
	c.ret(0)
}

func zeroSizes(c *call) {
	c.write32(c.u32(0), 0)
	c.write32(c.u32(1), 0)
	c.ret(0)
}

func fdWrite(c *call) {
	fd, iovs, n := c.u32(0), c.u32(1), c.u32(2)
	if fd != 1 && fd != 2 {
		c.ret(abi.ErrnoBadf)
		return
	}
	if n > 1024 {
		c.ret(abi.ErrnoInval)
		return
	}
	var total uint32
	vec := c.read(iovs, n*8)
	for i := uint32(0); i < n; i++ {
		p := binary.LittleEndian.Uint32(vec[i*8:])
		l := binary.LittleEndian.Uint32(vec[i*8+4:])
		c.m.dev.console(c.read(p, l))
		total += l
	}
	c.write32(c.u32(3), total)
	c.ret(0)
}

// pollOneoff waits for clock subscriptions. On a virtual clock it waits by
// moving the step's clock offset forward; on a real clock it sleeps at most
// one tick (a step must not stall the machine). Every subscription is
// reported as fired: a Go guest re-checks its timers against the clock.
func pollOneoff(c *call) outcome {
	in, n := c.u32(0), c.u32(2)
	if n == 0 || n > 64 {
		return outcome{ret: errnoRet(abi.ErrnoInval)}
	}
	subs := c.read(in, n*48)
	c.read(c.u32(1), n*32) // the output must fit too
	wait := int64(-1)
	events := make([]byte, 32*n)
	for i := uint32(0); i < n; i++ {
		s := subs[i*48:]
		ev := events[i*32:]
		copy(ev[0:8], s[0:8]) // userdata
		tag := s[8]
		ev[10] = tag
		if tag != 0 {
			binary.LittleEndian.PutUint16(ev[8:], uint16(abi.ErrnoBadf)) // no fds to wait on
			wait = 0
			continue
		}
		id := binary.LittleEndian.Uint32(s[16:])
		t := int64(binary.LittleEndian.Uint64(s[24:]))
		if binary.LittleEndian.Uint16(s[40:])&1 != 0 { // absolute time
			t -= c.m.readClock(id)
		}
		if t < 0 {
			t = 0
		}
		if wait < 0 || t < wait {
			wait = t
		}
	}
	if wait > 0 {
		if c.m.p.VirtualClock {
			c.m.intra += wait
		} else {
			time.Sleep(min(time.Duration(wait), time.Second/time.Duration(c.m.p.TickHz)))
		}
	}
	return outcome{data: events}
}
