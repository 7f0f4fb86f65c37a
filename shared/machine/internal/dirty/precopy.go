package dirty

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// PageSize is the tracking and copying granularity (uffd.PageSize).
const PageSize = 4096

// Defaults from DESIGN.md section 5.
const (
	// DefaultStopBelow: pre-copy has converged when fewer pages than this
	// were dirtied during a round; the rest is copied with the VM stopped
	// (2048 pages = 8 MiB, a few ms of copying).
	DefaultStopBelow = 2048
	// DefaultMaxRounds: a guest that keeps dirtying more than that gets
	// no snapshot; the caller stays in display mode.
	DefaultMaxRounds = 30
)

var (
	// ErrTooManyRounds: MaxRounds rounds did not bring the dirty set below
	// StopBelow. The caller abandons the snapshot.
	ErrTooManyRounds = errors.New("dirty: pre-copy did not converge")
	// ErrFinished: Round or Final after Final.
	ErrFinished = errors.New("dirty: pre-copy already finished")
)

// Source is the dirty tracking PreCopy drives. *Tracker implements it;
// tests may substitute a fake.
type Source interface {
	// Reset starts a new interval: later Scans report only later writes.
	Reset() error
	// Scan reports the pages written since the last Reset or Scan, in
	// ascending disjoint runs, and starts a new interval atomically.
	Scan(fn func(firstPage, nPages int)) (int, error)
}

// Config tunes PreCopy. Zero values take the defaults.
type Config struct {
	StopBelow int // converged when a round leaves fewer dirty pages (default DefaultStopBelow)
	MaxRounds int // background rounds before ErrTooManyRounds (default DefaultMaxRounds)
}

// Stats describe one pre-copy. Slices have one entry per background round.
type Stats struct {
	Rounds      int
	Copied      []int           // pages copied by each round
	Dirtied     []int           // pages written during each round (copied by the next round or Final)
	RoundTimes  []time.Duration // wall time of each round, scan included
	FinalPages  int             // pages copied with the VM stopped
	FinalTime   time.Duration   // the stall Final caused (scan + copy)
	Converged   bool
	FinalCalled bool
	Refreshes   int // Refresh calls after convergence
	Refreshed   int // pages they copied
}

// PreCopy copies src into dst while src keeps being written, in rounds:
//
//  1. the first Round resets dirty tracking and copies every page;
//  2. each further Round copies only the pages written during the previous
//     round (they were reported by the scan that ended it);
//  3. once a round leaves fewer than StopBelow dirty pages (Converged),
//     the caller stops the writer and calls Final, which copies those pages
//     plus any written since, so dst then equals src exactly.
//
// After MaxRounds rounds without converging, Round returns
// ErrTooManyRounds.
//
// Concurrency contract. Round runs on a background goroutine while the VM
// keeps stepping on another and writing src: it reads pages that may be
// changing under it, so a page's copy can be torn. That is harmless because
// any page written after the scan that started the round is reported by the
// scan that ends it and copied again — a page's last copy is always taken
// after its last write, and the final copy is taken with the VM stopped.
// (These racy reads are of mmap'd memory outside the Go heap, which the Go
// memory model does not cover; no Go value is read racily.) Final must run
// with the writer stopped — between two VM steps — and with the writer's
// last writes happening before it (e.g. called on the VM's goroutine).
// Round, Run and Final serialize on an internal lock: a Final issued while
// a Round runs waits for it. Stats may be called at any time.
//
// With a nil Source, Round fails and Final is a plain stop-and-copy: the
// fallback where userfaultfd is unavailable.
type PreCopy struct {
	src, dst []byte
	tracker  Source
	cfg      Config
	pages    int

	op      sync.Mutex // one Round or Final at a time
	pending []pageRun  // written during the last round, not yet re-copied
	rounds  int
	done    bool

	mu    sync.Mutex // guards stats
	stats Stats
}

type pageRun struct{ first, n int }

// NewPreCopy prepares a pre-copy of src into dst (same length, a whole
// number of pages). dst should be pre-faulted (MAP_POPULATE or
// MADV_POPULATE_WRITE): first-touch faults cost ~10 µs a page on our
// machines, far more than the copy itself.
func NewPreCopy(src, dst []byte, tracker Source, cfg Config) (*PreCopy, error) {
	if len(src) != len(dst) || len(src)%PageSize != 0 {
		return nil, fmt.Errorf("dirty: pre-copy of %d bytes into %d: want equal lengths, a multiple of %d", len(src), len(dst), PageSize)
	}
	if cfg.StopBelow <= 0 {
		cfg.StopBelow = DefaultStopBelow
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = DefaultMaxRounds
	}
	return &PreCopy{src: src, dst: dst, tracker: tracker, cfg: cfg, pages: len(src) / PageSize}, nil
}

func (p *PreCopy) copyRun(r pageRun) {
	lo, hi := r.first*PageSize, (r.first+r.n)*PageSize
	copy(p.dst[lo:hi], p.src[lo:hi])
}

