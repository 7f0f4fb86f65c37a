package recordlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	h := Header{ModuleHash: testHash(1), Params: []byte(`{"hz":60}`), StartTick: 1000, StartStep: 400}
	w, err := Create(dir, h, WriterOptions{SegmentBytes: 64 << 10})
	mustNil(t, err)
	g := &gen{rng: rand.New(rand.NewPCG(1, 2))}

	type mark struct {
		pos Pos
		idx int // records[idx:] follow pos
	}
	marks := []mark{{w.Pos(), 0}}
	var recs []Record
	tick, step := h.StartTick, h.StartStep
	for i := 0; i < 4000; i++ {
		r := g.record()
		if i == 100 || i == 3500 {
			r = Record{Kind: KindCall, Fn: MaxFn, Args: make([]uint64, MaxArgs), Data: make([]byte, MaxData)}
		}
		mustNil(t, w.Append(r))
		recs = append(recs, cloneRec(r))
		advanceTS(&tick, &step, r)
		if w.Tick() != tick || w.Step() != step {
			t.Fatalf("writer at tick %d step %d, want %d %d", w.Tick(), w.Step(), tick, step)
		}
		switch g.rng.IntN(40) {
		case 0, 1:
			mustNil(t, w.Flush())
			marks = append(marks, mark{w.Pos(), len(recs)})
		case 2:
			mustNil(t, w.Roll())
			marks = append(marks, mark{w.Pos(), len(recs)})
		}
	}
	mustNil(t, w.Close())
	files := segFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("want several segments, got %d", len(files))
	}
	var size int64
	var comp, plain int
	for _, f := range files {
		fi, err := os.Stat(f)
		mustNil(t, err)
		size += fi.Size()
		_, blocks := scanBlocks(t, f)
		for _, b := range blocks {
			if b.n > 0 && b.flags&flagCompressed != 0 {
				comp++
			} else if b.n > 0 {
				plain++
			}
		}
	}
	if size != w.Bytes() {
		t.Fatalf("Bytes() = %d, files hold %d", w.Bytes(), size)
	}
	if comp == 0 || plain == 0 {
		t.Fatalf("want both compressed and plain blocks, got %d and %d", comp, plain)
	}
	t.Logf("%d records, %d segments, %d bytes, %d compressed + %d plain blocks", len(recs), len(files), size, comp, plain)

	r, err := Open(dir, h.ModuleHash, ReaderOptions{})
	mustNil(t, err)
	defer r.Close()
	if got := r.Header(); got.StartTick != h.StartTick || got.StartStep != h.StartStep || !bytes.Equal(got.Params, h.Params) || got.Segment != 0 {
		t.Fatalf("header %+v", got)
	}
	tick, step = h.StartTick, h.StartStep
	var bounds []mark // from the reader: first record of each block
	var kept []Record
	for i := range recs {
		got, err := r.Next(context.Background())
		mustNil(t, err)
		kept = append(kept, got)
		if !recEqual(got, recs[i]) {
			t.Fatalf("record %d: got %+v want %+v", i, got, recs[i])
		}
		advanceTS(&tick, &step, got)
		if r.Tick() != tick || r.Step() != step {
			t.Fatalf("record %d: reader at tick %d step %d, want %d %d", i, r.Tick(), r.Step(), tick, step)
		}
		if bp := r.BlockPos(); len(bounds) == 0 || bounds[len(bounds)-1].pos != bp {
			bounds = append(bounds, mark{bp, i})
		}
	}
	if _, err := r.Next(context.Background()); err != io.EOF {
		t.Fatalf("after last record: %v, want io.EOF", err)
	}
	if _, err := r.Next(context.Background()); err != io.EOF {
		t.Fatalf("EOF is not sticky: %v", err)
	}
	// Records stay valid after later reads: nothing aliases a reused buffer.
	for i := range kept {
		if !recEqual(kept[i], recs[i]) {
			t.Fatalf("record %d changed after later reads", i)
		}
	}
	// An offset inside a block is detected, not misread.
	mid := bounds[len(bounds)/2].pos
	mid.Offset += 3
	mustNil(t, r.Seek(mid))
	if _, err := readRest(r); !isLogError(err) {
		t.Fatalf("seek into a block: %v", err)
	}
	// Every writer boundary that has records after it is a reader boundary.
	isBound := map[Pos]int{}
	for _, b := range bounds {
		isBound[b.pos] = b.idx
	}
	for _, m := range marks {
		if idx, ok := isBound[m.pos]; ok && idx != m.idx {
			t.Fatalf("writer pos %+v precedes record %d, reader says %d", m.pos, m.idx, idx)
		}
	}
	seeks := 0
	for _, m := range append(bounds, marks...) {
		if m.idx == len(recs) {
			continue
		}
		mustNil(t, r.Seek(m.pos))
		got, err := readRest(r)
		expectEOF(t, got, err, recs[m.idx:])
		seeks++
	}
	t.Logf("%d seeks checked", seeks)
}

