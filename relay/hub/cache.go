package hub

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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

	"replaydesk/shared/pageservice"
	"replaydesk/shared/token"
)

// maxEntry bounds one cached response (a batch of pages can be large; more
// is passed through uncached).
const maxEntry = 16 << 20

// Bounds of what the cache accepts as a name: a request beyond them never
// reaches the cache or the upstream.
const (
	maxURL         = 8 << 10 // a request URI (a GET batch of 64 hashes is about 4.3 KB)
	maxSessionPath = 512     // a /sessions/… path
	// entryOverhead approximates what one entry costs besides its body,
	// key and headers (the entry, its list element and map slot).
	entryOverhead = 256
)

// pageCache is the pull-through cache of the page service. Only 200
// responses marked immutable are kept (pages and manifests are named by
// their hash, so they never change); everything else, errors included, is
// passed through. Nothing is verified here: clients check hashes.
//
// An entry is named by its canonical name only (canonical): a request with
// anything else in its URL is refused, so no one can grow the cache by
// varying a query string (issue 9, finding 2). Memory and disk are each
// bounded in bytes (body, name and headers counted) and in entries.
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
	diskN    int   // files in dir
	evicting sync.Mutex
}

type entry struct {
	Key    string      `json:"key"`
	Header http.Header `json:"header"`
	body   []byte
}

// cost is what e counts against the memory bound.
func (e *entry) cost() int64 {
	n := len(e.Key) + len(e.body) + entryOverhead
	for k, vs := range e.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return int64(n)
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
			// The upstream checks a token on every path (issue 9, 8c): the
			// relay's own, not the client's (already checked here, and a
			// display viewer's would be refused for pages its relay needs).
			r.Out.Header.Set("Authorization", "Bearer "+h.upstreamToken(c.sessionOf(r.In)))
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
			if strings.HasPrefix(e.Name(), ".tmp-") {
				os.Remove(filepath.Join(c.dir, e.Name())) // a write cut short
				continue
			}
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				c.disk += fi.Size()
				c.diskN++
			}
		}
		if c.over() {
			c.evictDisk()
		}
	}
	c.mu.Lock()
	c.gaugesLocked()
	c.mu.Unlock()
	return c, nil
}

// sessionOf names the session whose relay token goes with an upstream
// request: the one in a /sessions/{id}/ path, else the one of the
// client's token (pages are shared by every session of the upstream).
func (c *pageCache) sessionOf(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/sessions/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		return id
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if cl, err := token.Verify(c.h.opts.Key, tok, time.Now()); err == nil {
			return cl.Session
		}
	}
	return ""
}

// isHash says whether s is a page or manifest name: 64 lowercase hex digits.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// canonical returns the name under which a GET's answer may be cached, or
// an HTTP status and reason to refuse the request with. Only GET /pages
// takes a query (h=HASH, at most pageservice.MaxGetBatch of them);
// anything else in a URL is refused rather than ignored, so that a typo
// is seen and a name never has two spellings.
func canonical(r *http.Request) (string, int, string) {
	if len(r.URL.RawQuery) > 0 && r.URL.Path != "/pages" {
		return "", http.StatusBadRequest, "relay: " + r.URL.Path + " takes no query"
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/pages/"), strings.HasPrefix(p, "/manifests/"):
		_, h, _ := strings.Cut(p[1:], "/")
		if !isHash(h) {
			return "", http.StatusBadRequest, "relay: a page or manifest is named by 64 lowercase hex digits"
		}
		return p, 0, ""
	case p == "/pages":
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return "", http.StatusBadRequest, "relay: bad query: " + err.Error()
		}
		for k := range q {
			if k != "h" {
				return "", http.StatusBadRequest, "relay: unknown query parameter " + strconv.Quote(cutText(k)) + " (GET /pages takes only h=HASH)"
			}
		}
		hs := q["h"]
		if len(hs) == 0 || len(hs) > pageservice.MaxGetBatch {
			return "", http.StatusBadRequest, fmt.Sprintf("relay: GET /pages takes 1 to %d h=HASH", pageservice.MaxGetBatch)
		}
		var b strings.Builder
		b.WriteString("/pages?")
		for i, h := range hs {
			if !isHash(h) {
				return "", http.StatusBadRequest, "relay: a page is named by 64 lowercase hex digits"
			}
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString("h=" + h)
		}
		return b.String(), 0, ""
	case strings.HasPrefix(p, "/sessions/"):
		if len(p) > maxSessionPath {
			return "", http.StatusRequestURITooLong, "relay: path too long"
		}
		return p, 0, ""
	}
	return "", http.StatusNotFound, "relay: no such resource"
}

func (c *pageCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.RequestURI) > maxURL {
		http.Error(w, fmt.Sprintf("relay: request URI longer than %d bytes", maxURL), http.StatusRequestURITooLong)
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/pages/batch" {
		if r.URL.RawQuery != "" {
			http.Error(w, "relay: /pages/batch takes no query", http.StatusBadRequest)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 32*pageservice.MaxPostBatch+1)
		c.proxy.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "relay: only GET and HEAD (and POST /pages/batch)", http.StatusMethodNotAllowed)
		return
	}
	key, status, why := canonical(r)
	if status != 0 {
		http.Error(w, why, status)
		return
	}
	if r.Header.Get("Range") != "" {
		c.proxy.ServeHTTP(w, r)
		return
	}
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
	c.memBytes += e.cost()
	for (c.memBytes > c.h.opts.CacheMemBytes || c.lru.Len() > c.h.opts.CacheMemEntries) && c.lru.Len() > 1 {
		old := c.lru.Remove(c.lru.Back()).(*entry)
		delete(c.mem, old.Key)
		c.memBytes -= old.cost()
	}
	c.gaugesLocked()
}

// gaugesLocked publishes the cache's size (c.mu held).
func (c *pageCache) gaugesLocked() {
	m := c.h.m
	m.cacheMemBytes.Set(float64(c.memBytes))
	m.cacheMemEntries.Set(float64(c.lru.Len()))
	m.cacheDiskBytes.Set(float64(c.disk))
	m.cacheDiskEntries.Set(float64(c.diskN))
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
	c.diskN++ // a rewrite of an existing name overcounts until the next eviction recounts
	over := c.over()
	c.gaugesLocked()
	c.mu.Unlock()
	if over {
		c.evictDisk()
	}
}

// over says whether the disk cache is over either of its bounds.
func (c *pageCache) over() bool {
	return c.disk > c.h.opts.CacheDiskBytes || c.diskN > c.h.opts.CacheDiskEntries
}

// evictDisk removes the least recently used files down to 90% of both
// bounds. Concurrent evictions would each read the directory: one at a time.
func (c *pageCache) evictDisk() {
	c.evicting.Lock()
	defer c.evicting.Unlock()
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
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(e.Name(), ".tmp-") {
			fs = append(fs, f{e.Name(), fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
	}
	slices.SortFunc(fs, func(a, b f) int { return a.t.Compare(b.t) })
	target, targetN := c.h.opts.CacheDiskBytes*9/10, c.h.opts.CacheDiskEntries*9/10
	n := len(fs)
	for _, x := range fs {
		if total <= target && n <= targetN {
			break
		}
		if os.Remove(filepath.Join(c.dir, x.name)) == nil {
			total -= x.size
			n--
		}
	}
	c.mu.Lock()
	c.disk, c.diskN = total, n
	c.gaugesLocked()
	c.mu.Unlock()
}
