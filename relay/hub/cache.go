package hub

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxEntry bounds one cached response (a batch of pages can be large; more
// is passed through uncached).
const maxEntry = 16 << 20

// pageCache is the pull-through cache of the page service. Only 200
// responses marked immutable are kept (pages and manifests are named by
// their hash, so they never change); everything else, errors included, is
// passed through. Nothing is verified here: clients check hashes.
type pageCache struct {
	h     *Hub
	proxy *httputil.ReverseProxy

	mu       sync.Mutex
	inflight map[string]chan struct{} // misses being fetched: others wait for them
	mem      map[string]*list.Element // of *entry
	lru      *list.List               // front: most recent
	memBytes int64
	dir      string
	disk     int64 // bytes in dir
}

type entry struct {
	Key    string      `json:"key"`
	Header http.Header `json:"header"`
	body   []byte
}

// kept are the response headers a cached answer repeats.
var kept = []string{"Content-Type", "Content-Encoding", "ETag", "Cache-Control", "Last-Modified"}

type captureKey struct{}

func newPageCache(h *Hub, up *url.URL) (*pageCache, error) {
	c := &pageCache{h: h, inflight: map[string]chan struct{}{}, mem: map[string]*list.Element{}, lru: list.New(), dir: h.opts.CacheDir}
	c.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			r.SetXForwarded()
		},
		ModifyResponse: c.modify,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Warn().Err(err).Str("path", r.URL.Path).Msg("page service upstream unreachable")
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "relay: upstream page service unreachable", http.StatusBadGateway)
		},
	}
	if c.dir != "" {
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return nil, err
		}
		ents, err := os.ReadDir(c.dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				c.disk += fi.Size()
			}
		}
	}
	return c, nil
}

func (c *pageCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cacheable := (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Range") == ""
	if !cacheable {
		c.proxy.ServeHTTP(w, r)
		return
	}
	key := r.URL.Path + "?" + r.URL.RawQuery
	e := c.get(key)
	if e == nil {
		// Many clients switching to dual at once want the same manifest and
		// pages: one fetch upstream, the others wait for its result.
		c.mu.Lock()
		ch, busy := c.inflight[key]
		if !busy {
			ch = make(chan struct{})
			c.inflight[key] = ch
		}
		c.mu.Unlock()
		if !busy {
			defer func() {
				c.mu.Lock()
				delete(c.inflight, key)
				c.mu.Unlock()
				close(ch)
			}()
			c.h.m.misses.Add(1)
			c.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), captureKey{}, key)))
			return
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		if e = c.get(key); e == nil {
			c.proxy.ServeHTTP(w, r) // not cacheable after all
			return
		}
	}
	c.h.m.hits.Add(1)
	c.serve(w, r, e)
}

// serve answers from the cache.
func (c *pageCache) serve(w http.ResponseWriter, r *http.Request, e *entry) {
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if et := e.Header.Get("ETag"); et != "" && r.Header.Get("If-None-Match") == et {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		n, _ := w.Write(e.body)
		c.h.m.sentPages.Add(float64(n))
	}
}

// modify wraps a cacheable answer's body so that, once read to its end, it
// is stored.
func (c *pageCache) modify(resp *http.Response) error {
	key, _ := resp.Request.Context().Value(captureKey{}).(string)
	if key == "" || resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.ContentLength > maxEntry {
		resp.Body = &countBody{ReadCloser: resp.Body, c: c}
		return nil
	}
	e := &entry{Key: key, Header: http.Header{}}
	for _, k := range kept {
		if v := resp.Header.Values(k); len(v) > 0 {
			e.Header[k] = slices.Clone(v)
		}
	}
	resp.Body = &captureBody{ReadCloser: resp.Body, c: c, e: e}
	return nil
}

type countBody struct {
	io.ReadCloser
	c *pageCache
}

func (b *countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.h.m.sentPages.Add(float64(n))
	return n, err
}

type captureBody struct {
	io.ReadCloser
	c    *pageCache
	e    *entry
	buf  bytes.Buffer
	over bool
}

func (b *captureBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.h.m.sentPages.Add(float64(n))
	if !b.over {
		if b.buf.Len()+n > maxEntry {
			b.over = true
			b.buf = bytes.Buffer{}
		} else {
			b.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !b.over {
		b.e.body = b.buf.Bytes()
		b.c.put(b.e)
		b.over = true
	}
	return n, err
}

// get finds key in memory, then on disk.
func (c *pageCache) get(key string) *entry {
	c.mu.Lock()
	if el, ok := c.mem[key]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*entry)
	}
	c.mu.Unlock()
	if c.dir == "" {
		return nil
	}
	e, err := readEntry(c.path(key))
	if err != nil || e.Key != key {
		return nil
	}
	c.putMem(e)
	return e
}

func (c *pageCache) path(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(c.dir, hex.EncodeToString(h[:]))
}

func (c *pageCache) put(e *entry) {
	c.putMem(e)
	if c.dir != "" {
		c.putDisk(e)
	}
}

func (c *pageCache) putMem(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mem[e.Key]; ok {
		return
	}
	c.mem[e.Key] = c.lru.PushFront(e)
	c.memBytes += int64(len(e.body))
	for c.memBytes > c.h.opts.CacheMemBytes && c.lru.Len() > 1 {
		old := c.lru.Remove(c.lru.Back()).(*entry)
		delete(c.mem, old.Key)
		c.memBytes -= int64(len(old.body))
	}
}

// An entry on disk is one JSON line (key and headers) and the body.
func readEntry(path string) (*entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	e := &entry{}
	if err := json.Unmarshal(line, e); err != nil {
		return nil, err
	}
	if e.body, err = io.ReadAll(io.LimitReader(br, maxEntry+1)); err != nil || len(e.body) > maxEntry {
		return nil, io.ErrUnexpectedEOF
	}
	now := time.Now()
	os.Chtimes(path, now, now) // recency for eviction
	return e, nil
}

func (c *pageCache) putDisk(e *entry) {
	head, err := json.Marshal(e)
	if err != nil {
		return
	}
	p := c.path(e.Key)
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		c.h.log.Warn().Err(err).Msg("page cache: cannot write to disk")
		return
	}
	_, err = tmp.Write(append(append(head, '\n'), e.body...))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		c.h.log.Warn().Err(err).Msg("page cache: cannot write to disk")
		return
	}
	c.mu.Lock()
	c.disk += int64(len(head) + 1 + len(e.body))
	over := c.disk > c.h.opts.CacheDiskBytes
	c.mu.Unlock()
	if over {
		c.evictDisk()
	}
}

// evictDisk removes the least recently used files down to 90% of the bound.
func (c *pageCache) evictDisk() {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type f struct {
		name string
		size int64
		t    time.Time
	}
	var fs []f
	var total int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			fs = append(fs, f{e.Name(), fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
	}
	slices.SortFunc(fs, func(a, b f) int { return a.t.Compare(b.t) })
	target := c.h.opts.CacheDiskBytes * 9 / 10
	for _, x := range fs {
		if total <= target {
			break
		}
		if os.Remove(filepath.Join(c.dir, x.name)) == nil {
			total -= x.size
		}
	}
	c.mu.Lock()
	c.disk = total
	c.mu.Unlock()
}
