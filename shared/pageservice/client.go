package pageservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"replaydesk/shared/pagestore"
)

// Client fetches pages, manifests and snapshot lists from a page service
// (or any relay or HTTP cache in front of one). It is a pagestore.Source and
// StoredSource. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	// BatchSize is how many pages one request asks for (default
	// MaxGetBatch). Up to MaxGetBatch the request is a GET, which HTTP
	// caches can keep; beyond it a POST (at most MaxPostBatch).
	BatchSize int
	// Concurrency bounds the requests in flight for one Fetch (default 4).
	Concurrency int
}

// NewClient talks to the page service at baseURL (e.g.
// "http://127.0.0.1:8080/"); hc nil means http.DefaultClient.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Bearer returns a transport that sends tok as "Authorization: Bearer"
// with every request over rt (nil: http.DefaultTransport); an empty tok
// sends none. Relays and the session endpoint serve pages only with a
// verified token.
func Bearer(tok string, rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if tok == "" {
		return rt
	}
	return bearer{tok, rt}
}

type bearer struct {
	tok string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.rt.RoundTrip(r)
}

// StatusError is a response other than 200 (or 304 where expected).
type StatusError struct {
	URL     string
	Code    int
	Message string // the server's plain-text explanation, clipped
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("pageservice: %s: %d %s: %s", e.URL, e.Code, http.StatusText(e.Code), e.Message)
}

func (c *Client) do(ctx context.Context, method, u string, body []byte, limit int64) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &StatusError{URL: u, Code: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	// Read one byte past the limit to tell "exactly at the limit" from "over".
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("pageservice: %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("pageservice: %s: response exceeds %d bytes", u, limit)
	}
	return b, nil
}

// Fetch returns the raw pages named by hashes, each verified. Zero pages
// are made up locally, never requested.
func (c *Client) Fetch(ctx context.Context, hashes []pagestore.Hash) (map[pagestore.Hash][]byte, error) {
	ps, err := c.FetchPages(ctx, hashes)
	if err != nil {
		return nil, err
	}
	out := make(map[pagestore.Hash][]byte, len(ps))
	for h, p := range ps {
		out[h] = p.Raw
	}
	return out, nil
}

// FetchPages is Fetch that also returns each page's stored form (nil for
// the zero page, which is never stored).
func (c *Client) FetchPages(ctx context.Context, hashes []pagestore.Hash) (map[pagestore.Hash]pagestore.Page, error) {
	out := make(map[pagestore.Hash]pagestore.Page, len(hashes))
	var want []pagestore.Hash
	for _, h := range hashes {
		if _, ok := out[h]; ok {
			continue
		}
		if h == pagestore.ZeroHash {
			out[h] = pagestore.Page{Raw: make([]byte, pagestore.PageSize)}
			continue
		}
		out[h] = pagestore.Page{} // placeholder: marks it seen
		want = append(want, h)
	}
	batch := c.BatchSize
	if batch <= 0 {
		batch = MaxGetBatch
	}
	batch = min(batch, MaxPostBatch)
	conc := c.Concurrency
	if conc <= 0 {
		conc = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, conc)
	)
	for lo := 0; lo < len(want); lo += batch {
		chunk := want[lo:min(lo+batch, len(want))]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			got, err := c.fetchChunk(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel() // the others are wasted work now
				}
				return
			}
			for h, p := range got {
				out[h] = p
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetchChunk asks for one batch in the most cacheable form that fits: a
// single page by its own URL, up to MaxGetBatch by GET, else by POST.
func (c *Client) fetchChunk(ctx context.Context, hs []pagestore.Hash) (map[pagestore.Hash]pagestore.Page, error) {
	out := make(map[pagestore.Hash]pagestore.Page, len(hs))
	if len(hs) == 1 {
		u := c.base + "/pages/" + hs[0].String()
		b, err := c.do(ctx, http.MethodGet, u, nil, pagestore.MaxStored)
		if err != nil {
			return nil, err
		}
		raw, err := pagestore.Decode(hs[0], b, u)
		if err != nil {
			return nil, err
		}
		out[hs[0]] = pagestore.Page{Raw: raw, Stored: b}
		return out, nil
	}
	var (
		b   []byte
		err error
		u   string
	)
	if len(hs) <= MaxGetBatch {
		q := make(url.Values, 1)
		for _, h := range hs {
			q.Add("h", h.String())
		}
		u = c.base + "/pages?" + q.Encode()
		b, err = c.do(ctx, http.MethodGet, u, nil, MaxBatchBytes(len(hs)))
	} else {
		body := make([]byte, 0, 32*len(hs))
		for _, h := range hs {
			body = append(body, h[:]...)
		}
		u = c.base + "/pages/batch"
		b, err = c.do(ctx, http.MethodPost, u, body, MaxBatchBytes(len(hs)))
	}
	if err != nil {
		return nil, err
	}
	entries, err := DecodeBatch(b, len(hs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	asked := make(map[pagestore.Hash]bool, len(hs))
	for _, h := range hs {
		asked[h] = true
	}
	for _, e := range entries {
		if !asked[e.Hash] {
			return nil, fmt.Errorf("pageservice: %s: the response holds page %s, which was not asked for", u, e.Hash)
		}
		raw, err := pagestore.Decode(e.Hash, e.Stored, u)
		if err != nil {
			return nil, err
		}
		out[e.Hash] = pagestore.Page{Raw: raw, Stored: bytes.Clone(e.Stored)}
	}
	for _, h := range hs {
		if _, ok := out[h]; !ok {
			return nil, fmt.Errorf("pageservice: %s: the response lacks page %s", u, h)
		}
	}
	return out, nil
}

// MaxManifestBytes bounds a manifest download (a 4 GiB memory's page table
// is about 34 MiB; device state up to snapshot.MaxDevice).
const MaxManifestBytes = 320 << 20

// Manifest fetches manifest h, verifies it against its name and decodes it.
func (c *Client) Manifest(ctx context.Context, h pagestore.Hash) (*pagestore.Manifest, error) {
	u := c.base + "/manifests/" + h.String()
	b, err := c.do(ctx, http.MethodGet, u, nil, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	if got := pagestore.Hash(sha256.Sum256(b)); got != h {
		return nil, fmt.Errorf("%w: %s hashes to %s; refused", pagestore.ErrCorruptManifest, u, got)
	}
	return pagestore.DecodeManifest(b)
}

// Snapshots lists session id's snapshots, oldest first.
func (c *Client) Snapshots(ctx context.Context, id string) ([]SnapshotEntry, error) {
	u := c.base + "/sessions/" + url.PathEscape(id) + "/snapshots"
	b, err := c.do(ctx, http.MethodGet, u, nil, 16<<20)
	if err != nil {
		return nil, err
	}
	var l SnapshotList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("pageservice: %s: %w", u, err)
	}
	return l.Snapshots, nil
}
