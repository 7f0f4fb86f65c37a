package web

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"replaydesk/shared/wire"
)

func click(t *testing.T, sel string) {
	t.Helper()
	run(t, chromedp.Click(chromedp.CSS(sel)))
}

// TestPresenceAndControl: the panel lists users with role, mode and who has
// control, other users' pointers are drawn, and the control buttons send the
// control messages with the epoch of the newest Presence or control message.
func TestPresenceAndControl(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x&name=alice")
	p.welcome(1, wire.RoleOwner)
	p.send(&wire.DisplayFrame{Seq: 1, Key: true, Width: 200, Height: 100, Tiles: []wire.Tile{{W: 200, H: 100, Encoding: wire.EncSolid, Data: []byte{0, 0, 0, 255}}}})
	p.send(&wire.Presence{Control: wire.ControlExclusive, Epoch: 4, Users: []wire.PresenceUser{
		{User: 1, Name: "alice", Role: wire.RoleOwner, Mode: wire.ModeDisplay},
		{User: 2, Name: "bob", Role: wire.RoleController, Mode: wire.ModeDisplay, HasControl: true, X: 100, Y: 50},
		{User: 5, Name: "carol <b>", Role: wire.RoleViewer, Mode: wire.ModeReplay, X: 10, Y: 20},
	}})
	waitJS(t, `document.querySelectorAll("#users li").length === 3`)
	type li struct {
		User, Text string
	}
	items := eval[[]li](t, `[...document.querySelectorAll("#users li")].map(e => ({User: e.dataset.user, Text: e.textContent}))`)
	want := []li{
		{"1", "alice (owner, display)"},
		{"2", "bob (controller, display) ● controlRevoke"},
		{"5", "carol <b> (viewer, replay)Grant"},
	}
	for i := range want {
		if items[i] != want[i] {
			t.Errorf("user row %d = %+v, want %+v", i, items[i], want[i])
		}
	}
	if got := eval[string](t, `document.getElementById("control-mode").textContent`); got != "exclusive control" {
		t.Errorf("control mode shows %q", got)
	}
	type marker struct {
		User, Name string
		Left, Top  string
	}
	marks := eval[[]marker](t, `[...document.querySelectorAll("#pointers .pointer")].map(e => ({User: e.dataset.user, Name: e.textContent, Left: e.style.left, Top: e.style.top}))`)
	wantMarks := []marker{{"2", "bob", "100px", "50px"}, {"5", "carol <b>", "10px", "20px"}}
	if len(marks) != 2 || marks[0] != wantMarks[0] || marks[1] != wantMarks[1] {
		t.Errorf("pointer markers %+v, want %+v (everyone but me)", marks, wantMarks)
	}

	click(t, "#request")
	if m := expect[*wire.ControlRequest](p, nil); *m != (wire.ControlRequest{User: 1, Epoch: 4}) {
		t.Errorf("ControlRequest %+v", *m)
	}
	click(t, `#users li[data-user="5"] button`)
	if m := expect[*wire.ControlGrant](p, nil); *m != (wire.ControlGrant{By: 1, To: 5, Epoch: 4}) {
		t.Errorf("ControlGrant %+v", *m)
	}
	click(t, `#users li[data-user="2"] button`)
	if m := expect[*wire.ControlRevoke](p, nil); *m != (wire.ControlRevoke{By: 1, From: 2, Epoch: 4}) {
		t.Errorf("ControlRevoke %+v", *m)
	}
	// A control message moves the epoch too.
	p.send(&wire.ControlGrant{By: 0, To: 1, Epoch: 5})
	waitJS(t, `window.replaydesk.epoch === 5`)
	click(t, "#release")
	if m := expect[*wire.ControlRelease](p, nil); *m != (wire.ControlRelease{User: 1, Epoch: 5}) {
		t.Errorf("ControlRelease %+v", *m)
	}

	// Someone asks: the owner sees it next to the name, until it has control.
	p.send(&wire.ControlRequest{User: 5, Epoch: 5})
	waitJS(t, `document.querySelector('#users li[data-user="5"]').textContent.includes("asks")`)
	p.send(&wire.Presence{Control: wire.ControlExclusive, Epoch: 6, Users: []wire.PresenceUser{
		{User: 1, Name: "alice", Role: wire.RoleOwner, Mode: wire.ModeDisplay},
		{User: 5, Name: "carol", Role: wire.RoleViewer, Mode: wire.ModeReplay, HasControl: true},
	}})
	waitJS(t, `window.replaydesk.epoch === 6 && document.querySelectorAll("#users li").length === 2`)
	if got := eval[string](t, `document.querySelector('#users li[data-user="5"]').textContent`); got != "carol (viewer, replay) ● controlRevoke" {
		t.Errorf("row of the new holder: %q", got)
	}

	p.send(&wire.InputRefused{Seq: 3, Reason: wire.RefuseNotController, Text: "bob has control"})
	waitJS(t, `document.getElementById("msg").textContent.includes("bob has control")`)
	if got := eval[string](t, `document.getElementById("msg").textContent`); got != "input refused (not controller): bob has control" {
		t.Errorf("status line %q", got)
	}
}