func TestIdleSize(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Header{ModuleHash: testHash(2), Params: make([]byte, 40), StartTick: 123456, StartStep: 7890}, WriterOptions{})
	mustNil(t, err)
	start := w.Bytes()
	const seconds = 600
	for s := 0; s < seconds; s++ {
		// An idle guest: one step reads the clock, polls input and the
		// network (nothing), then sleeps for the rest of the second.
		mustNil(t, w.Append(Record{Kind: KindStep}))
		mustNil(t, w.Append(Record{Kind: KindCall, Fn: 1, Args: []uint64{1}, Ret: 1, Data: []byte{byte(s), byte(s >> 8), 0, 0, 0, 0, 0, 0}}))
		mustNil(t, w.Append(Record{Kind: KindCall, Fn: 2, Args: []uint64{0x10000, 256}}))
		mustNil(t, w.Append(Record{Kind: KindCall, Fn: 7, Args: []uint64{0x20000, 1500}}))
		mustNil(t, w.Append(Record{Kind: KindIdle, N: 29}))
		mustNil(t, w.Flush())
		mustNil(t, w.Append(Record{Kind: KindIdle, N: 30}))
		mustNil(t, w.Flush())
	}
	perSec := float64(w.Bytes()-start) / seconds
	t.Logf("idle machine: %.1f bytes/s of log", perSec)
	if perSec >= 200 {
		t.Fatalf("idle machine writes %.1f bytes/s, want < 200", perSec)
	}
	mustNil(t, w.Close())
	got, err := readAll(dir, testHash(2))
	if err != io.EOF || len(got) != seconds*6 {
		t.Fatalf("read %d records, %v", len(got), err)
	}
}

