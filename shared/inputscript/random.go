package inputscript

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"replaydesk/shared/abi"
)

// Random makes a plausible random input session: typing bursts (key presses,
// some shifted, some held until they repeat, shortcuts, pasted text), pointer
// moves, clicks, double clicks, drags and wheel scrolls, from several users,
// at roughly rate events per second over d, deterministic for a given seed.
//
// Every event is one Parse accepts (Encode writes them all), times are whole
// milliseconds in 0..d, non-decreasing, and each user's actions do not
// overlap: every key and button pressed is released, in order, before d. Pointer
// coordinates are inside w x h (and MaxCoord); with w or h <= 0 there are no
// pointer events. One user at a human pace makes about 10 events per second;
// when rate asks for more than len(users) can make that way, they all act
// proportionally faster than humans do, so that rate is still met. users defaults to []string{DefaultUser}; Random panics if
// a name is not a valid user name. It returns nil if d <= 0 or rate is not a
// positive finite number.
func Random(seed uint64, d time.Duration, rate float64, users []string, w, h int) []Timed {
	if d <= 0 || !(rate > 0) || math.IsInf(rate, 0) {
		return nil
	}
	if len(users) == 0 {
		users = []string{DefaultUser}
	}
	for _, u := range users {
		if err := checkUser(u); err != nil {
			panic("inputscript.Random: " + err.Error())
		}
	}
	d = min(d, MaxAt)
	g := &gen{
		rng:     rand.New(rand.NewPCG(seed, 0x7265706c61796465)),
		w:       min(w, MaxCoord),
		h:       min(h, MaxCoord),
		pointer: w > 0 && h > 0,
		speed:   max(1, rate/(humanRate*float64(len(users)))),
	}
	type userState struct {
		busy   time.Duration
		px, py int32
	}
	st := make([]userState, len(users))
	for i := range st {
		if g.pointer {
			st[i].px, st[i].py = int32(g.rng.IntN(g.w)), int32(g.rng.IntN(g.h))
		}
	}
	var out []Timed
	// Poisson arrivals of bursts, spaced to give about rate events per
	// second; a burst averages about 5 events.
	gap := func(events int) time.Duration {
		mean := float64(max(events, 1)) / rate
		gap := time.Duration(g.rng.ExpFloat64() * mean * float64(time.Second))
		return max(gap.Round(time.Millisecond), time.Millisecond)
	}
	for t := gap(5) - time.Millisecond; t <= d; {
		u := g.rng.IntN(len(users))
		start := max(t, st[u].busy)
		g.evs, g.at, g.px, g.py = g.evs[:0], start, st[u].px, st[u].py
		g.burst()
		if len(g.evs) > 0 && g.at <= d {
			for _, e := range g.evs {
				e.User = users[u]
				out = append(out, e)
			}
			st[u].busy = g.at + g.ms(50, 400)
			st[u].px, st[u].py = g.px, g.py
		}
		next := gap(len(g.evs))
		if next > d-t {
			break
		}
		t += next
	}
	slices.SortStableFunc(out, func(a, b Timed) int { return cmp.Compare(a.At, b.At) })
	return out
}

// gen builds one burst of one user's events from time at on, leaving at at
// the time of its last event.
type gen struct {
	rng     *rand.Rand
	w, h    int
	pointer bool
	speed   float64 // divides every delay within and between one user's bursts

	evs    []Timed
	at     time.Duration
	px, py int32
}

// humanRate is about how many events per second one user makes at g.speed 1,
// with the pauses between bursts Random leaves.
const humanRate = 8

// ms returns a random delay of lo..hi milliseconds divided by g.speed, in
// whole milliseconds.
func (g *gen) ms(lo, hi int) time.Duration {
	d := time.Duration(lo+g.rng.IntN(hi-lo+1)) * time.Millisecond
	return time.Duration(float64(d) / g.speed).Round(time.Millisecond)
}

func (g *gen) emit(ev abi.Event) { g.evs = append(g.evs, Timed{At: g.at, Ev: ev}) }

func (g *gen) key(c abi.KeyCode, down, repeat bool) {
	g.emit(abi.Event{Type: abi.EvKey, Code: c, Down: down, Repeat: repeat})
}

