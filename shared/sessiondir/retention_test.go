package sessiondir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// simulate adds snapshots one at a time (tick, kind) and applies r after
// each, as the recorder does, with every file size bytes.
func simulate(r Retention, snaps []SnapshotInfo, bytes int64) []SnapshotInfo {
	var kept []SnapshotInfo
	for i, s := range snaps {
		s.N = i + 1
		kept = append(kept, s)
		keep := r.Keep(kept, func(SnapshotInfo) int64 { return bytes })
		var next []SnapshotInfo
		for j, k := range keep {
			if k {
				next = append(next, kept[j])
			}
		}
		kept = next
	}
	return kept
}

// A day of periodic snapshots once a minute (60 Hz ticks) and a stranger
// asking for one every 10 s: the set stays small, the newest are there, and
// a recording can still be sought anywhere with little log to replay.
func TestRetentionBoundsAndThins(t *testing.T) {
	const minute = 3600 // ticks
	var snaps []SnapshotInfo
	for tick := uint64(600); tick <= 24*60*minute; tick += 600 {
		kind := KindDemand
		if tick%minute == 0 {
			kind = KindPeriodic
		}
		snaps = append(snaps, SnapshotInfo{Tick: tick, Kind: kind})
	}
	r := DefaultRetention
	kept := simulate(r, snaps, 4<<20)
	t.Logf("a day: %d snapshots taken, %d kept", len(snaps), len(kept))
	if len(kept) > r.MaxCount {
		t.Fatalf("%d kept, MaxCount %d", len(kept), r.MaxCount)
	}
	if len(kept) > 50 {
		t.Errorf("%d snapshots kept of a day's %d; want about 40", len(kept), len(snaps))
	}
	if kept[len(kept)-1].N != len(snaps) || kept[len(kept)-2].N != len(snaps)-1 {
		t.Errorf("the newest two are not kept: %v", kept[len(kept)-2:])
	}
	demand := 0
	for _, s := range kept {
		if s.Kind == KindDemand {
			demand++
		}
	}
	if demand > r.Demand {
		t.Errorf("%d on-demand snapshots kept, want at most %d", demand, r.Demand)
	}
	// Seeking: consecutive kept snapshots at age A are at most 2A/Density
	// (+ one period) apart, and the oldest is the first periodic one.
	newest := kept[len(kept)-1].Tick
	if kept[0].Tick != minute {
		t.Errorf("the oldest kept is at tick %d; want the first periodic one (%d)", kept[0].Tick, minute)
	}
	for i := 1; i < len(kept); i++ {
		age := newest - kept[i-1].Tick
		if gap := kept[i].Tick - kept[i-1].Tick; gap > 2*age/uint64(r.Density)+minute {
			t.Errorf("snapshots at ticks %d and %d: a gap of %d at age %d", kept[i-1].Tick, kept[i].Tick, gap, age)
		}
	}
}

// The byte and count budgets drop the oldest first, never the newest
// MinKeep, and a snapshot bigger than the whole budget still leaves the
// newest two.
func TestRetentionBudget(t *testing.T) {
	var snaps []SnapshotInfo
	for i := range 30 {
		snaps = append(snaps, SnapshotInfo{Tick: uint64(i+1) * 3600})
	}
	kept := simulate(Retention{MaxBytes: 10 << 20}, snaps, 4<<20)
	if len(kept) != MinKeep || kept[0].N != 29 {
		t.Errorf("10 MiB of 4 MiB snapshots: kept %v; want the newest two", kept)
	}
	kept = simulate(Retention{MaxCount: 5, Density: 1000}, snaps, 1)
	if len(kept) != 5 || kept[0].N != 26 {
		t.Errorf("MaxCount 5: kept %v; want the newest five", kept)
	}
	kept = simulate(Retention{MaxBytes: 1}, snaps, 4<<20)
	if len(kept) != MinKeep {
		t.Errorf("over any budget: kept %d; want the newest %d", len(kept), MinKeep)
	}
}

// Prune deletes what the policy drops, files and index entries, and the
// orphans a crash leaves; numbers go on after the newest, and a deleted
// number is a clear error.
func TestPruneDeletesAndNumbersGoOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	d, err := Create(path, "img", []byte("\x00asm fake"), nil, "none")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		tick := uint64(i+1) * 600
		s := &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: tick, LogPos: recordlog.Pos{Tick: tick}, Memory: make([]byte, 65536)}
		if _, err := d.AddSnapshotKind(s, KindDemand); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(path, "snapshots", "000099.snap"), []byte("orphan"), 0o644)
	dropped, err := d.Prune(Retention{Demand: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 3 || dropped[0].N != 1 || dropped[2].N != 3 {
		t.Fatalf("dropped %v; want 1 to 3 (the newest 3 on-demand ones are kept)", dropped)
	}
	ents, _ := os.ReadDir(filepath.Join(path, "snapshots"))
	if len(ents) != 3 {
		t.Errorf("%d files left in snapshots/, want 3: %v", len(ents), ents)
	}
	d2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(d2.Meta.Snapshots) != 3 || d2.Newest() != 6 {
		t.Fatalf("index after pruning: %+v", d2.Meta.Snapshots)
	}
	if _, _, err := d2.Snapshot(2); err == nil || !strings.Contains(err.Error(), "snapshot 2 was deleted") || !strings.Contains(err.Error(), "keeps 4, 5, 6") {
		t.Errorf("asking for a deleted snapshot: %v", err)
	}
	if _, _, err := d2.Snapshot(5); err != nil {
		t.Error(err)
	}
	info, err := d2.AddSnapshot(&snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: 9000, LogPos: recordlog.Pos{Tick: 9000}, Memory: make([]byte, 65536)})
	if err != nil || info.N != 7 {
		t.Errorf("the next snapshot is %d (%v); want 7, after the newest", info.N, err)
	}
	if err := d2.SetWorkingSet(7, []uint32{1}); err != nil {
		t.Error(err)
	}
	if err := d2.SetWorkingSet(1, []uint32{1}); err == nil {
		t.Error("a working set for a deleted snapshot was accepted")
	}
}
