// Package pagecache is the client's on-disk page cache (DESIGN.md section
// 5: "a viewer that saw a page once never fetches it again"). Pages are
// content-addressed, so one cache serves every session and every snapshot:
// a page fetched for yesterday's session is a hit in today's.
//
// The cache is bounded (max bytes, least recently used pages evicted
// first), shared by concurrent processes (whole files appear by atomic
// rename; a page another process evicted is just a miss), and verified on
// read (a page whose bytes no longer match its hash is deleted and
// refetched, never returned).
//
// It must not know about wazero, the machine or HTTP: it wraps any
// pagestore.Source.
package pagecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"replaydesk/shared/pagestore"
)

// Layout: DIR/ab/abcdef….pg, one file per page holding its raw 4096 bytes.
//
// Raw, not compressed: a page file occupies one 4 KiB filesystem block
// whether it holds 4096 bytes or 300, so compression would save no disk and
// would cost an inflate on every hit.
const blockSize = 4096

// Cache is an on-disk page cache. Safe for concurrent use by goroutines and
// by processes sharing the directory. It is a pagestore.Store.
type Cache struct {
	dir string
	max int64
	// TouchEvery is the resolution of access times: a hit refreshes the
	// file's modification time (the LRU clock; atime is unreliable under
	// noatime/relatime) only when it is older than this, so a hot page
	// costs no write. Default one minute.
	TouchEvery time.Duration

	size      atomic.Int64 // bytes on disk as this process last knew
	sinceScan atomic.Int64 // bytes this process added since it last scanned
	evictMu   sync.Mutex
	evictions atomic.Int64
}

// Open opens (creating) the cache in dir, bounded to maxBytes of disk.
func Open(dir string, maxBytes int64) (*Cache, error) {
	if maxBytes < 16*blockSize {
		return nil, fmt.Errorf("pagecache: a bound of %d bytes is too small (at least %d)", maxBytes, 16*blockSize)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cache{dir: dir, max: maxBytes, TouchEvery: time.Minute}
	files, err := c.scan()
	if err != nil {
		return nil, err
	}
	c.size.Store(total(files))
	if c.size.Load() > c.max {
		return c, c.Evict()
	}
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Max is the bound in bytes.
func (c *Cache) Max() int64 { return c.max }

// Size is the cache's size in bytes as this process last knew it (other
// processes' additions are seen at the next scan).
func (c *Cache) Size() int64 { return c.size.Load() }

// Evictions counts the pages this Cache removed to stay under its bound.
func (c *Cache) Evictions() int64 { return c.evictions.Load() }

func (c *Cache) path(h pagestore.Hash) string {
	x := h.String()
	return filepath.Join(c.dir, x[:2], x+".pg")
}

// Has reports whether page h is cached (without verifying it).
func (c *Cache) Has(h pagestore.Hash) bool {
	_, err := os.Stat(c.path(h))
	return err == nil
}

// Get returns page h, verified: pagestore.ErrNotFound on a miss; a
// *pagestore.CorruptPageError for a file that no longer matches its hash,
// which is deleted so the next fetch replaces it.
func (c *Cache) Get(h pagestore.Hash) ([]byte, error) {
	p := c.path(h)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, pagestore.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, pagestore.PageSize+1)
	n, err := io.ReadFull(f, raw)
	if err != io.ErrUnexpectedEOF && err != nil && err != io.EOF {
		return nil, err
	}
	raw = raw[:n]
	if n != pagestore.PageSize || pagestore.HashPage(raw) != h {
		os.Remove(p) // a bad copy is worth nothing; refetching replaces it
		return nil, &pagestore.CorruptPageError{Hash: h, Where: p, Reason: fmt.Sprintf("%d bytes that do not hash to the page's name", n)}
	}
	if now := time.Now(); now.Sub(st.ModTime()) > c.TouchEvery {
		// Another process may have evicted it since: then there is nothing
		// to touch, and that is fine.
		os.Chtimes(p, now, now)
	}
	return raw, nil
}

// Put stores raw page h, after checking that it is that page.
func (c *Cache) Put(h pagestore.Hash, raw []byte) error {
	if len(raw) != pagestore.PageSize || pagestore.HashPage(raw) != h {
		return fmt.Errorf("pagecache: put %s: not that page", h)
	}
	if h == pagestore.ZeroHash {
		return nil // made up locally; never worth a file
	}
	p := c.path(h)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := pagestore.WriteFileAtomic(p, raw, false); err != nil {
		return err
	}
	c.size.Add(blockSize)
	// Rescan after a tenth of the bound has been written: other processes'
	// writes are only seen by scanning, and this bounds how far they can
	// push the cache over its limit between scans.
	if c.size.Load() > c.max || c.sinceScan.Add(blockSize) > c.max/10 {
		return c.Evict()
	}
	return nil
}

type file struct {
	path  string
	size  int64
	mtime time.Time
}

func total(fs []file) int64 {
	var t int64
	for _, f := range fs {
		t += f.size
	}
	return t
}

// onDisk rounds a file's size up to whole blocks: the bound is about disk.
func onDisk(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// scan lists the cache's page files, and removes temporary files that a
// crashed writer left behind (older than an hour).
func (c *Cache) scan() ([]file, error) {
	c.sinceScan.Store(0)
	var out []file
	subs, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		d := filepath.Join(c.dir, sub.Name())
		ents, err := os.ReadDir(d)
		if err != nil {
			continue // evicted or being created by another process
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				continue // gone since ReadDir: another process evicted it
			}
			p := filepath.Join(d, e.Name())
			if strings.HasPrefix(e.Name(), ".tmp-") {
				if time.Since(info.ModTime()) > time.Hour {
					os.Remove(p)
				}
				continue
			}
			if strings.HasSuffix(e.Name(), ".pg") {
				out = append(out, file{p, onDisk(info.Size()), info.ModTime()})
			}
		}
	}
	return out, nil
}

