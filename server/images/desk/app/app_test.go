package app

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"os"
	"testing"
	"time"

	"replaydesk/server/images/desk/deskfs"
	"replaydesk/server/images/desk/starter"
	"replaydesk/shared/abi"
)

type fakeHost struct {
	now      time.Time
	pending  []abi.Event
	dev      deskfs.MemDevice
	presents [][]image.Rectangle
	frame    *image.RGBA
}

func (h *fakeHost) Now() time.Time { return h.now }
func (h *fakeHost) PollInput(dst []abi.Event) []abi.Event {
	dst = append(dst, h.pending...)
	h.pending = nil
	return dst
}
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	h.presents = append(h.presents, append([]image.Rectangle(nil), damage...))
	h.frame = img
}
func (h *fakeHost) Disk() (deskfs.BlockDevice, error) { return h.dev, nil }
func (h *fakeHost) Console() io.Writer                { return io.Discard }

func newDesk(t *testing.T) (*Desk, *fakeHost) {
	h := &fakeHost{now: time.Date(2026, 3, 4, 10, 9, 8, 0, time.UTC), dev: deskfs.MemDevice(starter.Disk())}
	d := New(h)
	d.Step()
	return d, h
}

// step queues events from user 1 and runs one tick.
func (h *fakeHost) step(d *Desk, evs ...abi.Event) time.Duration {
	for i := range evs {
		if evs[i].User == 0 {
			evs[i].User = 1
		}
	}
	h.pending = append(h.pending, evs...)
	h.presents = nil
	sleep := d.Step()
	h.now = h.now.Add(time.Second / 60)
	return sleep
}

func text(s string) abi.Event { return abi.Event{Type: abi.EvText, Text: s} }
func key(c abi.KeyCode, down bool) abi.Event {
	return abi.Event{Type: abi.EvKey, Code: c, Down: down}
}
func press(c abi.KeyCode) []abi.Event { return []abi.Event{key(c, true), key(c, false)} }
func move(x, y int) abi.Event         { return abi.Event{Type: abi.EvMove, X: int32(x), Y: int32(y)} }
func button(down bool) abi.Event      { return abi.Event{Type: abi.EvButton, Button: 0, Down: down} }

func area(rs []image.Rectangle) int {
	a := 0
	for _, r := range rs {
		a += r.Dx() * r.Dy()
	}
	return a
}

func TestTerminalWritesTheDisk(t *testing.T) {
	d, h := newDesk(t)
	h.step(d, abi.Event{Type: abi.EvUser, Down: true, Text: "alice"})
	h.step(d, text("echo hi > a.txt"))
	if len(h.presents) != 1 || area(h.presents[0]) > 720*100 {
		t.Fatalf("typing repainted %v", h.presents)
	}
	h.step(d, press(abi.CodeEnter)...)
	h.step(d, text("mkdir d"))
	h.step(d, press(abi.CodeEnter)...)
	h.step(d, text("cp a.txt d/"))
	h.step(d, press(abi.CodeEnter)...)
	fs, err := deskfs.Mount(h.dev) // what a fresh mount of the disk sees
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile("/d/a.txt"); err != nil || string(b) != "hi\n" {
		t.Fatalf("d/a.txt = %q, %v", b, err)
	}
	term := d.wm.Focus.App.(*termApp)
	last := term.t.Lines[len(term.t.Lines)-1]
	if last.Text != "cp a.txt d/" || last.Prompt != "desk:/$ " {
		t.Fatalf("last line %+v", last)
	}
}

