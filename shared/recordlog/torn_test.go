package recordlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// liveLog writes blocks of key-press-like calls the way a live server does
// (flushed often, then Detach: left open for a restart) and returns the
// records and the last segment's path.
func liveLog(t *testing.T, dir string, blocks int) ([]Record, string) {
	t.Helper()
	w, err := Create(dir, Header{ModuleHash: testHash(3), Params: []byte("p")}, WriterOptions{SegmentBytes: 600})
	mustNil(t, err)
	var recs []Record
	for i := 0; i < blocks; i++ {
		for _, r := range []Record{
			{Kind: KindStep},
			{Kind: KindCall, Fn: 5, Args: []uint64{uint64(i)}, Data: []byte("key " + string(rune('a'+i%26)))},
			{Kind: KindCall, Fn: 5, Args: []uint64{uint64(i)}, Data: []byte("key up")},
			{Kind: KindIdle, N: 3},
		} {
			mustNil(t, w.Append(r))
			recs = append(recs, cloneRec(r))
		}
		mustNil(t, w.Flush())
	}
	mustNil(t, w.Detach())
	files := segFiles(t, dir)
	return recs, files[len(files)-1]
}

// logTo returns a logger writing JSON lines into buf.
func logTo(buf *bytes.Buffer) *zerolog.Logger {
	l := zerolog.New(buf)
	return &l
}

// Finding 6 of issue 9: the length of the last block on disk changed to
// point past the end of the file made Resume take a complete, already
// broadcast block for a torn tail and cut it, silently. Now the reader and
// Resume see that the bytes present hold that whole block and report
// corruption naming the segment and offset; the file is left as it was.
func TestDamagedLengthIsNotATornTail(t *testing.T) {
	src := t.TempDir()
	recs, last := liveLog(t, src, 40)
	_, blocks := scanBlocks(t, last)
	if len(segFiles(t, src)) < 2 || len(blocks) < 3 {
		t.Fatalf("setup: %d segments, %d blocks in the last", len(segFiles(t, src)), len(blocks))
	}
	orig, err := os.ReadFile(last)
	mustNil(t, err)
	seg := uint32(len(segFiles(t, src)) - 1)
	type damage struct {
		name  string
		block blockInfo
		at    int // byte of the length field
		x     byte
	}
	lastBlock, middle := blocks[len(blocks)-1], blocks[len(blocks)-2]
	var cases []damage
	for _, d := range []struct {
		at int
		x  byte
	}{{0, 0x80}, {0, 0xF0}, {1, 0x01}, {1, 0x40}, {2, 0x01}, {2, 0x7F}} {
		cases = append(cases, damage{"last block", lastBlock, d.at, d.x})
	}
	// A block before the last, pointing past the end too: cutting there
	// would drop every block after it.
	cases = append(cases, damage{"second to last block", middle, 2, 0x01})
	for _, c := range cases {
		dir := t.TempDir()
		copyDir(t, src, dir)
		path := filepath.Join(dir, filepath.Base(last))
		b := bytes.Clone(orig)
		b[c.block.off+int64(c.at)] ^= c.x
		if n := binary.LittleEndian.Uint32(b[c.block.off:]); int64(n) <= int64(len(b))-c.block.off-blockHeaderLen || n > MaxBlockPayload {
			t.Fatalf("%s byte %d ^ %#x: length %d does not point past the end", c.name, c.at, c.x, n)
		}
		mustNil(t, os.WriteFile(path, b, 0o666))

		var buf bytes.Buffer
		_, err := Resume(dir, testHash(3), WriterOptions{Log: logTo(&buf)})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Segment != seg || ce.Offset != c.block.off || !strings.Contains(ce.Reason, "length is damaged") {
			t.Fatalf("%s byte %d ^ %#x: Resume gave %v; want a CorruptError at segment %d byte %d", c.name, c.at, c.x, err, seg, c.block.off)
		}
		if msg := err.Error(); !strings.Contains(msg, SegmentName(seg)) {
			t.Fatalf("the error does not name the segment: %s", msg)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
			t.Fatalf("%s: Resume changed the segment (%d bytes, was %d)", c.name, len(after), len(b))
		}
		if buf.Len() > 0 {
			t.Fatalf("%s: Resume logged %s, but cut nothing", c.name, buf.String())
		}
		got, err := readAll(dir, testHash(3))
		if !errors.As(err, &ce) || ce.Offset != c.block.off {
			t.Fatalf("%s: reader gave %v after %d records, want a CorruptError at byte %d", c.name, err, len(got), c.block.off)
		}
		for i := range got {
			if !recEqual(got[i], recs[i]) {
				t.Fatalf("%s: record %d differs", c.name, i)
			}
		}
	}
	// The pristine log still resumes where it ends, cutting nothing.
	var buf bytes.Buffer
	w, err := Resume(src, testHash(3), WriterOptions{Log: logTo(&buf)})
	mustNil(t, err)
	mustNil(t, w.Close())
	got, err := readAll(src, testHash(3))
	expectEOF(t, got, err, recs)
	if buf.Len() > 0 {
		t.Fatalf("a clean resume logged %s", buf.String())
	}
}