// Evict rescans the directory and, if it holds more than the bound, removes
// least recently used pages until it holds at most 90 % of it (the slack
// makes eviction, which costs a scan, rare).
func (c *Cache) Evict() error {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	files, err := c.scan()
	if err != nil {
		return err
	}
	size := total(files)
	if size > c.max {
		slices.SortFunc(files, func(a, b file) int { return a.mtime.Compare(b.mtime) })
		low := c.max / 10 * 9
		for _, f := range files {
			if size <= low {
				break
			}
			// ErrNotExist: another process evicted it first; it is gone
			// either way.
			if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
				size -= f.size
				c.evictions.Add(1)
			}
		}
	}
	c.size.Store(size)
	return nil
}

// putWriters is how many pages a CachingFetcher writes at once.
const putWriters = 8

// CachingFetcher is a pagestore.Source that answers from the cache and
// asks Src only for the pages the cache lacks, then keeps them.
type CachingFetcher struct {
	Cache *Cache
	Src   pagestore.Source

	hits, misses, putErrs atomic.Int64
}

// NewCachingFetcher puts c in front of src.
func NewCachingFetcher(c *Cache, src pagestore.Source) *CachingFetcher {
	return &CachingFetcher{Cache: c, Src: src}
}

// Stats returns how many pages came from the cache, how many from Src, and
// how many could not be kept (a full disk slows later sessions but must
// not fail this one).
func (f *CachingFetcher) Stats() (hits, misses, putErrors int64) {
	return f.hits.Load(), f.misses.Load(), f.putErrs.Load()
}

func (f *CachingFetcher) Fetch(ctx context.Context, hashes []pagestore.Hash) (map[pagestore.Hash][]byte, error) {
	out := make(map[pagestore.Hash][]byte, len(hashes))
	var miss []pagestore.Hash
	for _, h := range hashes {
		if _, ok := out[h]; ok {
			continue
		}
		if h == pagestore.ZeroHash {
			out[h] = make([]byte, pagestore.PageSize)
			continue
		}
		if p, err := f.Cache.Get(h); err == nil {
			out[h] = p
			f.hits.Add(1)
			continue
		}
		// Missing, corrupt (now deleted) or unreadable: fetch it again.
		out[h] = nil
		miss = append(miss, h)
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := f.Src.Fetch(ctx, miss)
	if err != nil {
		return nil, err
	}
	for _, h := range miss {
		p, ok := got[h]
		if !ok || len(p) != pagestore.PageSize {
			return nil, fmt.Errorf("pagecache: source did not return page %s", h)
		}
		out[h] = p
		f.misses.Add(1)
	}
	// Creating a file costs a few hundred microseconds of filesystem work,
	// mostly waiting: keep the pages with several writers at once.
	work := make(chan pagestore.Hash)
	var wg sync.WaitGroup
	for range min(len(miss), putWriters) {
		wg.Go(func() {
			for h := range work {
				if err := f.Cache.Put(h, out[h]); err != nil {
					f.putErrs.Add(1)
				}
			}
		})
	}
	for _, h := range miss {
		work <- h
	}
	close(work)
	wg.Wait()
	return out, nil
}
