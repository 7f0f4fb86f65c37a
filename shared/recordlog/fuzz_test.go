package recordlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// blockPayloads returns the decoded payloads of every non-empty block of a
// small real log, to seed the fuzzers.
func blockPayloads(t testing.TB) [][]byte {
	dir := t.TempDir()
	smallLog(t, dir, 60, 1<<20)
	path := segFiles(t, dir)[0]
	b, err := os.ReadFile(path)
	mustNil(t, err)
	_, blocks := scanBlocks(t, path)
	var out [][]byte
	for _, bl := range blocks {
		stored := b[bl.off+blockHeaderLen : bl.off+blockHeaderLen+int64(bl.n)]
		if bl.n == 0 {
			continue
		}
		if bl.flags&flagCompressed != 0 {
			if stored, err = inflate(stored); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, stored)
	}
	return out
}

func FuzzDecodeBlockPayload(f *testing.F) {
	for _, p := range blockPayloads(f) {
		f.Add(p)
	}
	f.Add([]byte{0, 0, 1, 0x01})
	f.Add([]byte{5, 3, 3, 0x41, 2, 4, 3, 0x43, 0x01, 7, 0, 0x40, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		tick, step, recs, err := decodeBlockPayload(p)
		if err != nil {
			return
		}
		// Only canonical payloads decode, so the writer's encoding of the
		// records must give back exactly the same bytes.
		var e encoder
		e.reset(tick, step)
		for i := range recs {
			if err := validate(&recs[i]); err != nil {
				t.Fatalf("decoded an invalid record %+v: %v", recs[i], err)
			}
			e.add(&recs[i])
		}
		if got := e.appendPayload(nil); !bytes.Equal(got, p) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", got, p)
		}
	})
}

func FuzzReadSegment(f *testing.F) {
	// Arguments: whether to put a valid header before b, whether to fix up
	// the block checksums in b, and b. Seeds: the body of a real
	// single-segment log, whole and cut short, behind a valid header; whole
	// segment files behind none.
	src := f.TempDir()
	smallLog(f, src, 12, 1<<20)
	seg, err := os.ReadFile(segFiles(f, src)[0])
	mustNil(f, err)
	_, hl, err := parseHeader(seg)
	mustNil(f, err)
	body := seg[hl:]
	f.Add(true, false, body)
	f.Add(true, true, body)
	f.Add(true, false, body[:len(body)/2])
	f.Add(true, false, []byte{})
	f.Add(false, false, seg)
	f.Add(false, false, seg[:hl+3])
	hdr := appendHeader(nil, &Header{ModuleHash: testHash(3), Params: []byte("p")})
	// One directory per worker process, rewritten by each run: a fresh
	// t.TempDir per input makes minimization crawl.
	dir := f.TempDir()
	path := filepath.Join(dir, SegmentName(0))
	f.Fuzz(func(t *testing.T, withHeader, fixCRC bool, b []byte) {
		if fixCRC {
			// Make the block checksums right so that mutations reach the
			// flag, decompression and record checks behind them.
			b = bytes.Clone(b)
			for off := 0; off+blockHeaderLen <= len(b); {
				n := int(binary.LittleEndian.Uint32(b[off:]))
				if n > len(b)-off-blockHeaderLen {
					break
				}
				stored := b[off+blockHeaderLen : off+blockHeaderLen+n]
				binary.LittleEndian.PutUint32(b[off+5:], crc32.Update(crc32.Update(0, castagnoli, b[off+4:off+5]), castagnoli, stored))
				off += blockHeaderLen + n
			}
		}
		if withHeader {
			b = append(bytes.Clone(hdr), b...)
		}
		if err := os.WriteFile(path, b, 0o666); err != nil {
			t.Fatal(err)
		}
		r, err := Open(dir, testHash(3), ReaderOptions{})
		if err != nil {
			if !isLogError(err) {
				t.Fatalf("Open: unexpected error %v", err)
			}
			return
		}
		defer r.Close()
		for n := 0; ; n++ {
			if n > len(b) {
				t.Fatalf("more records (%d) than bytes", n)
			}
			_, err := r.Next(context.Background())
			if err == nil {
				continue
			}
			if err != io.EOF && !isLogError(err) {
				t.Fatalf("Next: unexpected error %v", err)
			}
			return
		}
	})
}
