package pagestore

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// memory returns pages of memory: a quarter zero, some text-like
// (compressible), some random (incompressible), and some repeated.
func memory(pages int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	mem := make([]byte, pages*PageSize)
	for p := range pages {
		pg := mem[p*PageSize : (p+1)*PageSize]
		switch p % 4 {
		case 0: // zero
		case 1:
			for i := range pg {
				pg[i] = "the quick brown fox "[(i+p)%20]
			}
			pg[0] = byte(p) // distinct
		case 2:
			for i := range pg {
				pg[i] = byte(r.Uint32())
			}
		case 3:
			pg[0] = 1 // the same page each time
		}
	}
	return mem
}

func sampleSnapshot(pages int) *snapshot.Snapshot {
	return &snapshot.Snapshot{
		ModuleHash: recordlog.ModuleHash{9, 8, 7},
		Tick:       1234, Step: 567,
		LogPos:  recordlog.Pos{Segment: 3, Offset: 77777, Tick: 1234, Step: 567},
		Globals: []uint64{0, 1, 1 << 63, 42},
		Device:  []byte(`{"disk":"x"}`),
		Memory:  memory(pages, 1),
	}
}

func encodeSnap(t testing.TB, s *snapshot.Snapshot) []byte {
	var b bytes.Buffer
	if err := snapshot.Write(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseHash(t *testing.T) {
	h := HashPage(make([]byte, 10))
	got, err := ParseHash(h.String())
	if err != nil || got != h {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "abc", strings.ToUpper(h.String()), h.String() + "0", "g" + h.String()[1:]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

func TestPageEncoding(t *testing.T) {
	mem := memory(4, 3)
	for p := 1; p < 4; p++ {
		raw := mem[p*PageSize : (p+1)*PageSize]
		enc, err := Encode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > MaxStored {
			t.Fatalf("page %d: stored %d bytes", p, len(enc))
		}
		if p == 2 && enc[0] != encRaw {
			t.Errorf("random page was not stored raw")
		}
		if p != 2 && (enc[0] != encFlate || len(enc) > 200) {
			t.Errorf("page %d: compressible page stored as %d, %d bytes", p, enc[0], len(enc))
		}
		h := HashPage(raw)
		got, err := Decode(h, enc, "test")
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("page %d: decode: %v", p, err)
		}
		// No single-bit flip yields a wrong page: it is refused (by the
		// inflater or the hash), or it hit bits DEFLATE ignores and the page
		// is still exactly right.
		for i := range enc {
			bad := bytes.Clone(enc)
			bad[i] ^= 0x10
			got, err := Decode(h, bad, "test")
			if err == nil && !bytes.Equal(got, raw) || err != nil && !errors.Is(err, ErrCorruptPage) {
				t.Fatalf("page %d: flip at %d: %v", p, i, err)
			}
		}
		if _, err := Decode(HashPage(mem[:PageSize]), enc, "test"); !errors.Is(err, ErrCorruptPage) {
			t.Fatalf("page %d accepted under another hash", p)
		}
	}
	// A flate stream that inflates past one page, or short of it, is not a page.
	for _, n := range []int{PageSize + 1, PageSize - 1} {
		var buf bytes.Buffer
		buf.WriteByte(encFlate)
		w, _ := flate.NewWriter(&buf, flate.BestSpeed)
		w.Write(make([]byte, n))
		w.Close()
		if _, err := Decode(ZeroHash, buf.Bytes(), ""); !errors.Is(err, ErrCorruptPage) {
			t.Fatalf("a stream of %d bytes decoded (err %v)", n, err)
		}
	}
	if _, err := Encode(make([]byte, 100)); err == nil {
		t.Fatal("short page encoded")
	}
}

func TestManifestRoundTrip(t *testing.T) {
	s := sampleSnapshot(64)
	m, pages := ManifestFromSnapshot(s)
	m.WorkingSet = []uint32{5, 1, 63, 2}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, m)
	}
	h1, _ := m.Hash()
	h2, _ := got.Hash()
	if h1 != h2 || h1 != Hash(sha256.Sum256(b)) {
		t.Fatal("manifest hash is not the SHA-256 of its encoding")
	}
	// 64 pages: 16 zero, 16 text (distinct), 16 random, 16 identical.
	if len(m.Pages) != 48 || len(pages) != 16+16+1 {
		t.Fatalf("%d page refs, %d distinct pages", len(m.Pages), len(pages))
	}
	// The page table is compact: a delta byte and a hash per page.
	if len(b) > 200+33*len(m.Pages)+len(m.WorkingSet) {
		t.Errorf("manifest of %d pages is %d bytes", len(m.Pages), len(b))
	}
	m.Tick++
	if h3, _ := m.Hash(); h3 == h1 {
		t.Fatal("changing the tick did not change the manifest hash")
	}
}

// resum rewrites a manifest's checksum so that structural checks, not the
// checksum, must catch an edit.
func resum(b []byte) []byte {
	body := b[:len(b)-32]
	s := sha256.Sum256(body)
	return append(bytes.Clone(body), s[:]...)
}

func TestManifestCorruption(t *testing.T) {
	m, _ := ManifestFromSnapshot(sampleSnapshot(16))
	m.WorkingSet = []uint32{3}
	b, _ := m.Encode()
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		if _, err := DecodeManifest(bad); !errors.Is(err, ErrCorruptManifest) {
			t.Fatalf("flip at byte %d accepted (err %v)", i, err)
		}
	}
	for n := range len(b) {
		if _, err := DecodeManifest(b[:n]); err == nil {
			t.Fatalf("truncated to %d bytes accepted", n)
		}
	}
	if _, err := DecodeManifest(resum(append(b[:len(b)-32:len(b)-32], 0))); err == nil {
		t.Fatal("trailing byte accepted")
	}
	// Structural violations with a valid checksum.
	cases := map[string]func(m *Manifest){
		"page beyond memory": func(m *Manifest) { m.Pages[len(m.Pages)-1].Index = 16 },
		"zero page listed":   func(m *Manifest) { m.Pages[0].Hash = ZeroHash },
		"working set beyond": func(m *Manifest) { m.WorkingSet = []uint32{99} },
	}
	for name, edit := range cases {
		c := *m
		c.Pages = append([]PageRef(nil), m.Pages...)
		edit(&c)
		if _, err := c.Encode(); err == nil {
			t.Errorf("%s: Encode accepted", name)
		}
	}
	// The decoder, too, refuses them.
	small := *m
	small.Pages = m.Pages[:1]
	small.MemorySize = PageSize * uint64(m.Pages[0].Index) // the page is just beyond
	if _, err := DecodeManifest(small.encode()); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("page beyond memory decoded (err %v)", err)
	}
	zero := *m
	zero.Pages = []PageRef{{Index: 0, Hash: ZeroHash}}
	zb := zero.encode()
	if _, err := DecodeManifest(zb); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("zero page decoded (err %v)", err)
	}
	unsorted := *m
	unsorted.Pages = []PageRef{m.Pages[1], m.Pages[0]}
	ub := unsorted.encode()
	if _, err := DecodeManifest(ub); !errors.Is(err, ErrCorruptManifest) {
		t.Fatalf("unsorted page table decoded (err %v)", err)
	}
}

