package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nhooyr.io/websocket"

	"replaydesk/shared/abi"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Faults and bad input in a live session (issue 5): each fault gets a clear
// message, loses nothing, and leaves everyone else's session going.

// metric reads the sum of a metric's samples (all label sets) from base's
// /metrics; ok is false if the scrape failed or the metric is absent.
func metric(base, name string) (float64, bool) {
	hc := &http.Client{Timeout: 10 * time.Second}
	r, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var sum float64
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name) || len(l) == len(name) || (l[len(name)] != ' ' && l[len(name)] != '{') {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// scrape returns base's /metrics (for failure messages).
func scrape(base string) string {
	hc := &http.Client{Timeout: 10 * time.Second}
	r, err := hc.Get(base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// mustMetric is metric that fails the test when the metric is missing.
func mustMetric(t testing.TB, base, name string) float64 {
	t.Helper()
	var v float64
	waitFor(t, 20*time.Second, "metric "+name, func() bool {
		var ok bool
		v, ok = metric(base, name)
		return ok
	})
	return v
}

// linkParts splits a session link into its WebSocket URL and token.
func linkParts(t testing.TB, link string) (ws, tok string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	tok = u.Query().Get("t")
	id := strings.TrimPrefix(u.Path, "/s/")
	return "ws://" + u.Host + "/ws/" + id, tok
}

// withHost returns link with its host:port replaced (the same session
// through another relay).
func withHost(t testing.TB, link, host string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host
	return u.String()
}

const rawCaps = wire.CapReplay | wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapPNG | wire.CapDualStream

// rawJoin connects a raw wire-protocol client (no product code on this
// side) and returns it after its Welcome; messages before the Welcome are
// dropped.
func rawJoin(t testing.TB, link string, want wire.Mode, name string) (*wsconn.Conn, *wire.Welcome) {
	t.Helper()
	ws, tok := linkParts(t, link)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := wsconn.Dial(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Send(ctx, &wire.Hello{Major: wire.Major, Caps: rawCaps, Token: tok, Want: want, Name: name}); err != nil {
		t.Fatal(err)
	}
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s: waiting for the Welcome: %v", name, err)
		}
		switch m := m.(type) {
		case *wire.Welcome:
			return c, m
		case *wire.Error:
			t.Fatalf("%s: refused: %v", name, m)
		}
	}
}

// recvUntil reads c until match accepts a message or d passes.
func recvUntil(t testing.TB, c *wsconn.Conn, d time.Duration, what string, match func(wire.Message) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(m) {
			return
		}
	}
}

func writeScript(t testing.TB, lines string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(p, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exitOf waits for a client process to exit by itself.
func (c *liveClient) exitOf(t testing.TB, d time.Duration) (int, string) {
	t.Helper()
	select {
	case err := <-c.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), c.stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, c.stderr.String()
	case <-time.After(d):
		t.Fatalf("the client did not exit within %v\n%s", d, c.stderr.String())
	}
	return 0, ""
}

// A link whose token is tampered with, expired, or for another session
// admits nobody: the client exits non-zero naming the problem, and the
// session goes on for those with a good link.
func TestLiveBadTokens(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	srv := startLiveServer(t, "--image", "testcard", "--key-file", keyFile)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	good := srv.links["viewer"]
	ws, tok := linkParts(t, good)
	session := strings.TrimPrefix(ws[strings.LastIndex(ws, "/"):], "/")
	withToken := func(tk string) string {
		u, _ := url.Parse(good)
		u.RawQuery = "t=" + url.QueryEscape(tk)
		return u.String()
	}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	flipped := "A"
	if sig[0] == 'A' {
		flipped = "B"
	}
	cases := []struct{ name, link, want string }{
		{"tampered", withToken(tok[:strings.LastIndex(tok, ".")+1] + flipped + sig[1:]), "bad signature"},
		{"expired", withToken(token.Sign(key, token.Claims{Session: session, Role: token.RoleViewer, Expiry: time.Now().Add(-time.Minute)})), "expired"},
		{"other session", withToken(token.Sign(key, token.Claims{Session: "elsewhere", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})), "elsewhere"},
		{"other key", withToken(token.Sign(token.NewKey(), token.Claims{Session: session, Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})), "bad signature"},
		{"garbage", withToken("not-a-token"), "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startLiveClient(t, tc.link, "--mode", "display")
			code, stderr := c.exitOf(t, 30*time.Second)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want non-zero and a message with %q:\n%s", code, tc.want, stderr)
			}
		})
	}
	// The good link still works.
	c := startLiveClient(t, good, "--mode", "display")
	waitFor(t, 30*time.Second, "display frames with the good link", func() bool { return c.last(t).Bytes.Display > 0 })
	c.stop(t)
}

