package fetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// service serves a session "s" with a module, and one snapshot published
// into a page store; modGets counts module downloads.
func service(t *testing.T, module []byte) (*httptest.Server, pagestore.Hash, *snapshot.Snapshot, *atomic.Int64) {
	t.Helper()
	mh := recordlog.ModuleHash(sha256.Sum256(module))
	mem := make([]byte, 4*65536)
	for i := range mem[:70000] {
		mem[i] = byte(i*13 + 1)
	}
	snap := &snapshot.Snapshot{ModuleHash: mh, Tick: 60, Step: 5, LogPos: recordlog.Pos{Offset: 100, Tick: 60, Step: 5},
		Globals: []uint64{1, 2}, Memory: mem}
	store := pagestore.NewMemStore()
	_, h, err := pageservice.Publish(store, snap, []uint32{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	var modGets atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions/s/files/module.wasm", func(w http.ResponseWriter, r *http.Request) {
		modGets.Add(1)
		w.Write(module)
	})
	mux.Handle("/", pageservice.NewServer(store, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, h, snap, &modGets
}

func TestSnapshotThroughTheCache(t *testing.T) {
	module := []byte("\x00asm fake module")
	srv, h, want, _ := service(t, module)
	cache := t.TempDir()
	f, err := Open(srv.URL, "s", "", cache, 0)
	if err != nil {
		t.Fatal(err)
	}
	s, ws, res, err := f.Snapshot(context.Background(), h, want.ModuleHash)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Memory) != string(want.Memory) || s.LogPos != want.LogPos || len(ws) != 2 {
		t.Fatal("the assembled snapshot differs from the published one")
	}
	if res.PagesFetched == 0 || res.PagesFromCache != 0 || f.BytesReceived() == 0 {
		t.Fatalf("first fetch: %+v, %d bytes", res, f.BytesReceived())
	}
	// Another session's client with the same cache fetches no page again.
	g, err := Open(srv.URL, "s", "", cache, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, res, err = g.Snapshot(context.Background(), h, want.ModuleHash)
	if err != nil {
		t.Fatal(err)
	}
	if res.PagesFetched != 0 || res.PagesFromCache == 0 {
		t.Fatalf("second fetch: %+v", res)
	}
	// A manifest of another module is refused.
	var mm *snapshot.ModuleMismatchError
	if _, _, _, err := g.Snapshot(context.Background(), h, recordlog.ModuleHash{1}); !errors.As(err, &mm) {
		t.Fatalf("another module's snapshot: %v", err)
	}
}

func TestModuleCheckedAndKept(t *testing.T) {
	module := []byte("\x00asm the module")
	srv, _, _, gets := service(t, module)
	cache := t.TempDir()
	f, err := Open(srv.URL, "s", "", cache, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := recordlog.ModuleHash(sha256.Sum256(module))
	for range 2 {
		got, err := f.Module(context.Background(), want)
		if err != nil || string(got) != string(module) {
			t.Fatalf("Module: %q %v", got, err)
		}
	}
	if gets.Load() != 1 {
		t.Fatalf("the module was downloaded %d times", gets.Load())
	}
	// A module that is not the session's is refused, and not kept.
	other := recordlog.ModuleHash{9}
	if _, err := f.Module(context.Background(), other); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("a module of the wrong hash: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "modules", "09"+strings.Repeat("00", 31)+".wasm")); !os.IsNotExist(err) {
		t.Fatalf("a wrong module was kept: %v", err)
	}
	// A kept module that rotted is fetched again.
	path := filepath.Join(cache, "modules", hexOf(want)+".wasm")
	if err := os.WriteFile(path, []byte("rotten"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Module(context.Background(), want); err != nil || string(got) != string(module) || gets.Load() != 3 { // 1, the wrong-hash try, this
		t.Fatalf("after rot: %q %v, %d downloads", got, err, gets.Load())
	}
}

func hexOf(h recordlog.ModuleHash) string {
	const d = "0123456789abcdef"
	var b strings.Builder
	for _, c := range h {
		b.WriteByte(d[c>>4])
		b.WriteByte(d[c&15])
	}
	return b.String()
}

func TestNoDisk(t *testing.T) {
	srv, _, _, _ := service(t, []byte("m"))
	f, err := Open(srv.URL, "s", "", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := f.Disk(context.Background()); d != nil || err != nil {
		t.Fatalf("a session without a disk: %v %v", d, err)
	}
}

// A live session deletes old snapshots, so its list has gaps: a snapshot is
// found by its number, and a deleted one is a clear error.
func TestManifestNByNumber(t *testing.T) {
	module := []byte("\x00asm fake module")
	mh := recordlog.ModuleHash(sha256.Sum256(module))
	store := pagestore.NewMemStore()
	idx := pageservice.NewSessionIndex()
	idx.AddSession("s")
	for _, n := range []int{3, 5} {
		snap := &snapshot.Snapshot{ModuleHash: mh, Tick: uint64(60 * n), LogPos: recordlog.Pos{Tick: uint64(60 * n)}, Memory: make([]byte, 65536)}
		m, h, err := pageservice.Publish(store, snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		idx.Add("s", pageservice.EntryFor(n, m, h))
	}
	srv := httptest.NewServer(pageservice.NewServer(store, idx))
	defer srv.Close()
	f, err := Open(srv.URL, "s", "", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{3, 5} {
		m, err := f.ManifestN(ctx, n, mh)
		if err != nil || m.Tick != uint64(60*n) {
			t.Errorf("snapshot %d: %v, %v", n, m, err)
		}
	}
	if _, err := f.ManifestN(ctx, 4, mh); err == nil || !strings.Contains(err.Error(), "snapshot 4 was deleted") || !strings.Contains(err.Error(), "keeps 3, 5") {
		t.Errorf("a deleted snapshot: %v", err)
	}
	if _, err := f.ManifestN(ctx, 6, mh); err == nil || !strings.Contains(err.Error(), "no snapshot 6") {
		t.Errorf("a snapshot not taken yet: %v", err)
	}
}
