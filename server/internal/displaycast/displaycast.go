// Package displaycast encodes a live session's screen for display mode
// ONCE per session, off the machine's goroutine (DESIGN.md sections 6 and
// 8): the recorder hands each presented frame's damaged rows to a Caster,
// which mirrors them into a staging copy and wakes its encoder goroutine;
// frames that arrive while the encoder is busy are coalesced (their damage
// merged), so a slow encode never holds the machine back. The encoder emits
// delta frames for everyone in display mode, and key frames for the
// targets that asked for one (a client joining or switching to display).
//
// When nothing is active and no key frame is wanted, Submit copies nothing
// and nothing is encoded.
//
// It must not know about connections, relays, sessions or the machine:
// frames come in as RGBA bytes with damage rectangles, and go out through
// callbacks as wire.DisplayFrame values.
package displaycast

import (
	"image"
	"sync"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
)

// Options configure a Caster.
type Options[T any] struct {
	Display display.Options // lossy JPEG q79 4:4:4 unless Lossless
	// Delta receives each delta frame (for every display viewer), with its
	// encoded size and the damaged pixels it covered.
	Delta func(f *wire.DisplayFrame, bytes int, damagedPixels int64)
	// Key receives each key frame and who asked for it.
	Key func(f *wire.DisplayFrame, targets []T)
}

// Stats count what a Caster did.
type Stats struct {
	Encodes   uint64 // Encode and Key calls of the tile encoder
	Frames    uint64 // frames emitted (deltas with tiles, and keys)
	Bytes     uint64 // tile bytes emitted
	Coalesced uint64 // submitted frames merged into a later one
}

// Caster is one session's display encoder. Submit, Skip, SetActive,
// RequestKey and WantsFrame may be called from any goroutine.
type Caster[T any] struct {
	o   Options[T]
	enc *display.Encoder

	mu      sync.Mutex
	cond    *sync.Cond
	active  bool // someone watches deltas
	keys    []T  // targets waiting for a key frame
	stale   bool // staging missed frames: the next Submit copies all
	staging []byte
	w, h    int
	damage  []image.Rectangle // since the encoder last took the staging copy
	pending bool              // a frame waits for the encoder
	tick    uint64
	closed  bool
	stats   Stats

	work []byte // the encoder's copy
	seq  uint64
	done chan struct{}
}

// New starts a caster's encoder goroutine; Close stops it.
func New[T any](o Options[T]) *Caster[T] {
	c := &Caster[T]{o: o, enc: display.NewEncoder(o.Display), stale: true, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go c.run()
	return c
}

// SetActive says whether any viewer is in display or dual mode: only then
// are deltas encoded.
func (c *Caster[T]) SetActive(on bool) {
	c.mu.Lock()
	c.active = on
	c.mu.Unlock()
}

// RequestKey asks for a key frame for target; it is encoded from the next
// frame submitted (WantsFrame turns true until then).
func (c *Caster[T]) RequestKey(target T) {
	c.mu.Lock()
	c.keys = append(c.keys, target)
	c.mu.Unlock()
}

// Needed reports whether Submit would use a frame: someone is active or a
// key frame is wanted. Otherwise the caller calls Skip instead.
func (c *Caster[T]) Needed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active || len(c.keys) > 0
}

// WantsFrame reports whether a key frame waits for a frame: the caller then
// submits the current screen even if nothing was presented.
func (c *Caster[T]) WantsFrame() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys) > 0 && !c.pending
}

// Skip says a frame was presented that nobody needed: the staging copy is
// out of date from now on.
func (c *Caster[T]) Skip() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// Submit mirrors a frame (w x h RGBA, rows stride bytes apart; only the
// damaged rows when the staging copy is current, nil damage meaning all)
// and wakes the encoder. fb is only read during the call.
func (c *Caster[T]) Submit(fb []byte, w, h, stride int, damage []image.Rectangle, tick uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.active && len(c.keys) == 0 {
		c.stale = true
		return
	}
	full := image.Rect(0, 0, w, h)
	if c.stale || w != c.w || h != c.h || damage == nil {
		if len(c.staging) != w*h*4 {
			c.staging = make([]byte, w*h*4)
		}
		c.w, c.h, c.stale = w, h, false
		damage = []image.Rectangle{full}
	}
	for _, r := range damage {
		r = r.Intersect(full)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			copy(c.staging[(y*w+r.Min.X)*4:(y*w+r.Max.X)*4], fb[y*stride+r.Min.X*4:y*stride+r.Max.X*4])
		}
		if !r.Empty() {
			c.damage = append(c.damage, r)
		}
	}
	if c.pending {
		c.stats.Coalesced++
	}
	c.pending, c.tick = true, tick
	c.cond.Signal()
}

// Stats returns the counters.
func (c *Caster[T]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close stops the encoder goroutine (after the frame it is encoding).
func (c *Caster[T]) Close() {
	c.mu.Lock()
	c.closed = true
	c.cond.Signal()
	c.mu.Unlock()
	<-c.done
}

func (c *Caster[T]) run() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for !c.pending && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		w, h, tick := c.w, c.h, c.tick
		if len(c.work) != len(c.staging) {
			c.work = make([]byte, len(c.staging))
			c.damage = []image.Rectangle{image.Rect(0, 0, w, h)}
		}
		var px int64
		for _, r := range c.damage {
			for y := r.Min.Y; y < r.Max.Y; y++ {
				copy(c.work[(y*w+r.Min.X)*4:(y*w+r.Max.X)*4], c.staging[(y*w+r.Min.X)*4:(y*w+r.Max.X)*4])
			}
			px += int64(r.Dx()) * int64(r.Dy())
		}
		damage, active, keys := c.damage, c.active, c.keys
		c.damage, c.keys, c.pending = nil, nil, false
		c.mu.Unlock()

		var st Stats
		// Deltas first, so the key frame is the screen the deltas reached:
		// viewers who follow the deltas stay in step with the newcomer.
		if active && len(damage) > 0 {
			tiles := c.enc.Encode(c.work, w, h, w*4, damage)
			st.Encodes++
			if len(tiles) > 0 {
				f, n := c.frame(tiles, w, h, tick, false)
				st.Frames++
				st.Bytes += uint64(n)
				if c.o.Delta != nil {
					c.o.Delta(f, n, px)
				}
			}
		}
		if len(keys) > 0 {
			tiles := c.enc.Key(c.work, w, h, w*4)
			st.Encodes++
			f, n := c.frame(tiles, w, h, tick, true)
			st.Frames++
			st.Bytes += uint64(n)
			if c.o.Key != nil {
				c.o.Key(f, keys)
			}
		}
		c.mu.Lock()
		c.stats.Encodes += st.Encodes
		c.stats.Frames += st.Frames
		c.stats.Bytes += st.Bytes
		c.mu.Unlock()
	}
}

func (c *Caster[T]) frame(tiles []display.Tile, w, h int, tick uint64, key bool) (*wire.DisplayFrame, int) {
	c.seq++
	f := &wire.DisplayFrame{Seq: c.seq, Tick: tick, Key: key, Width: uint32(w), Height: uint32(h)}
	n := 0
	for _, t := range tiles {
		f.Tiles = append(f.Tiles, t.Wire())
		n += len(t.Data)
	}
	return f, n
}