// A display viewer's input is refused with a reason and nothing is
// recorded; a raw viewer's Input is refused too.
func TestLiveViewerInputRefused(t *testing.T) {
	srv := startLiveServer(t, "--image", "testcard")
	// Everyone present before counting: joins are recorded as user events.
	script := writeScript(t, `{"t":0.3,"type":"key","code":"KeyQ","down":true}
{"t":0.4,"type":"text","text":"not allowed"}
{"t":0.5,"type":"move","x":10,"y":10}
`)
	c := startLiveClient(t, srv.links["display"], "--mode", "display", "--input", script)
	waitFor(t, 30*time.Second, "the script played", func() bool {
		return strings.Contains(c.stderr.String(), "input script played")
	})
	waitFor(t, 20*time.Second, "three refusals", func() bool {
		return strings.Count(c.stderr.String(), "input refused") >= 3
	})
	before := mustMetric(t, srv.base, "replaydesk_input_events_total")
	// The relay refuses a display link's input itself (it knows the role
	// from the token) and never forwards it; the server counts the rest.
	atServer, _ := metric(srv.base, "replaydesk_input_refused_total")
	atRelay := mustMetric(t, srv.base, `replaydesk_relay_refused_total{reason="input_role"}`)
	if atServer+atRelay < 3 {
		t.Fatalf("input refused: %v at the server, %v at the relay, want ≥ 3 in all", atServer, atRelay)
	}

	// A raw viewer (may replay, may not type) gets an InputRefused with a reason.
	raw, _ := rawJoin(t, srv.links["viewer"], wire.ModeDisplay, "raw viewer")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := raw.Send(ctx, &wire.Input{Seq: 7, Epoch: 0, Events: []abi.Event{{Type: abi.EvKey, Down: true, Code: 4}}}); err != nil {
		t.Fatal(err)
	}
	var got *wire.InputRefused
	recvUntil(t, raw, 20*time.Second, "InputRefused", func(m wire.Message) bool {
		got, _ = m.(*wire.InputRefused)
		return got != nil
	})
	if got.Seq != 7 || got.Reason != wire.RefuseViewerOnly || got.Text == "" {
		t.Fatalf("InputRefused = %+v, want seq 7, reason viewer only, a text", got)
	}
	if after := mustMetric(t, srv.base, "replaydesk_input_events_total"); after != before {
		t.Fatalf("input_events_total went %v → %v: a viewer's input was recorded", before, after)
	}
	c.stop(t)
}

