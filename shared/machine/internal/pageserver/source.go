//go:build linux

package pageserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"golang.org/x/sys/unix"

	"replaydesk/shared/pagecache"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
)

// source is where the child takes page contents from: the image memfd of a
// local restore, or the page service of a remote one. Only the child uses
// it, on its one serving thread; the remote source's HTTP and cache writes
// may run on goroutines, which is safe here because this process holds no
// guest memory (see the package comment).
type source interface {
	// read fills dst with the n pages starting at p, all of them data
	// pages (non-zero in the snapshot).
	read(p, n int, dst []byte) error
	// want announces data pages about to be read (read-ahead, a prefetch
	// chunk, a completion chunk): a remote source fetches those it lacks
	// in one request instead of one each.
	want(pages []int) error
	// completing marks the rest of the pages as fetched for Complete.
	completing()
	// count adds the source's figures to st.
	count(st *Stats)
	// close waits for background work (cache writes). Idempotent.
	close()
}

// errSource marks errors whose message already names the page and the
// cause; the child reports them as they are.
var errSource = errors.New("pageserver")

// imageSource reads the Image memfd the parent handed over.
type imageSource struct{ fd int }

func (s imageSource) read(p, n int, dst []byte) error {
	b := dst[:n*PageSize]
	for len(b) > 0 {
		k, err := unix.Pread(s.fd, b, int64(p)*PageSize+int64(n*PageSize-len(b)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading image page %d: %w", p, err)
		}
		if k == 0 {
			return fmt.Errorf("image ends before page %d", p)
		}
		b = b[k:]
	}
	return nil
}

func (imageSource) want([]int) error { return nil }
func (imageSource) completing()      {}
func (imageSource) count(*Stats)     {}
func (imageSource) close()           {}

// remoteSource fetches pages from a page service through the client's disk
// cache. Every page is verified against its hash before it is used (by the
// cache on a hit, by the page-service client on a fetch), so a corrupted
// page fails the restore with an error instead of reaching the guest.
type remoteSource struct {
	client  *pageservice.Client
	cache   *pagecache.Cache // nil: no disk cache
	url     string
	hashes  map[int]pagestore.Hash
	data    []bool
	ready   map[int][]byte // fetched or read from the cache, not yet copied
	putSem  chan struct{}
	puts    sync.WaitGroup
	closed  bool
	inFinal bool // after cmdComplete

	fetched, fetchedByComplete, fromCache, requests int
}

// cacheWriters bounds concurrent cache writes: each creates a file (a few
// hundred microseconds of filesystem work, mostly waiting), so they run off
// the serving thread.
const cacheWriters = 4

func newRemoteSource(cfg *remoteConfig, pages int) (*remoteSource, error) {
	if len(cfg.Hashes) != 32*len(cfg.Indices) {
		return nil, fmt.Errorf("remote config: %d hash bytes for %d pages", len(cfg.Hashes), len(cfg.Indices))
	}
	s := &remoteSource{
		client: pageservice.NewClient(cfg.BaseURL, &http.Client{Timeout: cfg.Timeout, Transport: pageservice.Bearer(cfg.Token, nil)}),
		url:    cfg.BaseURL,
		hashes: make(map[int]pagestore.Hash, len(cfg.Indices)),
		data:   make([]bool, pages),
		ready:  map[int][]byte{},
		putSem: make(chan struct{}, cacheWriters),
	}
	for i, p := range cfg.Indices {
		if int(p) >= pages {
			return nil, fmt.Errorf("remote config: page %d outside %d pages", p, pages)
		}
		s.hashes[int(p)] = pagestore.Hash(cfg.Hashes[32*i : 32*i+32])
		s.data[p] = true
	}
	if cfg.CacheDir != "" {
		c, err := pagecache.Open(cfg.CacheDir, cfg.CacheBytes)
		if err != nil {
			return nil, fmt.Errorf("opening the page cache: %w", err)
		}
		s.cache = c
	}
	return s, nil
}

func (s *remoteSource) want(pages []int) error {
	var need []pagestore.Hash
	where := map[pagestore.Hash][]int{}
	for _, p := range pages {
		if _, ok := s.ready[p]; ok {
			continue
		}
		h, ok := s.hashes[p]
		if !ok {
			continue // a zero page: never fetched
		}
		if s.cache != nil {
			// A miss, and also a corrupt file (the cache deletes it), is
			// fetched again.
			if raw, err := s.cache.Get(h); err == nil {
				s.ready[p] = raw
				s.fromCache++
				continue
			}
		}
		if _, dup := where[h]; !dup {
			need = append(need, h)
		}
		where[h] = append(where[h], p)
	}
	if len(need) == 0 {
		return nil
	}
	// One page goes by its own URL (GET /pages/{hash}, the most cacheable
	// request); more go as batches (the client's policy).
	got, err := s.client.FetchPages(context.Background(), need)
	s.requests += (len(need) + pageservice.MaxGetBatch - 1) / pageservice.MaxGetBatch
	if err != nil {
		what := fmt.Sprintf("page %d (%s)", where[need[0]][0], need[0])
		if len(need) > 1 {
			what += fmt.Sprintf(" and %d more", len(need)-1)
		}
		return fmt.Errorf("%w: fetching %s from the page service at %s: %w", errSource, what, s.url, err)
	}
	for h, ps := range where {
		pg, ok := got[h]
		if !ok || len(pg.Raw) != PageSize {
			return fmt.Errorf("%w: the page service at %s did not return page %d (%s)", errSource, s.url, ps[0], h)
		}
		for _, p := range ps {
			s.ready[p] = pg.Raw
		}
	}
	s.fetched += len(need)
	if s.inFinal {
		s.fetchedByComplete += len(need)
	}
	if s.cache != nil && !s.closed {
		s.puts.Add(1)
		go func() {
			defer s.puts.Done()
			s.putSem <- struct{}{}
			defer func() { <-s.putSem }()
			for _, h := range need {
				// A full or read-only disk slows later sessions; it must
				// not fail this one.
				_ = s.cache.Put(h, got[h].Raw)
			}
		}()
	}
	return nil
}

func (s *remoteSource) read(p, n int, dst []byte) error {
	var missing []int
	for q := p; q < p+n; q++ {
		if _, ok := s.ready[q]; !ok {
			missing = append(missing, q)
		}
	}
	if err := s.want(missing); err != nil {
		return err
	}
	for q := p; q < p+n; q++ {
		raw, ok := s.ready[q]
		if !ok {
			return fmt.Errorf("%w: page %d is not in the snapshot's manifest", errSource, q)
		}
		copy(dst[(q-p)*PageSize:], raw)
		delete(s.ready, q)
	}
	return nil
}

func (s *remoteSource) completing() { s.inFinal = true }

func (s *remoteSource) count(st *Stats) {
	st.Fetched, st.FetchedByComplete, st.FromCache, st.FetchRequests = s.fetched, s.fetchedByComplete, s.fromCache, s.requests
}

func (s *remoteSource) close() {
	s.closed = true
	s.puts.Wait()
}
