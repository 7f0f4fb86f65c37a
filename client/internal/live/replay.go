package live

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/fetch"
	"replaydesk/shared/abi"
	"replaydesk/shared/machine"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
)

// replay is one replay of the session from a snapshot: a recordlog.Stream
// the connection pushes LogBlocks into, and a goroutine that restores the
// snapshot and replays the stream as fast as it can until caught up, then
// at the pace blocks arrive. The machine stays on that goroutine.
type replay struct {
	announce wire.SnapshotAnnounce
	stream   *recordlog.Stream
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine ends; err is set then
	err      error

	ready       atomic.Bool   // restored: ticks and frames mean something
	ticks       atomic.Uint64 // the replay's tick
	checkpoints atomic.Uint64 // verified by the machine
	fbHash      atomic.Uint64 // of the last presented frame
	restoredAt  atomic.Int64  // unix nanos

	mu    sync.Mutex
	frame screen // the replay's newest frame, copied out of guest memory
}

// replayDeps is what a replay needs from the client.
type replayDeps struct {
	fetch    *fetch.Fetcher
	engine   func(ctx context.Context) (*machine.Engine, error)
	params   machine.Params
	module   recordlog.ModuleHash
	lazy     bool
	headless bool
	log      zerolog.Logger
	onScreen func() // the replay's frame changed
}

func startReplay(ctx context.Context, a wire.SnapshotAnnounce, d replayDeps) *replay {
	ctx, cancel := context.WithCancel(ctx)
	r := &replay{announce: a, stream: recordlog.NewStream(a.Pos), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = r.run(ctx, d)
		r.stream.Close(r.err)
	}()
	return r
}

// stop ends the replay and waits for its goroutine.
func (r *replay) stop() {
	r.stream.Close(errors.New("replay stopped"))
	r.cancel()
	<-r.done
}

// caughtUp: the replay reached the end of the log received so far.
func (r *replay) caughtUp() bool {
	return r.ready.Load() && r.ticks.Load() >= r.stream.End().Tick && r.stream.Buffered() == 0
}

func (r *replay) run(ctx context.Context, d replayDeps) error {
	eng, err := d.engine(ctx)
	if err != nil {
		return err
	}
	mh := pagestore.Hash(r.announce.ManifestHash)
	start := time.Now()
	s, ws, res, err := d.fetch.Snapshot(ctx, mh, d.module)
	if err != nil {
		return fmt.Errorf("fetching snapshot %d (manifest %s): %w", r.announce.Number, mh, err)
	}
	if s.LogPos.Tick != r.announce.Pos.Tick || s.LogPos.Step != r.announce.Pos.Step {
		return fmt.Errorf("snapshot %d's manifest is at tick %d step %d, its announcement says tick %d step %d",
			r.announce.Number, s.LogPos.Tick, s.LogPos.Step, r.announce.Pos.Tick, r.announce.Pos.Step)
	}
	fetched := time.Since(start)
	cfg := machine.Config{Mode: machine.Replay, Params: d.params, Source: r.stream, Log: d.log}
	if d.params.DiskMode == abi.DiskSnapshotted {
		disk, err := d.fetch.Disk(ctx)
		if err != nil {
			return fmt.Errorf("the session's disk: %w", err)
		}
		if disk == nil {
			return errors.New("the session has a snapshotted disk but serves none")
		}
		cfg.DiskSource = disk
	}
	// The machine outlives no replay, but it must not die with a cancelled
	// context in the middle of a step: stopping goes through the stream.
	mctx := context.WithoutCancel(ctx)
	var m *machine.Machine
	how := "eager (every page copied first)"
	if d.lazy {
		prefetch := make([]int, len(ws))
		for i, p := range ws {
			prefetch[i] = int(p)
		}
		// Pages are already fetched (through the page cache): lazy here
		// defers copying them into guest memory to first touch.
		m, err = machine.RestoreLazy(mctx, eng, cfg, s, machine.LazyOptions{Readahead: machine.DefaultReadahead, Prefetch: prefetch})
		how = "lazy (memory filled on first touch; pages fetched first)"
		if errors.Is(err, machine.ErrLazyUnavailable) {
			d.log.Warn().Err(err).Msg("lazy restore unavailable here: restoring eagerly")
			how = "eager (lazy unavailable)"
			m, err = machine.Restore(mctx, eng, cfg, s)
		}
	} else {
		m, err = machine.Restore(mctx, eng, cfg, s)
	}
	if err != nil {
		return fmt.Errorf("restoring snapshot %d: %w", r.announce.Number, err)
	}
	defer m.Close(mctx)
	r.ticks.Store(m.Ticks())
	r.restoredAt.Store(time.Now().UnixNano())
	r.ready.Store(true)
	d.log.Info().Uint64("snapshot", r.announce.Number).Uint64("tick", m.Ticks()).Str("restore", how).
		Int("pages", res.PagesInSnapshot).Int("fetched", res.PagesFetched).Int("from_cache", res.PagesFromCache).
		Dur("fetch", fetched).Dur("total", time.Since(start)).Msg("snapshot restored; replaying")

	var seq uint64
	var copied time.Time
	for {
		_, err := m.ReplayNext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, machine.ErrEndOfLog) {
				// A sealed log: the session ended. Its last screen stays.
				if !d.headless {
					r.copyFrame(m.Frame(), m.Pixels(), m.Ticks())
				}
				r.fbHash.Store(m.FramebufferHash())
				d.log.Info().Uint64("tick", m.Ticks()).Msg("the session's log is sealed: the session ended")
				<-ctx.Done()
				return ctx.Err()
			}
			var dv *machine.Divergence
			if errors.As(err, &dv) {
				return fmt.Errorf("replay diverged from the server's log: %w", err)
			}
			return fmt.Errorf("replay stopped at tick %d: %w", m.Ticks(), err)
		}
		// The frame first, then the tick: whoever sees the tick sees its
		// frame (the stats' replay_tick and replay_fb_hash agree).
		f := m.Frame()
		// Copying a frame out of guest memory costs: while catching up,
		// at most 30 a second; caught up, every one.
		if f.Seq != seq && (!r.stream.Ready() || time.Since(copied) >= 33*time.Millisecond) {
			seq, copied = f.Seq, time.Now()
			r.fbHash.Store(m.FramebufferHash())
			if !d.headless {
				r.copyFrame(f, m.Pixels(), m.Ticks())
			}
			if d.onScreen != nil {
				d.onScreen()
			}
		}
		r.checkpoints.Store(m.Stats().Checkpoints)
		r.ticks.Store(m.Ticks())
	}
}

func (r *replay) copyFrame(f machine.Frame, px []byte, tick uint64) {
	if px == nil {
		return
	}
	w, h := int(f.Width), int(f.Height)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frame.resize(w, h)
	for y := 0; y < h; y++ {
		copy(r.frame.pix[y*w*4:(y+1)*w*4], px[y*int(f.Stride):])
	}
	r.frame.tick = tick
}

// screen is a tightly packed RGBA picture.
type screen struct {
	pix  []byte
	w, h int
	tick uint64
}

func (s *screen) resize(w, h int) {
	if s.w != w || s.h != h || len(s.pix) != w*h*4 {
		s.pix, s.w, s.h = make([]byte, w*h*4), w, h
	}
}
