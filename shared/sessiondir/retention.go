package sessiondir

import (
	"errors"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
)

// Retention bounds the snapshots a session keeps (docs/snapshots.md,
// Retention). Anyone who may replay can ask for a snapshot (a switch to dual
// mode), so without a bound a viewer link fills the disk. Zero fields take
// the defaults of DefaultRetention.
type Retention struct {
	// Demand is how many of the newest on-demand snapshots are kept.
	Demand int
	// Density thins periodic snapshots with age, so that seeking in a long
	// recording still works: a periodic snapshot A ticks older than the
	// newest is kept if it is the oldest in its slot of 2^k ticks, where 2^k
	// is the largest power of two at most A/Density. Kept snapshots at age A
	// are thus at most about 2A/Density apart, and each doubling of age
	// keeps about Density of them. A snapshot dropped stays dropped: slots
	// only merge as they age.
	Density int
	// MaxCount and MaxBytes bound the whole set (snapshot files on disk):
	// over either, the oldest go first. The newest MinKeep are kept even
	// over the budget.
	MaxCount int
	MaxBytes int64
}

// MinKeep is how many of the newest snapshots are never deleted: the newest
// is what a restart and late joiners start from; the one before is what
// viewers may still be fetching when a new one is announced.
const MinKeep = 2

// DefaultRetention is a live session's policy: the newest 3 on-demand
// snapshots; periodic ones thinned to about 4 per doubling of age (a day at
// one a minute keeps about 40); at most 64 snapshots and 1 GiB of snapshot
// files.
var DefaultRetention = Retention{Demand: 3, Density: 4, MaxCount: 64, MaxBytes: 1 << 30}

func (r Retention) withDefaults() Retention {
	d := DefaultRetention
	if r.Demand <= 0 {
		r.Demand = d.Demand
	}
	if r.Density <= 0 {
		r.Density = d.Density
	}
	if r.MaxCount <= 0 {
		r.MaxCount = d.MaxCount
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = d.MaxBytes
	}
	return r
}

// Keep decides which of snaps (oldest first, as in the index) stay; size
// gives each one's bytes on disk. It is a pure function of the index: two
// calls on the same snapshots agree, whatever the wall clock says.
func (r Retention) Keep(snaps []SnapshotInfo, size func(SnapshotInfo) int64) []bool {
	r = r.withDefaults()
	keep := make([]bool, len(snaps))
	n := len(snaps)
	if n == 0 {
		return keep
	}
	newest := snaps[n-1].Tick
	demand := 0
	for i := n - 1; i >= 0; i-- {
		s := snaps[i]
		switch {
		case i >= n-MinKeep:
			keep[i] = true
		case s.Kind == KindDemand:
			// The newest few: a viewer may be fetching one, and a stranger
			// asking every 10 s cannot grow the set.
			keep[i] = demand < r.Demand
		default:
			keep[i] = oldestInSlot(snaps, i, newest, uint64(r.Density))
		}
		if s.Kind == KindDemand {
			demand++
		}
	}
	// The budget: the oldest kept go first.
	count, bytes := 0, int64(0)
	for i := range snaps {
		if keep[i] {
			count++
			bytes += size(snaps[i])
		}
	}
	for i := 0; i < n-MinKeep && (count > r.MaxCount || bytes > r.MaxBytes); i++ {
		if keep[i] {
			keep[i] = false
			count--
			bytes -= size(snaps[i])
		}
	}
	return keep
}

// oldestInSlot reports whether periodic snapshot i is the oldest periodic
// snapshot in its slot (see Retention.Density).
func oldestInSlot(snaps []SnapshotInfo, i int, newest, density uint64) bool {
	t := snaps[i].Tick
	age := newest - min(newest, t)
	w := uint64(1)
	if q := age / density; q > 1 {
		w = 1 << (bits.Len64(q) - 1)
	}
	slot := t / w
	for j := i - 1; j >= 0 && snaps[j].Tick/w == slot; j-- {
		if snaps[j].Kind != KindDemand {
			return false // an older periodic one holds the slot
		}
	}
	return true
}

// Prune applies r to the index: it rewrites session.json without the
// snapshots r drops, then deletes their files, and files in snapshots/
// that the index does not name (left by a crash between a write and the
// index, or between the index and a delete). It returns what it dropped.
// Only the session's recorder may call it: it owns the index.
func (d *Dir) Prune(r Retention) ([]SnapshotInfo, error) {
	sizes := map[int]int64{}
	size := func(s SnapshotInfo) int64 {
		if b, ok := sizes[s.N]; ok {
			return b
		}
		var b int64
		if fi, err := os.Stat(filepath.Join(d.Path, s.File)); err == nil {
			b = fi.Size()
		}
		sizes[s.N] = b
		return b
	}
	keep := r.Keep(d.Meta.Snapshots, size)
	var kept, dropped []SnapshotInfo
	for i, s := range d.Meta.Snapshots {
		if keep[i] {
			kept = append(kept, s)
		} else {
			dropped = append(dropped, s)
		}
	}
	if len(dropped) > 0 {
		// The index first: a crash after it leaves only orphan files, which
		// the next Prune deletes; never an index naming a missing file.
		d.Meta.Snapshots = kept
		if err := d.SaveMeta(); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, s := range dropped {
		if err := os.Remove(filepath.Join(d.Path, s.File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	named := map[string]bool{}
	for _, s := range kept {
		named[filepath.Base(s.File)] = true
	}
	ents, _ := os.ReadDir(filepath.Join(d.Path, "snapshots"))
	for _, e := range ents {
		name := e.Name()
		if (strings.HasSuffix(name, ".snap") || strings.HasSuffix(name, ".snap.tmp")) && !named[name] {
			if err := os.Remove(filepath.Join(d.Path, "snapshots", name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return dropped, errors.Join(errs...)
}

// SnapshotBytes is the size of the indexed snapshots' files on disk.
func (d *Dir) SnapshotBytes() int64 {
	var n int64
	for _, s := range d.Meta.Snapshots {
		if fi, err := os.Stat(filepath.Join(d.Path, s.File)); err == nil {
			n += fi.Size()
		}
	}
	return n
}
