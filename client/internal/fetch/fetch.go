// Package fetch gets what a remote replay needs from a session's HTTP
// services — the page service and the session's files, served by the server
// or by any relay's pull-through cache in front of it: snapshots assembled
// from their pages through the client's disk page cache (shared by every
// session, so a page seen once is never fetched again), the guest module
// (checked against its hash) and the base disk block by block.
//
// It must not know about wire messages, modes or how a replay runs: it hands
// out snapshots, bytes and a machine.BlockSource.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"replaydesk/shared/machine"
	"replaydesk/shared/pagecache"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// DefaultCacheBytes bounds the page cache unless told otherwise.
const DefaultCacheBytes = 2 << 30

// DefaultCacheDir is the user cache directory's replaydesk/.
func DefaultCacheDir() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "replaydesk"), nil
}

// Fetcher fetches one session's things from base (http://host:port). Safe
// for concurrent use.
type Fetcher struct {
	Base, Session string
	Pages         *pageservice.Client
	Cached        *pagecache.CachingFetcher
	HC            *http.Client
	cacheDir      string
	token         string // for the page-server child's requests too
	received      atomic.Int64
}

// Open opens the page cache under cacheDir/pages ("" means DefaultCacheDir;
// cacheBytes 0 means DefaultCacheBytes) and returns a Fetcher for session
// id at base. A non-empty token goes with every request (Authorization:
// Bearer): a relay holding the key serves a session's files, log and
// snapshot list only to roles that may replay.
func Open(base, id, token, cacheDir string, cacheBytes int64) (*Fetcher, error) {
	if cacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = d
	}
	if cacheBytes == 0 {
		cacheBytes = DefaultCacheBytes
	}
	cache, err := pagecache.Open(filepath.Join(cacheDir, "pages"), cacheBytes)
	if err != nil {
		return nil, err
	}
	f := &Fetcher{Base: strings.TrimSuffix(base, "/"), Session: id, cacheDir: cacheDir, token: token}
	f.HC = &http.Client{Timeout: 5 * time.Minute, Transport: &counting{rt: http.DefaultTransport, n: &f.received, token: token}}
	f.Pages = pageservice.NewClient(f.Base+"/", f.HC)
	f.Cached = pagecache.NewCachingFetcher(cache, f.Pages)
	return f, nil
}

// CacheDir is where the page cache and kept modules live.
func (f *Fetcher) CacheDir() string { return f.cacheDir }

// BytesReceived counts the HTTP response body bytes read so far (pages,
// manifests, files): the "pages" traffic of a live client's statistics.
func (f *Fetcher) BytesReceived() int64 { return f.received.Load() }

// Result says what a snapshot cost.
type Result struct {
	PagesInSnapshot int `json:"pages_in_snapshot"` // non-zero pages
	PagesFetched    int `json:"pages_fetched"`     // over the network
	PagesFromCache  int `json:"pages_from_cache"`
	// A lazy restore's page server fetches on demand until a full-memory
	// check (a memory checkpoint, the final state hash) needs every page;
	// then it fetches the rest in bulk. PagesOnDemand is the part before.
	PagesOnDemand int `json:"pages_on_demand,omitempty"`
	Requests      int `json:"requests,omitempty"` // HTTP requests for pages (lazy)
}

// ManifestN fetches the manifest of the session's snapshot number n (as the
// service's list numbers them: 1 is the first ever taken; a live session
// deletes old ones, so numbers have gaps).
func (f *Fetcher) ManifestN(ctx context.Context, n int, want recordlog.ModuleHash) (*pagestore.Manifest, error) {
	list, err := f.Pages.Snapshots(ctx, f.Session)
	if err != nil {
		return nil, err
	}
	var nums []string
	for _, e := range list {
		if e.N == n {
			mh, err := pagestore.ParseHash(e.Manifest)
			if err != nil {
				return nil, err
			}
			return f.Manifest(ctx, mh, want)
		}
		nums = append(nums, strconv.Itoa(e.N))
	}
	if len(list) > 0 && n >= 1 && n < list[len(list)-1].N {
		return nil, fmt.Errorf("session %s: snapshot %d was deleted (live sessions keep a bounded set); it keeps %s", f.Session, n, strings.Join(nums, ", "))
	}
	return nil, fmt.Errorf("session %s has %d snapshots (%s); there is no snapshot %d", f.Session, len(list), strings.Join(nums, ", "), n)
}

// Manifest fetches the manifest mh (verified against its hash) and refuses
// one of another module.
func (f *Fetcher) Manifest(ctx context.Context, mh pagestore.Hash, want recordlog.ModuleHash) (*pagestore.Manifest, error) {
	m, err := f.Pages.Manifest(ctx, mh)
	if err != nil {
		return nil, err
	}
	if m.ModuleHash != want {
		return nil, &snapshot.ModuleMismatchError{File: "manifest " + mh.String(), Want: want, Got: m.ModuleHash}
	}
	return m, nil
}

// SnapshotN assembles the session's snapshot n (1 is the oldest).
func (f *Fetcher) SnapshotN(ctx context.Context, n int, want recordlog.ModuleHash) (*snapshot.Snapshot, []uint32, *Result, error) {
	m, err := f.ManifestN(ctx, n, want)
	if err != nil {
		return nil, nil, nil, err
	}
	s, res, err := f.Assemble(ctx, m)
	return s, m.WorkingSet, res, err
}

// Snapshot assembles the snapshot whose manifest is mh, fetching only the
// pages the cache lacks, and returns it with the working set a lazy restore
// should prefetch. A manifest of another module is refused.
func (f *Fetcher) Snapshot(ctx context.Context, mh pagestore.Hash, want recordlog.ModuleHash) (*snapshot.Snapshot, []uint32, *Result, error) {
	m, err := f.Manifest(ctx, mh, want)
	if err != nil {
		return nil, nil, nil, err
	}
	s, res, err := f.Assemble(ctx, m)
	return s, m.WorkingSet, res, err
}

