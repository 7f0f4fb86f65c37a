package pagestore

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"replaydesk/shared/snapshot"
)

// PageSize is the unit of content addressing: the snapshot's page.
const PageSize = snapshot.PageSize

// Hash names a page (SHA-256 of its 4096 raw bytes) or a manifest (SHA-256
// of its encoding).
type Hash [32]byte

// String is the canonical form: 64 lowercase hex digits. URLs and file
// names use only this form, so that one page has exactly one name in every
// cache.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash accepts only the canonical form, so that an uppercase or padded
// spelling cannot create a second cache entry for the same page.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 lowercase hex digits, got %d characters", clip(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, fmt.Errorf("hash %q: want 64 lowercase hex digits, found %q at %d", clip(s), c, i)
		}
	}
	hex.Decode(h[:], []byte(s))
	return h, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// HashPage is the name of a raw page.
func HashPage(raw []byte) Hash { return sha256.Sum256(raw) }

var zeroPage [PageSize]byte

// ZeroHash is the hash of the all-zero page. No store holds it: manifests
// elide zero pages, and fetchers make it up locally.
var ZeroHash = HashPage(zeroPage[:])

// IsZero reports whether a page is all zeros (bytes.Equal is vectorised).
func IsZero(p []byte) bool { return bytes.Equal(p, zeroPage[:len(p)]) }

// Stored-page encoding: one header byte, then the payload.
const (
	encRaw   = 0 // the 4096 raw bytes follow
	encFlate = 1 // a raw DEFLATE stream (RFC 1951) of the 4096 bytes follows
)

// MaxStored is the largest valid stored page: compression is only kept when
// it is smaller than the raw page, so nothing exceeds a header plus 4096.
const MaxStored = 1 + PageSize

// ErrNotFound: the store does not hold that page or manifest.
var ErrNotFound = errors.New("pagestore: not found")

// ErrCorruptPage wraps every page that does not decode or does not match
// its hash.
var ErrCorruptPage = errors.New("pagestore: corrupt page")

// CorruptPageError says which page was refused and why.
type CorruptPageError struct {
	Hash   Hash
	Where  string // a file or URL, if known
	Reason string
}

func (e *CorruptPageError) Error() string {
	w := ""
	if e.Where != "" {
		w = " (" + e.Where + ")"
	}
	return fmt.Sprintf("pagestore: corrupt page %s%s: %s; refused", e.Hash, w, e.Reason)
}

func (e *CorruptPageError) Unwrap() error { return ErrCorruptPage }

// Writers are pooled: a flate.Writer allocates hundreds of KiB, far more
// than the page it compresses.
var writers = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

var readers = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// Encode returns the stored form of a raw page: DEFLATE at the fastest
// level when that is smaller, else the raw bytes. Random-looking pages
// (encrypted or already compressed data) stay raw, so reading them costs
// no inflate.
func Encode(raw []byte) ([]byte, error) {
	if len(raw) != PageSize {
		return nil, fmt.Errorf("pagestore: a page is %d bytes, not %d", PageSize, len(raw))
	}
	var buf bytes.Buffer
	buf.Grow(PageSize / 2)
	buf.WriteByte(encFlate)
	w := writers.Get().(*flate.Writer)
	w.Reset(&buf)
	_, err := w.Write(raw)
	if err == nil {
		err = w.Close()
	}
	writers.Put(w)
	if err != nil {
		return nil, err
	}
	if buf.Len() >= MaxStored {
		out := make([]byte, MaxStored)
		out[0] = encRaw
		copy(out[1:], raw)
		return out, nil
	}
	return bytes.Clone(buf.Bytes()), nil
}

// Decode turns a stored page back into its raw bytes and checks them
// against h. where names the copy in errors.
func Decode(h Hash, stored []byte, where string) ([]byte, error) {
	raw, err := decodeRaw(stored)
	if err != nil {
		return nil, &CorruptPageError{Hash: h, Where: where, Reason: err.Error()}
	}
	if got := HashPage(raw); got != h {
		return nil, &CorruptPageError{Hash: h, Where: where, Reason: "its content hashes to " + got.String()}
	}
	return raw, nil
}

func decodeRaw(stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, errors.New("empty")
	}
	if len(stored) > MaxStored {
		return nil, fmt.Errorf("%d bytes stored, at most %d are valid", len(stored), MaxStored)
	}
	switch stored[0] {
	case encRaw:
		if len(stored) != MaxStored {
			return nil, fmt.Errorf("raw page of %d bytes, want %d", len(stored)-1, PageSize)
		}
		return bytes.Clone(stored[1:]), nil
	case encFlate:
		r := readers.Get().(io.ReadCloser)
		defer readers.Put(r)
		r.(flate.Resetter).Reset(bytes.NewReader(stored[1:]), nil)
		raw := make([]byte, PageSize)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, fmt.Errorf("inflate: %v", err)
		}
		// The stream must end exactly at 4096 bytes: a longer one is not a page.
		var one [1]byte
		if n, err := r.Read(one[:]); n != 0 || err != io.EOF {
			return nil, errors.New("inflates to more than one page")
		}
		return raw, nil
	default:
		return nil, fmt.Errorf("unknown encoding %d", stored[0])
	}
}

// Page is one page as fetched: its raw bytes (verified) and the stored form
// it arrived in, so that a cache can keep the compressed bytes without
// compressing them again.
type Page struct {
	Raw    []byte
	Stored []byte
}
