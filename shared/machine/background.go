package machine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"replaydesk/shared/machine/internal/dirty"
	"replaydesk/shared/snapshot"
)

// PendingSnapshot is a snapshot being taken in the background (DESIGN.md
// section 5, the paper's section 3.1): memory is copied while the guest keeps
// running, pages it writes meanwhile are found by userfaultfd write-protection
// and copied again, round after round, until fewer than 2048 are dirty; then
// Finish, called between two steps, copies the rest with the guest stopped.
//
// Where userfaultfd is not permitted it degrades to a stop-and-copy at Finish
// (Fallback reports it). It is driven from the machine's goroutine: Ready and
// Finish between steps; the copying runs on its own goroutine.
type PendingSnapshot struct {
	m        *Machine
	started  time.Time
	dst      []byte
	tracker  *dirty.Tracker
	pc       *dirty.PreCopy
	cancel   context.CancelFunc
	done     chan error
	exited   chan struct{} // closed when the copying goroutine has returned
	finished bool
	fallback error            // why there is no background copy, or nil
	ov       *overlaySnapshot // the disk overlay's blocks, copied alongside memory
}

// SnapshotStats describe one snapshot.
type SnapshotStats struct {
	Background bool   // pre-copy ran; false: stop-and-copy
	Fallback   string // why not, when Background is false
	Rounds     int    // background rounds
	Copied     []int  // pages copied per round
	StallPages int    // pages copied with the guest stopped
	// Disk overlay blocks (snapshotted disks): copied in the background,
	// and how many were written meanwhile and copied with the guest stopped.
	OverlayBlocks, OverlayStallBlocks int
	Stall                             time.Duration // how long Finish stopped the guest
	Latency                           time.Duration // from StartSnapshot to the end of Finish
}

// refreshEvery paces the re-copying of a converged snapshot waiting for
// Finish: a round then copies one step's writes or so (~0.3 ms), and a few
// milliseconds apart they leave the guest most of the CPU.
const refreshEvery = 3 * time.Millisecond

