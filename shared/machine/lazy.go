package machine

import (
	"context"
	"errors"
	"fmt"

	"replaydesk/shared/machine/internal/pageserver"
	"replaydesk/shared/snapshot"
)

// LazyOptions tune a lazy restore.
type LazyOptions struct {
	// Readahead pages are filled after each faulting page (sequential data
	// such as framebuffers and stacks gain; random access pays).
	Readahead int
	// Prefetch lists pages to fill in the background first: the working set
	// the snapshot's recorder touched soon after it.
	Prefetch []int
}

// DefaultReadahead is what the client uses unless told otherwise: measured,
// it cut faults by two thirds on a workload-like access pattern.
const DefaultReadahead = 16

// ErrLazyUnavailable wraps the reason a lazy restore cannot happen here
// (userfaultfd not permitted or missing); restore eagerly instead.
var ErrLazyUnavailable = errors.New("machine: lazy restore unavailable")

// LazyStats describe a lazy restore's paging.
type LazyStats = pageserver.Stats

// RunPageServerIfChild must be the first call in main (and TestMain) of any
// program that restores lazily: the page server is this same binary,
// re-executed, and this call turns that copy into the server.
func RunPageServerIfChild() { pageserver.MaybeRunChild() }

// RestoreLazy makes a machine from a snapshot whose memory is filled on
// first touch by a page-server child process (DESIGN.md section 5), so the
// first frame comes after a few faults instead of a full copy. After every
// step the machine checks that the server is alive: if it died, pages it had
// not served read as zeros, and the machine stops with that error rather
// than compute on them.
func RestoreLazy(ctx context.Context, e *Engine, cfg Config, s *snapshot.Snapshot, opt LazyOptions) (*Machine, error) {
	m, err := restoreInstance(ctx, e, cfg, s)
	if err != nil {
		return nil, err
	}
	img, err := pageserver.ImageOf(s.Memory)
	if err != nil {
		m.Close(ctx)
		return nil, fmt.Errorf("machine: lazy restore image: %w", err)
	}
	defer img.Close()
	// If the child dies, pages it had not served read as zeros; the check
	// after every step (checkLazy) stops the machine before anything it
	// computed is trusted. A step cannot be interrupted (wazero's
	// close-on-context-done costs ~30x in step time), so a guest that spins
	// forever on zeroed memory inside one step would not return; Go guests
	// read garbage as nil pointers and trap instead.
	srv, err := pageserver.Start(m.mem.Bytes(), img, pageserver.Options{
		Readahead: opt.Readahead,
		Prefetch:  opt.Prefetch,
		OnFailure: func(err error) { m.cfg.Log.Error().Err(err).Msg("lazy restore: page server died") },
	})
	if err != nil {
		m.Close(ctx)
		if errors.Is(err, pageserver.ErrNotPermitted) || errors.Is(err, pageserver.ErrUnsupported) {
			return nil, fmt.Errorf("%w: %w", ErrLazyUnavailable, err)
		}
		return nil, err
	}
	m.lazy = srv
	return m, nil
}

// LazyStats reports the page server's counters; ok is false for a machine
// that was not restored lazily.
func (m *Machine) LazyStats() (LazyStats, bool) {
	if m.lazy == nil {
		return LazyStats{}, false
	}
	st, err := m.lazy.Stats()
	return st, err == nil
}

// checkLazy is called after every guest call of a lazily restored machine.
func (m *Machine) checkLazy() error {
	if m.lazy == nil {
		return nil
	}
	if err := m.lazy.Err(); err != nil {
		return fmt.Errorf("machine: lazy restore failed, guest state discarded: %w", err)
	}
	return nil
}

// PageServerPid is the lazy-restore page server's process id (0 without
// one), for diagnostics.
func (m *Machine) PageServerPid() int {
	if m.lazy == nil {
		return 0
	}
	return m.lazy.Pid()
}
