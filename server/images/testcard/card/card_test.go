package card

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// fakeHost is a deterministic machine: a virtual clock that advances one tick
// per Advance, a seeded random source, an input queue, an in-memory disk and
// an echo endpoint whose data comes back one tick later.
type fakeHost struct {
	t       *testing.T
	base    time.Time
	tick    int64
	rng     *rand.ChaCha8
	input   []abi.Event
	disk    []byte // nil: no disk
	mode    abi.DiskMode
	rofs    bool
	writes  int
	echo    *echoConn
	noEcho  bool
	console bytes.Buffer

	frame    *image.RGBA // what a viewer would see
	presents int
	damage   []image.Rectangle // of the last present; nil = whole frame
}

func newFakeHost(t *testing.T) *fakeHost {
	disk := make([]byte, 16*abi.BlockSize)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(disk[abi.BlockSize:])
	return &fakeHost{
		t:     t,
		base:  time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		rng:   rand.NewChaCha8([32]byte{7}),
		disk:  disk,
		mode:  abi.DiskReplayed,
		frame: image.NewRGBA(image.Rect(0, 0, Width, Height)),
	}
}

// Now follows the host's virtual clock: base + tick × 1/60 s.
func (h *fakeHost) Now() time.Time {
	return h.base.Add(time.Duration(h.tick * int64(time.Second) / guest.TickRate))
}
func (h *fakeHost) Random(b []byte) { h.rng.Read(b) }
func (h *fakeHost) PollInput(dst []abi.Event) []abi.Event {
	dst = append(dst, h.input...)
	h.input = h.input[:0]
	return dst
}
func (h *fakeHost) DiskInfo() (uint64, abi.DiskMode, error) {
	if h.disk == nil {
		return 0, abi.DiskNone, guest.ErrNodev
	}
	return uint64(len(h.disk) / abi.BlockSize), h.mode, nil
}
func (h *fakeHost) ReadBlock(n uint64, buf []byte) error {
	if n >= uint64(len(h.disk)/abi.BlockSize) {
		return guest.ErrInval
	}
	copy(buf, h.disk[n*abi.BlockSize:])
	return nil
}
func (h *fakeHost) WriteBlock(n uint64, buf []byte) error {
	if h.rofs {
		return guest.ErrRofs
	}
	if n >= uint64(len(h.disk)/abi.BlockSize) {
		return guest.ErrInval
	}
	copy(h.disk[n*abi.BlockSize:(n+1)*abi.BlockSize], buf)
	h.writes++
	return nil
}
func (h *fakeHost) Dial(name string) (Conn, error) {
	if name != "echo" || h.noEcho {
		return nil, guest.ErrNoent
	}
	h.echo = &echoConn{}
	return h.echo, nil
}
func (h *fakeHost) Console() io.Writer { return &h.console }

// Present checks the damage and applies it to the viewer's frame: only the
// damaged rectangles are copied, so a change outside them leaves the viewer's
// frame different from the card's image, which check detects.
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	h.presents++
	h.damage = damage
	if damage == nil {
		copy(h.frame.Pix, img.Pix)
		return
	}
	if len(damage) == 0 {
		h.t.Fatal("Present with an empty, non-nil damage list")
	}
	for _, r := range damage {
		if r.Empty() || !r.In(img.Bounds()) {
			h.t.Fatalf("bad damage rectangle %v", r)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			copy(h.frame.Pix[h.frame.PixOffset(r.Min.X, y):h.frame.PixOffset(r.Max.X, y)],
				img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)])
		}
	}
}

type echoConn struct {
	inflight, ready []byte
	sent            int
	closed          bool
}

func (e *echoConn) Send(b []byte) (int, error) {
	e.inflight = append(e.inflight, b...)
	e.sent += len(b)
	return len(b), nil
}
func (e *echoConn) Recv(b []byte) (int, error) {
	n := copy(b, e.ready)
	e.ready = e.ready[n:]
	if n == 0 && e.closed {
		return 0, io.EOF
	}
	return n, nil
}
func (e *echoConn) Close() error { return nil }

// runner drives a card tick by tick, honouring its sleep values as the host
// does (a step returning n > 0 skips the next n ticks; input or net data
// wakes it early), and checks after every step that the viewer's frame, built
// from the damage rectangles alone, equals the card's image.
type runner struct {
	t     *testing.T
	h     *fakeHost
	c     *Card
	sleep int32 // ticks left to sleep; -1 until an event
	steps int
}

func newRunner(t *testing.T, h *fakeHost) *runner {
	return &runner{t: t, h: h, c: New(h)}
}

