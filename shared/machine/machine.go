package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"replaydesk/shared/abi"
	"replaydesk/shared/machine/internal/linmem"
	"replaydesk/shared/machine/internal/pageserver"
	"replaydesk/shared/recordlog"
)

// Machine is one running guest. It is not safe for concurrent use: one
// goroutine drives it (Advance or ReplayNext), and everything else it offers
// is for that goroutine between ticks.
type Machine struct {
	e    *Engine
	cfg  Config
	p    Params
	mod  api.Module
	mem  *linmem.Memory
	step api.Function
	ctx  context.Context // carries the machine to host functions

	dev devices

	// Scheduling.
	tick, steps  uint64
	sleepUntil   uint64 // next tick at which the guest wants to run
	sleepForever bool   // until input or net data
	pendingIdle  uint64 // record: idle ticks not yet written to the sink

	// Checkpoints.
	lastCheckpoint uint64 // tick of the last checkpoint
	checkpoints    uint64

	// Clock: the virtual clock's offset inside the current step, advanced by
	// poll_oneoff sleeps so a guest that waits sees time pass.
	intra     int64
	wallStart time.Time // real clock at tick 0 (non-virtual clocks)
	lastMono  int64     // the latest monotonic reading the guest was given

	// Replay.
	src          *peekSource
	inCall       bool // inside _initialize or step: call records are expected
	initializing bool // inside _initialize

	pending *PendingSnapshot   // a background snapshot under way
	lazy    *pageserver.Server // serving memory on first touch, until closed or completed
	// lazyDone holds the page server's last figures once the restore was
	// completed (lazy is nil then).
	lazyDone *pageserver.Stats

	fault  error // set by a host function just before it panics
	failed error // sticky: the machine stopped with this
	stats  Stats
}

// Stats counts what a machine did.
type Stats struct {
	Steps, Ticks     uint64
	Calls            [numLogFns]uint64 // logged calls per log number
	Checkpoints      uint64
	Presents         uint64
	RecordsAppended  uint64
	RecordsReplayed  uint64
	LastStepDuration time.Duration
}

type machineKey struct{}

// New makes a machine and cold-starts its guest (runs _initialize, whose
// non-deterministic calls are logged or replayed like any step's).
func New(ctx context.Context, e *Engine, cfg Config) (*Machine, error) {
	m, err := newInstance(ctx, e, cfg)
	if err != nil {
		return nil, err
	}
	m.wallStart = time.Now()
	m.initializing = true
	_, err = m.callResult(m.mod.ExportedFunction(abi.ExportInit))
	m.initializing = false
	if err != nil {
		m.Close(ctx)
		var d *Divergence
		if errors.As(err, &d) {
			return nil, err // it already says where
		}
		return nil, fmt.Errorf("machine: guest initialisation: %w", err)
	}
	return m, nil
}

func newInstance(ctx context.Context, e *Engine, cfg Config) (m *Machine, err error) {
	cfg.Params = cfg.Params.WithDefaults()
	if err := validateConfig(&cfg); err != nil {
		return nil, err
	}
	m = &Machine{e: e, cfg: cfg, p: cfg.Params}
	m.dev.init(cfg)
	if cfg.Mode == Replay {
		m.src = newPeekSource(cfg.Source)
	}
	alloc := &linmem.Allocator{}
	ictx := experimental.WithMemoryAllocator(context.WithValue(ctx, machineKey{}, m), alloc)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("machine: instantiating guest: %v", r)
		}
	}()
	mod, err := e.rt.InstantiateModule(ictx, e.cm,
		wazero.NewModuleConfig().WithName(fmt.Sprintf("guest-%d", e.n.Add(1))).WithStartFunctions())
	if err != nil {
		return nil, fmt.Errorf("machine: instantiating guest: %w", err)
	}
	m.mod = mod
	m.mem = alloc.Memory()
	if m.mem == nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("machine: guest memory was not allocated by the machine's allocator")
	}
	m.step = mod.ExportedFunction(abi.ExportStep)
	m.ctx = context.WithValue(ctx, machineKey{}, m)
	return m, nil
}