// Bad frames from a raw WebSocket peer: each gets an Error saying why and
// a close; a client already in the session is not disturbed.
func TestLiveMalformedAndOversizedFrames(t *testing.T) {
	srv := startLiveServer(t, "--image", "testcard")
	other := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 60*time.Second, "the bystander replaying", func() bool { return other.last(t).Checkpoints > 0 })
	ws, tok := linkParts(t, srv.links["controller"])
	hello, _ := wire.Encode(&wire.Hello{Major: wire.Major, Caps: rawCaps, Token: tok, Want: wire.ModeDisplay, Name: "bad"})

	cases := []struct {
		name   string
		joined bool // send a good Hello first
		typ    websocket.MessageType
		frame  []byte
		want   string // in the Error's text
		code   wire.ErrorCode
	}{
		{"unknown type", false, websocket.MessageBinary, []byte{200, 1, 2, 3}, "", wire.CodeMalformed},
		{"truncated hello", false, websocket.MessageBinary, hello[:len(hello)/2], "", wire.CodeMalformed},
		{"trailing bytes", true, websocket.MessageBinary, append(mustEncode(t, &wire.Ping{Seq: 1, Sent: 2}), 0), "", wire.CodeMalformed},
		{"text frame", false, websocket.MessageText, []byte("hello?"), "text", wire.CodeMalformed},
		{"oversized", true, websocket.MessageBinary, make([]byte, wire.MaxMessage+1), "larger than", wire.CodeLimit},
		{"input before hello", false, websocket.MessageBinary, mustEncode(t, &wire.Input{Seq: 1, Events: []abi.Event{{Type: abi.EvKey, Code: 4}}}), "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, ws, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(wire.MaxMessage + 1024)
			if tc.joined {
				c.Write(ctx, websocket.MessageBinary, hello)
				waitWelcome(t, ctx, c)
			}
			// The relay stops reading an oversized message at the limit:
			// write in the background, read the answer here.
			go c.Write(ctx, tc.typ, tc.frame)
			var e *wire.Error
			var closeErr error
			for e == nil && closeErr == nil {
				_, b, err := c.Read(ctx)
				if err != nil {
					closeErr = err
					break
				}
				m, err := wire.Decode(b)
				if err != nil {
					t.Fatalf("undecodable answer: %v", err)
				}
				e, _ = m.(*wire.Error)
			}
			if e == nil {
				t.Fatalf("closed without a wire Error: %v", closeErr)
			}
			if e.Text == "" || (tc.code != 0 && e.Code != tc.code) || !strings.Contains(strings.ToLower(e.Text), tc.want) {
				t.Fatalf("Error %+v, want code %d and text with %q", e, tc.code, tc.want)
			}
			// And the connection ends.
			for {
				if _, _, err := c.Read(ctx); err != nil {
					if ctx.Err() != nil {
						t.Fatal("the connection stayed open after the Error")
					}
					break
				}
			}
		})
	}
	// The bystander kept replaying, verifying checkpoints.
	n := other.last(t).Checkpoints
	waitFor(t, 30*time.Second, "the bystander verifying more checkpoints", func() bool { return other.last(t).Checkpoints > n })
	if s := other.last(t); s.Failures != 0 || s.Mode != "replay" {
		t.Fatalf("bystander: %+v", s)
	}
	other.stop(t)
}

func mustEncode(t testing.TB, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitWelcome(t testing.TB, ctx context.Context, c *websocket.Conn) {
	t.Helper()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the Welcome: %v", err)
		}
		if m, err := wire.Decode(b); err == nil {
			if _, ok := m.(*wire.Welcome); ok {
				return
			}
			if e, ok := m.(*wire.Error); ok {
				t.Fatalf("refused: %v", e)
			}
		}
	}
}