// tick advances the virtual clock by one tick, delivering echo data, and
// runs step if the card is awake.
func (r *runner) tick() {
	r.t.Helper()
	wake := len(r.h.input) > 0
	if e := r.h.echo; e != nil && len(e.inflight) > 0 {
		e.ready = append(e.ready, e.inflight...)
		e.inflight = nil
		wake = true
	}
	if r.sleep == 0 || wake {
		r.sleep = r.c.Step()
		r.steps++
		if !bytes.Equal(r.h.frame.Pix, r.c.Image().Pix) {
			r.t.Fatalf("tick %d: the damage rectangles %v miss changed pixels", r.h.tick, r.h.damage)
		}
	} else if r.sleep > 0 {
		r.sleep--
	}
	r.h.tick++
}

func (r *runner) ticks(n int) {
	r.t.Helper()
	for range n {
		r.tick()
	}
}

func (r *runner) send(evs ...abi.Event) {
	r.t.Helper()
	r.h.input = append(r.h.input, evs...)
	r.tick()
}

func snapshot(c *Card) []byte { return bytes.Clone(c.Image().Pix) }

func TestStartPresentsWholeFrame(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick()
	if h.presents != 1 || h.damage != nil {
		t.Fatalf("first step: %d presents, damage %v; want one whole-frame present", h.presents, h.damage)
	}
	if c := r.c; c.diskBlocks != 16 || c.scanned != 15 || c.conn == nil || c.counter != 0 {
		t.Fatalf("after start: blocks %d scanned %d conn %v counter %d", c.diskBlocks, c.scanned, c.conn, c.counter)
	}
	if !strings.Contains(h.console.String(), "testcard: start") {
		t.Errorf("console lacks the start line:\n%s", h.console.String())
	}
}

func TestIdleSleepsToNextSecond(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick() // t = 0 (a whole second): sleep to the next one
	if r.sleep != guest.TickRate-1 {
		t.Fatalf("first step returned %d, want %d", r.sleep, guest.TickRate-1)
	}
	// Over ten seconds with no input the card wakes for the echo (the tick
	// after each send) and once per second: about two steps a second.
	r.ticks(10 * guest.TickRate)
	if r.steps > 1+2*10+1 {
		t.Fatalf("idle card ran %d steps in 10 s, want at most %d", r.steps, 1+2*10+1)
	}
	if r.c.seconds < 10 {
		t.Fatalf("per-second work ran %d times in 10 s", r.c.seconds)
	}
	// Halfway through a second the card asks for the rest of it.
	h.tick = 30
	if got := r.c.Step(); got != 29 {
		t.Fatalf("at 0.5 s into a second step returned %d, want 29", got)
	}
}

func TestSpaceTogglesBusyMode(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick()
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: true})
	if r.sleep != abi.SleepNone || !r.c.Animating() {
		t.Fatalf("after Space: sleep %d, animating %v; want 0, true", r.sleep, r.c.Animating())
	}
	before := snapshot(r.c)
	r.ticks(5)
	if bytes.Equal(before, snapshot(r.c)) {
		t.Fatal("the ball did not move in 5 busy ticks")
	}
	if r.steps != 7 {
		t.Fatalf("busy card ran %d steps, want one per tick (7)", r.steps)
	}
	// The busy card still presents only the changed parts.
	for _, d := range h.damage {
		if d.Dx()*d.Dy() > Width*Height/8 {
			t.Fatalf("busy tick damage %v is too large", h.damage)
		}
	}
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: false}) // release: no toggle
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: true, Repeat: true})
	if !r.c.Animating() {
		t.Fatal("key repeat toggled the animation")
	}
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: true})
	if r.c.Animating() || r.sleep <= 0 {
		t.Fatalf("after second Space: animating %v, sleep %d", r.c.Animating(), r.sleep)
	}
}

func TestDiskCounter(t *testing.T) {
	h := newFakeHost(t)
	binary.LittleEndian.PutUint64(h.disk, 41)
	r := newRunner(t, h)
	r.tick()
	if r.c.Counter() != 41 {
		t.Fatalf("counter read from block 0 = %d, want 41", r.c.Counter())
	}
	r.send(abi.Event{Type: abi.EvButton, Button: 0, Down: true})
	r.send(abi.Event{Type: abi.EvButton, Button: 0, Down: false})
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeEnter, Down: true})
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeEnter, Down: true, Repeat: true})
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeEnter, Down: false})
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeNumpadEnter, Down: true})
	if got := binary.LittleEndian.Uint64(h.disk); got != 44 || h.writes != 3 {
		t.Fatalf("block 0 counter = %d after %d writes, want 44 after 3", got, h.writes)
	}
	// A fresh card on the same disk continues from there.
	h2 := newFakeHost(t)
	h2.disk = h.disk
	r2 := newRunner(t, h2)
	r2.tick()
	if r2.c.Counter() != 44 {
		t.Fatalf("restarted card counter %d, want 44", r2.c.Counter())
	}
}

