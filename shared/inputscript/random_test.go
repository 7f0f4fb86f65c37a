package inputscript

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

// checkSession checks what Random promises about evs.
func checkSession(t *testing.T, evs []Timed, d time.Duration, users []string, w, h int) {
	t.Helper()
	known := map[string]bool{}
	for _, u := range users {
		known[u] = true
	}
	type state struct {
		keys    map[abi.KeyCode]bool
		buttons map[uint32]bool
	}
	st := map[string]*state{}
	var prev time.Duration
	for i, e := range evs {
		if e.At < prev || e.At < 0 || e.At > d {
			t.Fatalf("event %d at %v: out of order or outside 0..%v", i, e.At, d)
		}
		prev = e.At
		if e.At%time.Millisecond != 0 {
			t.Fatalf("event %d at %v: not whole milliseconds", i, e.At)
		}
		if !known[e.User] {
			t.Fatalf("event %d: unknown user %q", i, e.User)
		}
		if err := checkEvent(e.Ev); err != nil || e.Ev.User != 0 {
			t.Fatalf("event %d %+v: invalid: %v", i, e.Ev, err)
		}
		s := st[e.User]
		if s == nil {
			s = &state{map[abi.KeyCode]bool{}, map[uint32]bool{}}
			st[e.User] = s
		}
		ev := e.Ev
		switch ev.Type {
		case abi.EvKey:
			switch {
			case ev.Down && ev.Repeat && !s.keys[ev.Code]:
				t.Fatalf("event %d: %s repeats while up", i, ev.Code)
			case ev.Down && !ev.Repeat && s.keys[ev.Code]:
				t.Fatalf("event %d: %s pressed twice", i, ev.Code)
			case !ev.Down && !s.keys[ev.Code]:
				t.Fatalf("event %d: %s released while up", i, ev.Code)
			}
			s.keys[ev.Code] = ev.Down
		case abi.EvButton:
			if s.buttons[ev.Button] == ev.Down {
				t.Fatalf("event %d: button %d down=%v twice", i, ev.Button, ev.Down)
			}
			s.buttons[ev.Button] = ev.Down
		case abi.EvMove:
			if w <= 0 || h <= 0 || ev.X < 0 || int(ev.X) >= w || ev.Y < 0 || int(ev.Y) >= h {
				t.Fatalf("event %d: move to (%d, %d) outside %dx%d", i, ev.X, ev.Y, w, h)
			}
		case abi.EvWheel, abi.EvText:
		default:
			t.Fatalf("event %d: type %d", i, ev.Type)
		}
		if (ev.Type == abi.EvButton || ev.Type == abi.EvWheel) && (w <= 0 || h <= 0) {
			t.Fatalf("event %d: pointer event without a pointer", i)
		}
	}
	for u, s := range st {
		for c, down := range s.keys {
			if down {
				t.Errorf("user %s: key %s never released", u, c)
			}
		}
		for b, down := range s.buttons {
			if down {
				t.Errorf("user %s: button %d never released", u, b)
			}
		}
	}
}

