package machine

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// Remote, if set, says the snapshot's memory is in a page service: the
	// page-server child fetches each page when it is first needed (never
	// this process: see internal/pageserver), and the snapshot passed to
	// RestoreLazy carries no Memory.
	Remote *RemotePages
}

// RemotePages describe a snapshot's memory held by a page service
// (docs/page-service.md): its size and the hash of every non-zero page.
// The machine only passes them on; it does no networking itself.
type RemotePages struct {
	BaseURL    string // the page service, e.g. "http://host:8080"
	Token      string // sent as "Authorization: Bearer" with every request, if set
	CacheDir   string // the client's shared page cache; "" keeps none
	CacheBytes int64  // its bound (default 2 GiB)
	MemorySize int    // bytes of linear memory
	// Indices lists the non-zero pages in ascending order; Hashes holds the
	// SHA-256 of each page's 4096 bytes, in the same order.
	Indices []uint32
	Hashes  [][32]byte
	// Timeout bounds each request (default 30 s): a page service that
	// stops answering fails the restore instead of hanging it.
	Timeout time.Duration
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
	size := len(s.Memory)
	var remote *pageserver.Remote
	if r := opt.Remote; r != nil {
		if len(s.Memory) != 0 {
			return nil, errors.New("machine: a lazy restore from remote pages with memory in the snapshot too")
		}
		size = r.MemorySize
		remote = &pageserver.Remote{BaseURL: r.BaseURL, Token: r.Token, CacheDir: r.CacheDir, CacheBytes: r.CacheBytes,
			Indices: r.Indices, Hashes: r.Hashes, Timeout: r.Timeout}
	}
	m, err := restoreInstance(ctx, e, cfg, s, size)
	if err != nil {
		return nil, err
	}
	var img *pageserver.Image
	if remote == nil {
		if img, err = pageserver.ImageOf(s.Memory); err != nil {
			m.Close(ctx)
			return nil, fmt.Errorf("machine: lazy restore image: %w", err)
		}
		defer img.Close()
	}
	// If the child dies, pages it had not served read as zeros; the check
	// after every step (checkLazy) stops the machine before anything it
	// computed is trusted. A step cannot be interrupted (wazero's
	// close-on-context-done costs ~30x in step time), so a guest that spins
	// forever on zeroed memory inside one step would not return; Go guests
	// read garbage as nil pointers and trap instead.
	srv, err := pageserver.Start(m.mem.Bytes(), img, pageserver.Options{
		Readahead: opt.Readahead,
		Prefetch:  opt.Prefetch,
		Remote:    remote,
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

// CompleteLazy fills every page a lazy restore has not served yet (for a
// remote one: fetches them in batches) and ends the page server; the
// machine's memory is then ordinary memory. A full-memory hash needs every
// page, so the machine does this itself before one (a memory checkpoint):
// one bulk transfer instead of a fault per page. A no-op for a machine not
// restored lazily, or already completed.
func (m *Machine) CompleteLazy(ctx context.Context) error {
	if m.lazy == nil {
		return nil
	}
	if m.inCall {
		return errors.New("machine: CompleteLazy inside a step")
	}
	st, err := m.lazy.Complete(ctx)
	if err != nil {
		m.lazy.Close()
		m.lazy = nil
		m.failed = fmt.Errorf("machine: lazy restore failed, guest state discarded: %w", err)
		return m.failed
	}
	m.lazy, m.lazyDone = nil, &st
	return nil
}

// LazyStats reports the page server's counters; ok is false for a machine
// that was not restored lazily.
func (m *Machine) LazyStats() (LazyStats, bool) {
	if m.lazyDone != nil {
		return *m.lazyDone, true
	}
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
