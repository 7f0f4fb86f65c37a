// Package sessionhttp serves recorded sessions over HTTP so that a replay
// client elsewhere can replay them (DESIGN.md sections 5, 8 and 9): each
// session's files (session.json, the module, the base disk image), its log
// segments, and its snapshots as content-addressed pages and manifests
// through the page service (docs/page-service.md).
//
// A live session keeps a bounded set of snapshots (the recorder prunes its
// directory, docs/snapshots.md): after each Publish the server drops from
// its list the snapshots the directory no longer indexes and releases their
// manifests in the page store, which deletes the pages no other snapshot of
// any session holds. Each session directory holds its manifests under an
// owner name of its own, so sessions sharing the store never delete each
// other's pages.
//
// Sealed log segments never change and the module is named by its hash in
// session.json, so both are served as immutable; session.json and the list
// of segments change while a session records, so they are revalidated.
//
// It must not know about the machine or how a replay runs: it serves bytes
// from session directories and a page store.
package sessionhttp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// Server serves a set of session directories.
type Server struct {
	mu       sync.RWMutex
	sessions map[string]string // id -> directory
	owners   map[string]string // id -> its holds' owner in the store
	disks    map[string]DiskInfo
	store    *pagestore.DirStore
	index    *pageservice.SessionIndex
	pages    http.Handler
	log      zerolog.Logger
}

// New returns a server whose pages live in store.
func New(store *pagestore.DirStore, log zerolog.Logger) *Server {
	idx := pageservice.NewSessionIndex()
	return &Server{sessions: map[string]string{}, owners: map[string]string{}, disks: map[string]DiskInfo{}, store: store, index: idx,
		pages: pageservice.NewServer(store, idx), log: log}
}

// Add publishes a session directory's snapshots to the page store and
// serves it under its directory's base name, which it returns.
func (s *Server) Add(dir string) (string, error) {
	d, err := sessiondir.Open(dir)
	if err != nil {
		return "", err
	}
	id := filepath.Base(filepath.Clean(dir))
	if !pageservice.ValidSessionID.MatchString(id) {
		return "", fmt.Errorf("session directory name %q is not a valid session id", id)
	}
	s.mu.Lock()
	if _, dup := s.sessions[id]; dup {
		s.mu.Unlock()
		return "", fmt.Errorf("two sessions named %q", id)
	}
	owner := ownerOf(id, dir)
	s.sessions[id] = dir
	s.owners[id] = owner
	s.mu.Unlock()
	s.index.AddSession(id)
	if err := pageservice.PublishSessionDir(d, id, owner, s.store, s.index); err != nil {
		return "", fmt.Errorf("publishing %s: %w", dir, err)
	}
	if d.Disk != nil {
		// The frozen base disk, block by block, like memory pages: a
		// replayer fetches (and caches) only the blocks its guest reads.
		_, h, err := pageservice.PublishHeld(s.store, owner, &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Memory: d.Disk}, nil)
		if err != nil {
			return "", fmt.Errorf("publishing %s's disk: %w", dir, err)
		}
		s.mu.Lock()
		s.disks[id] = DiskInfo{Manifest: h.String(), Blocks: len(d.Disk) / snapshot.PageSize}
		s.mu.Unlock()
	}
	// Holds left by a run that stopped between the recorder deleting a
	// snapshot and this server releasing it.
	s.releaseUnlisted(id)
	return id, nil
}

// ownerOf names a session directory's holds: its id for people reading the
// store, and a hash of its absolute path because two directories of the
// same name (sessions/desk of two runs) are different sessions.
func ownerOf(id, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	sum := sha256.Sum256([]byte(abs))
	return id + "-" + hex.EncodeToString(sum[:8])
}

// releaseUnlisted releases every manifest session id holds that is neither
// listed nor its disk: the page store then deletes what no one else holds.
func (s *Server) releaseUnlisted(id string) {
	s.mu.RLock()
	owner, disk := s.owners[id], s.disks[id].Manifest
	s.mu.RUnlock()
	s.mu.RLock()
	dir := s.sessions[id]
	s.mu.RUnlock()
	listed := map[string]bool{disk: true}
	numbers := map[int]bool{}
	l, _ := s.index.Snapshots(id)
	for _, e := range l {
		listed[e.Manifest] = true
		numbers[e.N] = true
	}
	// A snapshot indexed but not listed yet is being published (by this
	// server, or another process serving the same directory), and its hold
	// is not known here by number: release nothing until it is listed.
	if meta, err := sessiondir.ReadMeta(dir); err == nil {
		for _, e := range meta.Snapshots {
			if !numbers[e.N] {
				return
			}
		}
	}
	held, err := s.store.Held(owner)
	if err != nil {
		s.log.Warn().Err(err).Str("session", id).Msg("listing the session's holds in the page store")
		return
	}
	var drop []pagestore.Hash
	for _, h := range held {
		if !listed[h.String()] {
			drop = append(drop, h)
		}
	}
	if len(drop) == 0 {
		return
	}
	st, err := s.store.Release(owner, drop...)
	ev := s.log.Info()
	if err != nil {
		ev = s.log.Error().Err(err)
	}
	ev.Str("session", id).Int("released", st.Released).Int("manifests_deleted", st.Manifests).
		Int("pages_deleted", st.Pages).Int64("bytes_freed", st.Bytes).Int("holds_left", st.Held).
		Msg("deleted snapshots released from the page store")
}

