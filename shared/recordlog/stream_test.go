package recordlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

type capturedBlock struct {
	pos   Pos
	block []byte
}

// writeCaptured writes n random records (flushing every few, rolling
// segments small) and returns the records and the blocks OnBlock saw.
func writeCaptured(t testing.TB, n int, seed uint64) ([]Record, []capturedBlock) {
	var blocks []capturedBlock
	w, err := Create(t.TempDir(), Header{ModuleHash: testHash(1)}, WriterOptions{SegmentBytes: 4096,
		OnBlock: func(p Pos, b []byte) { blocks = append(blocks, capturedBlock{p, bytes.Clone(b)}) }})
	mustNil(t, err)
	g := &gen{rng: rand.New(rand.NewPCG(seed, 2))}
	var recs []Record
	for i := range n {
		r := g.record()
		mustNil(t, w.Append(r))
		recs = append(recs, cloneRec(r))
		if i%7 == 6 {
			mustNil(t, w.Flush())
		}
	}
	mustNil(t, w.Close())
	return recs, blocks
}

func TestStreamReplaysWhatTheWriterWrote(t *testing.T) {
	want, blocks := writeCaptured(t, 500, 1)
	var next, seals int
	for _, b := range blocks {
		switch {
		case b.block[4]&flagNext != 0:
			next++
		case b.block[4]&flagSeal != 0:
			seals++
		}
	}
	if next == 0 || seals != 1 {
		t.Fatalf("want segment rolls and one seal among the blocks, got %d NEXT, %d SEAL", next, seals)
	}
	s := NewStream(Pos{})
	ctx := context.Background()
	go func() {
		for _, b := range blocks {
			if err := s.Push(b.pos, b.block); err != nil {
				s.Close(err)
				return
			}
			time.Sleep(time.Microsecond)
		}
	}()
	for i, w := range want {
		got, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !recEqual(got, w) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, w)
		}
	}
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("after the seal: %v, want io.EOF", err)
	}
	if s.Buffered() != 0 {
		t.Fatalf("buffered %d after draining", s.Buffered())
	}
}

func TestStreamRefusesDamageAndGaps(t *testing.T) {
	_, blocks := writeCaptured(t, 60, 3)
	var data []capturedBlock
	for _, b := range blocks {
		if b.block[4]&(flagNext|flagSeal) == 0 {
			data = append(data, b)
		}
	}
	if len(data) < 3 {
		t.Fatalf("want at least 3 data blocks, got %d", len(data))
	}
	first := data[0]
	for i := range first.block {
		s := NewStream(Pos{})
		bad := bytes.Clone(first.block)
		bad[i] ^= 0x41
		if err := s.Push(first.pos, bad); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
		if s.Ready() || s.Buffered() != 0 {
			t.Fatalf("a refused block left records behind")
		}
	}
	s := NewStream(Pos{})
	mustNil(t, s.Push(first.pos, first.block))
	var ce *CorruptError
	if err := s.Push(data[2].pos, data[2].block); !errors.As(err, &ce) {
		t.Fatalf("a gap (block 2 after block 0): %v, want *CorruptError", err)
	}
	mustNil(t, s.Push(data[1].pos, data[1].block))
	if !s.Ready() {
		t.Fatal("records pushed but not ready")
	}
	if end := s.End(); end != data[2].pos {
		t.Fatalf("End %+v, want the next block's start %+v", end, data[2].pos)
	}
}

func TestStreamNextWaitsAndCloses(t *testing.T) {
	s := NewStream(Pos{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty stream: %v, want a deadline", err)
	}
	boom := errors.New("upstream lost")
	s.Close(boom)
	if _, err := s.Next(context.Background()); err != boom {
		t.Fatalf("closed stream: %v, want %v", err, boom)
	}
}

func FuzzStreamPush(f *testing.F) {
	_, blocks := writeCaptured(f, 40, 5)
	for _, b := range blocks[:min(len(blocks), 8)] {
		f.Add(b.pos.Tick, b.pos.Step, b.block)
	}
	f.Fuzz(func(t *testing.T, tick, step uint64, block []byte) {
		s := NewStream(Pos{Tick: tick, Step: step})
		if err := s.Push(Pos{Tick: tick, Step: step}, block); err != nil {
			return
		}
		s.Close(nil)
		for {
			if _, err := s.Next(context.Background()); err != nil {
				return
			}
		}
	})
}

// A writer detached (a live server stopping) leaves the log unsealed and
// resumable; a reader's OnBlock sees every block exactly as the writers'
// OnBlock did, positions included, across the detach and segment rolls.
func TestDetachResumeAndReaderOnBlock(t *testing.T) {
	dir := t.TempDir()
	var written []capturedBlock
	capture := func(p Pos, b []byte) { written = append(written, capturedBlock{p, bytes.Clone(b)}) }
	w, err := Create(dir, Header{ModuleHash: testHash(1)}, WriterOptions{SegmentBytes: 4096, OnBlock: capture})
	mustNil(t, err)
	g := &gen{rng: rand.New(rand.NewPCG(7, 2))}
	write := func(w *Writer, n int) {
		for i := range n {
			mustNil(t, w.Append(g.record()))
			if i%5 == 4 {
				mustNil(t, w.Flush())
			}
		}
	}
	write(w, 200)
	mustNil(t, w.Detach())
	if err := w.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Detach: %v", err)
	}
	r, err := Open(dir, testHash(1), ReaderOptions{})
	mustNil(t, err)
	for {
		if _, err = r.Next(context.Background()); err != nil {
			break
		}
	}
	r.Close()
	if !errors.Is(err, ErrUnsealed) {
		t.Fatalf("a detached log ends with %v, want unsealed", err)
	}
	w, err = Resume(dir, testHash(1), WriterOptions{SegmentBytes: 4096, OnBlock: capture})
	mustNil(t, err)
	write(w, 200)
	mustNil(t, w.Close())

	var read []capturedBlock
	r, err = Open(dir, testHash(1), ReaderOptions{OnBlock: func(p Pos, b []byte) { read = append(read, capturedBlock{p, bytes.Clone(b)}) }})
	mustNil(t, err)
	defer r.Close()
	for {
		if _, err := r.Next(context.Background()); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	if len(read) != len(written) || len(read) < 10 {
		t.Fatalf("reader saw %d blocks, writers wrote %d", len(read), len(written))
	}
	for i := range read {
		if read[i].pos != written[i].pos || !bytes.Equal(read[i].block, written[i].block) {
			t.Fatalf("block %d: read at %+v, written at %+v (same bytes: %v)", i, read[i].pos, written[i].pos, bytes.Equal(read[i].block, written[i].block))
		}
	}
}
