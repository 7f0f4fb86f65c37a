package pageservice

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"replaydesk/shared/pagestore"
)

// Backend is what the server serves from: pages as stored (not decoded: the
// client verifies) and encoded manifests. pagestore.DirStore and MemStore
// are Backends.
type Backend interface {
	pagestore.StoredGetter
	pagestore.ManifestGetter
}

// SessionLister lists a session's snapshots; ok is false for an unknown
// session.
type SessionLister interface {
	Snapshots(id string) (list []SnapshotEntry, ok bool)
}

// Server is the page service's http.Handler.
type Server struct {
	backend  Backend
	sessions SessionLister
	mux      *http.ServeMux
}

// NewServer serves backend's pages and manifests and sessions' snapshot
// lists (sessions may be nil: every session is then unknown).
func NewServer(backend Backend, sessions SessionLister) *Server {
	s := &Server{backend: backend, sessions: sessions, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /pages/{hash}", s.page)
	s.mux.HandleFunc("GET /pages", s.batchGet)
	s.mux.HandleFunc("POST /pages/batch", s.batchPost)
	s.mux.HandleFunc("GET /manifests/{hash}", s.manifest)
	s.mux.HandleFunc("GET /sessions/{id}/snapshots", s.snapshots)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// fail answers with a plain-text message. Errors are never cacheable: a
// page that is missing now may be published a moment later.
func fail(w http.ResponseWriter, code int, f string, a ...any) {
	h := w.Header()
	h.Del("ETag")
	h.Set("Cache-Control", "no-store")
	http.Error(w, fmt.Sprintf(f, a...), code)
}

// etagMatches implements If-None-Match (RFC 9110 13.1.2: weak comparison,
// a list, or "*").
func etagMatches(r *http.Request, etag string) bool {
	for _, v := range r.Header.Values("If-None-Match") {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
	}
	return false
}

// immutable writes the headers of a content-named resource and answers 304
// when the client already holds it; it reports whether the body is still
// to be written.
func immutable(w http.ResponseWriter, r *http.Request, etag, ctype string) bool {
	h := w.Header()
	h.Set("Cache-Control", CacheImmutable)
	h.Set("ETag", etag)
	if etagMatches(r, etag) {
		w.WriteHeader(http.StatusNotModified)
		return false
	}
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	return true
}

func quote(h pagestore.Hash) string { return `"` + h.String() + `"` }

var zeroStored = sync.OnceValue(func() []byte {
	b, _ := pagestore.Encode(make([]byte, pagestore.PageSize))
	return b
})

// stored fetches one page, mapping store errors to HTTP status codes.
func (s *Server) stored(w http.ResponseWriter, h pagestore.Hash) ([]byte, bool) {
	if h == pagestore.ZeroHash {
		// Never stored, but a generic client may still ask for it.
		return zeroStored(), true
	}
	b, err := s.backend.GetStored(h)
	switch {
	case errors.Is(err, pagestore.ErrNotFound):
		fail(w, http.StatusNotFound, "page %s not found", h)
		return nil, false
	case err != nil:
		fail(w, http.StatusInternalServerError, "page %s: %v", h, err)
		return nil, false
	}
	return b, true
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	h, err := pagestore.ParseHash(r.PathValue("hash"))
	if err != nil {
		fail(w, http.StatusBadRequest, "bad page name: %v", err)
		return
	}
	b, ok := s.stored(w, h)
	if !ok || !immutable(w, r, quote(h), PageType) {
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// batchGet is GET /pages?h=…&h=…: cacheable, since the URL names the
// content completely.
func (s *Server) batchGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()["h"]
	if len(q) == 0 {
		fail(w, http.StatusBadRequest, "GET /pages needs one or more h=HASH parameters")
		return
	}
	if len(q) > MaxGetBatch {
		fail(w, http.StatusRequestEntityTooLarge, "%d pages asked for; a GET batch holds at most %d (use POST /pages/batch for up to %d)", len(q), MaxGetBatch, MaxPostBatch)
		return
	}
	hs := make([]pagestore.Hash, len(q))
	for i, v := range q {
		var err error
		if hs[i], err = pagestore.ParseHash(v); err != nil {
			fail(w, http.StatusBadRequest, "h #%d: %v", i+1, err)
			return
		}
	}
	s.batch(w, r, hs, true)
}

// batchPost is POST /pages/batch with the binary hashes as the body.
func (s *Server) batchPost(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPostBatch*32))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(w, http.StatusRequestEntityTooLarge, "a POST batch holds at most %d pages (%d bytes of hashes)", MaxPostBatch, MaxPostBatch*32)
		return
	case err != nil:
		fail(w, http.StatusBadRequest, "reading the batch: %v", err)
		return
	case len(body) == 0 || len(body)%32 != 0:
		fail(w, http.StatusBadRequest, "a POST batch body is 32-byte binary hashes back to back; got %d bytes", len(body))
		return
	}
	hs := make([]pagestore.Hash, len(body)/32)
	for i := range hs {
		copy(hs[i][:], body[i*32:])
	}
	s.batch(w, r, hs, false)
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request, hs []pagestore.Hash, cacheable bool) {
	// Duplicates are answered once, in order of first mention.
	seen := make(map[pagestore.Hash]bool, len(hs))
	entries := make([]Entry, 0, len(hs))
	sum := sha256.New()
	for _, h := range hs {
		if seen[h] {
			continue
		}
		seen[h] = true
		sum.Write(h[:])
		b, ok := s.stored(w, h)
		if !ok {
			return
		}
		entries = append(entries, Entry{Hash: h, Stored: b})
	}
	if cacheable {
		// The response is a function of the hashes it lists, so a strong
		// ETag over them is as good as one over the body.
		if !immutable(w, r, `"b-`+hex.EncodeToString(sum.Sum(nil))+`"`, BatchType) {
			return
		}
	} else {
		w.Header().Set("Content-Type", BatchType)
	}
	out := AppendBatch(make([]byte, 0, len(entries)*(pagestore.MaxStored+36)+16), entries)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	h, err := pagestore.ParseHash(r.PathValue("hash"))
	if err != nil {
		fail(w, http.StatusBadRequest, "bad manifest name: %v", err)
		return
	}
	b, err := s.backend.GetManifest(h)
	switch {
	case errors.Is(err, pagestore.ErrNotFound):
		// Live sessions delete old snapshots (docs/snapshots.md, Retention).
		fail(w, http.StatusNotFound, "manifest %s not found: never published, or its snapshot was deleted; the session's snapshot list names those kept", h)
		return
	case err != nil:
		fail(w, http.StatusInternalServerError, "manifest %s: %v", h, err)
		return
	}
	if !immutable(w, r, quote(h), ManifestType) {
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// ValidSessionID is the shape of a session id in a URL.
var ValidSessionID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (s *Server) snapshots(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidSessionID.MatchString(id) {
		fail(w, http.StatusBadRequest, "bad session id %q: want 1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit", id)
		return
	}
	var list []SnapshotEntry
	ok := false
	if s.sessions != nil {
		list, ok = s.sessions.Snapshots(id)
	}
	if !ok {
		fail(w, http.StatusNotFound, "session %q not found", id)
		return
	}
	if list == nil {
		list = []SnapshotEntry{}
	}
	body, err := json.Marshal(SnapshotList{Session: id, Snapshots: list})
	if err != nil {
		fail(w, http.StatusInternalServerError, "%v", err)
		return
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Cache-Control", CacheSnapshots)
	h.Set("ETag", etag)
	if etagMatches(r, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	io.Copy(w, bytes.NewReader(body))
}