// TestPingPong: the page pings at once after the Welcome and shows the
// round trip; it answers the peer's Ping echoing a 64-bit clock exactly.
func TestPingPong(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x")
	p.welcome(1, wire.RoleViewer)
	ping := expect[*wire.Ping](p, nil)
	p.send(&wire.Pong{Seq: ping.Seq, Echo: ping.Sent, Sent: 1})
	waitJS(t, `/^rtt \d+\.\d ms$/.test(document.getElementById("rtt").textContent)`)
	const big = 1<<62 + 5 // beyond JavaScript's exact integers
	p.send(&wire.Ping{Seq: 9, Sent: big})
	pong := expect[*wire.Pong](p, func(m *wire.Pong) bool { return m.Seq == 9 })
	if pong.Echo != big {
		t.Fatalf("Pong echo %d, want %d", pong.Echo, uint64(big))
	}
}

// TestMalformedAndErrors: a message that does not decode is shown with the
// decoder's reason, answered with Error{malformed}, and the page (still
// alive) reconnects; a server Error's text is shown plainly, and a permanent
// one stops the reconnecting.
func TestMalformedAndErrors(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x")
	p.welcome(1, wire.RoleViewer)
	good, err := wire.Encode(&wire.DisplayFrame{Seq: 1, Key: true, Width: 10, Height: 10, Tiles: []wire.Tile{{X: 2, W: 8, H: 10, Encoding: wire.EncSolid, Data: []byte{1, 2, 3, 4}}}})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[9] = 9 // the tile's w: 2 + 9 passes the width 10
	if err := p.conn.SendBytes(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	e := expect[*wire.Error](p, nil)
	if e.Code != wire.CodeMalformed || !strings.Contains(e.Text, "DisplayFrame.tiles[0].w") {
		t.Fatalf("page answered %+v, want Error{malformed} naming DisplayFrame.tiles[0].w", *e)
	}
	waitJS(t, `document.getElementById("error").textContent.includes("DisplayFrame.tiles[0].w")`)
	shown := eval[string](t, `document.getElementById("error").textContent`)
	if !strings.Contains(shown, "passes the frame's width 10") {
		t.Errorf("error shown: %q", shown)
	}

	// The page reconnects with back-off and says Hello again.
	p2 := s.next(t)
	if p2.hello.Token != "x" {
		t.Fatalf("second Hello %+v", p2.hello)
	}
	p2.send(&wire.Error{Code: wire.CodeForbidden, Text: "display viewers may not join this session"})
	waitJS(t, `document.getElementById("error").textContent === "forbidden: display viewers may not join this session"`)
	p2.conn.Close("forbidden")
	waitJS(t, `window.replaydesk.stopped && window.replaydesk.state === "closed"`)
	if n := eval[int](t, `6 * 7`); n != 42 {
		t.Fatal("page is not alive")
	}
}

// TestHolderHandsControlOn: a controller holding control may grant it to
// someone else (ControlGrant is owner/holder → server); others see no
// buttons but their own Request and Release.
func TestHolderHandsControlOn(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x&name=bob")
	p.welcome(2, wire.RoleController)
	users := func(holder uint16) *wire.Presence {
		return &wire.Presence{Control: wire.ControlExclusive, Epoch: uint64(10 + holder), Users: []wire.PresenceUser{
			{User: 1, Name: "alice", Role: wire.RoleOwner, Mode: wire.ModeDisplay, HasControl: holder == 1},
			{User: 2, Name: "bob", Role: wire.RoleController, Mode: wire.ModeDisplay, HasControl: holder == 2},
			{User: 3, Name: "carol", Role: wire.RoleController, Mode: wire.ModeDisplay, HasControl: holder == 3},
		}}
	}
	p.send(users(1))
	waitJS(t, `window.replaydesk.epoch === 11`)
	if n := eval[int](t, `document.querySelectorAll("#users button").length`); n != 0 {
		t.Fatalf("a controller without control sees %d grant/revoke buttons", n)
	}
	p.send(users(2))
	waitJS(t, `window.replaydesk.epoch === 12 && document.querySelectorAll("#users button").length === 2`)
	click(t, `#users li[data-user="3"] button`)
	if m := expect[*wire.ControlGrant](p, nil); *m != (wire.ControlGrant{By: 2, To: 3, Epoch: 12}) {
		t.Errorf("ControlGrant %+v", *m)
	}
}

// TestHelloLongName: a name past the protocol's 64 bytes is cut at a
// character boundary, not refused by the page's own encoder.
func TestHelloLongName(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x&name="+strings.Repeat("%C3%A9", 40)) // 40 × "é", 80 bytes
	if want := strings.Repeat("é", 32); p.hello.Name != want {
		t.Fatalf("Hello name %q (%d bytes), want %q", p.hello.Name, len(p.hello.Name), want)
	}
}
