package displaycast

import (
	"bytes"
	"image"
	"sync"
	"testing"
	"time"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
)

type sink struct {
	mu     sync.Mutex
	frames []*wire.DisplayFrame
	keys   [][]int
}

func (s *sink) wait(t *testing.T, n int) []*wire.DisplayFrame {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		if len(s.frames) >= n {
			f := append([]*wire.DisplayFrame(nil), s.frames...)
			s.mu.Unlock()
			return f
		}
		s.mu.Unlock()
	}
	t.Fatalf("fewer than %d frames", n)
	return nil
}

func newCaster(s *sink) *Caster[int] {
	return New(Options[int]{
		Display: display.Options{Lossless: true},
		Delta: func(f *wire.DisplayFrame, _ int, _ int64) {
			s.mu.Lock()
			s.frames = append(s.frames, f)
			s.mu.Unlock()
		},
		Key: func(f *wire.DisplayFrame, targets []int) {
			s.mu.Lock()
			s.frames = append(s.frames, f)
			s.keys = append(s.keys, targets)
			s.mu.Unlock()
		},
	})
}

func paint(fb []byte, w int, r image.Rectangle, v byte) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			i := (y*w + x) * 4
			fb[i], fb[i+1], fb[i+2], fb[i+3] = v, v/2, 255-v, 255
		}
	}
}

func apply(t *testing.T, screen []byte, w, h int, f *wire.DisplayFrame) {
	t.Helper()
	tiles := make([]display.Tile, len(f.Tiles))
	for i, wt := range f.Tiles {
		tiles[i] = display.FromWire(wt)
	}
	if err := display.Apply(tiles, screen, w, h, w*4); err != nil {
		t.Fatal(err)
	}
}

// Nobody watching: frames are neither copied nor encoded. A key request
// gets a key frame of the current screen; deltas then follow damage, and a
// viewer painting key + deltas sees exactly the source screen.
func TestKeyThenDeltasRebuildTheScreen(t *testing.T) {
	const w, h = 200, 120
	s := &sink{}
	c := newCaster(s)
	defer c.Close()
	fb := make([]byte, w*h*4)
	paint(fb, w, image.Rect(0, 0, w, h), 10)
	for i := 0; i < 5; i++ {
		c.Submit(fb, w, h, w*4, []image.Rectangle{image.Rect(0, 0, 10, 10)}, uint64(i))
	}
	time.Sleep(20 * time.Millisecond)
	if st := c.Stats(); st.Encodes != 0 {
		t.Fatalf("encoded %d frames with nobody watching", st.Encodes)
	}

	c.RequestKey(7)
	if !c.WantsFrame() {
		t.Fatal("a key request does not ask for a frame")
	}
	c.Submit(fb, w, h, w*4, nil, 10)
	frames := s.wait(t, 1)
	if !frames[0].Key || len(s.keys[0]) != 1 || s.keys[0][0] != 7 {
		t.Fatalf("first frame %+v for %v, want a key frame for 7", frames[0].Key, s.keys)
	}
	screen := make([]byte, w*h*4)
	apply(t, screen, w, h, frames[0])
	c.SetActive(true)

	r := image.Rect(64, 64, 100, 100)
	paint(fb, w, r, 200)
	c.Submit(fb, w, h, w*4, []image.Rectangle{r}, 11)
	frames = s.wait(t, 2)
	if frames[1].Key || frames[1].Seq <= frames[0].Seq {
		t.Fatalf("second frame: key %v seq %d after %d", frames[1].Key, frames[1].Seq, frames[0].Seq)
	}
	apply(t, screen, w, h, frames[1])
	if !bytes.Equal(screen, fb) {
		t.Fatal("key frame + delta differ from the screen")
	}

	c.SetActive(false)
	before := c.Stats().Encodes
	paint(fb, w, r, 50)
	c.Submit(fb, w, h, w*4, []image.Rectangle{r}, 12)
	time.Sleep(20 * time.Millisecond)
	if got := c.Stats().Encodes; got != before {
		t.Fatalf("inactive caster encoded (%d -> %d)", before, got)
	}
}