func validateConfig(cfg *Config) error {
	switch cfg.Mode {
	case Live:
	case Record:
		if cfg.Sink == nil {
			return errors.New("machine: record mode needs a Sink")
		}
	case Replay:
		if cfg.Source == nil {
			return errors.New("machine: replay mode needs a Source")
		}
	default:
		return fmt.Errorf("machine: unknown mode %d", cfg.Mode)
	}
	p := cfg.Params
	switch p.DiskMode {
	case abi.DiskNone:
	case abi.DiskSnapshotted:
		if cfg.Disk == nil && cfg.DiskSource != nil && cfg.Mode == Replay {
			break // blocks on demand
		}
		if uint64(len(cfg.Disk)) != p.DiskBlocks*abi.BlockSize {
			return fmt.Errorf("machine: disk image is %d bytes, the parameters say %d blocks of %d", len(cfg.Disk), p.DiskBlocks, abi.BlockSize)
		}
	case abi.DiskReplayed:
		if cfg.Mode != Replay && uint64(len(cfg.Disk)) != p.DiskBlocks*abi.BlockSize {
			return fmt.Errorf("machine: disk is %d bytes, the parameters say %d blocks of %d", len(cfg.Disk), p.DiskBlocks, abi.BlockSize)
		}
	default:
		return fmt.Errorf("machine: unknown disk mode %d", p.DiskMode)
	}
	return nil
}

// callResult runs a guest export and turns host-function panics back into
// the errors that caused them.
func (m *Machine) callResult(f api.Function) (uint64, error) {
	if m.failed != nil {
		return 0, m.failed
	}
	m.inCall = true
	m.intra = 0
	res, err := f.Call(m.ctx)
	m.inCall = false
	if lerr := m.checkLazy(); lerr != nil { // before trusting anything the guest computed
		m.failed = lerr
		return 0, lerr
	}
	if m.fault != nil {
		m.failed = m.fault
		return 0, m.fault
	}
	if err != nil {
		m.failed = &GuestError{Step: m.steps, What: "trap: " + err.Error()}
		return 0, m.failed
	}
	if len(res) != 1 {
		return 0, nil
	}
	return res[0], nil
}

// Mode is the machine's mode.
func (m *Machine) Mode() Mode { return m.cfg.Mode }

// Params returns the machine's parameters (with defaults filled in).
func (m *Machine) Params() Params { return m.p }

// Ticks is the number of ticks elapsed; Steps the number of steps run.
func (m *Machine) Ticks() uint64 { return m.tick }
func (m *Machine) Steps() uint64 { return m.steps }

// Stats returns counters.
func (m *Machine) Stats() Stats {
	s := m.stats
	s.Steps, s.Ticks = m.steps, m.tick
	return s
}

// Input queues events for the guest (live and record modes). They are
// delivered by input_poll and logged there; a sleeping guest wakes.
func (m *Machine) Input(evs ...abi.Event) { m.dev.queue = append(m.dev.queue, evs...) }

// Asleep reports whether the guest would skip the next tick if nothing
// arrives (live and record modes).
func (m *Machine) Asleep() bool { return !m.wakes() }

func (m *Machine) wakes() bool {
	if len(m.dev.queue) > 0 || m.dev.netPending() {
		return true
	}
	return !m.sleepForever && m.tick >= m.sleepUntil
}

// Advance moves one tick forward in live or record mode: it runs step if the
// guest is awake (or woken by input or net data) and otherwise counts an idle
// tick. It reports whether step ran.
func (m *Machine) Advance(ctx context.Context) (bool, error) {
	if m.cfg.Mode == Replay {
		return false, errors.New("machine: Advance in replay mode; use ReplayNext")
	}
	if m.failed != nil {
		return false, m.failed
	}
	if !m.wakes() {
		m.pendingIdle++
		m.tick++
		return false, nil
	}
	if err := m.flushIdle(); err != nil {
		return false, err
	}
	if err := m.append(recordlog.Record{Kind: recordlog.KindStep}); err != nil {
		return false, err
	}
	if err := m.runStep(); err != nil {
		return true, err
	}
	if m.tick-m.lastCheckpoint >= m.p.CheckpointEvery {
		withMem := (m.checkpoints+1)%m.p.MemCheckEvery == 0
		if err := m.Checkpoint(withMem); err != nil {
			return true, err
		}
	}
	return true, nil
}

