package web

import (
	"context"
	"fmt"
	"github.com/chromedp/cdproto/cdp"
	"slices"
	"testing"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"replaydesk/shared/abi"
	"replaydesk/shared/display"
	"replaydesk/shared/wire"
)

// inputPeer opens the app as a controller with a 300x200 screen shown at
// twice its size, so page coordinates must be halved.
func inputPeer(t *testing.T, s *fakeServer, role wire.Role) (*peer, float64, float64) {
	p := s.open(t, "t=x&name=bob")
	p.welcome(3, role)
	p.send(&wire.Presence{Control: wire.ControlShared, Epoch: 7, Users: []wire.PresenceUser{{User: 3, Name: "bob", Role: role, Mode: wire.ModeDisplay}}})
	enc := display.NewEncoder(display.Options{Lossless: true})
	p.send(&wire.DisplayFrame{Seq: 1, Key: true, Width: scrW, Height: scrH, Tiles: wireTiles(enc.Key(desktop(0), scrW, scrH, scrW*4))})
	waitJS(t, `window.replaydesk && window.replaydesk.screen.frames === 1 && window.replaydesk.epoch === 7`)
	type rect struct{ X, Y float64 }
	r := eval[rect](t, `(() => {
		const c = document.getElementById("screen");
		c.style.width = "600px"; c.style.height = "400px";
		c.focus();
		const r = c.getBoundingClientRect();
		return {X: r.left, Y: r.top};
	})()`)
	return p, r.X, r.Y
}

// events collects n input events from the page's Input messages, checking
// each message's epoch and that sequence numbers rise.
func events(p *peer, n int) []abi.Event {
	p.t.Helper()
	var out []abi.Event
	var last uint64
	for len(out) < n {
		in := expect[*wire.Input](p, nil)
		if in.Epoch != 7 {
			p.t.Fatalf("Input epoch %d, the newest Presence said 7", in.Epoch)
		}
		if in.Seq <= last {
			p.t.Fatalf("Input seq %d after %d", in.Seq, last)
		}
		last = in.Seq
		out = append(out, in.Events...)
	}
	return out
}

func fmtEvents(evs []abi.Event) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf("{%d %v %v code=%d btn=%d %d,%d %q} ", e.Type, e.Down, e.Repeat, e.Code, e.Button, e.X, e.Y, e.Text)
	}
	return s
}

// TestInputKeyboardMouse: real (CDP-dispatched) keyboard and mouse events
// arrive as wire events: HID codes, text for printable keys, framebuffer
// coordinates scaled from the page, buttons and wheel notches.
func TestInputKeyboardMouse(t *testing.T) {
	s := newServer(t)
	p, x0, y0 := inputPeer(t, s, wire.RoleController)

	run(t, chromedp.MouseEvent(chromedp.MouseMoved, x0+101, y0+51))
	first := events(p, 1) // waited for: a press right after it would take its place
	run(t, chromedp.Steps(
		chromedp.MouseEvent(chromedp.MousePressed, x0+201, y0+101, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseReleased, x0+201, y0+101, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.DispatchMouseEvent, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseWheel, X: x0 + 201, Y: y0 + 101, DeltaX: 40, DeltaY: 120})
			return err
		}),
		chromedp.KeyEvent("a"),
		chromedp.KeyEvent(kb.Enter),
		chromedp.KeyEvent(kb.ArrowLeft),
	))
	want := []abi.Event{
		{Type: abi.EvMove, X: 50, Y: 25},
		{Type: abi.EvMove, X: 100, Y: 50},
		{Type: abi.EvButton, Button: 0, Down: true},
		{Type: abi.EvButton, Button: 0},
		{Type: abi.EvWheel, X: 1, Y: 3},
		{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true},
		{Type: abi.EvText, Text: "a"},
		{Type: abi.EvKey, Code: abi.CodeKeyA},
		{Type: abi.EvKey, Code: abi.CodeEnter, Down: true},
		{Type: abi.EvKey, Code: abi.CodeEnter},
		{Type: abi.EvKey, Code: abi.CodeArrowLeft, Down: true},
		{Type: abi.EvKey, Code: abi.CodeArrowLeft},
	}
	got := append(first, events(p, len(want)-1)...)
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %s\nwant %s", fmtEvents(got), fmtEvents(want))
	}
}

// TestInputMovesCoalesce: a burst of pointer moves within one task becomes
// one move to the newest position, not one event each.
func TestInputMovesCoalesce(t *testing.T) {
	s := newServer(t)
	p, _, _ := inputPeer(t, s, wire.RoleOwner)
	eval[bool](t, `(() => {
		const c = document.getElementById("screen"), r = c.getBoundingClientRect();
		for (let i = 0; i <= 100; i++) c.dispatchEvent(new MouseEvent("mousemove", {clientX: r.left + 2 * i, clientY: r.top + 4, bubbles: true}));
		c.dispatchEvent(new MouseEvent("mousedown", {clientX: r.left + 200, clientY: r.top + 4, button: 2, bubbles: true}));
		return true;
	})()`)
	got := events(p, 2)
	want := []abi.Event{{Type: abi.EvMove, X: 100, Y: 2}, {Type: abi.EvButton, Button: 2, Down: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %s\nwant %s", fmtEvents(got), fmtEvents(want))
	}
}

// TestInputHeldKeysReleasedOnBlur: a key still down when the canvas loses
// focus is released, so it does not stay down in the guest.
func TestInputHeldKeysReleasedOnBlur(t *testing.T) {
	s := newServer(t)
	p, _, _ := inputPeer(t, s, wire.RoleOwner)
	run(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: kb.KeyRawDown, Code: "ShiftLeft", Key: "Shift", WindowsVirtualKeyCode: 16, Location: 1})
		return err
	}))
	if got := events(p, 1); !slices.Equal(got, []abi.Event{{Type: abi.EvKey, Code: abi.CodeShiftLeft, Down: true}}) {
		t.Fatalf("events %s", fmtEvents(got))
	}
	eval[bool](t, `document.getElementById("screen").blur(), true`)
	if got := events(p, 1); !slices.Equal(got, []abi.Event{{Type: abi.EvKey, Code: abi.CodeShiftLeft}}) {
		t.Fatalf("after blur: events %s", fmtEvents(got))
	}
}

// TestInputViewOnly: a viewer's keys are not sent; the status line says why.
func TestInputViewOnly(t *testing.T) {
	s := newServer(t)
	p, _, _ := inputPeer(t, s, wire.RoleViewer)
	run(t, chromedp.KeyEvent("q"))
	waitJS(t, `document.getElementById("msg").textContent.startsWith("view only")`)
	// Messages keep their order on the connection: an Input sent before the
	// Pong would arrive before it.
	p.send(&wire.Ping{Seq: 77, Sent: 1})
	for {
		m := expect[wire.Message](p, nil)
		if in, ok := m.(*wire.Input); ok {
			t.Fatalf("a viewer's page sent %s", fmtEvents(in.Events))
		}
		if pong, ok := m.(*wire.Pong); ok && pong.Seq == 77 {
			break
		}
	}
}