func TestModuleMismatch(t *testing.T) {
	mk := func(dir string, h ModuleHash) {
		w, err := Create(dir, Header{ModuleHash: h}, WriterOptions{})
		mustNil(t, err)
		mustNil(t, w.Append(Record{Kind: KindStep}))
		mustNil(t, w.Roll())
		mustNil(t, w.Append(Record{Kind: KindStep}))
		mustNil(t, w.Close())
	}
	a, b := t.TempDir(), t.TempDir()
	mk(a, testHash(10))
	mk(b, testHash(20))
	_, err := Open(a, testHash(20), ReaderOptions{})
	var me *ModuleMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Open with the wrong module: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, testHash(10).String()) || !strings.Contains(msg, testHash(20).String()) || !strings.Contains(msg, "00000000.seg") {
		t.Fatalf("message does not name both hashes and the file: %s", msg)
	}
	t.Log(msg)
	if _, err := readAll(a, ModuleHash{}); err != io.EOF {
		t.Fatalf("zero hash should accept any module: %v", err)
	}
	// A segment from another module's log, spliced in.
	seg1, err := os.ReadFile(filepath.Join(b, SegmentName(1)))
	mustNil(t, err)
	mustNil(t, os.WriteFile(filepath.Join(a, SegmentName(1)), seg1, 0o666))
	got, err := readAll(a, ModuleHash{})
	if !errors.As(err, &me) || me.Want != testHash(10) || me.Got != testHash(20) || len(got) != 1 {
		t.Fatalf("spliced segment: %d records, %v", len(got), err)
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	e := &CorruptError{Segment: 1, File: "/x/00000001.seg", Offset: 1234, Reason: "block checksum mismatch"}
	if got, want := e.Error(), "log 00000001.seg: corrupt at byte 1234: block checksum mismatch"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

// smallLog writes a sealed log of a few segments and returns its records.
func smallLog(t testing.TB, dir string, n int, segBytes int64) []Record {
	w, err := Create(dir, Header{ModuleHash: testHash(3), Params: []byte("p")}, WriterOptions{SegmentBytes: segBytes})
	mustNil(t, err)
	g := &gen{rng: rand.New(rand.NewPCG(7, uint64(n)))}
	var recs []Record
	for i := 0; i < n; i++ {
		r := g.record()
		if len(r.Data) > 300 {
			r.Data = r.Data[:300]
		}
		mustNil(t, w.Append(r))
		recs = append(recs, cloneRec(r))
		if i%7 == 6 {
			mustNil(t, w.Flush())
		}
	}
	mustNil(t, w.Close())
	return recs
}

func TestUnsealed(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Header{ModuleHash: testHash(4)}, WriterOptions{})
	mustNil(t, err)
	mustNil(t, w.Append(Record{Kind: KindStep}))
	mustNil(t, w.Append(Record{Kind: KindCall, Fn: 3, Data: []byte("x")}))
	r, err := Open(dir, testHash(4), ReaderOptions{})
	mustNil(t, err)
	defer r.Close()
	// Nothing flushed yet: an empty unsealed log.
	_, err = r.Next(context.Background())
	var ue *UnsealedError
	if !errors.As(err, &ue) || ue.Torn || !errors.Is(err, ErrUnsealed) {
		t.Fatalf("empty unsealed log: %v", err)
	}
	mustNil(t, w.Flush())
	got, err := readRest(r)
	if len(got) != 2 || !errors.As(err, &ue) || ue.Torn || ue.Offset != w.Pos().Offset {
		t.Fatalf("got %d records, %v (pos %+v)", len(got), err, w.Pos())
	}
	// Not sticky: what is appended later can still be read.
	mustNil(t, w.Append(Record{Kind: KindIdle, N: 5}))
	mustNil(t, w.Close())
	got, err = readRest(r)
	if err != io.EOF || len(got) != 1 || got[0].N != 5 || r.Tick() != 6 || r.Step() != 1 {
		t.Fatalf("after close: %v %v tick %d step %d", got, err, r.Tick(), r.Step())
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Header{ModuleHash: testHash(5)}, WriterOptions{SegmentBytes: 8 << 10})
	mustNil(t, err)
	g := &gen{rng: rand.New(rand.NewPCG(3, 3))}
	recs := make([]Record, 3000)
	for i := range recs {
		recs[i] = g.record()
	}
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(9, 9))
		for i, r := range recs {
			if err := w.Append(r); err != nil {
				done <- err
				return
			}
			if rng.IntN(10) == 0 {
				if err := w.Flush(); err != nil {
					done <- err
					return
				}
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		done <- w.Close()
	}()
	r, err := Open(dir, testHash(5), ReaderOptions{Follow: true, Poll: time.Millisecond})
	mustNil(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range recs {
		got, err := r.Next(ctx)
		mustNil(t, err)
		if !recEqual(got, recs[i]) {
			t.Fatalf("record %d: got %+v want %+v", i, got, recs[i])
		}
	}
	if _, err := r.Next(ctx); err != io.EOF {
		t.Fatalf("after the last record: %v", err)
	}
	mustNil(t, <-done)
	if n := len(segFiles(t, dir)); n < 3 {
		t.Fatalf("follow test should span segments, got %d", n)
	}
}

func TestFollowContext(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Header{ModuleHash: testHash(5)}, WriterOptions{})
	mustNil(t, err)
	mustNil(t, w.Append(Record{Kind: KindStep}))
	mustNil(t, w.Roll()) // the reader must also wait across a NEXT block
	r, err := Open(dir, ModuleHash{}, ReaderOptions{Follow: true, Poll: time.Millisecond})
	mustNil(t, err)
	defer r.Close()
	if _, err := r.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := r.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("waiting at the end: %v", err)
	}
	mustNil(t, w.Append(Record{Kind: KindIdle, N: 3}))
	mustNil(t, w.Close())
	got, err := readRest(r)
	if err != io.EOF || len(got) != 1 || r.Tick() != 4 {
		t.Fatalf("%v %v", got, err)
	}
}

