package pageservice

import (
	"sync"
	"testing"

	"replaydesk/shared/pagestore"
)

// Two sessions share a store and publish snapshots with the same pages
// (two recordings of one image) while one of them keeps deleting its
// own: a page the other found already stored, and so did not write, must
// not be deleted before the other's manifest holds it. Every snapshot B
// holds must be whole.
func TestCollectionNeverRacesAPublish(t *testing.T) {
	st, err := pagestore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap := testSnapshot(48, 3)
	const rounds = 150
	var wg sync.WaitGroup
	wg.Go(func() { // session A: publish, delete, again
		for range rounds {
			_, h, err := PublishHeld(st, "A", snap, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := st.Release("A", h); err != nil {
				t.Error(err)
				return
			}
		}
	})
	broken := 0
	for range rounds { // session B: publish, check it is whole, delete
		m, h, err := PublishHeld(st, "B", snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Hashes() {
			if !st.Has(p) {
				broken++
				break
			}
		}
		if _, err := st.Release("B", h); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if broken > 0 {
		t.Errorf("%d of %d snapshots B published and held lacked pages: a collection deleted them", broken, rounds)
	}
}
