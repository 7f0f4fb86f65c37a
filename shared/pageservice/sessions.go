package pageservice

import (
	"fmt"
	"runtime"
	"slices"
	"sync"

	"replaydesk/shared/pagestore"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// SessionIndex is an in-memory SessionLister that the server appends to as
// it publishes snapshots. Safe for concurrent use.
type SessionIndex struct {
	mu   sync.RWMutex
	sess map[string][]SnapshotEntry
}

// NewSessionIndex returns an empty index.
func NewSessionIndex() *SessionIndex { return &SessionIndex{sess: map[string][]SnapshotEntry{}} }

// AddSession makes id known (with no snapshots yet), so that its list is an
// empty 200 rather than a 404.
func (x *SessionIndex) AddSession(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.sess[id]; !ok {
		x.sess[id] = nil
	}
}

// Add appends a snapshot to session id's list.
func (x *SessionIndex) Add(id string, e SnapshotEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sess[id] = append(x.sess[id], e)
}

// Retain removes from session id's list every snapshot keep refuses, and
// returns them: deleted snapshots are no longer listed.
func (x *SessionIndex) Retain(id string, keep func(SnapshotEntry) bool) []SnapshotEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	var kept, gone []SnapshotEntry
	for _, e := range x.sess[id] {
		if keep(e) {
			kept = append(kept, e)
		} else {
			gone = append(gone, e)
		}
	}
	if _, ok := x.sess[id]; ok {
		x.sess[id] = kept
	}
	return gone
}

func (x *SessionIndex) Snapshots(id string) ([]SnapshotEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.sess[id]
	return slices.Clone(l), ok
}

// Publisher is where published snapshots go: pagestore.DirStore and
// MemStore are Publishers.
type Publisher interface {
	pagestore.Store
	PutManifest(m *pagestore.Manifest) (pagestore.Hash, error)
}

// Publish stores s's pages (those the store lacks) and its manifest, with
// the working set a lazy restore should prefetch (may be nil), and
// returns the manifest and its hash. Pages are compressed in parallel:
// compression, not hashing, is most of the cost.
func Publish(st Publisher, s *snapshot.Snapshot, workingSet []uint32) (*pagestore.Manifest, pagestore.Hash, error) {
	m, pages := pagestore.ManifestFromSnapshot(s)
	m.WorkingSet = workingSet
	work := make(chan pagestore.Hash)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for h := range work {
				if err := st.Put(h, pages[h]); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for h := range pages {
		if !st.Has(h) {
			work <- h
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, pagestore.Hash{}, err
	default:
	}
	h, err := st.PutManifest(m)
	return m, h, err
}

// Holder is a Publisher whose manifests can be held (pagestore.DirStore):
// a shared store that deletes what no publisher holds any more.
type Holder interface {
	Publisher
	PublishLock() (unlock func(), err error)
	Hold(owner string, h pagestore.Hash) error
}

// PublishHeld is Publish for owner: on a Holder it publishes under the
// store's publish lock and holds the manifest, so a concurrent collection
// neither deletes a page Publish found already stored nor the manifest;
// on any other Publisher it is Publish.
func PublishHeld(st Publisher, owner string, s *snapshot.Snapshot, workingSet []uint32) (*pagestore.Manifest, pagestore.Hash, error) {
	ho, ok := st.(Holder)
	if !ok {
		return Publish(st, s, workingSet)
	}
	unlock, err := ho.PublishLock()
	if err != nil {
		return nil, pagestore.Hash{}, err
	}
	defer unlock()
	m, h, err := Publish(st, s, workingSet)
	if err == nil {
		err = ho.Hold(owner, h)
	}
	return m, h, err
}

// EntryFor describes a published snapshot for the session's list.
func EntryFor(n int, m *pagestore.Manifest, h pagestore.Hash) SnapshotEntry {
	return SnapshotEntry{N: n, Tick: m.Tick, Step: m.Step, LogPos: m.LogPos, Manifest: h.String(), Pages: len(m.Pages), MemorySize: m.MemorySize}
}

// PublishSessionDir publishes every snapshot of a session directory under
// session id: pages and manifests into st (held for owner on a Holder), the
// list into idx.
func PublishSessionDir(d *sessiondir.Dir, id, owner string, st Publisher, idx *SessionIndex) error {
	if !ValidSessionID.MatchString(id) {
		return fmt.Errorf("pageservice: bad session id %q", id)
	}
	idx.AddSession(id)
	for _, e := range d.Meta.Snapshots {
		n := e.N
		s, info, err := d.Snapshot(n)
		if err != nil {
			return err
		}
		m, h, err := PublishHeld(st, owner, s, info.WorkingSet)
		if err != nil {
			return fmt.Errorf("publishing snapshot %d of %s: %w", n, d.Path, err)
		}
		idx.Add(id, EntryFor(n, m, h))
	}
	return nil
}
