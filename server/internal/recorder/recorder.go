// Package recorder runs one guest in record mode into a session directory:
// it feeds scripted input at its virtual times, ticks the machine (as fast
// as it can, or in real time), flushes log blocks, takes snapshots, and
// reports what it recorded. It is what `server record` does, and the loop
// under a live session (server/internal/session), which adds hooks: log
// blocks as written, snapshots on request, frames with their damage, and
// continuing a stopped session from its own log. Snapshots on request are
// rate-limited (DemandEvery) and, with a retention policy, the session
// directory keeps a bounded set of snapshots (docs/snapshots.md).
//
// It must not know about networks, viewers or how the log is encoded.
package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/shared/abi"
	"replaydesk/shared/endpoints"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/machine"
	"replaydesk/shared/metrics"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// Options says what to record.
type Options struct {
	Image    images.Image
	Out      string
	Duration time.Duration // of virtual time; 0 runs until ctx ends
	Input    []inputscript.Timed
	// SnapshotEvery takes a snapshot each period of virtual time (0: none).
	SnapshotEvery time.Duration
	// SnapshotSettle is how many ticks after its request a snapshot is
	// taken (default DefaultSnapshotSettle): its background copy runs
	// meanwhile. On virtual time the snapshot is taken at exactly that tick,
	// the recorder waiting for the copy if it has not converged, so two
	// recordings of the same image and script snapshot the same tick and
	// their pages match wherever the guests' states do (repeat sessions
	// fetch only what differs). In real time it is taken at that tick or,
	// if the copy is late, at the first step boundary after it converged:
	// the guest cannot wait without missing real time.
	SnapshotSettle uint64
	// Realtime paces ticks by the wall clock and gives the guest the real
	// clocks; otherwise time is virtual and the recording runs flat out.
	Realtime bool
	DiskMode abi.DiskMode
	// CheckpointEvery and MemCheckEvery override the machine's defaults.
	CheckpointEvery, MemCheckEvery uint64
	// Inject delivers live input (events already stamped with their user);
	// it is drained once per tick. Nil: scripted input only.
	Inject <-chan abi.Event
	// OnFrame is called after each step that presented, with the frame, a
	// view of its pixels valid only during the call and the damage since the
	// last call.
	OnFrame func(f machine.Frame, pixels []byte, damage []machine.Rect)
	// WantFrame, if set, is asked after every tick: true calls OnFrame with
	// the current frame and nil damage (all of it) even when nothing was
	// presented, for a live session's key frames.
	WantFrame func() bool

	// The hooks of a live session (server/internal/session). All are called
	// on the recording goroutine.

	// Continue reopens Out if it already holds a session: the machine is
	// rebuilt from its newest snapshot and its own log replayed to the end,
	// then recording goes on in the same log (docs/live-sessions.md, Server
	// restart). Without it an existing Out is an error.
	Continue bool
	// LeaveOpen ends the recording without sealing the log, so a later
	// Continue can resume it.
	LeaveOpen bool
	// OnReady is called once the machine is ready to tick (after a
	// Continue's replay), before the first tick.
	OnReady func(Ready)
	// OnBlock receives every log block as it is written, and on a Continue
	// the blocks replayed from the newest snapshot on first (the bytes are
	// valid only during the call).
	OnBlock func(pos recordlog.Pos, block []byte)
	// SnapshotNow asks for a snapshot as soon as possible (one already under
	// way answers it too). Anyone who may replay can cause one, so they are
	// at most one per DemandEvery (default DefaultDemandEvery) of ticks: a
	// request sooner waits until then.
	SnapshotNow <-chan struct{}
	DemandEvery time.Duration
	// Retention bounds the snapshots kept in the session directory: after
	// each snapshot the ones it drops are deleted (sessiondir.Dir.Prune).
	// Nil keeps every snapshot, as `server record` does, unless SnapshotNow
	// is set: a session that takes snapshots on demand is bounded by
	// sessiondir.DefaultRetention.
	Retention *sessiondir.Retention
	// OnSnapshot reports each snapshot stored (or that failed).
	OnSnapshot func(Snapshot)
	// FlushOnInput ends a log block right after a tick that took input, so
	// viewers see keystrokes without waiting for FlushEvery.
	FlushOnInput bool
	// AfterTick is called after every tick with the tick count.
	AfterTick func(tick uint64)
	// Metrics, if set, receives the session's counters (served at /metrics).
	Metrics *metrics.Registry
	// FlushEvery ends a log block each this many ticks (default 30).
	FlushEvery uint64
	Console    io.Writer
	Log        zerolog.Logger
	// Progress is called about every ProgressEvery of wall time.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// DefaultSnapshotSettle is 100 ms at 60 ticks a second: background copies
// of the images' memories took 2–23 ms (docs/snapshots.md), so on real time
// the snapshot is almost always ready by then, and on virtual time the
// recorder seldom waits.
const DefaultSnapshotSettle = 6

// DefaultDemandEvery is the least time between snapshots taken on request:
// a viewer going to dual mode is served a snapshot up to 10 s old anyway
// (session.DualSnapshotAge).
const DefaultDemandEvery = 10 * time.Second

// Ready describes a recording about to tick.
type Ready struct {
	Dir    *sessiondir.Dir
	Header recordlog.Header // the log's module hash and params
	Params machine.Params
	Tick   uint64 // where ticking starts (0, or where a Continue's log ended)
	Step   uint64
	// Restored is the snapshot a Continue started from (0: none, replayed
	// from the start); Replayed the ticks of log it replayed.
	Restored int
	Replayed uint64
	// StateHash is the machine's state where ticking starts (a Continue
	// reached it by replay: it must equal what the recording ended with).
	StateHash uint64
}

// Snapshot reports one snapshot: stored as number Info.N, or Err.
type Snapshot struct {
	Info     sessiondir.SnapshotInfo
	Snapshot *snapshot.Snapshot
	Stall    time.Duration
	Err      error
}

// Progress is reported during long recordings.
type Progress struct {
	Ticks, TotalTicks uint64
	LogBytes          int64
	Wall              time.Duration
}

// Result is what `server record` prints.
type Result struct {
	Image        string  `json:"image"`
	DiskMode     string  `json:"disk_mode"`
	Steps        uint64  `json:"steps"`
	Ticks        uint64  `json:"ticks"`
	VirtualS     float64 `json:"virtual_s"`
	LogBytes     int64   `json:"log_bytes"`
	LogBytesPerS float64 `json:"log_bytes_per_s"`
	Snapshots    int     `json:"snapshots"`
	// Per snapshot: how long the guest was stopped, and from request to ready.
	SnapshotStallMs   []float64 `json:"snapshot_stall_ms,omitempty"`
	SnapshotLatencyMs []float64 `json:"snapshot_latency_ms,omitempty"`
	// Per snapshot: the tick it was taken at, and how long a virtual-time
	// recorder waited at that tick for the background copy to converge
	// (the guest was not running; virtual time did not move).
	SnapshotTicks      []uint64  `json:"snapshot_ticks,omitempty"`
	SnapshotWaitMs     []float64 `json:"snapshot_wait_ms,omitempty"`
	SnapshotBackground bool      `json:"snapshot_background"`         // pre-copy with dirty tracking, not stop-and-copy
	SnapshotFailures   int       `json:"snapshot_failures,omitempty"` // did not converge in 30 rounds
	InputEvents        int       `json:"input_events"`
	FinalFBHash        string    `json:"final_fb_hash"`
	FinalStateHash     string    `json:"final_state_hash"`
	MemoryBytes        int       `json:"memory_bytes"`
	WallS              float64   `json:"wall_s"`
	StepMsMedian       float64   `json:"step_ms_median"`
	StepMsP99          float64   `json:"step_ms_p99"`
	Out                string    `json:"out"`
}

// Run records a session. ctx cancellation ends the recording early but
// still seals the log, so what was recorded stays replayable.
func Run(ctx context.Context, o Options) (*Result, error) {
	img := o.Image
	if o.FlushEvery == 0 {
		o.FlushEvery = 30
	}
	// A machine needs a live context: cancellation is handled by the loop.
	mctx := context.WithoutCancel(ctx)
	continuing := false
	if _, serr := os.Stat(filepath.Join(o.Out, "session.json")); serr == nil && o.Continue {
		continuing = true
		// The directory says what it runs: its image's endpoints serve it,
		// whatever image the caller had in mind for a new session.
		if b, err := os.ReadFile(filepath.Join(o.Out, "session.json")); err == nil {
			var meta sessiondir.Meta
			if json.Unmarshal(b, &meta) == nil && meta.Image != img.Name {
				if other, err := images.Lookup(meta.Image); err == nil {
					o.Log.Info().Str("image", meta.Image).Msg("continuing the session's own image")
					img, o.Image = other, other
				}
			}
		}
	}
	net := endpoints.NewHost()
	for name, f := range img.Sources {
		net.Add(name, f)
	}
	var st *started
	var err error
	if continuing {
		st, err = continueSession(mctx, o, net)
	} else {
		st, err = startSession(mctx, o, net)
	}
	if err != nil {
		return nil, err
	}
	defer st.eng.Close(context.Background())
	defer st.m.Close(mctx)
	dir, w, m, p, disk := st.dir, st.w, st.m, st.ready.Params, st.disk
	mode := p.DiskMode
	res := &Result{Image: img.Name, DiskMode: mode.String(), Out: o.Out}
	script := inputscript.NewSequencer(o.Input)
	period := time.Second / time.Duration(p.TickHz)
	t0 := st.ready.Tick
	total := t0 + uint64(o.Duration/period)
	if o.Duration == 0 {
		total = ^uint64(0)
	}
	var snapEvery uint64
	if o.SnapshotEvery > 0 {
		snapEvery = max(1, uint64(o.SnapshotEvery/period))
	}
	demandEvery := o.DemandEvery
	if demandEvery == 0 {
		demandEvery = DefaultDemandEvery
	}
	demandGap := uint64(max(0, demandEvery/period))
	lastSnap, snapped := uint64(0), false // the tick of the last snapshot started
	if n := len(dir.Meta.Snapshots); n > 0 {
		lastSnap, snapped = dir.Meta.Snapshots[n-1].Tick, true
	}
	retention := o.Retention
	if retention == nil && o.SnapshotNow != nil {
		retention = &sessiondir.DefaultRetention
	}
	var pendingKind string
	settle := o.SnapshotSettle
	if settle == 0 {
		settle = DefaultSnapshotSettle
	}
	var snapAt uint64 // the tick the pending snapshot is due
	var stepDur []time.Duration
	var pending *machine.PendingSnapshot
	var ws *workingSet
	var wsUntil uint64
	mt := newSessionMetrics(o.Metrics)
	if retention != nil && len(dir.Meta.Snapshots) > 0 {
		// A continued session may hold more than the policy keeps (older
		// builds kept every snapshot).
		dropped, err := dir.Prune(*retention)
		if err != nil {
			o.Log.Warn().Err(err).Msg("deleting snapshots the retention policy dropped")
		}
		mt.retained(dir, len(dropped))
	} else {
		mt.retained(dir, 0)
	}
	if o.OnReady != nil {
		o.OnReady(st.ready) // after the pruning: what it serves is what is kept
	}
	start := time.Now().Add(-time.Duration(t0) * period) // a Continue paces on from its tick
	lastProgress := time.Now()
	wantSnapshot := false
	tickAt := func(t uint64) time.Duration { return time.Duration(t) * period }

	// A block ends only when something other than idle ticks happened since
	// the last one: idle time rides along in the next block, which keeps an
	// idle session's log to about one block a second.
	var flushedAt uint64
	flushIfBusy := func() error {
		if m.Stats().RecordsAppended == flushedAt {
			return nil
		}
		if err := m.Sync(); err != nil {
			return err
		}
		flushedAt = m.Stats().RecordsAppended
		return w.Flush()
	}
	flush := func() error {
		if err := m.Sync(); err != nil {
			return err
		}
		flushedAt = m.Stats().RecordsAppended
		return w.Flush()
	}
	runErr := func() error {
		for t := t0; t < total; t++ {
			if ctx.Err() != nil {
				if o.LeaveOpen {
					o.Log.Info().Uint64("tick", t).Msg("recording stopped; the log stays open to continue")
				} else {
					o.Log.Warn().Uint64("tick", t).Msg("recording interrupted; sealing the log")
				}
				return nil
			}
			if o.Realtime {
				if d := time.Until(start.Add(tickAt(t))); d > 0 {
					time.Sleep(d)
				}
			}
			inputs := res.InputEvents
			if evs := script.Due(tickAt(t)); len(evs) > 0 {
				m.Input(evs...)
				res.InputEvents += len(evs)
			}
		drain:
			for o.Inject != nil {
				select {
				case ev := <-o.Inject:
					m.Input(ev)
					res.InputEvents++
				default:
					break drain
				}
			}
			seq := m.Frame().Seq
			ran, err := m.Advance(mctx)
			if err != nil {
				return err
			}
			if ran {
				if o.Duration > 0 { // a live session runs for days: keep no per-step history
					stepDur = append(stepDur, m.Stats().LastStepDuration)
				}
			}
			if f := m.Frame(); f.Seq != seq {
				dmg := m.TakeDamage() // taken even without OnFrame: the machine keeps it until then
				if o.OnFrame != nil {
					o.OnFrame(f, m.Pixels(), dmg)
				}
			} else if o.OnFrame != nil && o.WantFrame != nil && o.WantFrame() && m.Pixels() != nil {
				o.OnFrame(f, m.Pixels(), nil)
			}
			next := t + 1
			if next%o.FlushEvery == 0 || (o.FlushOnInput && res.InputEvents != inputs) {
				if err := flushIfBusy(); err != nil {
					return err
				}
			}
		requests:
			for o.SnapshotNow != nil {
				select {
				case <-o.SnapshotNow:
					wantSnapshot = true
				default:
					break requests
				}
			}
			periodic := snapEvery > 0 && next%snapEvery == 0
			// A request waits for the gap since the last snapshot: many
			// requests, from any number of people, make one snapshot.
			demand := wantSnapshot && (!snapped || next >= lastSnap+demandGap)
			startSnap := (periodic || demand) && next < total && pending == nil
			if ws != nil && (next >= wsUntil || startSnap) {
				if err := ws.finish(m, dir); err != nil {
					return err
				}
				ws = nil
			}
			if startSnap {
				if pending, err = m.StartSnapshot(); err != nil {
					return err
				}
				snapAt = next + settle
				lastSnap, snapped = next, true
				pendingKind = sessiondir.KindPeriodic
				if !periodic {
					pendingKind = sessiondir.KindDemand
				}
			}
			if pending != nil {
				wantSnapshot = false // the one under way answers the request
			}
			if pending != nil && next >= snapAt && !o.Realtime {
				// Virtual time: the snapshot is taken at this tick and no
				// other, whenever the copy converges. The guest waits, but
				// it cannot tell: its clock does not move.
				t0 := time.Now()
				if !pending.Wait(time.Minute) {
					o.Log.Warn().Uint64("tick", next).Msg("background snapshot copy still running after a minute; finishing it with the guest stopped")
				}
				res.SnapshotWaitMs = append(res.SnapshotWaitMs, ms(time.Since(t0)))
			}
			if pending != nil && next >= snapAt && (!o.Realtime || pending.Ready()) {
				snap, err := finishSnapshot(m, w, dir, res, pending, pendingKind, flush)
				pending = nil
				if err != nil {
					return err
				}
				if snap.Err == nil && retention != nil {
					dropped, err := dir.Prune(*retention)
					if err != nil {
						// The index is right; an undeleted file is retried
						// at the next snapshot (Prune deletes orphans).
						o.Log.Warn().Err(err).Msg("deleting snapshots the retention policy dropped")
					}
					for _, d := range dropped {
						o.Log.Info().Int("snapshot", d.N).Str("kind", kindName(d.Kind)).Uint64("tick", d.Tick).Msg("snapshot deleted (retention)")
					}
					mt.retained(dir, len(dropped))
				}
				// Record what the guest writes in the next second: the
				// snapshot's working set, for lazy restores to prefetch. The
				// snapshot is reported with it, a second later.
				report := true
				if snap.Err == nil {
					if t, err := m.TrackWrites(); err == nil {
						ws, wsUntil = &workingSet{t: t, n: snap.Info.N, report: snap, on: o.OnSnapshot}, next+uint64(p.TickHz)
						report = false
					}
				}
				if report && o.OnSnapshot != nil {
					o.OnSnapshot(snap)
				}
			}
			if mt != nil {
				mt.update(m, w, res, ran)
			}
			if o.AfterTick != nil {
				o.AfterTick(next)
			}
			if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
				lastProgress = time.Now()
				o.Progress(Progress{Ticks: next, TotalTicks: total, LogBytes: w.Bytes(), Wall: time.Since(start)})
			}
		}
		return nil
	}()
	if pending != nil { // requested too late in the session to finish
		pending.Abort()
	}
	if ws != nil && runErr == nil {
		runErr = ws.finish(m, dir)
	}
	if runErr == nil {
		runErr = m.Sync()
	}
	if runErr == nil {
		runErr = m.Checkpoint(true) // the final state, checked by every replay
	}
	closeLog := w.Close
	if o.LeaveOpen {
		closeLog = w.Detach
	}
	if err := closeLog(); runErr == nil && err != nil {
		runErr = err
	}
	if runErr != nil {
		return nil, runErr
	}
	if mode == abi.DiskReplayed {
		// The real disk after the session: the world the recorder changed.
		if err := os.WriteFile(filepath.Join(dir.Path, "disk.final.img"), disk, 0o644); err != nil {
			return nil, err
		}
	}
	res.Steps, res.Ticks = m.Steps(), m.Ticks()
	res.VirtualS = float64(res.Ticks) / float64(p.TickHz)
	res.LogBytes = w.Bytes()
	if res.VirtualS > 0 {
		res.LogBytesPerS = float64(res.LogBytes) / res.VirtualS
	}
	res.FinalFBHash = fmt.Sprintf("%016x", m.FramebufferHash())
	res.FinalStateHash = fmt.Sprintf("%016x", m.StateHash())
	res.MemoryBytes = m.MemorySize()
	res.WallS = time.Since(start).Seconds()
	res.StepMsMedian, res.StepMsP99 = quantileMs(stepDur, 0.5), quantileMs(stepDur, 0.99)
	return res, nil
}