// A client that stops reading is forced out of replay by the relay (its
// queue over the 4 MiB bound), while another client keeps replaying with
// its lag low. The game image: its scrolling screen makes ~0.7 MB/s of
// display deltas, which fill a dual client's queue in seconds (the test
// card's would take minutes), and it replays in real time.
func TestLiveSlowReaderDoesNotHoldOthersBack(t *testing.T) {
	srv := startLiveServer(t, "--image", "game")
	good := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 60*time.Second, "the good client replaying", func() bool { return good.last(t).Mode == "replay" })

	// A tiny receive buffer: the relay's queue, not the kernel's buffers,
	// holds what the stalled client does not read.
	ws, tok := linkParts(t, srv.links["viewer"])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	stalled, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()
	stalled.Write(ctx, websocket.MessageBinary, mustEncode(t, &wire.Hello{Major: wire.Major, Caps: rawCaps, Token: tok, Want: wire.ModeReplay, Name: "stalled"}))
	waitWelcome(t, ctx, stalled)
	stalled.Write(ctx, websocket.MessageBinary, mustEncode(t, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual}))
	// From here on it never reads.

	forced0, _ := metric(srv.base, "replaydesk_relay_forced_switches_total")
	forced := func() bool {
		v, _ := metric(srv.base, "replaydesk_relay_forced_switches_total")
		return v > forced0
	}
	waitFor(t, 60*time.Second, "the relay forcing the stalled client to display", forced)
	if !forced() {
		t.Fatalf("metrics:\n%s", scrape(srv.base))
	}
	// Meanwhile the good client is unaffected: it keeps replaying and
	// verifying, caught up (on a loaded machine its own lag may spike and
	// its mode controller fall back for a moment; it comes back).
	tick := good.last(t).ReplayTick
	waitFor(t, 45*time.Second, "the good client replaying on, caught up", func() bool {
		s := good.last(t)
		return s.Mode == "replay" && s.ReplayTick > tick+120 && s.Checkpoints > 0 && s.LagMs < 500
	})
	if s := good.last(t); s.Failures != 0 {
		t.Fatalf("the good client: %+v\n%s", s, good.stderr.String())
	}
	good.stop(t)
}

// A client killed mid-session leaves the presence; the session goes on.
func TestLiveClientKilled(t *testing.T) {
	srv := startLiveServer(t, "--image", "testcard")
	watcher, _ := rawJoin(t, srv.links["viewer"], wire.ModeDisplay, "watcher")
	victim := startLiveClient(t, srv.links["controller"], "--mode", "replay", "--name", "victim")
	var victimUser uint16
	recvUntil(t, watcher, 30*time.Second, "the victim in the presence", func(m wire.Message) bool {
		p, ok := m.(*wire.Presence)
		if !ok {
			return false
		}
		for _, u := range p.Users {
			if u.Name == "victim" {
				victimUser = u.User
				return true
			}
		}
		return false
	})
	waitFor(t, 60*time.Second, "the victim replaying", func() bool { return victim.last(t).Checkpoints > 0 })
	steps0 := mustMetric(t, srv.base, "replaydesk_steps_total")
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, watcher, 30*time.Second, "the victim gone from the presence", func(m wire.Message) bool {
		p, ok := m.(*wire.Presence)
		if !ok {
			return false
		}
		for _, u := range p.Users {
			if u.User == victimUser {
				return false
			}
		}
		return true
	})
	waitFor(t, 20*time.Second, "the relay dropping the victim", func() bool {
		v, ok := metric(srv.base, "replaydesk_relay_clients")
		return ok && v == 1 // the watcher
	})
	waitFor(t, 20*time.Second, "the session stepping on", func() bool {
		v, _ := metric(srv.base, "replaydesk_steps_total")
		return v > steps0
	})
	// Another client still joins.
	c := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 60*time.Second, "a new client replaying", func() bool { return c.last(t).Checkpoints > 0 })
	c.stop(t)
}

// freeAddr returns a loopback address nobody listens on (now).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// relayProc is a standalone `relay` process.
type relayProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