func TestFromSnapshotAssemble(t *testing.T) {
	for _, pages := range []int{0, 1, 64, 333} {
		s := sampleSnapshot(pages)
		want := encodeSnap(t, s)
		m, raw := ManifestFromSnapshot(s)
		st, err := OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for h, p := range raw {
			if IsZero(p) || h == ZeroHash {
				t.Fatal("a zero page is among the pages to store")
			}
			if err := st.Put(h, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Put(ZeroHash, make([]byte, PageSize)); err == nil {
			t.Fatal("the store accepted the zero page")
		}
		if st.Has(ZeroHash) {
			t.Fatal("the store holds the zero page")
		}
		mb, _ := m.Encode()
		m2, err := DecodeManifest(mb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Assemble(m2, st)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encodeSnap(t, got), want) {
			t.Fatalf("%d pages: assembled snapshot differs from the original", pages)
		}
	}
	// A memory that is not whole pages comes back at its exact length.
	s := sampleSnapshot(3)
	s.Memory = s.Memory[:2*PageSize+100]
	m, raw := ManifestFromSnapshot(s)
	st := NewMemStore()
	for h, p := range raw {
		st.Put(h, p)
	}
	got, err := Assemble(m, st)
	if err != nil || !bytes.Equal(got.Memory, s.Memory) {
		t.Fatalf("partial page: %v", err)
	}
}

func TestDirStore(t *testing.T) {
	st, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mem := memory(8, 5)
	raw := mem[2*PageSize : 3*PageSize]
	h := HashPage(raw)
	if _, err := st.Get(h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing page: %v", err)
	}
	if err := st.Put(h, mem[PageSize:2*PageSize]); err == nil {
		t.Fatal("Put accepted a page under another page's hash")
	}
	// Concurrent writers of the same and different pages.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for p := 1; p < 8; p++ {
				pg := mem[p*PageSize : (p+1)*PageSize]
				if IsZero(pg) {
					continue
				}
				if err := st.Put(HashPage(pg), pg); err != nil {
					t.Errorf("writer %d: %v", g, err)
				}
			}
		})
	}
	wg.Wait()
	got, err := st.Get(h)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("get: %v", err)
	}
	ents, _ := os.ReadDir(st.Root + "/pages/" + h.String()[:2])
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
	// Corrupt it on disk: Get refuses it and says which file.
	b, _ := os.ReadFile(st.PagePath(h))
	b[len(b)/2] ^= 0xff
	os.WriteFile(st.PagePath(h), b, 0o644)
	_, err = st.Get(h)
	var ce *CorruptPageError
	if !errors.As(err, &ce) || ce.Hash != h || !strings.Contains(err.Error(), st.PagePath(h)) {
		t.Fatalf("corrupt page: %v", err)
	}
	// Manifests.
	m, _ := ManifestFromSnapshot(sampleSnapshot(8))
	mh, err := st.PutManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.GetManifest(mh)
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := DecodeManifest(mb); err != nil || !reflect.DeepEqual(m2, m) {
		t.Fatalf("manifest: %v", err)
	}
	if _, err := st.GetManifest(Hash{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing manifest: %v", err)
	}
}