func TestEditorSavesWithCtrlS(t *testing.T) {
	d, h := newDesk(t)
	h.step(d, text("edit notes/todo.txt"))
	h.step(d, press(abi.CodeEnter)...)
	w := d.wm.Focus
	a, ok := w.App.(*editApp)
	if !ok {
		t.Fatalf("focus is %T", w.App)
	}
	h.step(d, press(abi.CodeArrowDown)...)
	h.step(d, key(abi.CodeEnd, true))
	h.step(d, text(" (soon)"))
	if w.Title != "Editor — /notes/todo.txt •" {
		t.Fatalf("title %q", w.Title)
	}
	// Shift+Home selects the line; typing replaces it.
	h.step(d, key(abi.CodeShiftLeft, true), key(abi.CodeHome, true), key(abi.CodeShiftLeft, false))
	if a.e.SelectedText() != "---- (soon)" {
		t.Fatalf("selected %q", a.e.SelectedText())
	}
	h.step(d, text("===="))
	h.step(d, key(abi.CodeControlLeft, true), key(abi.CodeKeyS, true), text("s"), key(abi.CodeKeyS, false), key(abi.CodeControlLeft, false))
	if a.e.Dirty || w.Title != "Editor — /notes/todo.txt" {
		t.Fatalf("after Ctrl+S dirty=%v title=%q", a.e.Dirty, w.Title)
	}
	fs, _ := deskfs.Mount(h.dev)
	b, _ := fs.ReadFile("/notes/todo.txt")
	if !bytes.HasPrefix(b, []byte("Todo\n====\n[x] boot")) {
		t.Fatalf("saved %q", b)
	}
	// A mouse drag selects.
	c := w.Client()
	x0, y0 := c.Min.X+gutterW+8, c.Min.Y+editTop+monoLineH/2
	cw := d.mono.Advance("m")
	h.step(d, move(x0, y0), button(true), move(x0+4*cw, y0), button(false))
	if a.e.SelectedText() != "Todo" {
		t.Fatalf("drag selected %q", a.e.SelectedText())
	}
}

func TestWindowsDragRaiseClose(t *testing.T) {
	d, h := newDesk(t)
	term, clock := d.wm.Windows[1], d.wm.Windows[0]
	if _, ok := clock.App.(*clockApp); !ok {
		t.Fatalf("bottom window is %T", clock.App)
	}
	if d.wm.Focus != term {
		t.Fatal("the terminal does not start focused")
	}
	// Drag the terminal by its title bar.
	p := term.Rect.Min.Add(image.Pt(100, 10))
	h.step(d, move(p.X, p.Y), button(true))
	h.step(d, move(p.X+50, p.Y+30))
	h.step(d, button(false), move(p.X+90, p.Y+90))
	if term.Rect.Min != p.Add(image.Pt(-50, 20)) {
		t.Fatalf("terminal at %v", term.Rect.Min)
	}
	// Click the clock: raised and focused.
	cp := clock.Client().Min.Add(image.Pt(20, 20))
	h.step(d, move(cp.X, cp.Y), button(true), button(false))
	if d.wm.Focus != clock || d.wm.Top() != clock {
		t.Fatal("clicking the clock did not raise it")
	}
	// The launcher opens a terminal; its close button closes it.
	items := d.taskItems()
	lp := items[0].r.Min.Add(image.Pt(5, 5))
	h.step(d, move(lp.X, lp.Y), button(true), button(false))
	if len(d.wm.Windows) != 3 {
		t.Fatalf("%d windows after launching", len(d.wm.Windows))
	}
	nw := d.wm.Top()
	xp := nw.CloseRect().Min.Add(image.Pt(7, 7))
	h.step(d, move(xp.X, xp.Y), button(true), button(false))
	if len(d.wm.Windows) != 2 || d.wm.Focus != clock {
		t.Fatalf("after close: %d windows, focus %v", len(d.wm.Windows), d.wm.Focus)
	}
}

func TestIdleRepaintsOnlyTheClocks(t *testing.T) {
	d, h := newDesk(t)
	h.now = h.now.Add(300 * time.Millisecond)
	sleep := h.step(d)
	if len(h.presents) != 0 {
		t.Fatalf("idle step presented %v", h.presents)
	}
	if sleep < 650*time.Millisecond || sleep > 700*time.Millisecond {
		t.Fatalf("sleep %v, want until the next second", sleep)
	}
	h.now = h.now.Add(sleep)
	h.step(d)
	if len(h.presents) != 1 || area(h.presents[0]) > 2*300*300 {
		t.Fatalf("a new second repainted %v", h.presents)
	}
	// Pointers carry names.
	h.step(d, abi.Event{Type: abi.EvUser, Down: true, Text: "bob", User: 2}, abi.Event{Type: abi.EvMove, User: 2, X: 600, Y: 600})
	if u := d.users[2]; u == nil || u.name != "bob" || !u.seen {
		t.Fatalf("bob: %+v", d.users[2])
	}
	if got := area(h.presents[0]); got > 60000 {
		t.Fatalf("a pointer move repainted %d pixels", got)
	}
	if os.Getenv("DESK_PNG") != "" {
		f, _ := os.Create(os.Getenv("DESK_PNG"))
		png.Encode(f, d.fb)
		f.Close()
	}
}