// A real torn tail (the file ends inside the last block, at every possible
// point) is still recovered, and what Resume cuts is logged as a warning
// with its file, offset and size.
func TestTornTailIsCutAndLogged(t *testing.T) {
	src := t.TempDir()
	recs, last := liveLog(t, src, 12)
	_, blocks := scanBlocks(t, last)
	bl := blocks[len(blocks)-1]
	orig, err := os.ReadFile(last)
	mustNil(t, err)
	if int64(len(orig)) != bl.off+blockHeaderLen+int64(bl.n) {
		t.Fatalf("setup: the last block does not end the file")
	}
	keep := len(recs) - 4 // the last block holds 4 records
	for cut := bl.off + 1; cut < int64(len(orig)); cut++ {
		dir := t.TempDir()
		copyDir(t, src, dir)
		path := filepath.Join(dir, filepath.Base(last))
		mustNil(t, os.WriteFile(path, orig[:cut], 0o666))
		var buf bytes.Buffer
		w, err := Resume(dir, testHash(3), WriterOptions{Log: logTo(&buf)})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if p := w.Pos(); p.Offset != bl.off {
			t.Fatalf("cut at %d: resumed at %+v, want offset %d", cut, p, bl.off)
		}
		mustNil(t, w.Close())
		got, err := readAll(dir, testHash(3))
		expectEOF(t, got, err, recs[:keep])
		var line struct {
			Level   string `json:"level"`
			File    string `json:"file"`
			Segment uint32 `json:"segment"`
			Offset  int64  `json:"offset"`
			Bytes   int64  `json:"bytes"`
			Message string `json:"message"`
		}
		if err := jsonUnmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("cut at %d: log %q: %v", cut, buf.String(), err)
		}
		if line.Level != "warn" || line.File != path || line.Offset != bl.off || line.Bytes != cut-bl.off || !strings.Contains(line.Message, "torn tail") {
			t.Fatalf("cut at %d: logged %s; want a warning naming %s, offset %d, %d bytes", cut, buf.String(), path, bl.off, cut-bl.off)
		}
	}
}

// Resume agrees with the reader on any bytes: it fails with a log error or
// ErrSealed, or it only cuts bytes off the end, and the log it continues
// holds exactly the records the reader found before the end, then the new
// ones.
func FuzzResume(f *testing.F) {
	src := f.TempDir()
	w, err := Create(src, Header{ModuleHash: testHash(3), Params: []byte("p")}, WriterOptions{})
	mustNil(f, err)
	g := &gen{rng: rand.New(rand.NewPCG(9, 9))}
	for i := 0; i < 30; i++ {
		r := g.record()
		if len(r.Data) > 200 {
			r.Data = r.Data[:200]
		}
		mustNil(f, w.Append(r))
		if i%6 == 5 {
			mustNil(f, w.Flush())
		}
	}
	mustNil(f, w.Detach())
	seg, err := os.ReadFile(segFiles(f, src)[0])
	mustNil(f, err)
	_, hl, err := parseHeader(seg)
	mustNil(f, err)
	f.Add(seg[hl:])
	f.Add(seg[hl : len(seg)-5])
	b := bytes.Clone(seg[hl:])
	_, blocks := scanBlocks(f, segFiles(f, src)[0])
	b[blocks[len(blocks)-1].off-int64(hl)+1] ^= 0x01 // the attack of TestDamagedLengthIsNotATornTail
	f.Add(b)
	hdr := appendHeader(nil, &Header{ModuleHash: testHash(3), Params: []byte("p")})
	dir := f.TempDir()
	path := filepath.Join(dir, SegmentName(0))
	extra := Record{Kind: KindCall, Fn: 2, Data: []byte("after")}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append(bytes.Clone(hdr), body...)
		os.Remove(filepath.Join(dir, SegmentName(1))) // a NEXT block's recreated segment, from the last input
		mustNil(t, os.WriteFile(path, in, 0o666))
		before, rerr := readAll(dir, testHash(3))
		nop := zerolog.Nop()
		w, err := Resume(dir, testHash(3), WriterOptions{Log: &nop})
		if err != nil {
			if !isLogError(err) && !errors.Is(err, ErrSealed) {
				t.Fatalf("Resume: unexpected error %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, in) {
				t.Fatalf("a failed Resume changed the file")
			}
			return
		}
		var ce *CorruptError
		missing := errors.As(rerr, &ce) && strings.Contains(ce.Reason, "NEXT block but no segment") // Resume recreates it
		if !errors.Is(rerr, ErrUnsealed) && !missing {
			t.Fatalf("Resume accepted a log the reader ended with %v", rerr)
		}
		kept, _ := os.ReadFile(path)
		if !bytes.HasPrefix(in, kept) {
			t.Fatalf("Resume rewrote bytes instead of cutting the tail")
		}
		mustNil(t, w.Append(extra))
		mustNil(t, w.Close())
		got, err := readAll(dir, testHash(3))
		expectEOF(t, got, err, append(before, extra))
	})
}

func jsonUnmarshal(b []byte, v any) error {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 1 {
		return errors.New("want exactly one log line")
	}
	return json.Unmarshal(lines[0], v)
}
