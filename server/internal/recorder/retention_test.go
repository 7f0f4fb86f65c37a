package recorder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/machine"
	"replaydesk/shared/metrics"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
)

// attack records the test card on virtual time with a snapshot asked for
// after every tick: what a viewer going to dual mode over and over (or many
// viewers, through any number of relays) asks of a live session.
func attack(t *testing.T, out string, d time.Duration, cont bool, reg *metrics.Registry) *Result {
	t.Helper()
	img, err := images.Lookup("testcard")
	if err != nil {
		t.Fatal(err)
	}
	now := make(chan struct{}, 1)
	// Old code took one after the other: stop it before it fills the disk.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	taken, limit := 0, 2*int(d/DefaultDemandEvery)
	res, err := Run(ctx, Options{
		Image: img, Out: out, Duration: d, SnapshotEvery: 60 * time.Second,
		// A little typing, so the replays below check real steps; the test
		// card redraws on every key, so more costs minutes.
		Input:       inputscript.Random(7, d, 0.1, []string{"alice"}, img.Width, img.Height),
		SnapshotNow: now, Continue: cont, LeaveOpen: true, Metrics: reg,
		OnSnapshot: func(Snapshot) {
			if taken++; taken > limit {
				cancel()
			}
		},
		AfterTick: func(uint64) {
			select {
			case now <- struct{}{}:
			default:
			}
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	if taken > limit {
		t.Errorf("more than %d snapshots in %v of virtual time: stopped the recording", limit, d)
	}
	return res
}

func snapFiles(t *testing.T, out string) (n int, bytes int64, largest int64) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(out, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n++
		bytes += fi.Size()
		largest = max(largest, fi.Size())
	}
	return n, bytes, largest
}

// The attack of issue 9 (finding 8): on-demand snapshots every 10 s for 20
// intervals used to add a snapshot file each time, none ever deleted.
// Requests are now one per DefaultDemandEvery however many come, and the
// directory keeps the newest few of them.
func TestDemandSnapshotsBounded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s")
	reg := metrics.NewRegistry()
	const d = 200 * time.Second
	res := attack(t, out, d, false, reg)

	// Rate: one per 10 s (plus the periodic ones, which also reset the gap).
	if max := int(d/DefaultDemandEvery) + int(d/(60*time.Second)) + 1; res.Snapshots > max {
		t.Errorf("%d snapshots taken in %v of requests at every tick; want at most %d (one per %v)", res.Snapshots, d, max, DefaultDemandEvery)
	}
	if res.Snapshots < int(d/DefaultDemandEvery)/2 {
		t.Errorf("only %d snapshots taken: requests are not served", res.Snapshots)
	}
	dir, err := sessiondir.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	// What is kept: the newest MinKeep, the newest Demand on-demand ones and
	// the periodic ones (3 in 200 s, all young enough to keep).
	r := sessiondir.DefaultRetention
	bound := sessiondir.MinKeep + r.Demand + int(d/(60*time.Second))
	n, bytes, largest := snapFiles(t, out)
	t.Logf("%v of requests at every tick: %d snapshots taken, %d kept (%d bytes)", d, res.Snapshots, n, bytes)
	if n != len(dir.Meta.Snapshots) {
		t.Errorf("%d snapshot files, the index names %d", n, len(dir.Meta.Snapshots))
	}
	if n > bound || bytes > int64(bound)*largest {
		t.Errorf("after %d snapshots: %d files, %d bytes kept; want at most %d files", res.Snapshots, n, bytes, bound)
	}
	demand := 0
	for _, s := range dir.Meta.Snapshots {
		if s.Kind == sessiondir.KindDemand {
			demand++
		}
	}
	if demand > r.Demand+sessiondir.MinKeep {
		t.Errorf("%d on-demand snapshots kept; want at most %d", demand, r.Demand+sessiondir.MinKeep)
	}
	// The figures an operator scrapes.
	for name, want := range map[string]float64{
		"replaydesk_snapshots_kept":          float64(n),
		"replaydesk_snapshot_bytes":          float64(bytes),
		"replaydesk_snapshots_deleted_total": float64(res.Snapshots - n),
	} {
		if got := reg.Counter(name, "").Get(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	replayEveryKept(t, out)
}

// replayEveryKept restores every snapshot the directory keeps and replays
// the log from it to its end: each reaches the state the recording ended
// in, with no divergence (every checkpoint in the log is checked).
func replayEveryKept(t *testing.T, out string) {
	t.Helper()
	ctx := context.Background()
	dir, err := sessiondir.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := machine.NewEngine(ctx, dir.Module, machine.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	var final uint64
	for i, info := range append([]sessiondir.SnapshotInfo{{}}, dir.Meta.Snapshots...) {
		r, err := recordlog.Open(dir.LogDir(), dir.ModuleHash(), recordlog.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := machine.DecodeParams(r.Header().Params)
		if err != nil {
			t.Fatal(err)
		}
		cfg := machine.Config{Mode: machine.Replay, Params: p, Source: r, Disk: dir.Disk}
		var m *machine.Machine
		if info.N == 0 { // from the start: the reference
			m, err = machine.New(ctx, eng, cfg)
		} else {
			s, _, serr := dir.Snapshot(info.N)
			if serr != nil {
				t.Fatal(serr)
			}
			if err := r.Seek(s.LogPos); err != nil {
				t.Fatal(err)
			}
			m, err = machine.Restore(ctx, eng, cfg, s)
		}
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, err := m.ReplayNext(ctx)
			if errors.Is(err, machine.ErrEndOfLog) || errors.Is(err, recordlog.ErrUnsealed) {
				break
			}
			if err != nil {
				t.Fatalf("replaying from snapshot %d: %v", info.N, err)
			}
		}
		if i == 0 {
			final = m.StateHash()
		} else if got := m.StateHash(); got != final {
			t.Errorf("replay from snapshot %d ends in state %016x, from the start %016x", info.N, got, final)
		}
		m.Close(ctx)
		r.Close()
	}
}

// A session whose snapshots were deleted continues: it restores the newest,
// replays its log, numbers new snapshots after the newest (never reusing a
// deleted number) and gives each its own working set.
func TestContinueAfterDeletion(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s")
	attack(t, out, 100*time.Second, false, nil)
	before, err := sessiondir.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	newest := before.Newest()
	if len(before.Meta.Snapshots) == newest {
		t.Fatalf("no snapshot was deleted (%d kept of %d): the test needs gaps", len(before.Meta.Snapshots), newest)
	}
	var ready Ready
	img, _ := images.Lookup("testcard")
	now := make(chan struct{}, 1)
	now <- struct{}{}
	if _, err := Run(context.Background(), Options{
		Image: img, Out: out, Duration: 60 * time.Second, SnapshotEvery: 60 * time.Second,
		SnapshotNow: now, Continue: true, LeaveOpen: true,
		OnReady: func(r Ready) { ready = r },
		AfterTick: func(uint64) {
			select {
			case now <- struct{}{}:
			default:
			}
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}); err != nil {
		t.Fatal(err)
	}
	if ready.Restored != newest {
		t.Errorf("continued from snapshot %d, want the newest, %d", ready.Restored, newest)
	}
	after, err := sessiondir.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	prev := 0
	for _, s := range after.Meta.Snapshots {
		if s.N <= prev || seen[s.N] {
			t.Errorf("snapshot numbers out of order or reused: %+v", after.Meta.Snapshots)
		}
		seen[s.N] = true
		prev = s.N
	}
	if after.Newest() <= newest {
		t.Fatalf("no snapshot after the restart (newest %d, before %d)", after.Newest(), newest)
	}
	if _, _, err := after.Snapshot(1); err == nil || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("asking for deleted snapshot 1: %v; want a clear error", err)
	}
	replayEveryKept(t, out)
}