func TestDiskErrorsAreShown(t *testing.T) {
	base := newRunner(t, newFakeHost(t))
	base.tick()

	h := newFakeHost(t)
	h.disk = nil
	r := newRunner(t, h)
	r.tick()
	if !errors.Is(r.c.diskErr, guest.ErrNodev) {
		t.Fatalf("no disk: diskErr = %v", r.c.diskErr)
	}
	if bytes.Equal(snapshot(r.c), snapshot(base.c)) {
		t.Fatal("a missing disk does not change the picture")
	}
	r.send(abi.Event{Type: abi.EvButton, Down: true}) // must not crash; counts in memory
	if r.c.Counter() != 1 {
		t.Fatalf("counter without disk = %d", r.c.Counter())
	}

	h = newFakeHost(t)
	h.rofs = true
	r = newRunner(t, h)
	r.tick()
	r.send(abi.Event{Type: abi.EvButton, Down: true})
	if !errors.Is(r.c.writeErr, guest.ErrRofs) {
		t.Fatalf("read-only disk: writeErr = %v", r.c.writeErr)
	}
}

func TestEcho(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.ticks(3*guest.TickRate + 2)
	if r.c.msgs != 4 || r.c.sent == 0 || r.c.recvd != r.c.sent {
		t.Fatalf("after 3 s: %d msgs, sent %d, received %d", r.c.msgs, r.c.sent, r.c.recvd)
	}
	if want := fmt.Sprintf("msg 4 t=%d", h.base.Unix()+3); r.c.lastLine != want {
		t.Fatalf("last line %q, want %q", r.c.lastLine, want)
	}
	h.echo.closed = true
	r.ticks(guest.TickRate)
	if !r.c.netEOF {
		t.Fatal("peer close not noticed")
	}

	h = newFakeHost(t)
	h.noEcho = true
	r = newRunner(t, h)
	r.ticks(2 * guest.TickRate)
	if !errors.Is(r.c.netErr, guest.ErrNoent) {
		t.Fatalf("dial failure: netErr = %v", r.c.netErr)
	}
}

// TestEveryInputChangesThePicture runs the same session with and without one
// extra input event; the pictures must differ, so that a lost event is
// visible.
func TestEveryInputChangesThePicture(t *testing.T) {
	join := abi.Event{Type: abi.EvUser, User: 2, Down: true, Text: "bob"}
	move := abi.Event{Type: abi.EvMove, User: 2, X: 300, Y: 100}
	setup := []abi.Event{join, move}
	cases := map[string][]abi.Event{
		"key down":    {{Type: abi.EvKey, User: 2, Code: abi.CodeKeyQ, Down: true}},
		"key up":      {{Type: abi.EvKey, User: 2, Code: abi.CodeKeyQ, Down: false}},
		"key repeat":  {{Type: abi.EvKey, User: 2, Code: abi.CodeKeyQ, Down: true, Repeat: true}},
		"modifier":    {{Type: abi.EvKey, User: 2, Code: abi.CodeShiftRight, Down: true}},
		"text":        {{Type: abi.EvText, User: 2, Text: "x"}},
		"same text":   {{Type: abi.EvText, User: 2, Text: "hi"}, {Type: abi.EvText, User: 2, Text: "hi"}},
		"move":        {{Type: abi.EvMove, User: 2, X: 301, Y: 100}},
		"move 1px y":  {{Type: abi.EvMove, User: 2, X: 300, Y: 101}},
		"button down": {{Type: abi.EvButton, User: 2, Button: 2, Down: true}},
		"button up":   {{Type: abi.EvButton, User: 2, Button: 2, Down: false}},
		"wheel dy":    {{Type: abi.EvWheel, User: 2, Y: 1}},
		"wheel dx":    {{Type: abi.EvWheel, User: 2, X: 1}},
		"join":        {{Type: abi.EvUser, User: 3, Down: true, Text: "carol"}},
		"rename":      {{Type: abi.EvUser, User: 2, Down: true, Text: "rob"}},
		"leave":       {{Type: abi.EvUser, User: 2, Down: false}},
	}
	run := func(extra []abi.Event) []byte {
		h := newFakeHost(t)
		r := newRunner(t, h)
		r.tick()
		r.send(setup...)
		r.send(abi.Event{Type: abi.EvText, User: 2, Text: "hi"})
		for _, ev := range extra {
			r.send(ev)
		}
		// Pad so both runs reach the same virtual time.
		r.ticks(5 - len(extra))
		return snapshot(r.c)
	}
	base := run(nil)
	if !bytes.Equal(base, run(nil)) {
		t.Fatal("two identical runs drew different pictures: the card is not deterministic")
	}
	for name, extra := range cases {
		if bytes.Equal(base, run(extra)) {
			t.Errorf("%s: the picture does not change", name)
		}
	}
}

