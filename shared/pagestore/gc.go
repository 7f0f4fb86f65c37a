package pagestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Holds and collection. A DirStore is shared by every session of a server,
// and by other processes (`server serve`) opened on the same root, so a page
// may belong to many snapshots of many sessions. Each publisher holds the
// manifests it serves:
//
//	ROOT/holds/OWNER/HASH   (empty) manifest HASH is in use by OWNER
//	ROOT/gc.lock            flock: shared while publishing, exclusive while collecting
//
// Release drops holds and deletes what no hold reaches any more: the
// released manifests that no other owner holds, and their pages that no
// remaining held manifest names. It runs under the exclusive lock, and a
// publisher holds the shared lock from its first Has to its Hold, so a page
// a publisher found already stored (and did not write again) cannot vanish
// before its manifest is held. Pages and manifests no hold ever named (from
// before holds existed, or from tools that do not hold) are never deleted.

// ValidOwner is the shape of a hold's owner.
var ValidOwner = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$`)

func (s *DirStore) holdDir(owner string) string { return filepath.Join(s.Root, "holds", owner) }

// Hold records that owner uses manifest h (already stored): Release by
// anyone else deletes neither it nor its pages. Call it under PublishLock,
// after the pages and the manifest are stored.
func (s *DirStore) Hold(owner string, h Hash) error {
	if !ValidOwner.MatchString(owner) {
		return fmt.Errorf("pagestore: bad owner %q", owner)
	}
	p := filepath.Join(s.holdDir(owner), h.String())
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return WriteFileAtomic(p, nil, s.Sync)
}

// Held lists the manifests owner holds.
func (s *DirStore) Held(owner string) ([]Hash, error) {
	if !ValidOwner.MatchString(owner) {
		return nil, fmt.Errorf("pagestore: bad owner %q", owner)
	}
	return s.heldIn(s.holdDir(owner))
}

func (s *DirStore) heldIn(dir string) ([]Hash, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Hash, 0, len(ents))
	for _, e := range ents {
		if h, err := ParseHash(e.Name()); err == nil {
			out = append(out, h)
		}
	}
	return out, nil
}

// GCStats says what a Release deleted.
type GCStats struct {
	Released  int   // holds dropped
	Manifests int   // manifests deleted
	Pages     int   // pages deleted
	Bytes     int64 // bytes freed (pages and manifests)
	// Held is how many holds (all owners) remain.
	Held int
}

// Release drops owner's holds on manifests hs and deletes the manifests and
// pages no remaining hold reaches (see above). A manifest that cannot be
// read is released without deleting its pages: a page is deleted only when
// it is known to be unused.
func (s *DirStore) Release(owner string, hs ...Hash) (GCStats, error) {
	var st GCStats
	if !ValidOwner.MatchString(owner) {
		return st, fmt.Errorf("pagestore: bad owner %q", owner)
	}
	unlock, err := s.lock(true)
	if err != nil {
		return st, err
	}
	defer unlock()
	for _, h := range hs {
		err := os.Remove(filepath.Join(s.holdDir(owner), h.String()))
		if err == nil {
			st.Released++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return st, err
		}
	}
	// Every remaining hold, of every owner.
	held := map[Hash]bool{}
	owners, err := os.ReadDir(filepath.Join(s.Root, "holds"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	for _, o := range owners {
		l, err := s.heldIn(filepath.Join(s.Root, "holds", o.Name()))
		if err != nil {
			return st, err
		}
		for _, h := range l {
			if !held[h] {
				held[h] = true
				st.Held++
			}
		}
	}
	// Candidates: the released manifests nobody holds, and their pages.
	pages := map[Hash]bool{}
	var manifests []Hash
	for _, h := range hs {
		if held[h] {
			continue
		}
		m, err := s.readManifest(h)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			continue // unreadable: its pages are not known to be unused
		}
		manifests = append(manifests, h)
		for _, p := range m.Pages {
			pages[p.Hash] = true
		}
	}
	if len(pages) > 0 {
		for h := range held {
			m, err := s.readManifest(h)
			if err != nil {
				// A held manifest we cannot read may name any page: delete
				// none of this round's candidates.
				return st, fmt.Errorf("pagestore: collecting: held manifest %s: %w", h, err)
			}
			for _, p := range m.Pages {
				delete(pages, p.Hash)
			}
		}
	}
	for h := range pages {
		n, err := remove(s.PagePath(h))
		if err != nil {
			return st, err
		}
		if n >= 0 {
			st.Pages++
			st.Bytes += n
		}
	}
	for _, h := range manifests {
		n, err := remove(s.manifestPath(h))
		if err != nil {
			return st, err
		}
		if n >= 0 {
			st.Manifests++
			st.Bytes += n
		}
	}
	return st, nil
}

func (s *DirStore) readManifest(h Hash) (*Manifest, error) {
	b, err := s.GetManifest(h)
	if err != nil {
		return nil, err
	}
	return DecodeManifest(b)
}

// remove deletes path and returns its size (-1 if it was not there).
func remove(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	return fi.Size(), nil
}

// PublishLock is held by a publisher from its first Has to its Hold (see
// above); unlock releases it. It is shared: publishers do not wait for each
// other, only for a Release.
func (s *DirStore) PublishLock() (unlock func(), err error) { return s.lock(false) }