// started is a machine ready to record, new or rebuilt.
type started struct {
	dir   *sessiondir.Dir
	eng   *machine.Engine
	w     *recordlog.Writer
	m     *machine.Machine
	disk  []byte
	ready Ready
}

func startSession(ctx context.Context, o Options, net machine.NetHost) (*started, error) {
	img := o.Image
	disk := slices.Clone(img.Disk)
	mode := o.DiskMode
	if disk == nil {
		mode = abi.DiskNone
	} else if mode == abi.DiskNone {
		mode = abi.DiskSnapshotted
	}
	dir, err := sessiondir.Create(o.Out, img.Name, img.Wasm, img.Disk, mode.String())
	if err != nil {
		return nil, err
	}
	p := machine.Params{
		VirtualClock: !o.Realtime, RealtimeBase: time.Now().UnixNano(),
		CheckpointEvery: o.CheckpointEvery, MemCheckEvery: o.MemCheckEvery,
		DiskMode: mode, Endpoints: img.Endpoints,
	}.WithDefaults()
	if disk != nil {
		p.DiskBlocks = uint64(len(disk) / abi.BlockSize)
		p.DiskSHA256 = dir.Meta.DiskSHA256
	}
	eng, err := machine.NewEngine(ctx, img.Wasm, machine.EngineOptions{})
	if err != nil {
		return nil, err
	}
	hdr := recordlog.Header{ModuleHash: eng.Hash(), Params: p.Encode()}
	w, err := recordlog.Create(dir.LogDir(), hdr, recordlog.WriterOptions{OnBlock: o.OnBlock})
	if err != nil {
		eng.Close(ctx)
		return nil, err
	}
	m, err := machine.New(ctx, eng, machine.Config{Mode: machine.Record, Params: p, Sink: w, Disk: disk,
		Net: net, Console: o.Console, Log: o.Log})
	if err != nil {
		w.Close()
		eng.Close(ctx)
		return nil, err
	}
	return &started{dir: dir, eng: eng, w: w, m: m, disk: disk,
		ready: Ready{Dir: dir, Header: hdr, Params: m.Params(), Tick: m.Ticks(), Step: m.Steps(), StateHash: m.StateHash()}}, nil
}