type countingSource struct {
	Source
	mu     sync.Mutex
	calls  int
	hashes int
}

func (c *countingSource) Fetch(ctx context.Context, hs []Hash) (map[Hash][]byte, error) {
	c.mu.Lock()
	c.calls++
	c.hashes += len(hs)
	c.mu.Unlock()
	return c.Source.Fetch(ctx, hs)
}

func TestFetcher(t *testing.T) {
	s := sampleSnapshot(16)
	m, raw := ManifestFromSnapshot(s)
	st := NewMemStore()
	for h, p := range raw {
		st.Put(h, p)
	}
	src := &countingSource{Source: StoreSource{st}}
	f := NewFetcher(context.Background(), m, src)
	var f0 Fetcher = f
	idx := []int{0, 1, 2, 3, 4, 8, 15}
	ps, err := f0.Pages(idx)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if !bytes.Equal(p, s.Memory[idx[i]*PageSize:(idx[i]+1)*PageSize]) {
			t.Fatalf("page %d differs", idx[i])
		}
	}
	if src.calls != 1 || src.hashes != 4 { // pages 1,2,3,15; 0,4,8 are zero
		t.Fatalf("%d calls for %d hashes; want one call for the 4 non-zero pages", src.calls, src.hashes)
	}
	if p, err := f.Page(4); err != nil || !IsZero(p) || src.calls != 1 {
		t.Fatalf("zero page: %v, %d calls", err, src.calls)
	}
	if _, err := f.Page(16); err == nil {
		t.Fatal("page beyond memory served")
	}
	// A page missing from the store is an error naming it.
	st2 := NewMemStore()
	if _, err := NewFetcher(context.Background(), m, StoreSource{st2}).Page(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing page: %v", err)
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m, _ := ManifestFromSnapshot(sampleSnapshot(8))
	m.WorkingSet = []uint32{1, 2}
	b, _ := m.Encode()
	f.Add(b)
	f.Add([]byte("RDMANF\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Inputs with a wrong checksum are refused early; re-checksum half of
		// them so the fuzzer reaches the structural decoder.
		if len(b) > 0 && b[0]&1 == 1 && len(b) >= 32 {
			b = resum(b)
		}
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func FuzzDecodePage(f *testing.F) {
	mem := memory(4, 9)
	for p := 1; p < 4; p++ {
		enc, _ := Encode(mem[p*PageSize : (p+1)*PageSize])
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := decodeRaw(b)
		if err == nil && len(raw) != PageSize {
			t.Fatalf("decoded %d bytes", len(raw))
		}
	})
}

func BenchmarkManifestFromSnapshot64MiB(b *testing.B) {
	s := sampleSnapshot(64 << 20 / PageSize)
	b.SetBytes(int64(len(s.Memory)))
	b.ResetTimer()
	for b.Loop() {
		ManifestFromSnapshot(s)
	}
	b.ReportMetric(float64(len(s.Memory)/PageSize)*float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}

func BenchmarkEncodePage(b *testing.B) {
	pg := memory(2, 1)[PageSize:]
	b.SetBytes(PageSize)
	for b.Loop() {
		Encode(pg)
	}
}
