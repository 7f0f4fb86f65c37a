package recordlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// decodeBlockPayload decodes a whole payload at once.
func decodeBlockPayload(p []byte) (tick, step uint64, recs []Record, err error) {
	var bd blockDecoder
	tick, step, err = bd.init(p)
	if err != nil {
		return 0, 0, nil, err
	}
	for bd.left > 0 {
		var r Record
		if err := bd.next(&r); err != nil {
			return 0, 0, recs, err
		}
		recs = append(recs, r)
	}
	return tick, step, recs, nil
}

func testHash(b byte) ModuleHash {
	var h ModuleHash
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func recEqual(a, b Record) bool {
	return a.Kind == b.Kind && a.N == b.N && a.Fn == b.Fn && equalArgs(a.Args, b.Args) &&
		a.Ret == b.Ret && bytes.Equal(a.Data, b.Data) && a.FBHash == b.FBHash && a.MemHash == b.MemHash
}

func cloneRec(r Record) Record {
	r.Args = append([]uint64(nil), r.Args...)
	r.Data = bytes.Clone(r.Data)
	return r
}

// gen makes random records that exercise every encoding path.
type gen struct {
	rng  *rand.Rand
	prev [MaxFn + 1][]uint64
}

func (g *gen) data() []byte {
	var n int
	switch x := g.rng.IntN(1000); {
	case x < 400:
		n = 0
	case x < 800:
		n = 1 + g.rng.IntN(16)
	case x < 950:
		n = 17 + g.rng.IntN(1000)
	default:
		n = 1000 + g.rng.IntN(8000)
	}
	b := make([]byte, n)
	if g.rng.IntN(2) == 0 {
		for i := range b { // compressible
			b[i] = byte(i / 64)
		}
	} else {
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
	}
	return b
}

func (g *gen) record() Record {
	rng := g.rng
	switch x := rng.IntN(100); {
	case x < 20:
		return Record{Kind: KindStep}
	case x < 30:
		n := uint64(1 + rng.IntN(100))
		if rng.IntN(10) == 0 {
			n = rng.Uint64()>>1 + 1
		}
		return Record{Kind: KindIdle, N: n}
	case x < 35:
		r := Record{Kind: KindCheckpoint, FBHash: rng.Uint64()}
		if rng.IntN(2) == 0 {
			r.MemHash = rng.Uint64()
		}
		return r
	}
	fn := uint8(rng.IntN(6))
	if rng.IntN(4) == 0 {
		fn = uint8(rng.IntN(MaxFn + 1))
	}
	r := Record{Kind: KindCall, Fn: fn}
	if rng.IntN(2) == 0 {
		r.Args = append([]uint64(nil), g.prev[fn]...)
	} else {
		r.Args = make([]uint64, rng.IntN(MaxArgs+1))
		for i := range r.Args {
			switch rng.IntN(4) {
			case 0:
				r.Args[i] = rng.Uint64()
			case 1:
				r.Args[i] = uint64(rng.IntN(100))
			case 2:
				if i < len(g.prev[fn]) {
					r.Args[i] = g.prev[fn][i] + uint64(rng.IntN(5)) - 2
				}
			}
		}
	}
	g.prev[fn] = r.Args
	if rng.IntN(2) == 0 {
		r.Ret = rng.Uint64() >> rng.IntN(64)
	}
	r.Data = g.data()
	return r
}

func advanceTS(tick, step *uint64, r Record) {
	switch r.Kind {
	case KindStep:
		*tick++
		*step++
	case KindIdle:
		*tick += r.N
	}
}

// readAll reads a whole log; the error is what ended it (io.EOF when sealed).
func readAll(dir string, want ModuleHash) ([]Record, error) {
	r, err := Open(dir, want, ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readRest(r)
}

func readRest(r *Reader) ([]Record, error) {
	var out []Record
	for {
		rec, err := r.Next(context.Background())
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

// isLogError reports whether err is one of the errors a damaged or
// unfinished log may produce.
func isLogError(err error) bool {
	var ce *CorruptError
	var me *ModuleMismatchError
	return errors.As(err, &ce) || errors.As(err, &me) || errors.Is(err, ErrUnsealed)
}

type blockInfo struct {
	off   int64
	flags byte
	n     uint32
}

// scanBlocks lists the blocks of one segment file without the reader.
func scanBlocks(t testing.TB, path string) (hdrLen int64, blocks []blockInfo) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, hl, err := parseHeader(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	off := int64(hl)
	for off < int64(len(b)) {
		n := binary.LittleEndian.Uint32(b[off:])
		blocks = append(blocks, blockInfo{off, b[off+4], n})
		off += blockHeaderLen + int64(n)
	}
	return int64(hl), blocks
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return m
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	for _, p := range segFiles(t, src) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(p)), b, 0o666); err != nil {
			t.Fatal(err)
		}
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func expectEOF(t testing.TB, got []Record, err error, want []Record) {
	t.Helper()
	if err != io.EOF {
		t.Fatalf("read ended with %v after %d records, want io.EOF", err, len(got))
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !recEqual(got[i], want[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