// Publish publishes snapshot n of session id (already stored in its
// directory) while the session runs, and lists it: a live session calls it
// for each new snapshot before announcing it. It then follows the
// directory's index: snapshots the recorder deleted are no longer listed,
// and their pages and manifests are released (see the package comment).
func (s *Server) Publish(id string, n int, snap *snapshot.Snapshot, workingSet []uint32) (pageservice.SnapshotEntry, error) {
	s.mu.RLock()
	dir, ok := s.sessions[id]
	owner := s.owners[id]
	s.mu.RUnlock()
	if !ok {
		return pageservice.SnapshotEntry{}, fmt.Errorf("publishing snapshot %d of %s: no such session", n, id)
	}
	meta, err := sessiondir.ReadMeta(dir)
	if err != nil {
		return pageservice.SnapshotEntry{}, fmt.Errorf("publishing snapshot %d of %s: %w", n, id, err)
	}
	indexed := map[int]bool{}
	for _, e := range meta.Snapshots {
		indexed[e.N] = true
	}
	if !indexed[n] {
		return pageservice.SnapshotEntry{}, fmt.Errorf("publishing snapshot %d of %s: the session deleted it before it was published", n, id)
	}
	m, h, err := pageservice.PublishHeld(s.store, owner, snap, workingSet)
	if err != nil {
		return pageservice.SnapshotEntry{}, fmt.Errorf("publishing snapshot %d of %s: %w", n, id, err)
	}
	e := pageservice.EntryFor(n, m, h)
	s.index.Add(id, e)
	if gone := s.index.Retain(id, func(e pageservice.SnapshotEntry) bool { return indexed[e.N] }); len(gone) > 0 {
		s.releaseUnlisted(id)
	}
	return e, nil
}

// Snapshots lists session id's published snapshots, oldest first.
func (s *Server) Snapshots(id string) []pageservice.SnapshotEntry {
	l, _ := s.index.Snapshots(id)
	return l
}

// DiskInfo names the manifest of a session's base disk (block i = page i).
type DiskInfo struct {
	Manifest string `json:"manifest"`
	Blocks   int    `json:"blocks"`
}

// Handler routes the session files and the page service.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions/{id}/files/{name}", s.serveFile)
	mux.HandleFunc("GET /sessions/{id}/disk", s.serveDisk)
	mux.HandleFunc("GET /sessions/{id}/log/", s.serveLogList)
	mux.HandleFunc("GET /sessions/{id}/log/{seg}", s.serveSegment)
	mux.Handle("/", s.pages) // /pages, /manifests, /sessions/{id}/snapshots
	return mux
}

func (s *Server) dir(w http.ResponseWriter, r *http.Request) (string, bool) {
	s.mu.RLock()
	dir, ok := s.sessions[r.PathValue("id")]
	s.mu.RUnlock()
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
	}
	return dir, ok
}

// Files a client may fetch, and whether they are immutable.
var files = map[string]bool{"session.json": false, "module.wasm": true, "disk.img": true}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	dir, ok := s.dir(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	immutable, known := files[name]
	if !known {
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	setCache(w, immutable)
	http.ServeFile(w, r, filepath.Join(dir, name))
}

func (s *Server) serveDisk(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.dir(w, r); !ok {
		return
	}
	s.mu.RLock()
	info, ok := s.disks[r.PathValue("id")]
	s.mu.RUnlock()
	if !ok {
		http.Error(w, "this session has no disk", http.StatusNotFound)
		return
	}
	setCache(w, true) // a session's base disk never changes
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}

// Segment is one entry of a session's log listing.
type Segment struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

func (s *Server) serveLogList(w http.ResponseWriter, r *http.Request) {
	dir, ok := s.dir(w, r)
	if !ok {
		return
	}
	segs, err := listSegments(filepath.Join(dir, "log"))
	if err != nil {
		http.Error(w, "listing the log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	setCache(w, false)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(segs)
}

func (s *Server) serveSegment(w http.ResponseWriter, r *http.Request) {
	dir, ok := s.dir(w, r)
	if !ok {
		return
	}
	seg := r.PathValue("seg")
	if strings.ContainsAny(seg, `/\`) || !strings.HasSuffix(seg, ".seg") {
		http.Error(w, "bad segment name", http.StatusBadRequest)
		return
	}
	segs, err := listSegments(filepath.Join(dir, "log"))
	if err != nil || len(segs) == 0 {
		http.Error(w, "no log", http.StatusNotFound)
		return
	}
	// Every segment but the last is complete forever; the last may still
	// grow, so caches revalidate it (ServeFile answers with Last-Modified).
	setCache(w, seg != segs[len(segs)-1].Name)
	http.ServeFile(w, r, filepath.Join(dir, "log", seg))
}

func listSegments(dir string) ([]Segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".seg") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, Segment{Name: e.Name(), Bytes: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func setCache(w http.ResponseWriter, immutable bool) {
	if immutable {
		w.Header().Set("Cache-Control", pageservice.CacheImmutable)
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
}
