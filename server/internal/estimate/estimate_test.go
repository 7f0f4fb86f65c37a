package estimate

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRatesOverWindow(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	e := New(Options{Window: 4 * time.Second, Now: c.now})
	e.LogBytes(400)
	if l, _, w := e.Rates(); l != 400 || w != time.Second {
		t.Fatalf("young estimator: %d B/s over %v", l, w)
	}
	for i := 0; i < 3; i++ {
		c.t = c.t.Add(time.Second)
		e.LogBytes(400)
	}
	// Three seconds old: the window is 3 s and holds the last three buckets.
	if l, _, w := e.Rates(); l != 400 || w != 3*time.Second {
		t.Fatalf("log %d B/s over %v, want 400 over 3s", l, w)
	}
	c.t = c.t.Add(10 * time.Second) // everything falls out of the window
	if l, d, _ := e.Rates(); l != 0 || d != 0 {
		t.Fatalf("after the window: log %d display %d", l, d)
	}
}

func TestWindowAverages(t *testing.T) {
	c := &clock{time.Unix(2000, 0)}
	e := New(Options{Window: 4 * time.Second, Now: c.now})
	c.t = c.t.Add(10 * time.Second) // older than the window: full window
	for i := 0; i < 4; i++ {
		e.LogBytes(1000)
		c.t = c.t.Add(time.Second)
	}
	c.t = c.t.Add(-time.Second) // still inside the last bucket
	l, _, w := e.Rates()
	if w != 4*time.Second || l != 1000 {
		t.Fatalf("log %d B/s over %v, want 1000 over 4s", l, w)
	}
}

func TestDisplayMeasuredThenEstimated(t *testing.T) {
	c := &clock{time.Unix(3000, 0)}
	e := New(Options{Window: 2 * time.Second, Now: c.now, BytesPerPixel: 1})
	c.t = c.t.Add(5 * time.Second)
	// Unmeasured: damage at the default price.
	e.Damage(100)
	if _, d, _ := e.Rates(); d != 50 { // 100 px * 1 B / 2 s
		t.Fatalf("estimated display %d, want 50", d)
	}
	// An encode teaches the price: 10 bytes for 100 pixels.
	e.Encoded(10, 100)
	if got := e.BytesPerPixel(); got != 0.1 {
		t.Fatalf("learned %v B/px", got)
	}
	// 10 measured bytes + 100 unencoded px at 0.1 = 20 bytes over 2 s.
	if _, d, _ := e.Rates(); d != 10 {
		t.Fatalf("display %d, want 10", d)
	}
	e.Encoded(30, 100) // moving average moves toward 0.3
	if got := e.BytesPerPixel(); got <= 0.1 || got >= 0.3 {
		t.Fatalf("average %v not between the samples", got)
	}
}
