package pageservice

import (
	"encoding/binary"
	"errors"
	"fmt"

	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
)

// Protocol limits. A GET batch names its pages in the URL: 64 hashes make a
// URL of about 4.4 KB, inside the 8 KB that common proxies and CDNs accept.
// A POST batch carries binary hashes in its body and may be larger; the
// response to 1024 pages is at most about 4 MiB.
const (
	MaxGetBatch  = 64
	MaxPostBatch = 1024
)

// Content types.
const (
	PageType     = "application/octet-stream"
	BatchType    = "application/x-replaydesk-pages"
	ManifestType = "application/x-replaydesk-manifest"
)

// CacheImmutable is for everything named by its content.
const CacheImmutable = "public, max-age=31536000, immutable"

// CacheSnapshots is for a session's snapshot list, which grows: caches may
// keep it a few seconds (a late joiner that misses the newest snapshot
// starts from the one before and replays a little more log), then must
// revalidate (cheap, with its ETag).
const CacheSnapshots = "public, max-age=5, must-revalidate"

var batchMagic = [5]byte{'R', 'D', 'P', 'B', 1}

// Entry is one page in a batch response, in its stored form.
type Entry struct {
	Hash   pagestore.Hash
	Stored []byte
}

// AppendBatch appends the batch framing of entries to dst:
//
//	magic "RDPB\x01"
//	uvarint count
//	count × { hash (32), uvarint length (1..4097), stored page }
//
// There is no checksum: every page is checked against its hash.
func AppendBatch(dst []byte, entries []Entry) []byte {
	dst = append(dst, batchMagic[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for _, e := range entries {
		dst = append(dst, e.Hash[:]...)
		dst = binary.AppendUvarint(dst, uint64(len(e.Stored)))
		dst = append(dst, e.Stored...)
	}
	return dst
}

// MaxBatchBytes bounds a batch response of n pages, so that a client can
// cap how much it reads before decoding.
func MaxBatchBytes(n int) int64 {
	return int64(len(batchMagic)) + binary.MaxVarintLen64 + int64(n)*(32+binary.MaxVarintLen64+pagestore.MaxStored)
}

// ErrBadBatch wraps every batch framing violation.
var ErrBadBatch = errors.New("pageservice: malformed batch response")

// DecodeBatch parses a batch response of at most maxPages pages. It checks
// the framing only; the stored pages' contents are verified by the caller
// (pagestore.Decode). Entries alias b.
func DecodeBatch(b []byte, maxPages int) ([]Entry, error) {
	fail := func(p int, f string, a ...any) ([]Entry, error) {
		return nil, fmt.Errorf("%w: %s at byte %d", ErrBadBatch, fmt.Sprintf(f, a...), p)
	}
	if len(b) < len(batchMagic) || string(b[:len(batchMagic)]) != string(batchMagic[:]) {
		return fail(0, "bad magic")
	}
	p := len(batchMagic)
	n, k := binary.Uvarint(b[p:])
	if k <= 0 || k != uvarintLen(n) {
		return fail(p, "bad count")
	}
	p += k
	if n > uint64(maxPages) {
		return fail(p, "%d pages, at most %d expected", n, maxPages)
	}
	// Each entry is at least 34 bytes: refuse a count the body cannot hold
	// before allocating for it.
	if n*34 > uint64(len(b)-p) {
		return fail(p, "%d pages cannot fit in %d bytes", n, len(b)-p)
	}
	out := make([]Entry, n)
	for i := range out {
		if len(b)-p < 32 {
			return fail(p, "page %d: hash runs past the end", i)
		}
		copy(out[i].Hash[:], b[p:p+32])
		p += 32
		l, k := binary.Uvarint(b[p:])
		if k <= 0 || k != uvarintLen(l) {
			return fail(p, "page %d: bad length", i)
		}
		p += k
		if l == 0 || l > pagestore.MaxStored {
			return fail(p, "page %d: length %d (want 1..%d)", i, l, pagestore.MaxStored)
		}
		if l > uint64(len(b)-p) {
			return fail(p, "page %d: %d bytes run past the end", i, l)
		}
		out[i].Stored = b[p : p+int(l)]
		p += int(l)
	}
	if p != len(b) {
		return fail(p, "trailing bytes")
	}
	return out, nil
}

// SnapshotEntry is one snapshot in a session's list: enough to pick one
// (by tick) and fetch its manifest.
type SnapshotEntry struct {
	N          int           `json:"n"`
	Tick       uint64        `json:"tick"`
	Step       uint64        `json:"step"`
	LogPos     recordlog.Pos `json:"log_pos"`
	Manifest   string        `json:"manifest"` // hash, canonical hex
	Pages      int           `json:"pages"`    // non-zero pages
	MemorySize uint64        `json:"memory_size"`
}

// SnapshotList is the body of GET /sessions/{id}/snapshots.
type SnapshotList struct {
	Session   string          `json:"session"`
	Snapshots []SnapshotEntry `json:"snapshots"`
}

// uvarintLen is the length of v's shortest encoding: longer (padded)
// encodings are refused, so a batch decodes only from the bytes that encode it.
func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