// continueSession rebuilds the machine of an existing session directory:
// its newest snapshot restored, its own log replayed to the end (the blocks
// replayed go to OnBlock), then record mode into the same log.
func continueSession(ctx context.Context, o Options, net machine.NetHost) (st *started, err error) {
	dir, err := sessiondir.Open(o.Out)
	if err != nil {
		return nil, err
	}
	eng, err := machine.NewEngine(ctx, dir.Module, machine.EngineOptions{})
	if err != nil {
		return nil, err
	}
	var w *recordlog.Writer
	var m *machine.Machine
	defer func() {
		if err != nil {
			if m != nil {
				m.Close(ctx)
			}
			if w != nil {
				w.Detach()
			}
			eng.Close(ctx)
		}
	}()
	// Resume first: it cuts off a block torn by a crash, which the replay
	// must not see either.
	if w, err = recordlog.Resume(dir.LogDir(), dir.ModuleHash(), recordlog.WriterOptions{OnBlock: o.OnBlock}); err != nil {
		if errors.Is(err, recordlog.ErrSealed) {
			return nil, fmt.Errorf("session %s has ended (its log is sealed): it replays, but cannot go on; record a new one", o.Out)
		}
		return nil, fmt.Errorf("resuming the log of %s: %w", o.Out, err)
	}
	r, err := recordlog.Open(dir.LogDir(), dir.ModuleHash(), recordlog.ReaderOptions{OnBlock: o.OnBlock})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hdr := r.Header()
	p, err := machine.DecodeParams(hdr.Params)
	if err != nil {
		return nil, err
	}
	cfg := machine.Config{Mode: machine.Replay, Params: p, Source: r, Disk: dir.Disk, Console: o.Console, Log: o.Log}
	restored := 0
	if n := dir.Newest(); n > 0 {
		s, info, err := dir.Snapshot(n)
		if err != nil {
			return nil, err
		}
		if err := r.Seek(info.LogPos); err != nil {
			return nil, err
		}
		if m, err = machine.Restore(ctx, eng, cfg, s); err != nil {
			return nil, err
		}
		restored = n
	} else if m, err = machine.New(ctx, eng, cfg); err != nil {
		return nil, err
	}
	from := m.Ticks()
	for {
		_, err := m.ReplayNext(ctx)
		if errors.Is(err, machine.ErrEndOfLog) || errors.Is(err, recordlog.ErrUnsealed) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("replaying the log of %s: %w", o.Out, err)
		}
	}
	if m.Ticks() != w.Tick() || m.Steps() != w.Step() {
		return nil, fmt.Errorf("replaying the log of %s ended at tick %d step %d, the log at tick %d step %d",
			o.Out, m.Ticks(), m.Steps(), w.Tick(), w.Step())
	}
	if err = m.ContinueRecording(w, net); err != nil {
		return nil, err
	}
	o.Log.Info().Int("snapshot", restored).Uint64("from_tick", from).Uint64("to_tick", m.Ticks()).Msg("session rebuilt from its log")
	return &started{dir: dir, eng: eng, w: w, m: m, disk: dir.Disk,
		ready: Ready{Dir: dir, Header: hdr, Params: m.Params(), Tick: m.Ticks(), Step: m.Steps(),
			Restored: restored, Replayed: m.Ticks() - from, StateHash: m.StateHash()}}, nil
}

