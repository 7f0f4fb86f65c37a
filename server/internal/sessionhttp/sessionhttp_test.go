package sessionhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// snap is a snapshot of 3 pages: one every snapshot of every session has,
// one only this session's, one only this snapshot's.
func snap(d *sessiondir.Dir, session string, tick uint64) *snapshot.Snapshot {
	mem := make([]byte, 3*pagestore.PageSize)
	copy(mem, "the same everywhere")
	copy(mem[pagestore.PageSize:], "session "+session)
	copy(mem[2*pagestore.PageSize:], session+" tick "+string(rune('A'+tick)))
	return &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: tick, LogPos: recordlog.Pos{Tick: tick}, Memory: mem}
}

func newDir(t *testing.T, root, id string, n int) *sessiondir.Dir {
	t.Helper()
	d, err := sessiondir.Create(filepath.Join(root, id), "img", []byte("\x00asm fake module"), nil, "none")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := d.AddSnapshotKind(snap(d, id, uint64(i+1)), sessiondir.KindDemand); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// A live session's deleted snapshots leave the list, their manifests and
// pages leave the store (a client asking gets a 404 that says why), and
// pages another session sharing the store holds are kept; a server started
// again on the directory releases what a stop left held.
func TestDeletedSnapshotsLeaveTheStore(t *testing.T) {
	root := t.TempDir()
	store, err := pagestore.OpenDir(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	live, other := newDir(t, root, "live", 2), newDir(t, root, "other", 2)
	srv := New(store, zerolog.Nop())
	for _, d := range []*sessiondir.Dir{live, other} {
		if _, err := srv.Add(d.Path); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	first := srv.Snapshots("live")[0]

	// The recorder takes snapshots 3 to 6 and prunes after each; the
	// session publishes each.
	r := sessiondir.Retention{Demand: 2}
	for tick := uint64(3); tick <= 6; tick++ {
		s := snap(live, "live", tick)
		info, err := live.AddSnapshotKind(s, sessiondir.KindDemand)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := live.Prune(r); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Publish("live", info.N, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	var listed []int
	for _, e := range srv.Snapshots("live") {
		listed = append(listed, e.N)
	}
	if len(listed) != 2 || listed[0] != 5 || listed[1] != 6 {
		t.Errorf("listed %v; want [5 6]", listed)
	}
	res, err := http.Get(hs.URL + "/manifests/" + first.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "deleted") {
		t.Errorf("GET a deleted snapshot's manifest: %d %q; want 404 saying why", res.StatusCode, body)
	}
	// Pages: session live's own page stays (held by 5 and 6), the deleted
	// snapshots' own pages are gone, the shared one and session other's
	// stay.
	for _, c := range []struct {
		page []byte
		want bool
	}{
		{snap(live, "live", 1).Memory[2*pagestore.PageSize:], false},
		{snap(live, "live", 4).Memory[2*pagestore.PageSize:], false},
		{snap(live, "live", 5).Memory[2*pagestore.PageSize:], true},
		{snap(live, "live", 1).Memory[pagestore.PageSize : 2*pagestore.PageSize], true},
		{snap(live, "live", 1).Memory[:pagestore.PageSize], true},
		{snap(other, "other", 1).Memory[2*pagestore.PageSize:], true},
		{snap(other, "other", 2).Memory[pagestore.PageSize : 2*pagestore.PageSize], true},
	} {
		if got := store.Has(pagestore.HashPage(c.page)); got != c.want {
			t.Errorf("page %q stored: %v, want %v", strings.TrimRight(string(c.page[:24]), "\x00"), got, c.want)
		}
	}
	for _, e := range srv.Snapshots("other") {
		h, _ := pagestore.ParseHash(e.Manifest)
		if _, err := store.GetManifest(h); err != nil {
			t.Errorf("session other's snapshot %d: %v", e.N, err)
		}
	}

	// A stop between the recorder's delete and the release: snapshot 7
	// deletes 5, the server stops before it publishes. The next server on
	// the same directory releases 5.
	s7 := snap(live, "live", 7)
	if _, err := live.AddSnapshotKind(s7, sessiondir.KindDemand); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Prune(r); err != nil {
		t.Fatal(err)
	}
	srv2 := New(store, zerolog.Nop())
	if _, err := srv2.Add(live.Path); err != nil {
		t.Fatal(err)
	}
	held, _ := store.Held(ownerOf("live", live.Path))
	if len(held) != 2 {
		t.Errorf("after a restart the session holds %d manifests; want 2 (snapshots 6 and 7)", len(held))
	}
	if store.Has(pagestore.HashPage(snap(live, "live", 5).Memory[2*pagestore.PageSize:])) {
		t.Error("snapshot 5's own page survived the restart")
	}
	// Publishing a snapshot the session already deleted is refused.
	if _, err := srv2.Publish("live", 5, snap(live, "live", 5), nil); err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("publishing a deleted snapshot: %v", err)
	}
}
