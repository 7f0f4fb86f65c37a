package pageservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

func testSnapshot(pages int, seed uint64) *snapshot.Snapshot {
	r := rand.New(rand.NewPCG(seed, 1))
	mem := make([]byte, pages*pagestore.PageSize)
	for p := range pages {
		pg := mem[p*pagestore.PageSize : (p+1)*pagestore.PageSize]
		switch p % 3 {
		case 0: // zero
		case 1:
			for i := range pg {
				pg[i] = byte(r.Uint32())
			}
		case 2:
			for i := 0; i < len(pg); i += 16 {
				pg[i] = byte(r.Uint32())
			}
		}
	}
	return &snapshot.Snapshot{ModuleHash: recordlog.ModuleHash{4}, Tick: 60, Step: 30,
		LogPos: recordlog.Pos{Segment: 1, Offset: 99, Tick: 60, Step: 30}, Globals: []uint64{7}, Device: []byte("dev"), Memory: mem}
}

// counter counts requests and the most in flight at once.
type counter struct {
	h              http.Handler
	delay          time.Duration
	reqs, inflight atomic.Int64
	maxInflight    atomic.Int64
	mu             sync.Mutex
	methods        map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.reqs.Add(1)
	n := c.inflight.Add(1)
	defer c.inflight.Add(-1)
	for {
		m := c.maxInflight.Load()
		if n <= m || c.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	if c.methods == nil {
		c.methods = map[string]int{}
	}
	c.methods[r.Method]++
	c.mu.Unlock()
	time.Sleep(c.delay)
	c.h.ServeHTTP(w, r)
}

type fixture struct {
	st  *pagestore.MemStore
	idx *SessionIndex
	s   *snapshot.Snapshot
	m   *pagestore.Manifest
	mh  pagestore.Hash
	cnt *counter
	srv *httptest.Server
}

func newFixture(t testing.TB, pages int) *fixture {
	f := &fixture{st: pagestore.NewMemStore(), idx: NewSessionIndex(), s: testSnapshot(pages, 1)}
	var err error
	f.m, f.mh, err = Publish(f.st, f.s, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.idx.Add("demo", EntryFor(1, f.m, f.mh))
	f.cnt = &counter{h: NewServer(f.st, f.idx)}
	f.srv = httptest.NewServer(f.cnt)
	t.Cleanup(f.srv.Close)
	return f
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestPageCachingHeaders(t *testing.T) {
	f := newFixture(t, 12)
	h := f.m.Pages[0].Hash
	resp, body := get(t, f.srv.URL+"/pages/"+h.String())
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	want := map[string]string{
		"Content-Type":  "application/octet-stream",
		"Cache-Control": "public, max-age=31536000, immutable",
		"ETag":          `"` + h.String() + `"`,
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	raw, err := pagestore.Decode(h, body, "")
	if err != nil || !bytes.Equal(raw, f.s.Memory[int(f.m.Pages[0].Index)*pagestore.PageSize:][:pagestore.PageSize]) {
		t.Fatalf("body is not the page: %v", err)
	}
	for _, inm := range []string{`"` + h.String() + `"`, `W/"` + h.String() + `"`, `"x", "` + h.String() + `"`, "*"} {
		resp, body = get(t, f.srv.URL+"/pages/"+h.String(), "If-None-Match", inm)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and none", inm, resp.StatusCode, len(body))
		}
		if resp.Header.Get("ETag") != want["ETag"] || resp.Header.Get("Cache-Control") != want["Cache-Control"] {
			t.Errorf("304 lacks the caching headers: %v", resp.Header)
		}
	}
	resp, _ = get(t, f.srv.URL+"/pages/"+h.String(), "If-None-Match", `"other"`)
	if resp.StatusCode != 200 {
		t.Errorf("a different ETag got %d", resp.StatusCode)
	}
	// Manifests are immutable too.
	resp, body = get(t, f.srv.URL+"/manifests/"+f.mh.String())
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != CacheImmutable || resp.Header.Get("ETag") != `"`+f.mh.String()+`"` {
		t.Fatalf("manifest: %d %v", resp.StatusCode, resp.Header)
	}
	if sha256.Sum256(body) != f.mh {
		t.Fatal("manifest body does not hash to its name")
	}
	resp, _ = get(t, f.srv.URL+"/manifests/"+f.mh.String(), "If-None-Match", `"`+f.mh.String()+`"`)
	if resp.StatusCode != 304 {
		t.Fatalf("manifest If-None-Match: %d", resp.StatusCode)
	}
	// The snapshot list is short-lived, with an ETag for revalidation.
	resp, body = get(t, f.srv.URL+"/sessions/demo/snapshots")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != CacheSnapshots || !strings.Contains(string(body), f.mh.String()) {
		t.Fatalf("snapshots: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = get(t, f.srv.URL+"/sessions/demo/snapshots", "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != 304 {
		t.Fatalf("snapshots If-None-Match: %d", resp.StatusCode)
	}
	f.idx.Add("demo", EntryFor(2, f.m, f.mh))
	resp, _ = get(t, f.srv.URL+"/sessions/demo/snapshots", "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != 200 {
		t.Fatalf("a grown list was answered %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, 6)
	h := f.m.Pages[0].Hash.String()
	unknown := pagestore.HashPage([]byte("nope")).String()
	many := func(n int) string {
		var q []string
		for range n {
			q = append(q, "h="+h)
		}
		return strings.Join(q, "&")
	}
	cases := []struct {
		method, path string
		body         []byte
		code         int
		msg          string
	}{
		{"GET", "/pages/xyz", nil, 400, "64 lowercase hex"},
		{"GET", "/pages/" + strings.ToUpper(h), nil, 400, "lowercase"},
		{"GET", "/pages/" + unknown, nil, 404, "page " + unknown + " not found"},
		{"GET", "/pages", nil, 400, "h=HASH"},
		{"GET", "/pages?h=" + h + "&h=zz", nil, 400, "h #2"},
		{"GET", "/pages?h=" + h + "&h=" + unknown, nil, 404, unknown},
		{"GET", "/pages?" + many(MaxGetBatch+1), nil, 413, "at most 64"},
		{"POST", "/pages/batch", make([]byte, 33), 400, "32-byte"},
		{"POST", "/pages/batch", nil, 400, "32-byte"},
		{"POST", "/pages/batch", make([]byte, 32*(MaxPostBatch+1)), 413, "at most 1024"},
		{"GET", "/manifests/" + unknown, nil, 404, "manifest"},
		{"GET", "/manifests/abc", nil, 400, "bad manifest name"},
		{"GET", "/sessions/nope/snapshots", nil, 404, "not found"},
		{"GET", "/sessions/..bad/snapshots", nil, 400, "bad session id"},
		{"DELETE", "/pages/" + h, nil, 405, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, bytes.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.msg) {
			t.Errorf("%s %s: %d %q, want %d containing %q", c.method, clip(c.path), resp.StatusCode, b, c.code, c.msg)
		}
		if c.code == 404 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: a 404 is cacheable (%q): the page may be published later", clip(c.path), resp.Header.Get("Cache-Control"))
		}
	}
}

func clip(s string) string {
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

func TestBatchForms(t *testing.T) {
	f := newFixture(t, 30)
	hs := f.m.Hashes()
	q := ""
	for _, h := range append(hs[:5:5], hs[0]) { // a duplicate is answered once
		q += "&h=" + h.String()
	}
	resp, body := get(t, f.srv.URL+"/pages?"+q[1:])
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != CacheImmutable || resp.Header.Get("Content-Type") != BatchType {
		t.Fatalf("GET batch: %d %v", resp.StatusCode, resp.Header)
	}
	es, err := DecodeBatch(body, 6)
	if err != nil || len(es) != 5 {
		t.Fatalf("GET batch: %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if e.Hash != hs[i] {
			t.Fatalf("entry %d is %s, want %s", i, e.Hash, hs[i])
		}
		if _, err := pagestore.Decode(e.Hash, e.Stored, ""); err != nil {
			t.Fatal(err)
		}
	}
	resp, _ = get(t, f.srv.URL+"/pages?"+q[1:], "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != 304 {
		t.Fatalf("GET batch If-None-Match: %d", resp.StatusCode)
	}
	var post []byte
	for _, h := range hs {
		post = append(post, h[:]...)
	}
	r2, err := http.Post(f.srv.URL+"/pages/batch", "application/octet-stream", bytes.NewReader(post))
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if es, err := DecodeBatch(b2, len(hs)); r2.StatusCode != 200 || err != nil || len(es) != len(hs) {
		t.Fatalf("POST batch: %d, %v", r2.StatusCode, err)
	}
}

func TestClientFetchAndAssemble(t *testing.T) {
	f := newFixture(t, 600) // 400 non-zero pages
	want := len(f.m.Hashes())
	for _, batch := range []int{1, 16, 64, 256} {
		f.cnt.reqs.Store(0)
		c := NewClient(f.srv.URL, nil)
		c.BatchSize = batch
		got, err := pagestore.AssembleFrom(context.Background(), f.m, c, 1<<20)
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		if !bytes.Equal(got.Memory, f.s.Memory) || got.Tick != f.s.Tick {
			t.Fatalf("batch %d: assembled memory differs", batch)
		}
		if n, w := f.cnt.reqs.Load(), int64((want+batch-1)/batch); n != w {
			t.Errorf("batch %d: %d requests for %d pages, want %d", batch, n, want, w)
		}
	}
	if f.cnt.methods["POST"] == 0 {
		t.Error("batches above 64 did not use POST")
	}
	// The zero page is never requested.
	f.cnt.reqs.Store(0)
	c := NewClient(f.srv.URL, nil)
	if got, err := c.Fetch(context.Background(), []pagestore.Hash{pagestore.ZeroHash}); err != nil || !pagestore.IsZero(got[pagestore.ZeroHash]) || f.cnt.reqs.Load() != 0 {
		t.Fatalf("zero page: %v, %d requests", err, f.cnt.reqs.Load())
	}
	// A missing page fails the fetch with the server's reason.
	_, err := c.Fetch(context.Background(), []pagestore.Hash{f.m.Pages[0].Hash, pagestore.HashPage([]byte("x"))})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || !strings.Contains(se.Message, "not found") {
		t.Fatalf("missing page: %v", err)
	}
}

func TestClientConcurrencyBound(t *testing.T) {
	f := newFixture(t, 300)
	f.cnt.delay = 20 * time.Millisecond
	c := NewClient(f.srv.URL, nil)
	c.BatchSize, c.Concurrency = 4, 3
	if _, err := c.Fetch(context.Background(), f.m.Hashes()); err != nil {
		t.Fatal(err)
	}
	if m := f.cnt.maxInflight.Load(); m > 3 || m < 2 {
		t.Fatalf("%d requests in flight at once, want 2..3", m)
	}
}

func TestClientRefusesCorruptPages(t *testing.T) {
	f := newFixture(t, 30)
	c := NewClient(f.srv.URL, nil)
	victim := f.m.Pages[3].Hash
	good, _ := f.st.GetStored(victim)
	other, _ := f.st.GetStored(f.m.Pages[4].Hash)
	for name, bad := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }(),
		"another page": other,
		"truncated":    good[:len(good)-10],
		"bad header":   append([]byte{9}, good[1:]...),
	} {
		f.st.PutStored(victim, bad)
		for _, batch := range []int{1, 16} {
			c.BatchSize = batch
			_, err := c.Fetch(context.Background(), f.m.Hashes())
			var ce *pagestore.CorruptPageError
			if !errors.As(err, &ce) || ce.Hash != victim || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s, batch %d: %v", name, batch, err)
			}
		}
	}
	f.st.PutStored(victim, good)
	if _, err := c.Fetch(context.Background(), f.m.Hashes()); err != nil {
		t.Fatalf("after repair: %v", err)
	}
}

// lyingServer answers every batch with an extra page nobody asked for.
func TestClientRefusesUnaskedPages(t *testing.T) {
	f := newFixture(t, 6)
	extra := f.m.Pages[1]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var es []Entry
		for _, v := range r.URL.Query()["h"] {
			h, _ := pagestore.ParseHash(v)
			b, _ := f.st.GetStored(h)
			es = append(es, Entry{h, b})
		}
		b, _ := f.st.GetStored(extra.Hash)
		es[len(es)-1] = Entry{extra.Hash, b}
		w.Write(AppendBatch(nil, es))
	}))
	defer srv.Close()
	c := NewClient(srv.URL, nil)
	_, err := c.Fetch(context.Background(), []pagestore.Hash{f.m.Pages[0].Hash, f.m.Pages[2].Hash})
	if err == nil || !strings.Contains(err.Error(), "not asked for") {
		t.Fatalf("unasked page: %v", err)
	}
}

func TestManifestAndSnapshotList(t *testing.T) {
	f := newFixture(t, 20)
	c := NewClient(f.srv.URL, nil)
	ctx := context.Background()
	list, err := c.Snapshots(ctx, "demo")
	if err != nil || len(list) != 1 || list[0].Manifest != f.mh.String() || list[0].Pages != len(f.m.Pages) {
		t.Fatalf("snapshots: %+v %v", list, err)
	}
	h, _ := pagestore.ParseHash(list[0].Manifest)
	m, err := c.Manifest(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pagestore.AssembleFrom(ctx, m, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	snapshot.Write(&a, s)
	snapshot.Write(&b, f.s)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("snapshot fetched over HTTP differs from the original")
	}
	// A manifest served under the wrong name is refused.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := f.st.GetManifest(f.mh)
		w.Write(append(b, 0))
	}))
	defer srv.Close()
	if _, err := NewClient(srv.URL, nil).Manifest(ctx, f.mh); !errors.Is(err, pagestore.ErrCorruptManifest) {
		t.Fatalf("bad manifest: %v", err)
	}
}

func TestPublishSessionDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sess")
	d, err := sessiondir.Create(dir, "testcard", []byte("\x00asm fake module"), nil, "none")
	if err != nil {
		t.Fatal(err)
	}
	s1 := testSnapshot(64, 1)
	s1.ModuleHash = d.ModuleHash()
	s2 := testSnapshot(64, 1)
	s2.ModuleHash, s2.Tick = d.ModuleHash(), 120
	copy(s2.Memory[4*pagestore.PageSize:], "changed")
	for _, s := range []*snapshot.Snapshot{s1, s2} {
		if _, err := d.AddSnapshot(s); err != nil {
			t.Fatal(err)
		}
	}
	st, err := pagestore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := NewSessionIndex()
	if err := PublishSessionDir(d, "sess-1", "sess-1", st, idx); err != nil {
		t.Fatal(err)
	}
	list, ok := idx.Snapshots("sess-1")
	if !ok || len(list) != 2 || list[1].Tick != 120 || list[0].Manifest == list[1].Manifest {
		t.Fatalf("index: %+v", list)
	}
	srv := httptest.NewServer(NewServer(st, idx))
	defer srv.Close()
	c := NewClient(srv.URL, nil)
	for i, want := range []*snapshot.Snapshot{s1, s2} {
		h, _ := pagestore.ParseHash(list[i].Manifest)
		m, err := c.Manifest(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pagestore.AssembleFrom(context.Background(), m, c, 0)
		if err != nil || !bytes.Equal(got.Memory, want.Memory) {
			t.Fatalf("snapshot %d: %v", i+1, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	s := testSnapshot(6, 3)
	var es []Entry
	for p := 1; p < 6; p++ {
		raw := s.Memory[p*pagestore.PageSize:][:pagestore.PageSize]
		if pagestore.IsZero(raw) {
			continue
		}
		b, _ := pagestore.Encode(raw)
		es = append(es, Entry{pagestore.HashPage(raw), b})
	}
	f.Add(AppendBatch(nil, es))
	f.Add(AppendBatch(nil, nil))
	f.Add([]byte("RDPB\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeBatch(b, 64)
		if err != nil {
			return
		}
		if len(es) > 64 {
			t.Fatalf("%d entries", len(es))
		}
		if !bytes.Equal(AppendBatch(nil, es), b) {
			t.Fatal("decode/encode is not the identity")
		}
		for _, e := range es {
			if raw, err := pagestore.Decode(e.Hash, e.Stored, ""); err == nil && pagestore.HashPage(raw) != e.Hash {
				t.Fatal("a page that does not match its hash was accepted")
			}
		}
	})
}

func BenchmarkFetch(b *testing.B) {
	f := newFixture(b, 3*4096) // 8192 distinct non-zero pages (32 MiB)
	hs := f.m.Hashes()
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := NewClient(f.srv.URL, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}})
			c.BatchSize, c.Concurrency = batch, 4
			n := min(len(hs), batch*64)
			pages := 0
			for i := 0; b.Loop(); i++ {
				lo := (i * n) % (len(hs) - n + 1)
				if _, err := c.Fetch(context.Background(), hs[lo:lo+n]); err != nil {
					b.Fatal(err)
				}
				pages += n
			}
			b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
			b.ReportMetric(float64(pages*pagestore.PageSize)/b.Elapsed().Seconds()/1e6, "rawMB/s")
		})
	}
}
