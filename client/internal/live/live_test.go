package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/live/livetest"
	"replaydesk/client/internal/localview"
	"replaydesk/shared/abi"
	"replaydesk/shared/display"
	"replaydesk/shared/modes"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

func TestParseLink(t *testing.T) {
	l, err := ParseLink("http://127.0.0.1:8080/s/demo-1?t=abc.def")
	if err != nil {
		t.Fatal(err)
	}
	if l.Base != "http://127.0.0.1:8080" || l.Session != "demo-1" || l.Token != "abc.def" || l.WebSocket() != "ws://127.0.0.1:8080/ws/demo-1" {
		t.Fatalf("%+v %s", l, l.WebSocket())
	}
	for _, bad := range []string{"ftp://h/s/x?t=1", "http://h/x/y?t=1", "http://h/s/x", "http://h/s/?t=1", "http://h/s/a/b?t=1", "http://h/s/..?t=1"} {
		if _, err := ParseLink(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add("http://127.0.0.1:8080/s/demo?t=x.y")
	f.Add("https://h/s/a.b-c_d?t=%20&t=2")
	f.Add("http://[::1]:1/s/x?t=1#frag")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			return
		}
		if l.Session == "" || l.Token == "" || !strings.HasPrefix(l.WebSocket(), "ws") {
			t.Fatalf("%q parsed to %+v (%s)", s, l, l.WebSocket())
		}
		// What parses names the same session again through its WebSocket URL.
		again, err := ParseLink(l.Base + "/s/" + l.Session + "?t=tok")
		if err != nil || again.Session != l.Session || again.Base != l.Base {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, l, again, err)
		}
	})
}