// StartSnapshot begins a background snapshot. Call it between steps; keep
// stepping; call Finish when Ready says so. A machine takes one at a time.
func (m *Machine) StartSnapshot() (*PendingSnapshot, error) {
	if m.inCall {
		return nil, fmt.Errorf("machine: snapshot inside a step")
	}
	if m.failed != nil {
		return nil, m.failed
	}
	if m.pending != nil {
		return nil, errors.New("machine: a snapshot is already being taken")
	}
	src := m.mem.Bytes()
	p := &PendingSnapshot{m: m, started: time.Now(), dst: make([]byte, len(src)), done: make(chan error, 1), exited: make(chan struct{})}
	populate(p.dst)
	tracker, err := dirty.New(src)
	if err != nil {
		p.fallback = err
		m.cfg.Log.Warn().Err(err).Msg("no userfaultfd write-protection: snapshots stop the guest for a full copy")
		p.done <- err
		close(p.exited)
		m.pending = p
		return p, nil
	}
	p.tracker = tracker
	p.pc, err = dirty.NewPreCopy(src, p.dst, tracker, dirty.Config{})
	if err != nil {
		tracker.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.ov = newOverlaySnapshot(&m.dev)
	go func() {
		defer close(p.exited)
		var wg sync.WaitGroup
		if p.ov != nil {
			wg.Go(p.ov.prepare)
		}
		err := p.pc.Run(ctx)
		wg.Wait() // Finish uses the overlay's layout once done says so
		p.done <- err
		if err != nil {
			return
		}
		// Converged. Until Finish, keep re-copying what the guest writes,
		// so a caller that finishes at a fixed tick rather than now (the
		// recorder on virtual time) stops the guest for one step's writes,
		// not for everything written since convergence.
		t := time.NewTicker(refreshEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := p.pc.Refresh(); err != nil {
				return
			}
		}
	}()
	m.pending = p
	return p, nil
}

// Ready reports whether Finish can run now with a short stall: the rounds
// converged, or they failed or are unavailable (Finish then says how).
func (p *PendingSnapshot) Ready() bool {
	if p.finished {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err // keep it for Finish
		return true
	default:
		return false
	}
}

// Wait blocks until Ready would say true, or timeout passes. A recorder on
// virtual time uses it while the guest sleeps: its idle ticks cost no wall
// time, so without waiting the session could end before the copy does.
func (p *PendingSnapshot) Wait(timeout time.Duration) bool {
	if p.finished {
		return false
	}
	select {
	case err := <-p.done:
		p.done <- err // keep it for Finish
		return true
	case <-time.After(timeout):
		return false
	}
}

// Finish completes the snapshot between two steps. It returns an error
// (and no snapshot) when the background rounds did not converge within 30
// rounds — the caller then stays in display mode, as the paper does — or
// when tracking failed. Without userfaultfd it copies everything now.
func (p *PendingSnapshot) Finish() (*snapshot.Snapshot, SnapshotStats, error) {
	m := p.m
	st := SnapshotStats{}
	if p.finished {
		return nil, st, errors.New("machine: snapshot already finished")
	}
	p.finished = true
	defer func() { m.pending = nil }()
	if m.inCall {
		return nil, st, fmt.Errorf("machine: snapshot inside a step")
	}
	if m.pendingIdle != 0 {
		return nil, st, fmt.Errorf("machine: snapshot with %d idle ticks not yet logged; call Sync first", m.pendingIdle)
	}
	t0 := time.Now()
	if p.cancel != nil {
		p.cancel()
	}
	runErr := <-p.done
	defer func() {
		<-p.exited // a Refresh under way returns once Final is done
		if p.tracker != nil {
			p.tracker.Close()
		}
	}()
	src := m.mem.Bytes()
	switch {
	case p.fallback != nil:
		st.Fallback = p.fallback.Error()
		copy(p.dst, src)
		st.StallPages = len(src) / dirty.PageSize
	case runErr != nil && !errors.Is(runErr, context.Canceled):
		return nil, st, fmt.Errorf("machine: background snapshot: %w", runErr)
	default:
		if err := p.pc.Final(); err != nil {
			return nil, st, fmt.Errorf("machine: background snapshot: %w", err)
		}
		ps := p.pc.Stats()
		st.Background, st.Rounds, st.Copied, st.StallPages = true, ps.Rounds, ps.Copied, ps.FinalPages
	}
	mem := p.dst
	if len(src) > len(mem) { // the guest grew its memory meanwhile: the new tail was never tracked
		mem = append(mem, src[len(mem):]...)
		st.StallPages += (len(src) - len(p.dst)) / dirty.PageSize
	}
	s, err := m.captureState(mem, p.ov)
	if p.ov != nil {
		st.OverlayBlocks, st.OverlayStallBlocks = len(m.dev.overlayOrder), p.ov.Recopied+p.ov.Added
	}
	st.Stall = time.Since(t0)
	st.Latency = time.Since(p.started)
	return s, st, err
}

// Abort stops a background snapshot without finishing it.
func (p *PendingSnapshot) Abort() {
	if p.finished {
		return
	}
	p.finished = true
	if p.cancel != nil {
		p.cancel()
	}
	<-p.done
	<-p.exited
	if p.tracker != nil {
		p.tracker.Close()
	}
	p.m.pending = nil
}

// WriteTracker records which pages of guest memory the guest writes from its
// start until Stop: after a snapshot, that is the working set a lazy restore
// should prefetch (reads are not seen, so it is an approximation).
type WriteTracker struct {
	t     *dirty.Tracker
	pages map[uint32]struct{}
}

// TrackWrites starts a WriteTracker. It needs userfaultfd and no other
// tracking of the region at the same time (no snapshot under way, no lazy
// restore still serving pages).
func (m *Machine) TrackWrites() (*WriteTracker, error) {
	if m.pending != nil || m.lazy != nil {
		return nil, errors.New("machine: guest memory is already being tracked")
	}
	t, err := dirty.New(m.mem.Bytes())
	if err != nil {
		return nil, err
	}
	return &WriteTracker{t: t, pages: map[uint32]struct{}{}}, nil
}

// Stop ends tracking and returns the pages written, in ascending order.
func (w *WriteTracker) Stop() ([]uint32, error) {
	defer w.t.Close()
	if _, err := w.t.Scan(func(first, n int) {
		for p := first; p < first+n; p++ {
			w.pages[uint32(p)] = struct{}{}
		}
	}); err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(w.pages))
	for p := range w.pages {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}