func TestRandom(t *testing.T) {
	users := []string{"alice", "bob", "Zoë"}
	for _, tc := range []struct {
		seed uint64
		d    time.Duration
		rate float64
		w, h int
	}{
		{1, time.Minute, 20, 1024, 768},
		{2, 40 * time.Second, 5, 1, 1},
		{3, 30 * time.Second, 50, 8192, 8192},
		{4, 30 * time.Second, 10, 100000, 3}, // w clamped to MaxCoord
		{5, 30 * time.Second, 10, 0, 600},    // no pointer
		{6, time.Hour, 2, 640, 480},
	} {
		evs := Random(tc.seed, tc.d, tc.rate, users, tc.w, tc.h)
		wantN := tc.rate * tc.d.Seconds()
		if n := float64(len(evs)); n < wantN/2 || n > wantN*2 {
			t.Errorf("seed %d: %d events, want about %.0f", tc.seed, len(evs), wantN)
		}
		checkSession(t, evs, tc.d, users, min(tc.w, MaxCoord), tc.h)

		seen := map[string]bool{}
		kinds := map[abi.EventType]int{}
		for _, e := range evs {
			seen[e.User] = true
			kinds[e.Ev.Type]++
		}
		if len(seen) != len(users) {
			t.Errorf("seed %d: users %v, want all of %v", tc.seed, seen, users)
		}
		wantKinds := []abi.EventType{abi.EvKey, abi.EvText, abi.EvMove, abi.EvButton, abi.EvWheel}
		if tc.w <= 0 {
			wantKinds = wantKinds[:2]
		}
		for _, k := range wantKinds {
			if kinds[k] == 0 {
				t.Errorf("seed %d: no events of type %d: %v", tc.seed, k, kinds)
			}
		}

		var b bytes.Buffer
		if err := Encode(&b, evs); err != nil {
			t.Fatalf("seed %d: Encode: %v", tc.seed, err)
		}
		back, err := Parse(&b)
		if err != nil {
			t.Fatalf("seed %d: Parse(Encode): %v", tc.seed, err)
		}
		if !reflect.DeepEqual(back, evs) {
			t.Fatalf("seed %d: Parse(Encode(evs)) differs from evs", tc.seed)
		}
	}
}

func TestRandomDeterministic(t *testing.T) {
	users := []string{"a", "b"}
	a := Random(42, time.Minute, 10, users, 800, 600)
	b := Random(42, time.Minute, 10, users, 800, 600)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed gave different sessions (%d, %d events)", len(a), len(b))
	}
	for _, seed := range []uint64{0, 1, 43, 1 << 63} {
		if c := Random(seed, time.Minute, 10, users, 800, 600); reflect.DeepEqual(a, c) {
			t.Errorf("seeds 42 and %d gave the same session", seed)
		}
	}
}

func TestRandomDefaultsAndDegenerate(t *testing.T) {
	evs := Random(7, 10*time.Second, 10, nil, 100, 100)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	checkSession(t, evs, 10*time.Second, []string{DefaultUser}, 100, 100)
	for _, tc := range []struct {
		d    time.Duration
		rate float64
	}{{0, 10}, {-time.Second, 10}, {time.Second, 0}, {time.Second, -1}, {time.Second, nan()}, {time.Second, inf()}} {
		if evs := Random(1, tc.d, tc.rate, nil, 10, 10); evs != nil {
			t.Errorf("Random(d=%v, rate=%v) = %d events, want nil", tc.d, tc.rate, len(evs))
		}
	}
	// A very short session can only hold short bursts, and they must still be whole.
	for seed := uint64(0); seed < 200; seed++ {
		checkSession(t, Random(seed, 300*time.Millisecond, 30, []string{"x", "y"}, 5, 5), 300*time.Millisecond, []string{"x", "y"}, 5, 5)
	}
}

func nan() float64 { z := 0.0; return z / z }
func inf() float64 { z := 0.0; return 1 / z }

func TestRandomBadUserPanics(t *testing.T) {
	for _, u := range []string{"", "a\x00", "this name is far too long for a user"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Random with user %q did not panic", u)
				}
			}()
			Random(1, time.Second, 1, []string{"ok", u}, 10, 10)
		}()
	}
}

// TestRandomFastUsers checks that a rate beyond a human pace is still met,
// by users acting faster, with every promise kept.
func TestRandomFastUsers(t *testing.T) {
	for _, users := range [][]string{{"solo"}, {"a", "b"}} {
		d := 30 * time.Second
		evs := Random(11, d, 300, users, 640, 480)
		if n := float64(len(evs)) / d.Seconds(); n < 200 || n > 400 {
			t.Errorf("%d users: %.0f events per second, want about 300", len(users), n)
		}
		checkSession(t, evs, d, users, 640, 480)
	}
}