func TestTruncateLastSegment(t *testing.T) {
	src := t.TempDir()
	recs := smallLog(t, src, 300, 3000)
	files := segFiles(t, src)
	last := files[len(files)-1]
	full, err := os.ReadFile(last)
	mustNil(t, err)
	hdrLen, blocks := scanBlocks(t, last)
	boundary := map[int64]bool{}
	for _, b := range blocks {
		boundary[b.off] = true
	}
	dir := t.TempDir()
	copyDir(t, src, dir)
	path := filepath.Join(dir, filepath.Base(last))
	for n := 0; n < len(full); n++ {
		mustNil(t, os.WriteFile(path, full[:n], 0o666))
		got, err := readAll(dir, testHash(3))
		var ue *UnsealedError
		if !errors.As(err, &ue) {
			t.Fatalf("truncated to %d: %v, want ErrUnsealed", n, err)
		}
		if torn := int64(n) < hdrLen || !boundary[int64(n)]; ue.Torn != torn {
			t.Fatalf("truncated to %d: torn=%v, want %v (%v)", n, ue.Torn, torn, err)
		}
		if len(got) > len(recs) {
			t.Fatalf("truncated to %d: more records than written", n)
		}
		for i := range got {
			if !recEqual(got[i], recs[i]) {
				t.Fatalf("truncated to %d: record %d differs", n, i)
			}
		}
	}
	// Truncating an earlier segment is corruption: more data follows.
	mustNil(t, os.WriteFile(path, full, 0o666))
	first := filepath.Join(dir, filepath.Base(files[0]))
	b0, err := os.ReadFile(first)
	mustNil(t, err)
	for _, n := range []int{0, 5, int(hdrLen) + 3, len(b0) / 2, len(b0) - 1} {
		mustNil(t, os.WriteFile(first, b0[:n], 0o666))
		_, err := readAll(dir, testHash(3))
		if n == 0 || n == 5 {
			if !isLogError(err) {
				t.Fatalf("segment 0 cut to %d: %v", n, err)
			}
			continue
		}
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("segment 0 cut to %d: %v, want CorruptError", n, err)
		}
	}
}

func TestNextWithoutSegment(t *testing.T) {
	dir := t.TempDir()
	smallLog(t, dir, 200, 2000)
	files := segFiles(t, dir)
	mustNil(t, os.Remove(files[len(files)-1]))
	_, err := readAll(dir, testHash(3))
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "NEXT") {
		t.Fatalf("got %v", err)
	}
}