// finishSnapshot completes a background snapshot between two steps: the log
// is flushed first so the snapshot's position is a block boundary. A
// snapshot that did not converge is logged and skipped (a live session keeps
// its viewers in display mode); the recording goes on.
func finishSnapshot(m *machine.Machine, w *recordlog.Writer, dir *sessiondir.Dir, res *Result, p *machine.PendingSnapshot, kind string, flush func() error) (Snapshot, error) {
	if err := flush(); err != nil {
		p.Abort()
		return Snapshot{}, err
	}
	s, st, err := p.Finish()
	if err != nil {
		res.SnapshotFailures++
		return Snapshot{Err: err}, nil
	}
	res.SnapshotStallMs = append(res.SnapshotStallMs, ms(st.Stall))
	res.SnapshotLatencyMs = append(res.SnapshotLatencyMs, ms(st.Latency))
	res.SnapshotBackground = st.Background
	res.SnapshotTicks = append(res.SnapshotTicks, s.Tick)
	s.LogPos = w.Pos()
	info, err := dir.AddSnapshotKind(s, kind)
	if err != nil {
		return Snapshot{}, err
	}
	res.Snapshots++
	return Snapshot{Info: info, Snapshot: s, Stall: st.Stall}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

func kindName(k string) string {
	if k == "" {
		return sessiondir.KindPeriodic
	}
	return k
}

// sessionMetrics are the recorder's figures a scraper sees.
type sessionMetrics struct {
	ticks, steps, logBytes, inputs, snapshots, stall, stepSeconds *metrics.Value
	kept, snapBytes, deleted                                      *metrics.Value
}

func newSessionMetrics(r *metrics.Registry) *sessionMetrics {
	if r == nil {
		return nil
	}
	return &sessionMetrics{
		ticks:       r.Counter("replaydesk_ticks_total", "Ticks of virtual time elapsed in the session."),
		steps:       r.Counter("replaydesk_steps_total", "Guest steps run (ticks minus idle ticks)."),
		logBytes:    r.Counter("replaydesk_log_bytes_total", "Bytes written to the session's record log."),
		inputs:      r.Counter("replaydesk_input_events_total", "Input events delivered to the guest."),
		snapshots:   r.Counter("replaydesk_snapshots_total", "Snapshots taken."),
		stall:       r.Gauge("replaydesk_snapshot_stall_seconds", "How long the last snapshot stopped the guest."),
		stepSeconds: r.Gauge("replaydesk_step_seconds", "Wall time of the last guest step."),
		kept:        r.Gauge("replaydesk_snapshots_kept", "Snapshots in the session directory (the retention policy deletes the rest)."),
		snapBytes:   r.Gauge("replaydesk_snapshot_bytes", "Bytes of the session's snapshot files on disk."),
		deleted:     r.Counter("replaydesk_snapshots_deleted_total", "Snapshots the retention policy deleted."),
	}
}

// retained refreshes the retention figures after deleted more deletions.
func (s *sessionMetrics) retained(dir *sessiondir.Dir, deleted int) {
	if s == nil {
		return
	}
	s.kept.Set(float64(len(dir.Meta.Snapshots)))
	s.snapBytes.Set(float64(dir.SnapshotBytes()))
	s.deleted.Add(float64(deleted))
}

func (s *sessionMetrics) update(m *machine.Machine, w *recordlog.Writer, res *Result, ran bool) {
	s.ticks.Set(float64(m.Ticks()))
	s.steps.Set(float64(m.Steps()))
	s.logBytes.Set(float64(w.Bytes()))
	s.inputs.Set(float64(res.InputEvents))
	s.snapshots.Set(float64(res.Snapshots))
	if n := len(res.SnapshotStallMs); n > 0 {
		s.stall.Set(res.SnapshotStallMs[n-1] / 1000)
	}
	if ran {
		s.stepSeconds.Set(m.Stats().LastStepDuration.Seconds())
	}
}

// workingSet is the write tracking that follows snapshot n, which is
// reported (to on) once its working set is known.
type workingSet struct {
	t      *machine.WriteTracker
	n      int
	report Snapshot
	on     func(Snapshot)
}

func (ws *workingSet) finish(m *machine.Machine, dir *sessiondir.Dir) error {
	pages, err := ws.t.Stop()
	if err == nil { // a missing working set only costs prefetching
		if err := dir.SetWorkingSet(ws.n, pages); err != nil {
			return err
		}
		ws.report.Info.WorkingSet = pages
	}
	if ws.on != nil {
		ws.on(ws.report)
	}
	return nil
}

// Seal ends a stopped live session for good: its log (left open for a
// Continue) gets its SEAL block, and the directory becomes a finished
// recording that replays offline and can no longer be continued.
func Seal(out string) error {
	dir, err := sessiondir.Open(out)
	if err != nil {
		return err
	}
	w, err := recordlog.Resume(dir.LogDir(), dir.ModuleHash(), recordlog.WriterOptions{})
	if err != nil {
		return err
	}
	return w.Close()
}