// TestClockAndRandomShowInThePicture checks that a different clock or
// different random bytes draw a different picture.
func TestClockAndRandomShowInThePicture(t *testing.T) {
	draw := func(mod func(h *fakeHost)) []byte {
		h := newFakeHost(t)
		mod(h)
		r := newRunner(t, h)
		r.tick()
		return snapshot(r.c)
	}
	base := draw(func(*fakeHost) {})
	if bytes.Equal(base, draw(func(h *fakeHost) { h.base = h.base.Add(time.Millisecond) })) {
		t.Error("a clock 1 ms later draws the same picture")
	}
	if bytes.Equal(base, draw(func(h *fakeHost) { h.rng = rand.NewChaCha8([32]byte{8}) })) {
		t.Error("other random bytes draw the same picture")
	}
	if bytes.Equal(base, draw(func(h *fakeHost) { h.disk[5*abi.BlockSize+100] ^= 1 })) {
		t.Error("a flipped bit on disk draws the same picture")
	}
}

func TestDamageIsSmallWhenIdle(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick()
	r.ticks(guest.TickRate) // to the next second
	area := 0
	for _, d := range h.damage {
		area += d.Dx() * d.Dy()
	}
	// Clock, step number, the random panel and the net counters changed;
	// not the whole frame.
	if h.damage == nil || area > Width*Height/3 {
		t.Fatalf("per-second damage %v (area %d) is not confined to what changed", h.damage, area)
	}
	// A text event (after the echo has come back) damages only the header
	// and the panels that show text and users.
	r.ticks(2)
	r.send(abi.Event{Type: abi.EvText, Text: "a"})
	for _, d := range h.damage {
		if !d.In(panelRects[pKeys]) && !d.In(panelRects[pHeader]) && !d.In(panelRects[pUsers]) && !d.In(panelRects[pPointer]) {
			t.Fatalf("text event damaged %v", d)
		}
	}
}

func TestConsoleLinePerEvent(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick()
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true}, abi.Event{Type: abi.EvWheel, Y: -3})
	out := h.console.String()
	for _, want := range []string{"input 1: user 0 key KeyA down", "input 2: user 0 wheel 0,-3", "second "} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}

func TestTextKeepsLast40Runes(t *testing.T) {
	h := newFakeHost(t)
	r := newRunner(t, h)
	r.tick()
	for _, s := range abi.SplitText(strings.Repeat("0123456789", 5) + "é") {
		r.send(abi.Event{Type: abi.EvText, Text: s})
	}
	r.send(abi.Event{Type: abi.EvKey, Code: abi.CodeBackspace, Down: true})
	if got, want := string(r.c.text), strings.Repeat("0123456789", 5)[11:]; got != want {
		t.Fatalf("text %q, want %q", got, want)
	}
}

func TestBounce(t *testing.T) {
	for _, c := range []struct {
		p    int64
		n, w int
	}{{0, 10, 0}, {5, 10, 5}, {10, 10, 10}, {11, 10, 9}, {20, 10, 0}, {21, 10, 1}, {-1, 10, 1}, {7, 0, 0}} {
		if got := bounce(c.p, c.n); got != c.w {
			t.Errorf("bounce(%d, %d) = %d, want %d", c.p, c.n, got, c.w)
		}
	}
}

func TestSegment(t *testing.T) {
	c := New(newFakeHost(t))
	cv := c.canvas(pPointer)
	col := userColor(1)
	for _, s := range [][2]image.Point{
		{{210, 30}, {300, 60}}, {{300, 60}, {210, 30}}, {{250, 190}, {260, 25}},
		{{400, 100}, {400, 100}}, {{205, 50}, {515, 50}}, {{500, 30}, {480, 190}},
	} {
		cv.fill(cv.r, panelBG[pPointer])
		cv.segment(s[0], s[1], col)
		n := 0
		for y := cv.r.Min.Y; y < cv.r.Max.Y; y++ {
			for x := cv.r.Min.X; x < cv.r.Max.X; x++ {
				if c.img.RGBAAt(x, y) == col {
					n++
				}
			}
		}
		want := max(abs(s[1].X-s[0].X), abs(s[1].Y-s[0].Y)) + 1
		if n != want || c.img.RGBAAt(s[0].X, s[0].Y) != col || c.img.RGBAAt(s[1].X, s[1].Y) != col {
			t.Errorf("segment %v: %d pixels, want %d including both ends", s, n, want)
		}
	}
}