func TestByteFlip(t *testing.T) {
	src := t.TempDir()
	// Four segments, ~8 KB: every byte flipped twice stays fast.
	recs := smallLog(t, src, 200, 2000)
	if got, err := readAll(src, testHash(3)); err != io.EOF || len(got) != len(recs) {
		t.Fatalf("pristine log: %d records, %v", len(got), err)
	}
	files := segFiles(t, src)
	type flip struct {
		file string
		at   int
		x    byte
	}
	var flips []flip
	for _, p := range files {
		fi, err := os.Stat(p)
		mustNil(t, err)
		for i := 0; i < int(fi.Size()); i++ {
			flips = append(flips, flip{filepath.Base(p), i, 0xFF}, flip{filepath.Base(p), i, 0x01})
		}
	}
	if len(files) < 3 || len(flips) < 2*2000 {
		t.Fatalf("log too small for the test: %d files, %d flips", len(files), len(flips))
	}
	start := time.Now()
	workers := runtime.GOMAXPROCS(0)
	type result struct {
		counts map[string]int
		fail   string
	}
	results := make(chan result, workers)
	for w := 0; w < workers; w++ {
		dir := t.TempDir()
		copyDir(t, src, dir)
		go func() {
			res := result{counts: map[string]int{}}
			defer func() { results <- res }()
			for k := w; k < len(flips); k += workers {
				fl := flips[k]
				path := filepath.Join(dir, fl.file)
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				if err != nil {
					res.fail = err.Error()
					return
				}
				var orig [1]byte
				f.ReadAt(orig[:], int64(fl.at))
				f.WriteAt([]byte{orig[0] ^ fl.x}, int64(fl.at))
				_, err = readAll(dir, testHash(3))
				f.WriteAt(orig[:], int64(fl.at))
				f.Close()
				var ce *CorruptError
				var me *ModuleMismatchError
				switch {
				case errors.As(err, &ce):
					res.counts["corrupt"]++
				case errors.As(err, &me):
					res.counts["module"]++
				case errors.Is(err, ErrUnsealed):
					res.counts["unsealed"]++
				default:
					res.fail = fmt.Sprintf("%s byte %d ^ 0x%02x: read ended with %v", fl.file, fl.at, fl.x, err)
					return
				}
			}
		}()
	}
	counts := map[string]int{}
	var fails []string
	for w := 0; w < workers; w++ {
		res := <-results
		if res.fail != "" {
			fails = append(fails, res.fail)
		}
		for k, v := range res.counts {
			counts[k] += v
		}
	}
	if len(fails) > 0 {
		t.Fatal(strings.Join(fails, "\n"))
	}
	if n := counts["corrupt"] + counts["module"] + counts["unsealed"]; n != len(flips) {
		t.Fatalf("%d of %d flips detected", n, len(flips))
	}
	t.Logf("%d flips (every byte of %d files, ^0xFF and ^0x01) in %v: %v", len(flips), len(files), time.Since(start), counts)
}

func TestWriterValidation(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir, Header{Params: make([]byte, MaxParams+1)}, WriterOptions{}); err == nil {
		t.Fatal("oversized params accepted")
	}
	if _, err := Create(dir, Header{Segment: 3}, WriterOptions{}); err == nil {
		t.Fatal("Create with segment 3 accepted")
	}
	w, err := Create(dir, Header{Params: make([]byte, MaxParams)}, WriterOptions{})
	mustNil(t, err)
	for _, r := range []Record{
		{},
		{Kind: 9},
		{Kind: KindIdle},
		{Kind: KindCall, Fn: MaxFn + 1},
		{Kind: KindCall, Args: make([]uint64, MaxArgs+1)},
		{Kind: KindCall, Data: make([]byte, MaxData+1)},
	} {
		if err := w.Append(r); err == nil {
			t.Fatalf("invalid record accepted: %+v", r)
		}
	}
	mustNil(t, w.Close())
	if err := w.Append(Record{Kind: KindStep}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := Create(dir, Header{}, WriterOptions{}); err == nil {
		t.Fatal("Create over an existing log")
	}
	if got, err := readAll(dir, ModuleHash{}); err != io.EOF || len(got) != 0 {
		t.Fatalf("empty sealed log: %v %v", got, err)
	}
}

// A block can never pass MaxBlockPayload: the writer ends it early.
func TestAutoFlush(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, Header{}, WriterOptions{})
	mustNil(t, err)
	rng := rand.New(rand.NewPCG(5, 5))
	var recs []Record
	for i := 0; i < 20; i++ {
		d := make([]byte, MaxData)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		r := Record{Kind: KindCall, Fn: 4, Data: d}
		mustNil(t, w.Append(r))
		recs = append(recs, r)
	}
	mustNil(t, w.Close())
	_, blocks := scanBlocks(t, segFiles(t, dir)[0])
	if len(blocks) < 4 {
		t.Fatalf("20 MiB in %d blocks", len(blocks))
	}
	got, err := readAll(dir, ModuleHash{})
	expectEOF(t, got, err, recs)
}

