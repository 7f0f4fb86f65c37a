// Package replayer replays a recorded session directory offline: from its
// start or from a snapshot, checking every checkpoint, optionally writing
// frames as PNG. It is what `client replay DIR` does.
//
// It must not know about networks or live sessions.
package replayer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/fetch"
	"replaydesk/shared/abi"
	"replaydesk/shared/machine"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// Options says what to replay.
type Options struct {
	// Dir is a session directory, or the URL of a session served by
	// `server serve` (http://host:port/sessions/ID), which is mirrored into
	// CacheDir with its snapshots' pages fetched through the page cache.
	Dir          string
	CacheDir     string // default: the user cache directory's replaydesk/
	CacheBytes   int64  // bound of the page cache (default 2 GiB)
	FromSnapshot int    // 0: from the start
	// Lazy restores the snapshot's memory on first touch through a
	// page-server child process instead of copying it all first.
	Lazy        bool
	Readahead   int
	FramesDir   string // "": no frames
	FramesEvery uint64 // write every K-th step's frame (default 1)
	Console     io.Writer
	Log         zerolog.Logger
	// Progress is called about every ProgressEvery of wall time.
	Progress      func(ticks uint64)
	ProgressEvery time.Duration
}

// Result is what `client replay` prints.
type Result struct {
	Steps          uint64       `json:"steps"`
	Ticks          uint64       `json:"ticks"`
	FromSnapshot   int          `json:"from_snapshot"`
	Checkpoints    uint64       `json:"checkpoints"`
	Divergences    int          `json:"divergences"`
	Divergence     string       `json:"divergence,omitempty"`
	FinalFBHash    string       `json:"final_fb_hash"`
	FinalStateHash string       `json:"final_state_hash"`
	Frames         int          `json:"frames"`
	WallS          float64      `json:"wall_s"`
	RestoreMs      float64      `json:"restore_ms"`     // engine ready to machine ready
	FirstFrameMs   float64      `json:"first_frame_ms"` // restore done to the first step's frame
	Lazy           *LazyResult  `json:"lazy,omitempty"` // paging figures of a lazy restore
	LazyFallback   string       `json:"lazy_fallback,omitempty"`
	Fetch          *FetchResult `json:"fetch,omitempty"`            // pages of a remote snapshot
	PrefetchPages  int          `json:"prefetch_pages,omitempty"`   // working set a lazy restore prefetched
	DiskBlocksRead int          `json:"disk_blocks_read,omitempty"` // base-disk blocks of a remote session read on demand
}

