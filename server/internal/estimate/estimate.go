// Package estimate keeps the traffic figures a live session announces in
// its Estimates messages (DESIGN.md section 6): what the record log costs
// per second, and what display mode costs — measured from the encoder while
// it runs, otherwise estimated from the screen's damage at the bytes per
// damaged pixel the encoder last achieved. Viewers' mode controllers compare
// the two.
//
// It is a pure, clock-injected accumulator: it must not know about machines,
// encoders or connections; callers report bytes and pixels. Safe for
// concurrent use (the recorder, the encoder and a ticker report to it).
package estimate

import (
	"sync"
	"time"
)

// Defaults.
const (
	DefaultWindow = 20 * time.Second
	// DefaultBytesPerPixel prices damage before any encode was seen: about
	// what JPEG q79 4:4:4 spends on changed desktop content (text, UI) per
	// pixel, tiles' headers included. It is replaced by measurement as soon
	// as the encoder runs.
	DefaultBytesPerPixel = 0.5
)

// Options tune an Estimator; zero values take the defaults.
type Options struct {
	Window        time.Duration // averaging window, whole seconds
	BytesPerPixel float64       // display cost of a damaged pixel until measured
	Now           func() time.Time
}

type bucket struct {
	sec        int64 // unix second this bucket holds
	logBytes   int64
	encBytes   int64 // display bytes actually encoded
	unencodedP int64 // damaged pixels nobody encoded
}

// Estimator accumulates per-second buckets over a window.
type Estimator struct {
	mu      sync.Mutex
	o       Options
	start   time.Time
	buckets []bucket
	bpp     float64
	learned bool
}

// New returns an empty estimator.
func New(o Options) *Estimator {
	if o.Window < time.Second {
		o.Window = DefaultWindow
	}
	if o.BytesPerPixel <= 0 {
		o.BytesPerPixel = DefaultBytesPerPixel
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := int(o.Window / time.Second)
	return &Estimator{o: o, start: o.Now(), buckets: make([]bucket, n), bpp: o.BytesPerPixel}
}

// cur returns the bucket of now, emptied if it held an older second.
func (e *Estimator) cur() *bucket {
	sec := e.o.Now().Unix()
	b := &e.buckets[int(sec%int64(len(e.buckets)))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	return b
}

// LogBytes counts n bytes of record log written.
func (e *Estimator) LogBytes(n int) {
	e.mu.Lock()
	e.cur().logBytes += int64(n)
	e.mu.Unlock()
}

// Damage counts pixels the guest presented as changed that were not
// encoded (nobody watched in display mode): they are priced at the learned
// bytes per pixel.
func (e *Estimator) Damage(pixels int64) {
	e.mu.Lock()
	e.cur().unencodedP += pixels
	e.mu.Unlock()
}

// Encoded counts a display frame of n bytes that encoded damage covering
// pixels, and learns the cost per damaged pixel from it (a moving average,
// so a change of content shows within seconds).
func (e *Estimator) Encoded(n int, pixels int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur().encBytes += int64(n)
	if pixels <= 0 {
		return
	}
	x := float64(n) / float64(pixels)
	if !e.learned {
		e.bpp, e.learned = x, true
		return
	}
	const alpha = 0.1
	e.bpp += alpha * (x - e.bpp)
}

// BytesPerPixel is the current price of a damaged pixel.
func (e *Estimator) BytesPerPixel() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bpp
}

// Rates returns log and display bytes per second averaged over the window
// (shorter while the estimator is younger than it, at least a second).
func (e *Estimator) Rates() (logBps, displayBps uint64, window time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.o.Now()
	window = min(e.o.Window, max(time.Second, now.Sub(e.start).Truncate(time.Second)))
	oldest := now.Unix() - int64(window/time.Second) + 1
	var logB, encB, px int64
	for _, b := range e.buckets {
		if b.sec >= oldest && b.sec <= now.Unix() {
			logB += b.logBytes
			encB += b.encBytes
			px += b.unencodedP
		}
	}
	s := window.Seconds()
	return uint64(float64(logB) / s), uint64((float64(encB) + float64(px)*e.bpp) / s), window
}