var (
	typingKeys = func() []abi.KeyCode {
		var ks []abi.KeyCode
		for c := abi.CodeKeyA; c <= abi.CodeKeyZ; c++ {
			ks = append(ks, c, c) // letters twice as likely
		}
		for c := abi.CodeDigit1; c <= abi.CodeDigit0; c++ {
			ks = append(ks, c)
		}
		return append(ks, abi.CodeSpace, abi.CodeSpace, abi.CodeSpace, abi.CodeBackspace,
			abi.CodeEnter, abi.CodeComma, abi.CodePeriod, abi.CodeMinus, abi.CodeSlash, abi.CodeQuote)
	}()
	heldKeys     = []abi.KeyCode{abi.CodeArrowLeft, abi.CodeArrowRight, abi.CodeArrowUp, abi.CodeArrowDown, abi.CodeBackspace, abi.CodeDelete, abi.CodeKeyX}
	shortcutMods = []abi.KeyCode{abi.CodeControlLeft, abi.CodeControlLeft, abi.CodeMetaLeft, abi.CodeAltLeft, abi.CodeControlRight}
	shortcutKeys = []abi.KeyCode{abi.CodeKeyC, abi.CodeKeyV, abi.CodeKeyX, abi.CodeKeyZ, abi.CodeKeyS, abi.CodeKeyA, abi.CodeTab, abi.CodeF4}
	words        = []string{"hello", "world", "replay", "desk", "the", "quick", "brown", "fox", "jumps",
		"über", "naïve", "日本語", "テキスト", "emoji 🙂", "π≈3.14159", "tab\there", "line\nbreak", `"quoted" <html> & \back\slash`}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// burst appends one action.
func (g *gen) burst() {
	n := 6
	if g.pointer {
		n = 12
	}
	switch r := g.rng.IntN(n); {
	case r < 3:
		g.typing()
	case r == 3:
		g.text()
	case r == 4:
		g.held()
	case r == 5:
		g.shortcut()
	case r < 8:
		g.moveTo(int32(g.rng.IntN(g.w)), int32(g.rng.IntN(g.h)))
	case r < 10:
		g.click()
	case r == 10:
		g.drag()
	default:
		g.wheel()
	}
}

func (g *gen) typing() {
	for i, n := 0, 2+g.rng.IntN(12); i < n; i++ {
		if i > 0 {
			g.at += g.ms(40, 250)
		}
		c := pick(g.rng, typingKeys)
		shift := g.rng.IntN(8) == 0
		if shift {
			g.key(abi.CodeShiftLeft, true, false)
			g.at += g.ms(20, 80)
		}
		g.key(c, true, false)
		g.at += g.ms(30, 130)
		g.key(c, false, false)
		if shift {
			g.at += g.ms(10, 60)
			g.key(abi.CodeShiftLeft, false, false)
		}
	}
}

func (g *gen) text() {
	var b strings.Builder
	for i, n := 0, 1+g.rng.IntN(6); i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pick(g.rng, words))
	}
	for _, piece := range abi.SplitText(b.String()) {
		g.emit(abi.Event{Type: abi.EvText, Text: piece})
	}
}

func (g *gen) held() {
	c := pick(g.rng, heldKeys)
	g.key(c, true, false)
	g.at += g.ms(400, 600)
	for i, n := 0, 1+g.rng.IntN(10); i < n; i++ {
		g.key(c, true, true)
		g.at += g.ms(30, 40)
	}
	g.key(c, false, false)
}

func (g *gen) shortcut() {
	m, c := pick(g.rng, shortcutMods), pick(g.rng, shortcutKeys)
	g.key(m, true, false)
	g.at += g.ms(50, 200)
	g.key(c, true, false)
	g.at += g.ms(50, 150)
	g.key(c, false, false)
	g.at += g.ms(20, 120)
	g.key(m, false, false)
}

// moveTo moves the pointer in a few steps, 16 ms apart, to (x, y).
func (g *gen) moveTo(x, y int32) {
	steps := 1 + g.rng.IntN(12)
	x0, y0 := g.px, g.py
	for i := 1; i <= steps; i++ {
		if len(g.evs) > 0 {
			g.at += g.ms(8, 24)
		}
		g.px = x0 + int32(int64(x-x0)*int64(i)/int64(steps))
		g.py = y0 + int32(int64(y-y0)*int64(i)/int64(steps))
		g.emit(abi.Event{Type: abi.EvMove, X: g.px, Y: g.py})
	}
}

func (g *gen) button(b uint32, down bool) {
	g.emit(abi.Event{Type: abi.EvButton, Button: b, Down: down})
}

func (g *gen) click() {
	if g.rng.IntN(3) > 0 {
		g.moveTo(int32(g.rng.IntN(g.w)), int32(g.rng.IntN(g.h)))
		g.at += g.ms(50, 300)
	}
	b := uint32(0)
	switch g.rng.IntN(10) {
	case 0:
		b = 2
	case 1:
		b = uint32(1 + 2*g.rng.IntN(2)) // middle, back
	}
	clicks := 1
	if b == 0 && g.rng.IntN(5) == 0 {
		clicks = 2
	}
	for i := 0; i < clicks; i++ {
		if i > 0 {
			g.at += g.ms(60, 150)
		}
		g.button(b, true)
		g.at += g.ms(40, 150)
		g.button(b, false)
	}
}

func (g *gen) drag() {
	g.button(0, true)
	g.at += g.ms(50, 150)
	for i, n := 0, 1+g.rng.IntN(3); i < n; i++ {
		g.moveTo(int32(g.rng.IntN(g.w)), int32(g.rng.IntN(g.h)))
		g.at += g.ms(20, 100)
	}
	g.button(0, false)
}

func (g *gen) wheel() {
	horizontal := g.rng.IntN(6) == 0
	sign := int32(1 - 2*g.rng.IntN(2))
	for i, n := 0, 1+g.rng.IntN(8); i < n; i++ {
		if i > 0 {
			g.at += g.ms(15, 60)
		}
		delta := sign * int32(1+g.rng.IntN(3)) * 40
		if horizontal {
			g.emit(abi.Event{Type: abi.EvWheel, X: delta})
		} else {
			g.emit(abi.Event{Type: abi.EvWheel, Y: delta})
		}
	}
}