// Run replays. A divergence is not an error: it is in the Result, with the
// machine stopped at it. Errors are everything else (a corrupt log, an
// unreadable directory, a snapshot of another module).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.FramesEvery == 0 {
		o.FramesEvery = 1
	}
	var rem *fetch.Fetcher
	local := o.Dir
	if base, id, ok := parseRemote(o.Dir); ok {
		var err error
		if rem, err = fetch.Open(base, id, "", o.CacheDir, o.CacheBytes); err != nil {
			return nil, err
		}
		u, _ := url.Parse(base)
		local = filepath.Join(rem.CacheDir(), "sessions", strings.ReplaceAll(u.Host, ":", "_")+"_"+id)
		if err := mirror(ctx, rem, local); err != nil {
			return nil, fmt.Errorf("fetching session %s: %w", o.Dir, err)
		}
	}
	open := sessiondir.Open
	if rem != nil {
		open = sessiondir.OpenWithoutDisk
	}
	dir, err := open(local)
	if err != nil {
		return nil, err
	}
	r, err := recordlog.Open(dir.LogDir(), dir.ModuleHash(), recordlog.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p, err := machine.DecodeParams(r.Header().Params)
	if err != nil {
		return nil, err
	}
	eng, err := machine.NewEngine(ctx, dir.Module, machine.EngineOptions{})
	if err != nil {
		return nil, err
	}
	defer eng.Close(context.Background())
	cfg := machine.Config{Mode: machine.Replay, Params: p, Source: r, Disk: dir.Disk, Console: o.Console, Log: o.Log}
	var disk *fetch.Disk
	if rem != nil && p.DiskMode == abi.DiskSnapshotted {
		if disk, err = rem.Disk(ctx); err != nil {
			return nil, fmt.Errorf("session %s's disk: %w", o.Dir, err)
		}
		if disk != nil {
			cfg.DiskSource = disk
		}
	}

	res := &Result{FromSnapshot: o.FromSnapshot}
	start := time.Now()
	var m *machine.Machine
	if o.FromSnapshot > 0 {
		var s *snapshot.Snapshot
		var workingSet []uint32
		var remotePages *machine.RemotePages
		var man *pagestore.Manifest
		if rem != nil {
			if man, err = rem.ManifestN(ctx, o.FromSnapshot, dir.ModuleHash()); err == nil {
				workingSet = man.WorkingSet
				if o.Lazy {
					s, remotePages = rem.Lazy(man)
				} else {
					s, res.Fetch, err = rem.Assemble(ctx, man)
				}
			}
		} else {
			var info sessiondir.SnapshotInfo
			s, info, err = dir.Snapshot(o.FromSnapshot)
			workingSet = info.WorkingSet
		}
		if err != nil {
			return nil, err
		}
		if err := r.Seek(s.LogPos); err != nil {
			return nil, fmt.Errorf("seeking the log to snapshot %d: %w", o.FromSnapshot, err)
		}
		if o.Lazy {
			prefetch := make([]int, len(workingSet))
			for i, p := range workingSet {
				prefetch[i] = int(p)
			}
			res.PrefetchPages = len(prefetch)
			m, err = machine.RestoreLazy(ctx, eng, cfg, s, machine.LazyOptions{Readahead: o.Readahead, Prefetch: prefetch, Remote: remotePages})
			if errors.Is(err, machine.ErrLazyUnavailable) {
				o.Log.Warn().Err(err).Msg("lazy restore unavailable here: restoring eagerly (every page copied first)")
				res.LazyFallback = err.Error()
				if remotePages != nil {
					if s, res.Fetch, err = rem.Assemble(ctx, man); err != nil {
						return nil, err
					}
				}
				m, err = machine.Restore(ctx, eng, cfg, s)
			}
		} else {
			m, err = machine.Restore(ctx, eng, cfg, s)
		}
		if err != nil {
			return nil, err
		}
	} else if m, err = machine.New(ctx, eng, cfg); err != nil {
		var d *machine.Divergence
		if errors.As(err, &d) {
			res.Divergences, res.Divergence = 1, d.Error()
			return res, nil
		}
		return nil, err
	}
	defer m.Close(context.Background())
	restored := time.Now()
	res.RestoreMs = float64(restored.Sub(start).Microseconds()) / 1000
	if o.FramesDir != "" {
		if err := os.MkdirAll(o.FramesDir, 0o755); err != nil {
			return nil, err
		}
	}
	lastProgress := time.Now()
	var runErr error
	for {
		kind, err := m.ReplayNext(ctx)
		if errors.Is(err, machine.ErrEndOfLog) {
			break
		}
		var d *machine.Divergence
		if errors.As(err, &d) {
			res.Divergences, res.Divergence = 1, d.Error()
			break
		}
		if err != nil {
			runErr = err
			break
		}
		if kind == recordlog.KindStep && res.FirstFrameMs == 0 {
			res.FirstFrameMs = float64(time.Since(restored).Microseconds()) / 1000
		}
		if kind == recordlog.KindStep && o.FramesDir != "" && m.Steps()%o.FramesEvery == 0 {
			if err := writeFrame(m, filepath.Join(o.FramesDir, fmt.Sprintf("frame-%08d.png", m.Ticks()-1))); err != nil {
				return nil, err
			}
			res.Frames++
		}
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			o.Progress(m.Ticks())
		}
	}
	st := m.Stats()
	res.Steps, res.Ticks, res.Checkpoints = m.Steps(), m.Ticks(), st.Checkpoints
	if disk != nil {
		res.DiskBlocksRead = disk.Fetched()
	}
	// The final state hash reads every page: complete a lazy restore in
	// bulk first (a no-op if a memory checkpoint already did).
	if err := m.CompleteLazy(ctx); err != nil && runErr == nil {
		runErr = err
	}
	if ls, ok := m.LazyStats(); ok {
		res.Lazy = &LazyResult{Pages: ls.Pages, DataPages: ls.DataPages, Faults: ls.Faults,
			ServedByFault: ls.ServedByFault, ServedByReadahead: ls.ServedByReadahead,
			ServedByPrefetch: ls.ServedByPrefetch, ServedByComplete: ls.ServedByComplete,
			ServiceP50Us: float64(ls.ServiceP50.Nanoseconds()) / 1000, ServiceP99Us: float64(ls.ServiceP99.Nanoseconds()) / 1000}
		if rem != nil && res.LazyFallback == "" { // the page server fetched them
			res.Fetch = &FetchResult{PagesInSnapshot: ls.DataPages, PagesFetched: ls.Fetched, PagesFromCache: ls.FromCache,
				PagesOnDemand: ls.Fetched - ls.FetchedByComplete, Requests: ls.FetchRequests}
		}
	}
	if runErr != nil {
		// The machine stopped; its state is not worth hashing (and a lazy
		// one whose page server failed must not be read at all).
		res.WallS = time.Since(start).Seconds()
		return res, runErr
	}
	res.FinalFBHash = fmt.Sprintf("%016x", m.FramebufferHash())
	res.FinalStateHash = fmt.Sprintf("%016x", m.StateHash())
	res.WallS = time.Since(start).Seconds()
	return res, runErr
}

// LazyResult is the paging of a lazy restore.
type LazyResult struct {
	Pages             int     `json:"pages"`      // in the snapshot's memory
	DataPages         int     `json:"data_pages"` // of which non-zero
	Faults            int     `json:"faults"`
	ServedByFault     int     `json:"served_by_fault"`
	ServedByReadahead int     `json:"served_by_readahead"`
	ServedByPrefetch  int     `json:"served_by_prefetch"`
	ServedByComplete  int     `json:"served_by_complete"` // filled in bulk before a full-memory hash
	ServiceP50Us      float64 `json:"service_p50_us"`
	ServiceP99Us      float64 `json:"service_p99_us"`
}

// writeFrame saves the current framebuffer as an opaque PNG.
func writeFrame(m *machine.Machine, path string) error {
	f := m.Frame()
	px := m.Pixels()
	if px == nil {
		return nil
	}
	img := image.NewRGBA(image.Rect(0, 0, int(f.Width), int(f.Height)))
	for y := 0; y < int(f.Height); y++ {
		row := img.Pix[y*img.Stride : y*img.Stride+int(f.Width)*4]
		copy(row, px[y*int(f.Stride):])
		for x := 3; x < len(row); x += 4 {
			row[x] = 255 // the ABI ignores alpha; a PNG viewer would not
		}
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(out, img); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
