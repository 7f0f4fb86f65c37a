// Package recorder runs one guest in record mode into a session directory:
// it feeds scripted input at its virtual times, ticks the machine (as fast
// as it can, or in real time), flushes log blocks, takes snapshots, and
// reports what it recorded. It is what `server record` does.
//
// It must not know about networks, viewers or how the log is encoded.
package recorder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/shared/metrics"
	"replaydesk/shared/abi"
	"replaydesk/shared/endpoints"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/machine"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
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
	// OnFrame is called after each step that presented, with the frame and
	// a view of its pixels valid only during the call.
	OnFrame func(f machine.Frame, pixels []byte)
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
	defer eng.Close(context.Background())
	w, err := recordlog.Create(dir.LogDir(), recordlog.Header{ModuleHash: eng.Hash(), Params: p.Encode()}, recordlog.WriterOptions{})
	if err != nil {
		return nil, err
	}
	// A machine needs a live context: cancellation is handled by the loop.
	mctx := context.WithoutCancel(ctx)
	net := endpoints.NewHost()
	for name, f := range img.Sources {
		net.Add(name, f)
	}
	m, err := machine.New(mctx, eng, machine.Config{Mode: machine.Record, Params: p, Sink: w, Disk: disk,
		Net: net, Console: o.Console, Log: o.Log})
	if err != nil {
		w.Close()
		return nil, err
	}
	defer m.Close(mctx)

	res := &Result{Image: img.Name, DiskMode: mode.String(), Out: o.Out}
	script := inputscript.NewSequencer(o.Input)
	period := time.Second / time.Duration(p.TickHz)
	total := uint64(o.Duration / period)
	if o.Duration == 0 {
		total = ^uint64(0)
	}
	var snapEvery uint64
	if o.SnapshotEvery > 0 {
		snapEvery = max(1, uint64(o.SnapshotEvery/period))
	}
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
	start := time.Now()
	lastProgress := start
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
		for t := uint64(0); t < total; t++ {
			if ctx.Err() != nil {
				o.Log.Warn().Uint64("tick", t).Msg("recording interrupted; sealing the log")
				return nil
			}
			if o.Realtime {
				if d := time.Until(start.Add(tickAt(t))); d > 0 {
					time.Sleep(d)
				}
			}
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
				if f := m.Frame(); o.OnFrame != nil && f.Seq != seq {
					o.OnFrame(f, m.Pixels())
				}
			}
			next := t + 1
			if next%o.FlushEvery == 0 {
				if err := flushIfBusy(); err != nil {
					return err
				}
			}
			if ws != nil && (next >= wsUntil || next%snapEvery == 0) {
				if err := ws.finish(m, dir); err != nil {
					return err
				}
				ws = nil
			}
			if snapEvery > 0 && next%snapEvery == 0 && next < total && pending == nil {
				if pending, err = m.StartSnapshot(); err != nil {
					return err
				}
				snapAt = next + settle
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
				err := finishSnapshot(m, w, dir, res, pending, flush)
				pending = nil
				if err != nil {
					return err
				}
				// Record what the guest writes in the next second: the
				// snapshot's working set, for lazy restores to prefetch.
				if t, err := m.TrackWrites(); err == nil {
					ws, wsUntil = &workingSet{t: t, n: res.Snapshots}, next+uint64(p.TickHz)
				}
			}
			if mt != nil {
				mt.update(m, w, res, ran)
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
	if err := w.Close(); runErr == nil && err != nil {
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

// finishSnapshot completes a background snapshot between two steps: the log
// is flushed first so the snapshot's position is a block boundary. A
// snapshot that did not converge is logged and skipped (a live session would
// stay in display mode for its viewers); the recording goes on.
func finishSnapshot(m *machine.Machine, w *recordlog.Writer, dir *sessiondir.Dir, res *Result, p *machine.PendingSnapshot, flush func() error) error {
	if err := flush(); err != nil {
		p.Abort()
		return err
	}
	s, st, err := p.Finish()
	if err != nil {
		res.SnapshotFailures++
		return nil
	}
	res.SnapshotStallMs = append(res.SnapshotStallMs, ms(st.Stall))
	res.SnapshotLatencyMs = append(res.SnapshotLatencyMs, ms(st.Latency))
	res.SnapshotBackground = st.Background
	res.SnapshotTicks = append(res.SnapshotTicks, s.Tick)
	s.LogPos = w.Pos()
	if _, err := dir.AddSnapshot(s); err != nil {
		return err
	}
	res.Snapshots++
	return nil
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

// sessionMetrics are the recorder's figures a scraper sees.
type sessionMetrics struct {
	ticks, steps, logBytes, inputs, snapshots, stall, stepSeconds *metrics.Value
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
	}
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

// workingSet is the write tracking that follows snapshot n.
type workingSet struct {
	t *machine.WriteTracker
	n int
}

func (ws *workingSet) finish(m *machine.Machine, dir *sessiondir.Dir) error {
	pages, err := ws.t.Stop()
	if err != nil {
		return nil // a missing working set only costs prefetching
	}
	return dir.SetWorkingSet(ws.n, pages)
}
