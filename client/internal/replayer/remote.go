package replayer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"replaydesk/shared/machine"
	"replaydesk/shared/pagecache"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// remote is a session served by `server serve` (server/internal/sessionhttp):
// its files and log are mirrored into a local session directory; its
// snapshots' pages come through the page cache, which every session shares.
type remote struct {
	base, id string
	pages    *pageservice.Client
	fetcher  *pagecache.CachingFetcher
	hc       *http.Client
}

// parseRemote splits http://host/sessions/ID into the service's base URL and
// the session id; ok is false for anything that is not such a URL.
func parseRemote(s string) (base, id string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", false
	}
	rest, found := strings.CutPrefix(strings.TrimSuffix(u.Path, "/"), "/sessions/")
	if !found || rest == "" || strings.Contains(rest, "/") {
		return "", "", false
	}
	u.Path = ""
	return u.String(), rest, true
}

func openRemote(base, id, cacheDir string, cacheBytes int64) (*remote, error) {
	cache, err := pagecache.Open(filepath.Join(cacheDir, "pages"), cacheBytes)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	pc := pageservice.NewClient(base, hc)
	return &remote{base: base, id: id, pages: pc, fetcher: pagecache.NewCachingFetcher(cache, pc), hc: hc}, nil
}

// mirror copies the session's files and log segments into dir.
func (r *remote) mirror(ctx context.Context, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return err
	}
	get := func(path, to string, optional bool) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", r.base+"/sessions/"+url.PathEscape(r.id)+path, nil)
		resp, err := r.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound && optional {
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
		}
		f, err := os.Create(to + ".tmp")
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return fmt.Errorf("GET %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(to+".tmp", to)
	}
	for _, f := range []string{"session.json", "module.wasm"} {
		if err := get("/files/"+f, filepath.Join(dir, f), false); err != nil {
			return err
		}
	}
	// No disk.img: its blocks come on demand (diskSource).
	req, _ := http.NewRequestWithContext(ctx, "GET", r.base+"/sessions/"+url.PathEscape(r.id)+"/log/", nil)
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	var segs []struct {
		Name string `json:"name"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&segs)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("listing the log: %w", err)
	}
	for _, s := range segs {
		if strings.ContainsAny(s.Name, `/\`) || !strings.HasSuffix(s.Name, ".seg") {
			return fmt.Errorf("the server lists a bad segment name %q", s.Name)
		}
		if err := get("/log/"+s.Name, filepath.Join(dir, "log", s.Name), false); err != nil {
			return err
		}
	}
	return nil
}

// manifest fetches snapshot n's manifest (verified against its hash) and
// checks it belongs to the session's module.
func (r *remote) manifest(ctx context.Context, n int, want recordlog.ModuleHash) (*pagestore.Manifest, error) {
	list, err := r.pages.Snapshots(ctx, r.id)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > len(list) {
		return nil, fmt.Errorf("session %s has %d snapshots; there is no snapshot %d", r.id, len(list), n)
	}
	mh, err := pagestore.ParseHash(list[n-1].Manifest)
	if err != nil {
		return nil, err
	}
	m, err := r.pages.Manifest(ctx, mh)
	if err != nil {
		return nil, err
	}
	if m.ModuleHash != want {
		return nil, &snapshot.ModuleMismatchError{File: "manifest " + mh.String(), Want: want, Got: m.ModuleHash}
	}
	return m, nil
}

// assemble builds the whole snapshot of m, fetching only the pages the
// cache lacks: the eager restore (and the browser's way).
func (r *remote) assemble(ctx context.Context, m *pagestore.Manifest) (*snapshot.Snapshot, *FetchResult, error) {
	h0, m0, _ := r.fetcher.Stats()
	s, err := pagestore.AssembleFrom(ctx, m, r.fetcher, 256)
	if err != nil {
		return nil, nil, err
	}
	h1, m1, _ := r.fetcher.Stats()
	return s, &FetchResult{PagesInSnapshot: len(m.Pages), PagesFetched: int(m1 - m0), PagesFromCache: int(h1 - h0)}, nil
}

// lazy describes m for a lazy restore whose page server fetches each page
// itself, on first touch, through the same cache: the snapshot it returns
// has no memory.
func (r *remote) lazy(m *pagestore.Manifest) (*snapshot.Snapshot, *machine.RemotePages) {
	s := &snapshot.Snapshot{ModuleHash: m.ModuleHash, Tick: m.Tick, Step: m.Step, LogPos: m.LogPos,
		Globals: slices.Clone(m.Globals), Device: slices.Clone(m.Device)}
	rp := &machine.RemotePages{BaseURL: r.base, CacheDir: r.fetcher.Cache.Dir(), CacheBytes: r.fetcher.Cache.Max(),
		MemorySize: int(m.MemorySize), Indices: make([]uint32, len(m.Pages)), Hashes: make([][32]byte, len(m.Pages))}
	for i, p := range m.Pages {
		rp.Indices[i], rp.Hashes[i] = p.Index, p.Hash
	}
	return s, rp
}

// FetchResult says what a remote snapshot cost.
type FetchResult struct {
	PagesInSnapshot int `json:"pages_in_snapshot"` // non-zero pages
	PagesFetched    int `json:"pages_fetched"`     // over the network
	PagesFromCache  int `json:"pages_from_cache"`
	// A lazy restore's page server fetches on demand until a full-memory
	// check (a memory checkpoint, the final state hash) needs every page;
	// then it fetches the rest in bulk. PagesOnDemand is the part before.
	PagesOnDemand int `json:"pages_on_demand,omitempty"`
	Requests      int `json:"requests,omitempty"` // HTTP requests for pages (lazy)
}

// diskSource serves the session's base disk block by block from the page
// service, through the page cache. Nil when the session has no disk.
func (r *remote) diskSource(ctx context.Context) (*remoteDisk, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.base+"/sessions/"+url.PathEscape(r.id)+"/disk", nil)
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var info struct {
		Manifest string `json:"manifest"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&info) != nil {
		return nil, fmt.Errorf("GET /disk: %s", resp.Status)
	}
	h, err := pagestore.ParseHash(info.Manifest)
	if err != nil {
		return nil, err
	}
	m, err := r.pages.Manifest(ctx, h)
	if err != nil {
		return nil, err
	}
	return &remoteDisk{ctx: ctx, m: m, f: r.fetcher}, nil
}

// remoteDisk is a machine.BlockSource over a disk manifest.
type remoteDisk struct {
	ctx     context.Context
	m       *pagestore.Manifest
	f       *pagecache.CachingFetcher
	fetched int
}

func (d *remoteDisk) Block(n uint64) ([]byte, error) {
	h, ok := d.m.Lookup(int(n))
	if !ok {
		return make([]byte, pagestore.PageSize), nil // zero blocks are never stored
	}
	got, err := d.f.Fetch(d.ctx, []pagestore.Hash{h})
	if err != nil {
		return nil, err
	}
	d.fetched++
	return got[h], nil
}
