package pagestore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Store holds pages by hash. Get returns the raw 4096 bytes, verified
// against the hash: a corrupted copy is refused with a *CorruptPageError,
// a missing one is ErrNotFound. Put is idempotent (the content is the
// name, so a second Put of the same hash has nothing to change).
type Store interface {
	Has(h Hash) bool
	Get(h Hash) ([]byte, error)
	Put(h Hash, raw []byte) error
}

// StoredGetter serves pages in their stored (compressed) form without
// decoding them: the page service sends these bytes as they are and leaves
// verification to the client, which must verify anyway because relays and
// HTTP caches in between are not trusted.
type StoredGetter interface {
	GetStored(h Hash) ([]byte, error)
}

// ManifestGetter serves encoded manifests by hash.
type ManifestGetter interface {
	GetManifest(h Hash) ([]byte, error)
}

func checkPut(h Hash, raw []byte) error {
	if len(raw) != PageSize {
		return fmt.Errorf("pagestore: put %s: a page is %d bytes, not %d", h, PageSize, len(raw))
	}
	if h == ZeroHash {
		return fmt.Errorf("pagestore: put %s: zero pages are never stored", h)
	}
	if got := HashPage(raw); got != h {
		return fmt.Errorf("pagestore: put %s: the page's content hashes to %s", h, got)
	}
	return nil
}

// MemStore is a Store in memory, for tests and short-lived tools.
type MemStore struct {
	mu        sync.RWMutex
	pages     map[Hash][]byte // stored form
	manifests map[Hash][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{pages: map[Hash][]byte{}, manifests: map[Hash][]byte{}}
}

func (s *MemStore) Has(h Hash) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.pages[h]
	return ok
}

func (s *MemStore) GetStored(h Hash) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.pages[h]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

func (s *MemStore) Get(h Hash) ([]byte, error) {
	b, err := s.GetStored(h)
	if err != nil {
		return nil, err
	}
	return Decode(h, b, "memory")
}

func (s *MemStore) Put(h Hash, raw []byte) error {
	if err := checkPut(h, raw); err != nil {
		return err
	}
	if s.Has(h) {
		return nil
	}
	enc, err := Encode(raw)
	if err != nil {
		return err
	}
	return s.PutStored(h, enc)
}

// PutStored stores an already encoded page as it is. It does not verify:
// tests use it to plant corrupt pages.
func (s *MemStore) PutStored(h Hash, stored []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages[h] = bytes.Clone(stored)
	return nil
}

// PutManifest stores m under its hash.
func (s *MemStore) PutManifest(m *Manifest) (Hash, error) {
	b, err := m.Encode()
	if err != nil {
		return Hash{}, err
	}
	h := Hash(sha256.Sum256(b))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifests[h] = b
	return h, nil
}

func (s *MemStore) GetManifest(h Hash) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.manifests[h]
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

// DirStore is a Store in a directory, for the server's sessions:
//
//	ROOT/pages/ab/abcdef….pg      a stored page (header byte + payload)
//	ROOT/manifests/ab/abcdef….mf  an encoded manifest
//	ROOT/holds/OWNER/abcdef…      manifest abcdef… is in use by OWNER (gc.go)
//	ROOT/gc.lock                  publishers and collection exclude each other
//
// The two-hex-digit fan-out keeps directories small (256 of them; a 64 MiB
// memory is 16384 pages, 64 per directory). Files are written to a
// temporary name in the same directory and renamed into place, so a reader
// in any process sees a whole file or none; two writers of the same hash
// write the same bytes, so whichever rename wins is right.
type DirStore struct {
	Root string
	// Sync makes every Put fsync the file before renaming it. Off by
	// default: a page torn by a crash is caught by Get's verification, and
	// the snapshot can be published again from the session directory.
	Sync bool
}

// OpenDir creates (if needed) and opens a DirStore.
func OpenDir(root string) (*DirStore, error) {
	for _, sub := range []string{"pages", "manifests"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			return nil, err
		}
	}
	return &DirStore{Root: root}, nil
}

// PagePath is where page h lives.
func (s *DirStore) PagePath(h Hash) string {
	x := h.String()
	return filepath.Join(s.Root, "pages", x[:2], x+".pg")
}

func (s *DirStore) manifestPath(h Hash) string {
	x := h.String()
	return filepath.Join(s.Root, "manifests", x[:2], x+".mf")
}

func (s *DirStore) Has(h Hash) bool {
	_, err := os.Stat(s.PagePath(h))
	return err == nil
}

func readOrNotFound(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return b, err
}

func (s *DirStore) GetStored(h Hash) ([]byte, error) { return readOrNotFound(s.PagePath(h)) }

func (s *DirStore) Get(h Hash) ([]byte, error) {
	b, err := s.GetStored(h)
	if err != nil {
		return nil, err
	}
	return Decode(h, b, s.PagePath(h))
}

func (s *DirStore) Put(h Hash, raw []byte) error {
	if err := checkPut(h, raw); err != nil {
		return err
	}
	if s.Has(h) {
		return nil
	}
	enc, err := Encode(raw)
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.PagePath(h), enc, s.Sync)
}

// PutManifest stores m under its hash and returns the hash.
func (s *DirStore) PutManifest(m *Manifest) (Hash, error) {
	b, err := m.Encode()
	if err != nil {
		return Hash{}, err
	}
	h := Hash(sha256.Sum256(b))
	if _, err := os.Stat(s.manifestPath(h)); err == nil {
		return h, nil
	}
	return h, WriteFileAtomic(s.manifestPath(h), b, s.Sync)
}

// GetManifest returns the encoded manifest h, verified against its name.
func (s *DirStore) GetManifest(h Hash) ([]byte, error) {
	b, err := readOrNotFound(s.manifestPath(h))
	if err != nil {
		return nil, err
	}
	if got := Hash(sha256.Sum256(b)); got != h {
		return nil, fmt.Errorf("%w: %s hashes to %s", ErrCorruptManifest, s.manifestPath(h), got)
	}
	return b, nil
}

// WriteFileAtomic writes b to path through a temporary file in the same
// directory and a rename, creating the directory if needed. Readers in
// other processes see the whole file or nothing.
func WriteFileAtomic(path string, b []byte, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