// Round runs one background round and returns how many pages were written
// while it ran (the next round's work). It returns ErrTooManyRounds when
// this was round MaxRounds and the dirty set is still too large.
func (p *PreCopy) Round() (dirtyPages int, err error) {
	p.op.Lock()
	defer p.op.Unlock()
	if p.done {
		return 0, ErrFinished
	}
	if p.tracker == nil {
		return 0, errors.New("dirty: pre-copy without dirty tracking: only Final (stop-and-copy) is possible")
	}
	if p.rounds >= p.cfg.MaxRounds {
		return 0, ErrTooManyRounds
	}
	start := time.Now()
	work := p.pending
	if p.rounds == 0 {
		// Reset before copying: any write from here on is reported by the
		// scan below, so a page torn by a concurrent write is re-copied.
		if err := p.tracker.Reset(); err != nil {
			return 0, err
		}
		work = []pageRun{{0, p.pages}}
	}
	copied := 0
	for _, r := range work {
		p.copyRun(r)
		copied += r.n
	}
	next := p.pending[:0:0]
	n, err := p.tracker.Scan(func(first, n int) { next = append(next, pageRun{first, n}) })
	if err != nil {
		return 0, err
	}
	p.pending = next
	p.rounds++

	p.mu.Lock()
	p.stats.Rounds = p.rounds
	p.stats.Copied = append(p.stats.Copied, copied)
	p.stats.Dirtied = append(p.stats.Dirtied, n)
	p.stats.RoundTimes = append(p.stats.RoundTimes, time.Since(start))
	p.stats.Converged = n < p.cfg.StopBelow
	converged := p.stats.Converged
	p.mu.Unlock()

	if !converged && p.rounds >= p.cfg.MaxRounds {
		return n, fmt.Errorf("%w: %d pages still dirty after %d rounds (want < %d)", ErrTooManyRounds, n, p.rounds, p.cfg.StopBelow)
	}
	return n, nil
}

// Refresh re-copies, after the pre-copy converged, the pages written since
// the last round, so that Final has only the latest writes left to copy. A
// caller that finishes at a fixed point in the guest's time rather than at
// convergence calls it while it waits. It does not count towards MaxRounds
// and returns ErrFinished after Final.
func (p *PreCopy) Refresh() (dirtyPages int, err error) {
	p.op.Lock()
	defer p.op.Unlock()
	if p.done {
		return 0, ErrFinished
	}
	if p.tracker == nil || !p.Converged() {
		return 0, errors.New("dirty: refresh before the pre-copy converged")
	}
	copied := 0
	for _, r := range p.pending {
		p.copyRun(r)
		copied += r.n
	}
	next := p.pending[:0:0]
	n, err := p.tracker.Scan(func(first, n int) { next = append(next, pageRun{first, n}) })
	if err != nil {
		return 0, err
	}
	p.pending = next
	p.mu.Lock()
	p.stats.Refreshes++
	p.stats.Refreshed += copied
	p.mu.Unlock()
	return n, nil
}

// Converged reports whether the last round left fewer than StopBelow dirty
// pages, i.e. it is time to stop the VM and call Final.
func (p *PreCopy) Converged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats.Converged
}

// Run calls Round until the pre-copy converges (nil), fails
// (ErrTooManyRounds or a tracking error), or ctx is done.
func (p *PreCopy) Run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := p.Round(); err != nil {
			return err
		}
		if p.Converged() {
			return nil
		}
	}
}

// Final copies what is still out of date — the pages written during the
// last round plus those written since — so that afterwards dst equals src.
// The writer must be stopped (see the type's contract). Before any Round,
// or without a Source, it copies everything: a stop-and-copy.
func (p *PreCopy) Final() error {
	p.op.Lock()
	defer p.op.Unlock()
	if p.done {
		return ErrFinished
	}
	p.done = true
	start := time.Now()
	var copied int
	if p.tracker == nil || p.rounds == 0 {
		copy(p.dst, p.src)
		copied = p.pages
	} else {
		// The two sets overlap (a page written in both intervals); a bitmap
		// copies each page once.
		set := make([]uint64, (p.pages+63)/64)
		mark := func(first, n int) {
			for q := first; q < first+n; q++ {
				set[q/64] |= 1 << (q % 64)
			}
		}
		for _, r := range p.pending {
			mark(r.first, r.n)
		}
		if _, err := p.tracker.Scan(mark); err != nil {
			return err
		}
		copied = copySet(p, set)
	}
	p.pending = nil
	p.mu.Lock()
	p.stats.FinalPages = copied
	p.stats.FinalTime = time.Since(start)
	p.stats.FinalCalled = true
	p.mu.Unlock()
	return nil
}

// copySet copies the pages whose bits are set, a run at a time.
func copySet(p *PreCopy, set []uint64) int {
	copied := 0
	runStart := -1
	for w, word := range set {
		if word == 0 && runStart < 0 {
			continue
		}
		for b := 0; b < 64; b++ {
			q := w*64 + b
			on := word&(1<<b) != 0 && q < p.pages
			switch {
			case on && runStart < 0:
				runStart = q
			case !on && runStart >= 0:
				p.copyRun(pageRun{runStart, q - runStart})
				runStart = -1
			}
		}
		copied += bits.OnesCount64(word)
	}
	if runStart >= 0 {
		p.copyRun(pageRun{runStart, p.pages - runStart})
	}
	return copied
}

// Stats returns a copy of the statistics so far.
func (p *PreCopy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Copied = append([]int(nil), s.Copied...)
	s.Dirtied = append([]int(nil), s.Dirtied...)
	s.RoundTimes = append([]time.Duration(nil), s.RoundTimes...)
	return s
}
