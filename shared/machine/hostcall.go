package machine

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"replaydesk/shared/recordlog"
)

// Log numbers of the logged imports: the Fn of their call records. They are
// part of the log format of ABI v1 (docs/log-format.md): never renumber.
const (
	logClockTimeGet = 0
	logRandomGet    = 1
	logPollOneoff   = 2
	logInputPoll    = 3
	logDiskRead     = 4
	logNetOpen      = 5
	logNetSend      = 6
	logNetRecv      = 7
	logDiskWrite    = 8
	numLogFns       = 9
)

// outcome is what a logged import's real implementation produced: its
// result and the bytes its effect on guest memory is rebuilt from.
type outcome struct {
	ret  uint64
	data []byte
}

// hostFunc is one import. Logged imports split into live (touches the world,
// record and live modes only) and apply (turns an outcome into guest memory
// writes and a result, in every mode — so record and replay write memory
// through the same code). Deterministic imports have only run.
type hostFunc struct {
	module, name string
	params       []api.ValueType
	results      []api.ValueType
	logID        int                      // -1: never logged
	loggedIf     func(m *Machine) bool    // optional: logged only when true
	live         func(c *call) outcome    // logged: the real thing
	apply        func(c *call, o outcome) // logged: outcome -> memory, results
	run          func(c *call)            // deterministic imports
}

func (f *hostFunc) logged(m *Machine) bool {
	return f.logID >= 0 && (f.loggedIf == nil || f.loggedIf(m))
}

// call is one import invocation.
type call struct {
	m     *Machine
	f     *hostFunc
	mem   api.Memory
	stack []uint64
}

func (c *call) u32(i int) uint32 { return uint32(c.stack[i]) }
func (c *call) i32(i int) int32  { return int32(uint32(c.stack[i])) }
func (c *call) u64(i int) uint64 { return c.stack[i] }
func (c *call) ret(v int32)      { c.stack[0] = uint64(uint32(v)) }

// read returns a view of guest memory, trapping the guest (as a memory fault
// would) when the range is outside it.
func (c *call) read(off, n uint32) []byte {
	b, ok := c.mem.Read(off, n)
	if !ok {
		c.trap(fmt.Sprintf("%s: memory range %#x+%d is outside guest memory (%d bytes)", c.f.name, off, n, c.mem.Size()))
	}
	return b
}

func (c *call) write(off uint32, b []byte) {
	if !c.mem.Write(off, b) {
		c.trap(fmt.Sprintf("%s: memory range %#x+%d is outside guest memory (%d bytes)", c.f.name, off, len(b), c.mem.Size()))
	}
}

func (c *call) write32(off, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	c.write(off, b[:])
}

func (c *call) write64(off uint32, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	c.write(off, b[:])
}

// trap stops the guest with a GuestError.
func (c *call) trap(what string) {
	c.m.fault = &GuestError{Step: c.m.steps, What: what}
	panic(c.m.fault)
}

// diverge stops a replay with a Divergence.
func (c *call) diverge(what string) {
	c.m.fault = &Divergence{Step: c.m.steps, Tick: c.m.tick, Init: c.m.initializing, Import: c.f.name, What: what}
	panic(c.m.fault)
}

// dispatch is the one record/replay path every import goes through.
func dispatch(f *hostFunc) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		m := ctx.Value(machineKey{}).(*Machine)
		// wazero leaves the upper half of i32 slots undefined.
		for i, t := range f.params {
			if t == api.ValueTypeI32 {
				stack[i] = uint64(uint32(stack[i]))
			}
		}
		c := &call{m: m, f: f, mem: mod.Memory(), stack: stack}
		if !f.logged(m) {
			f.run(c)
			return
		}
		m.stats.Calls[f.logID]++
		args := stack[:len(f.params)]
		var o outcome
		if m.cfg.Mode == Replay {
			o = m.replayCall(c, args)
		} else {
			o = f.live(c)
			if m.cfg.Mode == Record {
				err := m.append(recordlog.Record{Kind: recordlog.KindCall, Fn: uint8(f.logID),
					Args: append([]uint64(nil), args...), Ret: o.ret, Data: o.data})
				if err != nil {
					m.fault = err
					panic(err)
				}
			}
		}
		f.apply(c, o)
	}
}

// replayCall takes the next record, which must be this call with these
// arguments.
func (m *Machine) replayCall(c *call, args []uint64) outcome {
	if !m.inCall {
		c.diverge("import called outside step")
	}
	r, err := m.src.next(m.ctx)
	if err != nil {
		m.fault = fmt.Errorf("machine: reading the log at step %d (%s): %w", m.steps, c.f.name, err)
		panic(m.fault)
	}
	m.stats.RecordsReplayed++
	if r.Kind != recordlog.KindCall {
		c.diverge(fmt.Sprintf("the guest called %s, but the log's next record is %s (the guest made more calls than were recorded)", c.f.name, r.Kind))
	}
	if int(r.Fn) != c.f.logID {
		c.diverge(fmt.Sprintf("the guest called %s, the log has %s", c.f.name, logFnName(r.Fn)))
	}
	if len(r.Args) != len(args) {
		c.diverge(fmt.Sprintf("%d arguments, the log has %d", len(args), len(r.Args)))
	}
	for i := range args {
		if args[i] != r.Args[i] {
			c.diverge(fmt.Sprintf("argument %d is %#x, the log has %#x", i, args[i], r.Args[i]))
		}
	}
	return outcome{ret: r.Ret, data: r.Data}
}

var (
	hostFuncs      []*hostFunc
	hostFuncByName = map[string]*hostFunc{}
	logFnNames     [numLogFns]string
)

func register(fs ...*hostFunc) {
	for _, f := range fs {
		if (f.logID >= 0) != (f.live != nil && f.apply != nil) || (f.logID < 0 || f.loggedIf != nil) != (f.run != nil) {
			panic("machine: inconsistent host function " + f.name)
		}
		hostFuncs = append(hostFuncs, f)
		hostFuncByName[f.module+"."+f.name] = f
		if f.logID >= 0 {
			logFnNames[f.logID] = f.name
		}
	}
}

func logFnName(fn uint8) string {
	if int(fn) < len(logFnNames) && logFnNames[fn] != "" {
		return logFnNames[fn]
	}
	return fmt.Sprintf("import #%d", fn)
}

func instantiateHostModules(ctx context.Context, rt wazero.Runtime) error {
	builders := map[string]wazero.HostModuleBuilder{}
	var order []string
	for _, f := range hostFuncs {
		b, ok := builders[f.module]
		if !ok {
			b = rt.NewHostModuleBuilder(f.module)
			builders[f.module] = b
			order = append(order, f.module)
		}
		b.NewFunctionBuilder().WithGoModuleFunction(dispatch(f), f.params, f.results).Export(f.name)
	}
	for _, name := range order {
		if _, err := builders[name].Instantiate(ctx); err != nil {
			return fmt.Errorf("machine: host module %s: %w", name, err)
		}
	}
	return nil
}

// Value-type shorthands for the tables.
var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func sig(vs ...api.ValueType) []api.ValueType { return vs }

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
