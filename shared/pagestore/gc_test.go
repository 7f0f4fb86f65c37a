package pagestore

import (
	"errors"
	"testing"

	"replaydesk/shared/snapshot"
)

// page returns a distinct non-zero page.
func page(tag string) []byte {
	p := make([]byte, PageSize)
	copy(p, tag)
	return p
}

// put stores a manifest of the given pages (one per index) and holds it
// for owner.
func put(t *testing.T, s *DirStore, owner string, tick uint64, pages ...[]byte) (Hash, []Hash) {
	t.Helper()
	mem := make([]byte, 0, len(pages)*PageSize)
	for _, p := range pages {
		mem = append(mem, p...)
	}
	m, raw := ManifestFromSnapshot(&snapshot.Snapshot{Tick: tick, Memory: mem})
	var hs []Hash
	for h, b := range raw {
		if err := s.Put(h, b); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	mh, err := s.PutManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Hold(owner, mh); err != nil {
		t.Fatal(err)
	}
	return mh, hs
}

// Releasing a snapshot deletes its manifest and the pages only it used;
// a page another snapshot of the same session, or of another session
// sharing the store, still names is kept, and so is every page no hold ever
// named.
func TestReleaseKeepsWhatOthersHold(t *testing.T) {
	s, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shared, mine, other, older := page("shared"), page("only in the released one"), page("only session B"), page("older snapshot of A")
	legacy := page("stored before holds existed")
	lh := HashPage(legacy)
	if err := s.Put(lh, legacy); err != nil {
		t.Fatal(err)
	}
	a1, _ := put(t, s, "A", 1, older, shared)
	a2, _ := put(t, s, "A", 2, mine, shared, older)
	b, bPages := put(t, s, "B", 3, shared, other)

	st, err := s.Release("A", a2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Released != 1 || st.Manifests != 1 || st.Pages != 1 || st.Held != 2 {
		t.Errorf("release: %+v; want 1 hold, 1 manifest, 1 page deleted, 2 holds left", st)
	}
	if s.Has(HashPage(mine)) {
		t.Error("the page only the released snapshot used is still stored")
	}
	if _, err := s.GetManifest(a2); !errors.Is(err, ErrNotFound) {
		t.Errorf("released manifest: %v; want ErrNotFound", err)
	}
	for _, p := range [][]byte{shared, older, other, legacy} {
		if _, err := s.Get(HashPage(p)); err != nil {
			t.Errorf("page %q: %v", p[:12], err)
		}
	}
	// B's snapshot still assembles page by page.
	for _, h := range bPages {
		if !s.Has(h) {
			t.Errorf("B lost page %s", h)
		}
	}
	if _, err := s.GetManifest(b); err != nil {
		t.Error(err)
	}
	// A manifest two owners hold survives one of them releasing it.
	if err := s.Hold("B", a1); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Release("A", a1); err != nil || st.Manifests != 0 || st.Pages != 0 {
		t.Errorf("releasing a manifest B still holds: %+v, %v", st, err)
	}
	if _, err := s.GetManifest(a1); err != nil {
		t.Error(err)
	}
	held, _ := s.Held("A")
	if len(held) != 0 {
		t.Errorf("A still holds %v", held)
	}
	if _, err := s.Release("../x", a1); err == nil {
		t.Error("a bad owner name was accepted")
	}
}