func startRelay(t testing.TB, upstream, listen, keyFile string) *relayProc {
	t.Helper()
	r := &relayProc{stderr: &syncBuffer{}}
	r.cmd = exec.Command(relayBin, "--upstream", upstream, "--listen", listen, "--key-file", keyFile, "--log-level", "info")
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	waitFor(t, 20*time.Second, "the relay listening", func() bool {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// A standalone relay killed (-9) and started again on the same port: the
// replaying client behind it reconnects and resumes from its position —
// no new snapshot restore, no pages fetched again, no failure.
func TestLiveRelayRestartResumes(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	srv := startLiveServer(t, "--image", "testcard", "--key-file", keyFile)
	addr := freeAddr(t)
	relay := startRelay(t, srv.upstream, addr, keyFile)
	c := startLiveClient(t, withHost(t, srv.links["viewer"], addr), "--mode", "replay")
	waitFor(t, 60*time.Second, "replaying through the relay", func() bool {
		s := c.last(t)
		return s.Mode == "replay" && s.Checkpoints >= 2
	})
	before := c.last(t)
	restores := strings.Count(c.stderr.String(), "snapshot restored")

	relay.cmd.Process.Signal(syscall.SIGKILL)
	relay.cmd.Wait()
	// The client retries with back-off; the relay comes back on the port.
	startRelay(t, srv.upstream, addr, keyFile)
	waitFor(t, 60*time.Second, "the client resuming", func() bool {
		return strings.Contains(c.stderr.String(), "resuming the replay")
	})
	waitFor(t, 60*time.Second, "replay continuing past where it was", func() bool {
		s := c.last(t)
		return s.Mode == "replay" && s.ReplayTick > before.ReplayTick+120 && s.Checkpoints > before.Checkpoints
	})
	after := c.last(t)
	if after.Failures != 0 {
		t.Fatalf("failures after the relay restart: %+v", after)
	}
	if n := strings.Count(c.stderr.String(), "snapshot restored"); n != restores {
		t.Fatalf("the client restored a snapshot again (%d → %d restores):\n%s", restores, n, c.stderr.String())
	}
	if grew := after.Bytes.Pages - before.Bytes.Pages; grew > 64<<10 {
		t.Fatalf("pages bytes grew by %d after the relay restart (want the cache to hold them)", grew)
	}
	c.stop(t)
}

// The server interrupted and started again on the same session directory
// and port: the session continues from its own log, the client reconnects
// and carries on, and the whole log replays offline without divergence.
func TestLiveServerRestartContinues(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sess")
	keyFile := filepath.Join(dir, "key")
	addr := freeAddr(t)
	srv := startLiveServer(t, "--image", "testcard", "--data", data, "--key-file", keyFile, "--listen", addr)
	script := writeScript(t, `{"t":0.5,"type":"text","text":"before restart"}
{"t":0.8,"type":"move","x":300,"y":100}
`)
	ctl := startLiveClient(t, srv.links["controller"], "--mode", "display", "--input", script)
	c := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 60*time.Second, "replaying and the script played", func() bool {
		return c.last(t).Checkpoints >= 2 && strings.Contains(ctl.stderr.String(), "input script played")
	})
	ctl.stop(t)
	srv.stop(t)
	before := c.last(t)

	srv2 := startLiveServer(t, "--data", data, "--key-file", keyFile, "--listen", addr)
	if srv2.links["viewer"] != srv.links["viewer"] && !strings.HasPrefix(srv2.links["viewer"], "http://"+addr+"/s/") {
		t.Fatalf("the restarted server serves %s", srv2.links["viewer"])
	}
	waitFor(t, 90*time.Second, "the client continuing after the restart", func() bool {
		s := c.last(t)
		return s.Mode == "replay" && s.ReplayTick > before.ReplayTick+120 && s.Checkpoints > before.Checkpoints
	})
	if s := c.last(t); s.Failures != 0 {
		t.Fatalf("client failures across the restart: %+v\n%s", s, c.stderr.String())
	}
	c.stop(t)
	srv2.stop(t)
	if out, err := exec.Command(serverBin, "end", data).CombinedOutput(); err != nil {
		t.Fatalf("server end: %v\n%s", err, out)
	}
	res, stderr, code := replay(t, nil, data)
	if code != 0 || res.Divergences != 0 || res.Checkpoints == 0 {
		t.Fatalf("offline replay of the restarted session: exit %d %+v\n%s", code, res, stderr)
	}
}