// ContinueRecording switches a machine that replayed its own log to the end
// into record mode, appending to sink (the same log, reopened with
// recordlog.Resume) and opening endpoints through net: a live server that
// restarts rebuilds its machine this way and goes on recording, so log
// positions stay valid. Call it between steps, after ReplayNext reported
// the end of the log. Input queued in the snapshot the replay started from
// is dropped: the log already holds whatever of it was delivered.
func (m *Machine) ContinueRecording(sink RecordSink, net NetHost) error {
	if m.cfg.Mode != Replay {
		return errors.New("machine: ContinueRecording outside replay mode")
	}
	if m.failed != nil {
		return m.failed
	}
	if m.inCall || sink == nil {
		return errors.New("machine: ContinueRecording inside a step or without a sink")
	}
	m.cfg.Mode, m.cfg.Sink, m.cfg.Source, m.cfg.Net = Record, sink, nil, net
	m.src = nil
	m.dev.queue = nil
	// Real clocks go on from where the guest last saw them, never backwards.
	m.wallStart = time.Now().Add(-time.Duration(max(m.tickTime(m.tick), m.lastMono-MonotonicBase)))
	for h, name := range m.dev.handles {
		if name != "" && net != nil && m.dev.streams[h] == nil {
			// Streams are the world, not machine state: reopen them.
			if st, err := net.Open(name); err == nil {
				m.dev.streams[h] = st
			}
		}
	}
	return nil
}

// runStep calls the guest's step at the current tick and updates the sleep
// state from its result; shared by record and replay so both agree.
func (m *Machine) runStep() error {
	t0 := time.Now()
	res, err := m.callResult(m.step)
	m.stats.LastStepDuration = time.Since(t0)
	if err != nil {
		return err
	}
	sleep := int32(uint32(res))
	switch {
	case sleep == abi.SleepUntilEvent:
		m.sleepForever = true
	case sleep < 0: // below -1: treated as -1 (docs/abi.md)
		m.sleepForever = true
	case sleep > 0: // skip the next n ticks
		m.sleepForever = false
		m.sleepUntil = m.tick + 1 + uint64(sleep)
	default:
		m.sleepForever = false
		m.sleepUntil = m.tick + 1
	}
	m.steps++
	m.tick++
	return nil
}

// Sync writes idle ticks counted so far to the sink, so the log describes
// every tick up to now. Call it before flushing a log block or snapshotting.
func (m *Machine) Sync() error { return m.flushIdle() }

func (m *Machine) flushIdle() error {
	if m.pendingIdle == 0 || m.cfg.Mode != Record {
		m.pendingIdle = 0
		return nil
	}
	n := m.pendingIdle
	m.pendingIdle = 0
	return m.append(recordlog.Record{Kind: recordlog.KindIdle, N: n})
}

func (m *Machine) append(r recordlog.Record) error {
	if m.cfg.Mode != Record {
		return nil
	}
	if err := m.cfg.Sink.Append(r); err != nil {
		m.failed = fmt.Errorf("machine: writing the record log: %w", err)
		return m.failed
	}
	m.stats.RecordsAppended++
	return nil
}

// Checkpoint logs (record) the framebuffer hash and, if withMem, the
// memory hash, for replayers to check.
func (m *Machine) Checkpoint(withMem bool) error {
	if err := m.flushIdle(); err != nil {
		return err
	}
	r := recordlog.Record{Kind: recordlog.KindCheckpoint, FBHash: m.FramebufferHash()}
	if withMem {
		r.MemHash = m.StateHash()
	}
	m.lastCheckpoint = m.tick
	m.checkpoints++
	m.stats.Checkpoints++
	return m.append(r)
}