func TestDisplayModeAndLocalView(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	c, stop := runClient(t, u, Options{Want: wire.ModeDisplay})
	if h := u.Next(t).(*wire.Hello); h.Want != wire.ModeDisplay || h.Caps != Caps || h.Token != u.Token {
		t.Fatalf("Hello %+v", h)
	}
	// Every frame applied: the client's screen is the recorder's last one.
	var sc Screen
	deadline := time.Now().Add(30 * time.Second)
	for !(c.Screen(&sc) && sc.Tick == s.EndTick) {
		if time.Now().After(deadline) {
			t.Fatalf("the screen never reached tick %d (at %d)", s.EndTick, sc.Tick)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sc.Replay || sc.W != s.W || sc.H != s.H || !bytes.Equal(sc.Pix, s.EndPix) {
		t.Fatalf("display framebuffer %dx%d replay=%v differs from the recorder's %dx%d", sc.W, sc.H, sc.Replay, s.W, s.H)
	}

	// The local view: a page gets a lossless key frame of that screen.
	v, err := localview.Start(c, localview.Options{Session: livetest.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !strings.Contains(v.URL(), "/s/"+livetest.SessionID+"?t="+v.Token()) {
		t.Fatalf("URL %s", v.URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := strings.Replace(strings.SplitN(v.URL(), "/s/", 2)[0], "http", "ws", 1) + "/ws/" + livetest.SessionID
	// A wrong local token is refused.
	bad, err := wsconn.Dial(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	bad.Send(ctx, &wire.Hello{Major: 1, Caps: wire.CapDisplay, Token: u.Token})
	if m, _, err := bad.Recv(ctx); err == nil {
		if e, ok := m.(*wire.Error); !ok || e.Code != wire.CodeUnauthorized {
			t.Fatalf("a page with the session's token instead of the local one got %v", m)
		}
	}
	bad.CloseNow()

	page, err := wsconn.Dial(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer page.CloseNow()
	if err := page.Send(ctx, &wire.Hello{Major: 1, Caps: wire.CapDisplay | wire.CapZlib | wire.CapPalette, Token: v.Token()}); err != nil {
		t.Fatal(err)
	}
	m, _, err := page.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := m.(*wire.Welcome); !ok || w.User != 7 || w.Mode != wire.ModeDisplay || w.ModuleHash != s.ModuleHash {
		t.Fatalf("the page's Welcome: %+v", m)
	}
	m, _, err = page.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := m.(*wire.DisplayFrame)
	if !ok || !f.Key || int(f.Width) != s.W || int(f.Height) != s.H {
		t.Fatalf("the page's first frame: %+v", m)
	}
	fb := make([]byte, s.W*s.H*4)
	var dec display.Decoder
	tiles := make([]display.Tile, len(f.Tiles))
	for i, tl := range f.Tiles {
		if tl.Encoding == wire.EncJPEG {
			t.Fatal("a lossy tile in the local view")
		}
		tiles[i] = display.FromWire(tl)
	}
	if err := dec.Apply(tiles, fb, s.W, s.H, s.W*4); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fb, s.EndPix) {
		t.Fatal("the local view's key frame differs from the client's screen")
	}
	// Presence from the session reaches the page.
	pres := &wire.Presence{Control: wire.ControlShared, Epoch: 1, Users: []wire.PresenceUser{{User: 7, Name: "me", Role: wire.RoleViewer, Mode: wire.ModeDisplay}}}
	u.Send(pres)
	for {
		m, _, err := page.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := m.(*wire.Presence); ok {
			if len(p.Users) != 1 || p.Users[0].Name != "me" {
				t.Fatalf("the page got presence %+v", p)
			}
			break
		}
	}
	// Input from the page goes to the session as the client's.
	in := &wire.Input{Seq: 3, Epoch: 1, Events: []abi.Event{{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true}}}
	if err := page.Send(ctx, in); err != nil {
		t.Fatal(err)
	}
	for {
		if got, ok := u.Next(t).(*wire.Input); ok {
			if got.Seq != 3 || len(got.Events) != 1 || got.Events[0].Code != abi.CodeKeyA {
				t.Fatalf("the session got %+v", got)
			}
			break
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Pinned to display: the client never asked for anything else.
	for len(u.Got) > 0 {
		if ms, ok := (<-u.Got).(*wire.ModeSwitch); ok {
			t.Fatalf("a display-pinned client sent %+v", ms)
		}
	}
}

func TestPinnedReplayCatchesUp(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	statsPath := filepath.Join(t.TempDir(), "stats.jsonl")
	sf, err := os.Create(statsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	c, stop := runClient(t, u, Options{Want: wire.ModeReplay, Stats: sf})
	if h := u.Next(t).(*wire.Hello); h.Want != wire.ModeReplay {
		t.Fatalf("Hello want %d", h.Want)
	}
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	st := waitStats(t, c, "the replay at the end tick", func(s2 *Stats) bool { return s2.ReplayTick == s.EndTick && s2.Mode == "replay" })
	if st.ReplayFB != hex16(s.EndFB) {
		t.Fatalf("replayed framebuffer hash %s at tick %d, the recorder's %s", st.ReplayFB, st.ReplayTick, hex16(s.EndFB))
	}
	if st.Checkpoints == 0 {
		t.Fatal("no checkpoints verified")
	}
	if st.LagTicks != 0 || st.BufferBytes != 0 {
		t.Fatalf("caught up with lag %d ticks, %d bytes buffered", st.LagTicks, st.BufferBytes)
	}
	var sc Screen
	if !c.Screen(&sc) || !sc.Replay || !bytes.Equal(sc.Pix, s.EndPix) {
		t.Fatalf("the screen in replay mode is not the replay's last frame (replay=%v)", sc.Replay)
	}
	select {
	case l := <-u.Lags:
		if l.ReplayTick > l.ReceivedTick || l.ReceivedTick > s.EndTick {
			t.Fatalf("Lag %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Lag message in dual or replay")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The stats file: one JSON object a line, with every field.
	b, err := os.ReadFile(statsPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("%d stats lines", len(lines))
	}
	var modesSeen []string
	var switches []Switch
	for i, line := range lines {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, line)
		}
		for _, k := range []string{"time", "mode", "bytes", "lag_ms", "lag_ticks", "buffer_bytes", "switches", "replay_tick", "server_tick", "checkpoints"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("line %d has no %q: %s", i+1, k, line)
			}
		}
		var st Stats
		json.Unmarshal([]byte(line), &st)
		modesSeen = append(modesSeen, st.Mode)
		switches = append(switches, st.Switches...)
	}
	var last Stats
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last.Bytes.Log == 0 || last.Bytes.Display == 0 || last.Bytes.Pages == 0 || last.Bytes.Other == 0 {
		t.Fatalf("byte counters %+v", last.Bytes)
	}
	var path []string
	for _, sw := range switches {
		path = append(path, sw.From+">"+sw.To)
	}
	if got := strings.Join(path, " "); got != "display>await-snapshot await-snapshot>dual dual>replay" {
		t.Fatalf("switches %s", got)
	}
}

// corrupt returns a copy of b with one payload byte flipped.
func corrupt(b wire.LogBlock) *wire.LogBlock {
	c := wire.LogBlock{Pos: b.Pos, Block: append([]byte(nil), b.Block...)}
	c.Block[len(c.Block)-1] ^= 0x40
	return &c
}

func TestCorruptBlockFallsBackToDisplay(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.HoldFrom, u.DualOnce = s.SnapIdx+3, true
	c, _ := runClient(t, u, Options{Want: wire.ModeReplay})
	u.Next(t) // Hello
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	held := s.Blocks[u.HoldFrom].Pos.Tick
	waitStats(t, c, "the replay at the held tick", func(st *Stats) bool { return st.ReplayTick == held })
	u.Send(corrupt(s.Blocks[u.HoldFrom]))
	ms := u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDisplay)
	if !strings.Contains(ms.Reason, "checksum") {
		t.Fatalf("the switch to display says %q, not why", ms.Reason)
	}
	st := waitStats(t, c, "the failure in the stats", func(st *Stats) bool { return st.Failures == 1 })
	if !strings.Contains(st.LastFailure, "refused") || st.Mode == "replay" {
		t.Fatalf("stats after a corrupt block: %+v", st)
	}
	var sc Screen
	if c.Screen(&sc); sc.Replay {
		t.Fatal("still showing the replay after a corrupt block")
	}
	// Pinned to replay, it asks again (the pin ignores the back-off).
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
}

func TestForcedDisplayIsObeyed(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.DualOnce = true
	c, _ := runClient(t, u, Options{Want: wire.ModeReplay})
	u.Next(t) // Hello
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	waitStats(t, c, "replay", func(st *Stats) bool { return st.Mode == "replay" && st.ReplayTick == s.EndTick })
	u.Send(&wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: "too slow: test"})
	// The relay switched it already: the client does not ask for display,
	// and its next request is the pin's dual.
	ms := u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	_ = ms
	var sc Screen
	if c.Screen(&sc); sc.Replay {
		t.Fatal("still showing the replay after a forced switch to display")
	}
	st := waitStats(t, c, "the forced switch", func(st *Stats) bool { return st.SwitchCount >= 4 })
	if st.Mode != "display" || st.Failures != 0 {
		t.Fatalf("after a forced switch: %+v", st)
	}
}

func TestReconnectResumes(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.HoldFrom = s.SnapIdx + 3
	c, _ := runClient(t, u, Options{Want: wire.ModeReplay})
	u.Next(t) // Hello
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	held := s.Blocks[u.HoldFrom].Pos
	waitStats(t, c, "the replay at the held tick", func(st *Stats) bool { return st.ReplayTick == held.Tick })
	pagesBefore := c.fetch.BytesReceived()
	u.Drop()
	h, ok := u.Next(t).(*wire.Hello)
	if !ok {
		t.Fatal("the client did not say Hello again")
	}
	if len(h.KnownSnapshots) != 1 || h.KnownSnapshots[0] != s.Snap.ManifestHash {
		t.Fatalf("the reconnecting Hello knows snapshots %x", h.KnownSnapshots)
	}
	r, ok := u.Next(t).(*wire.Resume)
	if !ok {
		t.Fatal("no Resume after the Welcome")
	}
	if r.Pos != held {
		t.Fatalf("Resume at %+v, the log held ends at %+v", r.Pos, held)
	}
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	st := waitStats(t, c, "the replay at the end", func(st *Stats) bool { return st.ReplayTick == s.EndTick })
	if st.ReplayFB != hex16(s.EndFB) {
		t.Fatalf("replayed framebuffer %s after resuming, the recorder's %s", st.ReplayFB, hex16(s.EndFB))
	}
	if got := c.fetch.BytesReceived(); got != pagesBefore {
		t.Fatalf("resuming fetched %d more bytes of pages", got-pagesBefore)
	}
	if conns := u.Conns(); conns != 2 {
		t.Fatalf("%d connections", conns)
	}
}

func TestRefusedTokenEndsRun(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	o := Options{Link: Link{Base: u.Srv.URL, Session: livetest.SessionID, Token: "wrong"}, CacheDir: t.TempDir(), Log: zerolog.Nop()}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	var fe *FatalError
	if !errors.As(err, &fe) || fe.Err.Code != wire.CodeUnauthorized {
		t.Fatalf("Run with a bad token: %v", err)
	}
}

func TestDivergenceFallsBackToDisplay(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.BadSnapshot, u.DualOnce = true, true
	c, _ := runClient(t, u, Options{Want: wire.ModeReplay})
	u.Next(t) // Hello
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	// A replay from a wrong state never reaches replay mode: the memory
	// checkpoint stops it and the client goes back to display.
	for {
		ms, ok := u.Next(t).(*wire.ModeSwitch)
		if !ok {
			continue
		}
		if ms.Mode == wire.ModeReplay {
			continue // caught up before the next memory checkpoint: fine, it must still fall back
		}
		if ms.Mode != wire.ModeDisplay || !strings.Contains(ms.Reason, "diverged") {
			t.Fatalf("after a divergence the client sent %+v", ms)
		}
		break
	}
	st := waitStats(t, c, "the failure in the stats", func(st *Stats) bool { return st.Failures == 1 })
	if !strings.Contains(st.LastFailure, "diverged") || st.Mode == "replay" {
		t.Fatalf("stats after a divergence: %+v", st)
	}
	var sc Screen
	if c.Screen(&sc); sc.Replay {
		t.Fatal("showing a replay that diverged")
	}
}

// TestLazyRestoreReplays: --lazy restores lazily where userfaultfd is
// allowed and eagerly elsewhere; either way the replay is exact.
func TestLazyRestoreReplays(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	c, _ := runClient(t, u, Options{Want: wire.ModeReplay, Lazy: true, Headless: true})
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	st := waitStats(t, c, "the replay at the end tick", func(st *Stats) bool { return st.ReplayTick == s.EndTick })
	if st.ReplayFB != hex16(s.EndFB) || st.Checkpoints == 0 {
		t.Fatalf("lazy: replayed framebuffer %s (%d checkpoints), the recorder's %s", st.ReplayFB, st.Checkpoints, hex16(s.EndFB))
	}
	// Headless: the screen is the display stream's, never a copied replay frame.
	var sc Screen
	if c.Screen(&sc) && sc.Replay {
		t.Fatal("a headless client copied replay frames")
	}
}

// TestAutoSwitchesWhenDisplayCostly: unpinned, the controller moves to
// replay by itself when the display stream costs ≥ 1.5× the server's
// estimate of the log, and stays there while the log is the cheaper.
func TestAutoSwitchesWhenDisplayCostly(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.KeyEvery = 20 * time.Millisecond
	c, _ := runClient(t, u, Options{Rules: modes.Rules{Window: 300 * time.Millisecond}})
	if h := u.Next(t).(*wire.Hello); h.Want != wire.ModeAuto {
		t.Fatalf("Hello want %d", h.Want)
	}
	ms := u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	if !strings.HasPrefix(ms.Reason, "display-costly") {
		t.Fatalf("auto switch to dual because %q", ms.Reason)
	}
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	st := waitStats(t, c, "replay at the end tick", func(st *Stats) bool { return st.ReplayTick == s.EndTick })
	if st.Pinned != "auto" || st.ReplayFB != hex16(s.EndFB) {
		t.Fatalf("stats %+v", st)
	}
	// Several windows later it is still replaying: 50 kB/s of display
	// against a log that costs nothing while the session idles.
	time.Sleep(time.Second)
	if st := c.LastStats(); st.Mode != "replay" {
		t.Fatalf("left replay: %+v", st)
	}
}

func TestDisplayRoleIsPinnedToDisplay(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	u.Role = wire.RoleDisplayViewer
	c, stop := runClient(t, u, Options{Want: wire.ModeReplay})
	u.Next(t) // Hello
	waitStats(t, c, "a pin", func(st *Stats) bool { return st.Pinned == "display" })
	time.Sleep(300 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for len(u.Got) > 0 {
		if ms, ok := (<-u.Got).(*wire.ModeSwitch); ok {
			t.Fatalf("a display viewer sent %+v", ms)
		}
	}
}

func TestSetModeSwitchesBothWays(t *testing.T) {
	s := recording(t)
	u := livetest.NewUpstream(t, s)
	c, stop := runClient(t, u, Options{Want: wire.ModeDisplay})
	u.Next(t) // the Hello
	waitStats(t, c, "display mode", func(s2 *Stats) bool { return s2.Mode == "display" && s2.Pinned == "display" })
	c.SetMode(wire.ModeReplay)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	waitStats(t, c, "replay at the end tick", func(s2 *Stats) bool { return s2.Mode == "replay" && s2.ReplayTick == s.EndTick })
	c.SetMode(wire.ModeDisplay)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDisplay)
	st := waitStats(t, c, "display mode again", func(s2 *Stats) bool { return s2.Mode == "display" })
	if st.Pinned != "display" {
		t.Fatalf("pinned %q after SetMode(display)", st.Pinned)
	}
	var sc Screen
	if !c.Screen(&sc) || sc.Replay {
		t.Fatalf("the screen after SetMode(display) is the replay's (replay=%v)", sc.Replay)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