// Assemble builds the whole snapshot of m, fetching only the pages the
// cache lacks: the eager restore (and the browser's way).
func (f *Fetcher) Assemble(ctx context.Context, m *pagestore.Manifest) (*snapshot.Snapshot, *Result, error) {
	h0, m0, _ := f.Cached.Stats()
	s, err := pagestore.AssembleFrom(ctx, m, f.Cached, 256)
	if err != nil {
		return nil, nil, err
	}
	h1, m1, _ := f.Cached.Stats()
	return s, &Result{PagesInSnapshot: m.NumPages(), PagesFetched: int(m1 - m0), PagesFromCache: int(h1 - h0)}, nil
}

// Lazy describes m for a lazy restore whose page server (a child process)
// fetches each page itself, on first touch, through the same cache: the
// snapshot it returns has no memory.
func (f *Fetcher) Lazy(m *pagestore.Manifest) (*snapshot.Snapshot, *machine.RemotePages) {
	s := &snapshot.Snapshot{ModuleHash: m.ModuleHash, Tick: m.Tick, Step: m.Step, LogPos: m.LogPos,
		Globals: slices.Clone(m.Globals), Device: slices.Clone(m.Device)}
	rp := &machine.RemotePages{BaseURL: f.Base, Token: f.token, CacheDir: f.Cached.Cache.Dir(), CacheBytes: f.Cached.Cache.Max(),
		MemorySize: int(m.MemorySize), Indices: make([]uint32, len(m.Pages)), Hashes: make([][32]byte, len(m.Pages))}
	for i, p := range m.Pages {
		rp.Indices[i], rp.Hashes[i] = p.Index, p.Hash
	}
	return s, rp
}

// Get fetches the session's path (e.g. "/files/session.json") into the file
// to, atomically. optional: a 404 is no error and writes nothing.
func (f *Fetcher) Get(ctx context.Context, path, to string, optional bool) error {
	body, err := f.open(ctx, path, optional)
	if err != nil || body == nil {
		return err
	}
	defer body.Close()
	out, err := os.Create(to + ".tmp")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(to+".tmp", to)
}

// open GETs the session's path; nil body for an optional 404.
func (f *Fetcher) open(ctx context.Context, path string, optional bool) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", f.Base+"/sessions/"+url.PathEscape(f.Session)+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.HC.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound && optional {
		resp.Body.Close()
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// MaxModuleBytes bounds a module download.
const MaxModuleBytes = 256 << 20

// Module returns the guest module whose SHA-256 is want: from the cache
// directory's modules/ if a previous session kept it, else from the
// session's files (GET /sessions/{id}/files/module.wasm), checked and kept.
func (f *Fetcher) Module(ctx context.Context, want recordlog.ModuleHash) ([]byte, error) {
	path := filepath.Join(f.cacheDir, "modules", fmt.Sprintf("%x.wasm", want[:]))
	if b, err := os.ReadFile(path); err == nil && sha256.Sum256(b) == want {
		return b, nil
	}
	body, err := f.open(ctx, "/files/module.wasm", false)
	if err != nil {
		return nil, fmt.Errorf("fetching the guest module: %w", err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, MaxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the guest module: %w", err)
	}
	if len(b) > MaxModuleBytes {
		return nil, fmt.Errorf("the guest module exceeds %d bytes", MaxModuleBytes)
	}
	if got := sha256.Sum256(b); got != want {
		return nil, fmt.Errorf("the guest module served has SHA-256 %x, the session's is %x", got[:8], want[:8])
	}
	// Keeping it is an optimisation: failing to is no error.
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil && os.WriteFile(path+".tmp", b, 0o644) == nil {
		os.Rename(path+".tmp", path)
	}
	return b, nil
}

// Disk returns the session's base disk served block by block through the
// page cache (GET /sessions/{id}/disk names its manifest); nil, nil when the
// session has no disk.
func (f *Fetcher) Disk(ctx context.Context) (*Disk, error) {
	body, err := f.open(ctx, "/disk", true)
	if err != nil || body == nil {
		return nil, err
	}
	defer body.Close()
	var info struct {
		Manifest string `json:"manifest"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 4096)).Decode(&info); err != nil {
		return nil, fmt.Errorf("GET /disk: %w", err)
	}
	h, err := pagestore.ParseHash(info.Manifest)
	if err != nil {
		return nil, err
	}
	m, err := f.Pages.Manifest(ctx, h)
	if err != nil {
		return nil, err
	}
	return &Disk{ctx: ctx, m: m, f: f.Cached}, nil
}

// Disk is a machine.BlockSource over a disk manifest.
type Disk struct {
	ctx     context.Context
	m       *pagestore.Manifest
	f       *pagecache.CachingFetcher
	fetched atomic.Int64
}

// Block returns block n (zero blocks are never stored).
func (d *Disk) Block(n uint64) ([]byte, error) {
	h, ok := d.m.Lookup(int(n))
	if !ok {
		return make([]byte, pagestore.PageSize), nil
	}
	got, err := d.f.Fetch(d.ctx, []pagestore.Hash{h})
	if err != nil {
		return nil, err
	}
	d.fetched.Add(1)
	return got[h], nil
}

// Fetched counts the blocks read.
func (d *Disk) Fetched() int { return int(d.fetched.Load()) }

// counting counts response body bytes (and adds the token, if any).
type counting struct {
	rt    http.RoundTripper
	n     *atomic.Int64
	token string
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.rt.RoundTrip(r)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