// ReplayNext consumes the log up to and including the next step or idle run
// (and the checkpoint that follows it), and returns the kind of record that
// moved time: KindStep or KindIdle. At the end of the log it returns
// ErrEndOfLog (or the source's error for an unsealed or corrupt log).
func (m *Machine) ReplayNext(ctx context.Context) (recordlog.Kind, error) {
	if m.cfg.Mode != Replay {
		return 0, errors.New("machine: ReplayNext outside replay mode")
	}
	if m.failed != nil {
		return 0, m.failed
	}
	for {
		r, err := m.src.next(ctx)
		if err == io.EOF {
			return 0, ErrEndOfLog
		}
		if err != nil {
			return 0, err
		}
		m.stats.RecordsReplayed++
		switch r.Kind {
		case recordlog.KindIdle:
			m.tick += r.N
			return recordlog.KindIdle, nil
		case recordlog.KindStep:
			if err := m.runStep(); err != nil {
				return recordlog.KindStep, err
			}
			// A live source may not have the next record yet: do not wait
			// for it (that would hold back the frame this step drew); the
			// next ReplayNext checks it as it comes.
			if !m.src.ready() {
				return recordlog.KindStep, nil
			}
			// A step must use every call the recorder logged for it.
			nr, err := m.src.peek(ctx)
			if err == nil && nr.Kind == recordlog.KindCall {
				m.failed = &Divergence{Step: m.steps - 1, Tick: m.tick - 1, Import: logFnName(nr.Fn),
					What: "the guest finished its step, but the log has more calls in it"}
				return recordlog.KindStep, m.failed
			}
			if err == nil && nr.Kind == recordlog.KindCheckpoint {
				m.src.next(ctx)
				m.stats.RecordsReplayed++
				if err := m.verify(nr); err != nil {
					return recordlog.KindStep, err
				}
			}
			return recordlog.KindStep, nil
		case recordlog.KindCheckpoint:
			if err := m.verify(r); err != nil {
				return recordlog.KindCheckpoint, err
			}
		case recordlog.KindCall:
			m.failed = &Divergence{Step: m.steps, Tick: m.tick, Import: logFnName(r.Fn),
				What: "the log has a call outside any step"}
			return 0, m.failed
		default:
			return 0, fmt.Errorf("machine: unknown record kind %d", r.Kind)
		}
	}
}

func (m *Machine) verify(r recordlog.Record) error {
	m.checkpoints++
	m.stats.Checkpoints++
	m.lastCheckpoint = m.tick
	if got := m.FramebufferHash(); got != r.FBHash {
		m.failed = &Divergence{Step: m.steps - 1, Tick: m.tick,
			What: fmt.Sprintf("framebuffer hash %016x, the log has %016x", got, r.FBHash)}
		return m.failed
	}
	if r.MemHash != 0 {
		// Every page is hashed: complete a lazy restore in bulk first
		// rather than fault each remaining page in one by one.
		if err := m.CompleteLazy(m.ctx); err != nil {
			return err
		}
		if got := m.StateHash(); got != r.MemHash {
			m.failed = &Divergence{Step: m.steps - 1, Tick: m.tick,
				What: fmt.Sprintf("memory hash %016x, the log has %016x", got, r.MemHash)}
			return m.failed
		}
	}
	return nil
}

// Close releases the guest instance and any open streams.
func (m *Machine) Close(ctx context.Context) error {
	if m.pending != nil {
		m.pending.Abort()
	}
	m.dev.closeStreams()
	if m.lazy != nil {
		m.lazy.Close()
		m.lazy = nil
	}
	if m.failed == nil {
		m.failed = ErrClosed
	}
	if m.mod != nil {
		return m.mod.Close(ctx)
	}
	return nil
}

// peekSource adds one record of lookahead to a RecordSource.
type peekSource struct {
	src    RecordSource
	live   func() bool // the source's Ready, if it has one
	buf    recordlog.Record
	bufErr error
	has    bool
}

func newPeekSource(src RecordSource) *peekSource {
	p := &peekSource{src: src}
	if r, ok := src.(interface{ Ready() bool }); ok {
		p.live = r.Ready
	}
	return p
}

// ready reports whether peek would return without waiting: always, unless
// the source says otherwise (a live stream: recordlog.Stream.Ready).
func (p *peekSource) ready() bool { return p.has || p.live == nil || p.live() }

func (p *peekSource) peek(ctx context.Context) (recordlog.Record, error) {
	if !p.has {
		p.buf, p.bufErr = p.src.Next(ctx)
		p.has = true
	}
	return p.buf, p.bufErr
}

func (p *peekSource) next(ctx context.Context) (recordlog.Record, error) {
	r, err := p.peek(ctx)
	if err == nil {
		p.has = false
	}
	return r, err
}
