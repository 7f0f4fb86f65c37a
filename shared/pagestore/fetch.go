package pagestore

import (
	"context"
	"fmt"
	"slices"

	"replaydesk/shared/snapshot"
)

// Source fetches many pages by hash in one call; every page it returns is
// the verified raw 4096 bytes. A missing page is an error, not a gap in the
// map. The page service client, the client's page cache and a Store (via
// StoreSource) all are Sources, so a restore does not care where pages come
// from.
type Source interface {
	Fetch(ctx context.Context, hashes []Hash) (map[Hash][]byte, error)
}

// StoredSource is a Source that can also hand over the stored form each
// page arrived in, so a cache in front of it can keep the compressed bytes
// without compressing them again.
type StoredSource interface {
	Source
	FetchPages(ctx context.Context, hashes []Hash) (map[Hash]Page, error)
}

// StoreSource adapts a Store to a Source.
type StoreSource struct{ Store Store }

func (s StoreSource) Fetch(ctx context.Context, hashes []Hash) (map[Hash][]byte, error) {
	out := make(map[Hash][]byte, len(hashes))
	for _, h := range hashes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, ok := out[h]; ok {
			continue
		}
		if h == ZeroHash {
			out[h] = make([]byte, PageSize)
			continue
		}
		p, err := s.Store.Get(h)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", h, err)
		}
		out[h] = p
	}
	return out, nil
}

// Fetcher serves a manifest's memory page by page: the interface a lazy
// restore uses to fill page faults. Pages answers many indices in one round
// trip (read-ahead, working-set prefetch).
type Fetcher interface {
	Page(index int) ([]byte, error)
	Pages(indices []int) ([][]byte, error)
}

// ManifestFetcher is a Fetcher over a manifest and a Source. Zero pages
// are made up locally and never fetched.
type ManifestFetcher struct {
	ctx context.Context
	m   *Manifest
	src Source
}

// NewFetcher returns a Fetcher for m's memory; ctx bounds every fetch.
func NewFetcher(ctx context.Context, m *Manifest, src Source) *ManifestFetcher {
	return &ManifestFetcher{ctx: ctx, m: m, src: src}
}

func (f *ManifestFetcher) Page(index int) ([]byte, error) {
	ps, err := f.Pages([]int{index})
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// Pages returns the raw pages at indices, in the same order, fetching all
// the non-zero ones in one Source call.
func (f *ManifestFetcher) Pages(indices []int) ([][]byte, error) {
	n := f.m.NumPages()
	hs := make([]Hash, len(indices))
	var want []Hash
	for i, idx := range indices {
		if idx < 0 || idx >= n {
			return nil, fmt.Errorf("pagestore: page %d is outside memory (%d pages)", idx, n)
		}
		if h, ok := f.m.Lookup(idx); ok {
			hs[i] = h
			want = append(want, h)
		} else {
			hs[i] = ZeroHash
		}
	}
	got := map[Hash][]byte{}
	if len(want) > 0 {
		var err error
		if got, err = f.src.Fetch(f.ctx, want); err != nil {
			return nil, err
		}
	}
	out := make([][]byte, len(indices))
	for i, h := range hs {
		if h == ZeroHash {
			out[i] = make([]byte, PageSize)
			continue
		}
		p, ok := got[h]
		if !ok || len(p) != PageSize {
			return nil, fmt.Errorf("pagestore: source did not return page %d (%s)", indices[i], h)
		}
		out[i] = p
	}
	return out, nil
}

// Assemble rebuilds the full snapshot of m from st: the eager restore path.
func Assemble(m *Manifest, st Store) (*snapshot.Snapshot, error) {
	return AssembleFrom(context.Background(), m, StoreSource{st}, 0)
}

// AssembleFrom rebuilds the snapshot of m from any Source, asking it for
// batch pages at a time (0: 256), so a remote source is asked in a few
// round trips rather than one per page.
func AssembleFrom(ctx context.Context, m *Manifest, src Source, batch int) (*snapshot.Snapshot, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	if batch <= 0 {
		batch = 256
	}
	s := &snapshot.Snapshot{
		ModuleHash: m.ModuleHash, Tick: m.Tick, Step: m.Step, LogPos: m.LogPos,
		Globals: slices.Clone(m.Globals), Device: slices.Clone(m.Device),
		Memory: make([]byte, m.NumPages()*PageSize),
	}
	// Fetch each distinct page once and copy it wherever it occurs, batch by
	// batch, so no second copy of the memory is held.
	where := make(map[Hash][]uint32, len(m.Pages))
	var hashes []Hash
	for _, p := range m.Pages {
		if _, ok := where[p.Hash]; !ok {
			hashes = append(hashes, p.Hash)
		}
		where[p.Hash] = append(where[p.Hash], p.Index)
	}
	for lo := 0; lo < len(hashes); lo += batch {
		chunk := hashes[lo:min(lo+batch, len(hashes))]
		got, err := src.Fetch(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, h := range chunk {
			p, ok := got[h]
			if !ok || len(p) != PageSize {
				return nil, fmt.Errorf("pagestore: source did not return page %s", h)
			}
			for _, idx := range where[h] {
				copy(s.Memory[int(idx)*PageSize:], p)
			}
		}
	}
	s.Memory = s.Memory[:m.MemorySize]
	return s, nil
}