func TestResume(t *testing.T) {
	h := Header{ModuleHash: testHash(6), Params: []byte("cfg"), StartTick: 50}
	g := &gen{rng: rand.New(rand.NewPCG(4, 4))}
	write := func(w *Writer, n int, recs *[]Record) {
		for i := 0; i < n; i++ {
			r := g.record()
			mustNil(t, w.Append(r))
			*recs = append(*recs, cloneRec(r))
			if i%5 == 4 {
				mustNil(t, w.Flush())
			}
		}
		mustNil(t, w.Flush())
	}
	check := func(dir string, w *Writer, want []Record) {
		t.Helper()
		var tick, step uint64 = h.StartTick, h.StartStep
		for _, r := range want {
			advanceTS(&tick, &step, r)
		}
		if w.Tick() != tick || w.Step() != step {
			t.Fatalf("resumed writer at %d/%d, want %d/%d", w.Tick(), w.Step(), tick, step)
		}
	}
	verify := func(dir string, w *Writer, want []Record) {
		t.Helper()
		var size int64
		for _, f := range segFiles(t, dir) {
			fi, err := os.Stat(f)
			mustNil(t, err)
			size += fi.Size()
		}
		if size != w.Bytes() {
			t.Fatalf("Bytes() = %d, files hold %d", w.Bytes(), size)
		}
		got, err := readAll(dir, h.ModuleHash)
		expectEOF(t, got, err, want)
	}

	t.Run("torn tail", func(t *testing.T) {
		dir := t.TempDir()
		w, err := Create(dir, h, WriterOptions{SegmentBytes: 4000})
		mustNil(t, err)
		var recs []Record
		write(w, 200, &recs)
		kept := len(recs)
		pos := w.Pos()
		write(w, 5, &recs) // one block of 5, to be torn
		files := segFiles(t, dir)
		last := files[len(files)-1]
		fi, err := os.Stat(last)
		mustNil(t, err)
		if filepath.Base(last) != SegmentName(pos.Segment) || fi.Size() <= pos.Offset+3 {
			t.Fatalf("setup: torn block not where expected")
		}
		mustNil(t, os.Truncate(last, pos.Offset+3))
		recs = recs[:kept]
		w2, err := Resume(dir, h.ModuleHash, WriterOptions{SegmentBytes: 4000})
		mustNil(t, err)
		check(dir, w2, recs)
		if w2.Pos() != pos {
			t.Fatalf("resumed at %+v, want %+v", w2.Pos(), pos)
		}
		write(w2, 100, &recs)
		mustNil(t, w2.Close())
		verify(dir, w2, recs)
		if _, err := Resume(dir, h.ModuleHash, WriterOptions{}); !errors.Is(err, ErrSealed) {
			t.Fatalf("resume of a sealed log: %v", err)
		}
		if _, err := Resume(dir, testHash(99), WriterOptions{}); err == nil {
			t.Fatal("resume with the wrong module")
		}
	})
	t.Run("clean end", func(t *testing.T) {
		dir := t.TempDir()
		w, err := Create(dir, h, WriterOptions{})
		mustNil(t, err)
		var recs []Record
		write(w, 30, &recs)
		w2, err := Resume(dir, h.ModuleHash, WriterOptions{})
		mustNil(t, err)
		check(dir, w2, recs)
		write(w2, 30, &recs)
		mustNil(t, w2.Close())
		verify(dir, w2, recs)
	})
	t.Run("crash while rolling", func(t *testing.T) {
		for _, cut := range []int64{-1, 0, 10, 45} { // -1: next segment missing
			dir := t.TempDir()
			w, err := Create(dir, h, WriterOptions{})
			mustNil(t, err)
			var recs []Record
			write(w, 30, &recs)
			mustNil(t, w.Roll())
			next := filepath.Join(dir, SegmentName(1))
			if cut < 0 {
				mustNil(t, os.Remove(next))
			} else {
				mustNil(t, os.Truncate(next, cut))
			}
			w2, err := Resume(dir, ModuleHash{}, WriterOptions{})
			mustNil(t, err)
			check(dir, w2, recs)
			if p := w2.Pos(); p.Segment != 1 {
				t.Fatalf("cut %d: resumed at %+v", cut, p)
			}
			write(w2, 30, &recs)
			mustNil(t, w2.Close())
			verify(dir, w2, recs)
		}
	})
}
