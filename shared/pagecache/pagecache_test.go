package pagecache_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"replaydesk/shared/pagecache"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

const ps = pagestore.PageSize

func page(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	p := make([]byte, ps)
	for i := 0; i < ps; i += 8 {
		p[i] = byte(r.Uint32())
	}
	p[0] = 1 // never the zero page
	return p
}

// diskBytes walks the cache directory: the truth, not the cache's belief.
func diskBytes(t testing.TB, dir string) (n int64, files int) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".pg" {
			info, _ := d.Info()
			if info != nil {
				n += (info.Size() + 4095) / 4096 * 4096
				files++
			}
		}
		return nil
	})
	return n, files
}

func TestGetPutVerify(t *testing.T) {
	c, err := pagecache.Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var st pagestore.Store = c
	p := page(1)
	h := pagestore.HashPage(p)
	if _, err := st.Get(h); !errors.Is(err, pagestore.ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if err := st.Put(h, page(2)); err == nil {
		t.Fatal("Put accepted a page under another's hash")
	}
	if err := st.Put(h, p); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(h)
	if err != nil || string(got) != string(p) {
		t.Fatalf("hit: %v", err)
	}
	// Rot one byte on disk: refused, deleted, so a refetch can replace it.
	path := filepath.Join(c.Dir(), h.String()[:2], h.String()+".pg")
	b, _ := os.ReadFile(path)
	b[100] ^= 0x40
	os.WriteFile(path, b, 0o644)
	_, err = st.Get(h)
	var ce *pagestore.CorruptPageError
	if !errors.As(err, &ce) || ce.Hash != h {
		t.Fatalf("rotten page: %v", err)
	}
	if st.Has(h) {
		t.Fatal("the rotten page is still cached")
	}
	if _, err := pagecache.Open(t.TempDir(), 1000); err == nil {
		t.Fatal("a 1000-byte bound was accepted")
	}
}

func TestEvictionLRU(t *testing.T) {
	dir := t.TempDir()
	const max = 64 * ps
	c, err := pagecache.Open(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	c.TouchEvery = 0
	var hs []pagestore.Hash
	old := time.Now().Add(-10 * time.Minute)
	for i := range 50 {
		p := page(uint64(i))
		h := pagestore.HashPage(p)
		hs = append(hs, h)
		if err := c.Put(h, p); err != nil {
			t.Fatal(err)
		}
		// Filesystem clocks are coarse: give each page a distinct age.
		path := filepath.Join(dir, h.String()[:2], h.String()+".pg")
		os.Chtimes(path, old.Add(time.Duration(i)*time.Second), old.Add(time.Duration(i)*time.Second))
	}
	if _, err := c.Get(hs[0]); err != nil { // the oldest, now the most recently used
		t.Fatal(err)
	}
	checked := false
	for i := 50; i < 300; i++ {
		p := page(uint64(i))
		if err := c.Put(pagestore.HashPage(p), p); err != nil {
			t.Fatal(err)
		}
		if !checked && c.Evictions() > 0 {
			// The first eviction removed the least recently used: page 1
			// went, page 0 (touched) stayed.
			checked = true
			if !c.Has(hs[0]) {
				t.Error("the recently used page was evicted before older ones")
			}
			if c.Has(hs[1]) {
				t.Error("the least recently used page survived")
			}
		}
		if n, _ := diskBytes(t, dir); n > max || c.Size() > max {
			t.Fatalf("after %d pages: %d bytes on disk, %d believed; bound %d", i+1, n, c.Size(), max)
		}
	}
	if c.Evictions() == 0 {
		t.Fatal("nothing was evicted")
	}
	n, files := diskBytes(t, dir)
	if n != c.Size() || files < 50 {
		t.Fatalf("%d bytes in %d files on disk, cache believes %d", n, files, c.Size())
	}
	if !checked {
		t.Fatal("no eviction happened")
	}
	// Reopening sees the same size.
	c2, err := pagecache.Open(dir, max)
	if err != nil || c2.Size() != n {
		t.Fatalf("reopen: %d bytes, %v", c2.Size(), err)
	}
}

// Two Cache values on one directory behave like two processes: they share
// pages, evict each other's, and never see a torn file or an error other
// than a miss.
func TestSharedByProcesses(t *testing.T) {
	dir := t.TempDir()
	const max = 128 * ps
	a, _ := pagecache.Open(dir, max)
	b, _ := pagecache.Open(dir, max)
	p := page(7)
	h := pagestore.HashPage(p)
	a.Put(h, p)
	if got, err := b.Get(h); err != nil || string(got) != string(p) {
		t.Fatalf("b does not see a's page: %v", err)
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w, c := range []*pagecache.Cache{a, b, a, b} {
		wg.Go(func() {
			for i := range 400 {
				p := page(uint64(i % 200))
				h := pagestore.HashPage(p)
				if err := c.Put(h, p); err != nil {
					t.Errorf("worker %d put: %v", w, err)
					bad.Add(1)
				}
				q := page(uint64((i * 7) % 200))
				got, err := c.Get(pagestore.HashPage(q))
				if err != nil && !errors.Is(err, pagestore.ErrNotFound) || err == nil && string(got) != string(q) {
					t.Errorf("worker %d get: %v", w, err)
					bad.Add(1)
				}
				if i%50 == 0 {
					c.Evict()
				}
			}
		})
	}
	wg.Wait()
	a.Evict()
	// Each process can overshoot by what it wrote since its last scan (a
	// tenth of the bound); after a scan the bound holds.
	if n, _ := diskBytes(t, dir); n > max {
		t.Fatalf("%d bytes on disk after eviction, bound %d", n, max)
	}
	ents, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp-*"))
	if len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// server is a page service with a counter of requests, pages and bytes.
type server struct {
	st                   *pagestore.MemStore
	url                  string
	reqs, bytes, batches atomic.Int64
}

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countWriter) Write(b []byte) (int, error) {
	w.n.Add(int64(len(b)))
	return w.ResponseWriter.Write(b)
}

func newServer(t testing.TB) *server {
	s := &server{st: pagestore.NewMemStore()}
	h := pageservice.NewServer(s.st, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reqs.Add(1)
		h.ServeHTTP(countWriter{w, &s.bytes}, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func TestCachingFetcherNoRequestsOnHit(t *testing.T) {
	srv := newServer(t)
	var hs []pagestore.Hash
	for i := range 100 {
		p := page(uint64(i))
		h := pagestore.HashPage(p)
		srv.st.Put(h, p)
		hs = append(hs, h)
	}
	dir := t.TempDir()
	c, _ := pagecache.Open(dir, 1<<30)
	f := pagecache.NewCachingFetcher(c, pageservice.NewClient(srv.url, nil))
	ctx := context.Background()
	got, err := f.Fetch(ctx, hs)
	if err != nil || len(got) != 100 || srv.reqs.Load() == 0 {
		t.Fatalf("first fetch: %d pages, %d requests, %v", len(got), srv.reqs.Load(), err)
	}
	first := srv.reqs.Load()
	// Same process, then a "new process" on the same directory.
	for _, f2 := range []*pagecache.CachingFetcher{f, func() *pagecache.CachingFetcher {
		c2, _ := pagecache.Open(dir, 1<<30)
		return pagecache.NewCachingFetcher(c2, pageservice.NewClient(srv.url, nil))
	}()} {
		got, err := f2.Fetch(ctx, append(hs, pagestore.ZeroHash))
		if err != nil || len(got) != 101 {
			t.Fatal(err)
		}
		for _, h := range hs {
			if pagestore.HashPage(got[h]) != h {
				t.Fatal("wrong page from the cache")
			}
		}
	}
	if n := srv.reqs.Load() - first; n != 0 {
		t.Fatalf("second fetch made %d HTTP requests, want 0", n)
	}
	if hits, misses, _ := f.Stats(); hits != 100 || misses != 100 {
		t.Fatalf("stats: %d hits, %d misses", hits, misses)
	}
	// A page rotten on disk is fetched again, exactly once.
	path := filepath.Join(dir, hs[5].String()[:2], hs[5].String()+".pg")
	os.WriteFile(path, []byte("rot"), 0o644)
	before := srv.reqs.Load()
	got, err = f.Fetch(ctx, hs)
	if err != nil || pagestore.HashPage(got[hs[5]]) != hs[5] || srv.reqs.Load()-before != 1 {
		t.Fatalf("rotten page: %v, %d requests", err, srv.reqs.Load()-before)
	}
}

// memory of n pages: a third zero, a third text-like, a third random.
func memory(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	mem := make([]byte, n*ps)
	for p := range n {
		pg := mem[p*ps : (p+1)*ps]
		switch p % 3 {
		case 1:
			for i := range pg {
				pg[i] = "0123456789abcdef GET /index.html "[(i*7+p)%33]
			}
			pg[0], pg[1] = byte(p), byte(p>>8)
		case 2:
			for i := 0; i < ps; i += 4 {
				pg[i] = byte(r.Uint32())
			}
		}
	}
	return mem
}

// TestRepeatSession: a viewer restores a 64 MiB snapshot, then another
// session's snapshot whose memory differs in 5 % of its pages. The second
// restore must cost at most a tenth of the first.
func TestRepeatSession(t *testing.T) {
	const pages = 64 << 20 / ps
	srv := newServer(t)
	s1 := &snapshot.Snapshot{ModuleHash: recordlog.ModuleHash{1}, Tick: 600, Memory: memory(pages, 1)}
	s2 := &snapshot.Snapshot{ModuleHash: recordlog.ModuleHash{1}, Tick: 60, Memory: append([]byte(nil), s1.Memory...)}
	r := rand.New(rand.NewPCG(9, 9))
	changed := 0
	for _, p := range r.Perm(pages)[:pages*5/100] {
		pg := s2.Memory[p*ps : (p+1)*ps]
		for i := 0; i < ps; i += 64 {
			pg[i] = byte(r.Uint32()) | 1
		}
		changed++
	}
	m1, _, err := pageservice.Publish(srv.st, s1, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := pageservice.Publish(srv.st, s2, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	restore := func(m *pagestore.Manifest, want *snapshot.Snapshot) (reqs, bytes int64, d time.Duration) {
		// Each session is a new process: a new Cache on the shared directory.
		c, err := pagecache.Open(dir, 512<<20)
		if err != nil {
			t.Fatal(err)
		}
		f := pagecache.NewCachingFetcher(c, pageservice.NewClient(srv.url, nil))
		r0, b0 := srv.reqs.Load(), srv.bytes.Load()
		start := time.Now()
		got, err := pagestore.AssembleFrom(context.Background(), m, f, 1024)
		d = time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Memory) != string(want.Memory) {
			t.Fatal("restored memory differs")
		}
		return srv.reqs.Load() - r0, srv.bytes.Load() - b0, d
	}
	r1, b1, d1 := restore(m1, s1)
	r2, b2, d2 := restore(m2, s2)
	saved := 100 * (1 - float64(b2)/float64(b1))
	t.Logf("64 MiB, %d of %d pages changed: first session %d requests, %.1f MiB on the wire, %v; repeat session %d requests, %.2f MiB, %v: %.1f %% fewer bytes",
		changed, pages, r1, float64(b1)/(1<<20), d1.Round(time.Millisecond), r2, float64(b2)/(1<<20), d2.Round(time.Millisecond), saved)
	if saved < 90 {
		t.Fatalf("the repeat session saved %.1f %%, want at least 90 %%", saved)
	}
	if r2 >= r1/5 {
		t.Fatalf("the repeat session made %d requests, the first %d", r2, r1)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	c, _ := pagecache.Open(b.TempDir(), 1<<30)
	var hs []pagestore.Hash
	for i := range 256 {
		p := page(uint64(i))
		h := pagestore.HashPage(p)
		c.Put(h, p)
		hs = append(hs, h)
	}
	b.Run("Get", func(b *testing.B) {
		b.SetBytes(ps)
		i := 0
		for b.Loop() {
			if _, err := c.Get(hs[i%len(hs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	})
	b.Run(fmt.Sprintf("Fetch%d", len(hs)), func(b *testing.B) {
		f := pagecache.NewCachingFetcher(c, nil) // every page is a hit: no source needed
		for b.Loop() {
			if _, err := f.Fetch(context.Background(), hs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(hs))/b.Elapsed().Seconds(), "pages/s")
	})
}
