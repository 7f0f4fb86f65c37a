package hub

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/metrics"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

var pos0 = recordlog.Pos{Segment: 0, Offset: 60, Tick: 1000, Step: 0}

// expectLog reads m's next messages and checks they are exactly want.
func expectLog(t *testing.T, c *cl, want ...wire.Message) {
	t.Helper()
	for i, w := range want {
		got := c.nextRaw(t)
		if !bytes.Equal(got, enc(t, w)) {
			m, _ := wire.Decode(got)
			t.Fatalf("message %d: got %T %+v, want %T", i, m, m, w)
		}
	}
}

func asMsgs[T wire.Message](xs []T) []wire.Message {
	out := make([]wire.Message, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func TestFanoutIdenticalAndInOrder(t *testing.T) {
	f := newFakeUp(t)
	f.setState(announce(1, pos0))
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	var cs []*cl
	for range 5 {
		c, _ := join(t, srv, tok)
		c.dual(t)
		cs = append(cs, c)
	}
	up := f.conn(t)
	bs := blocks(0, pos0.Offset, 100, 200)
	for _, b := range bs {
		up.send(t, b)
	}
	want := append([]wire.Message{announce(1, pos0)}, asMsgs(bs)...)
	for _, c := range cs {
		expectLog(t, c, want...)
	}
	// The upstream heard each client's Hello and switch, routed under distinct numbers.
	seen := map[uint32]bool{}
	for range 5 {
		m := up.expect(t, "a routed Hello", func(m wire.Message) bool {
			r, ok := m.(*wire.Routed)
			return ok && r.Msg.Type() == wire.TypeHello
		}).(*wire.Routed)
		seen[m.Client] = true
	}
	if len(seen) != 5 {
		t.Fatalf("client numbers not distinct: %v", seen)
	}
}

func TestLateJoinerGetsNewestSnapshotAndLogSince(t *testing.T) {
	f := newFakeUp(t)
	first := blocks(0, pos0.Offset, 5, 100)
	p1 := recordlog.Pos{Offset: first[4].Pos.Offset + int64(len(first[4].Block)), Tick: 1005, Step: 5}
	second := blocks(5, p1.Offset, 5, 100)
	state := append([]wire.Message{announce(1, pos0)}, asMsgs(first)...)
	state = append(state, announce(2, p1))
	state = append(state, asMsgs(second)...)
	f.setState(state...)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, w := join(t, srv, tok)
	if w.Mode != wire.ModeDisplay {
		t.Fatalf("welcome mode %d", w.Mode)
	}
	up := f.conn(t)
	c.dual(t)
	expectLog(t, c, append([]wire.Message{announce(2, p1)}, asMsgs(second)...)...)
	live := block(10, second[4].Pos.Offset+int64(len(second[4].Block)), 100)
	up.send(t, live)
	expectLog(t, c, live)

	// A snapshot more than 10 s of ticks old is not sent: the client waits
	// for the next announcement (the server takes one on the dual request).
	old := block(11, live.Pos.Offset+int64(len(live.Block)), 100)
	old.Pos.Tick = 1005 + 601
	up.send(t, old)
	expectLog(t, c, old) // c is logging already
	c2, _ := join(t, srv, tok)
	c2.dual(t)
	up.expect(t, "the late joiner's dual request", func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		ms, ok2 := r.Msg.(*wire.ModeSwitch)
		return ok && ok2 && ms.Mode == wire.ModeDual && r.Client != 1
	})
	p3 := recordlog.Pos{Offset: old.Pos.Offset + int64(len(old.Block)), Tick: 1606, Step: 12}
	up.send(t, announce(3, p3))
	next := block(12, p3.Offset, 100)
	up.send(t, next)
	expectLog(t, c2, announce(3, p3), next)
}

func TestSlowClientForcedToDisplayNobodyWaits(t *testing.T) {
	f := newFakeUp(t)
	f.setState(announce(1, pos0))
	reg := metrics.NewRegistry()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, QueueBytes: 64 << 10, Metrics: reg})
	slow, _ := join(t, srv, tok)
	slow.dual(t)
	var fast []*cl
	for range 2 {
		c, _ := join(t, srv, tok)
		c.dual(t)
		fast = append(fast, c)
	}
	up := f.conn(t)
	slowID := up.expect(t, "the slow client's Hello", func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		return ok && r.Msg.Type() == wire.TypeHello
	}).(*wire.Routed).Client

	// Fast clients read everything as it comes; the upstream sends a block
	// when both have the one before (a burst would overflow their small
	// queues too).
	const endStep = 1 << 40
	var wg sync.WaitGroup
	got := make([][]uint64, len(fast))
	acks := make(chan struct{}, 2)
	for i, c := range fast {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, _, err := c.ws.Recv(context.Background())
				if err != nil {
					t.Errorf("fast client: %v", err)
					return
				}
				if lb, ok := m.(*wire.LogBlock); ok {
					seq := binary.LittleEndian.Uint64(lb.Block[9:])
					if lb.Pos.Step == endStep {
						return
					}
					got[i] = append(got[i], seq)
					acks <- struct{}{}
				}
			}
		}()
	}
	forced := false
	off := pos0.Offset
	var sent uint64
	for sent = 0; sent < 8000 && !forced; sent++ {
		b := block(sent, off, 8<<10)
		off += int64(len(b.Block))
		up.send(t, b)
		<-acks
		<-acks
	drain:
		for {
			select {
			case m := <-up.in:
				if r, ok := m.(*wire.Routed); ok && r.Client == slowID {
					if ms, ok := r.Msg.(*wire.ModeSwitch); ok && ms.Kind == wire.SwitchForced && ms.Mode == wire.ModeDisplay {
						forced = true
					}
				}
			default:
				break drain
			}
		}
	}
	if !forced {
		t.Fatalf("the slow client was not forced to display after %d blocks", sent)
	}
	for i := range 10 {
		b := block(sent+uint64(i), off, 8<<10)
		off += int64(len(b.Block))
		up.send(t, b)
		<-acks
		<-acks
	}
	sent += 10
	last := block(0, off, 16)
	last.Pos.Step = endStep
	up.send(t, last)
	wg.Wait()
	for i := range fast {
		if uint64(len(got[i])) != sent {
			t.Fatalf("fast client %d got %d blocks, want %d", i, len(got[i]), sent)
		}
		for j, s := range got[i] {
			if s != uint64(j) {
				t.Fatalf("fast client %d: block %d has seq %d", i, j, s)
			}
		}
	}
	// The slow client, reading at last, finds the forced switch and no log after it.
	for {
		m := slow.next(t)
		if ms, ok := m.(*wire.ModeSwitch); ok {
			if ms.Kind != wire.SwitchForced || ms.Mode != wire.ModeDisplay || !strings.Contains(ms.Reason, "too slow") {
				t.Fatalf("switch %+v", ms)
			}
			break
		}
		if _, ok := m.(*wire.LogBlock); !ok {
			if _, ok := m.(*wire.SnapshotAnnounce); !ok {
				t.Fatalf("slow client got %T before its switch", m)
			}
		}
	}
	slow.send(t, &wire.Ping{Seq: 9, Sent: 1})
	for {
		m := slow.next(t)
		if p, ok := m.(*wire.Pong); ok && p.Seq == 9 {
			break
		}
		t.Fatalf("slow client got %T after being forced to display", m)
	}
	if v := reg.Counter("replaydesk_relay_forced_switches_total", "").Get(); v != 1 {
		t.Fatalf("forced switches = %g", v)
	}
}

func TestWrongTokenRefusedWithoutUpstream(t *testing.T) {
	f := newFakeUp(t)
	key := token.NewKey()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, Key: key})
	good := token.Sign(key, token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})
	for name, tok := range map[string]string{
		"garbage":       "not-a-token",
		"other key":     token.Sign(token.NewKey(), token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)}),
		"expired":       token.Sign(key, token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(-time.Minute)}),
		"other session": token.Sign(key, token.Claims{Session: "s2", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)}),
	} {
		c := dial(t, srv, "s1")
		c.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: tok})
		e, ok := c.next(t).(*wire.Error)
		if !ok || e.Code != wire.CodeUnauthorized {
			t.Fatalf("%s: got %+v", name, e)
		}
		if _, _, err := c.ws.Recv(context.Background()); err == nil {
			t.Fatalf("%s: connection still open", name)
		}
	}
	if n := len(f.conns); n != 0 {
		t.Fatalf("the relay went upstream %d times for refused clients", n)
	}
	c, w := join(t, srv, good)
	if w.User == 0 {
		t.Fatal("no user")
	}
	up := f.conn(t)
	cl, err := token.Verify(key, up.hello.Token, time.Now())
	if err != nil || cl.Role != token.RoleRelay || cl.Session != "s1" {
		t.Fatalf("relay's upstream token: %+v %v", cl, err)
	}
	_ = c
}

func TestBadMessagesCloseOnlyTheSender(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	ok, _ := join(t, srv, tok)
	up := f.conn(t)
	cases := []struct {
		name string
		b    []byte
		code wire.ErrorCode
	}{
		{"unknown type", []byte{0xff, 1, 2}, wire.CodeMalformed},
		{"server-only message", enc(t, block(1, 60, 16)), wire.CodeMalformed},
		{"routed from a client", enc(t, &wire.Routed{Client: 3, Msg: &wire.Ping{}}), wire.CodeMalformed},
		{"oversized", make([]byte, wire.MaxMessage+1), wire.CodeLimit}, // told why (wsconn), then closed
	}
	for _, tc := range cases {
		c, _ := join(t, srv, tok)
		if err := c.ws.SendBytes(context.Background(), tc.b); err != nil {
			t.Fatal(err)
		}
		if tc.code != 0 {
			e, isErr := c.next(t).(*wire.Error)
			if !isErr || e.Code != tc.code {
				t.Fatalf("%s: got %+v", tc.name, e)
			}
		}
		if _, _, err := c.ws.Recv(context.Background()); err == nil {
			t.Fatalf("%s: connection still open", tc.name)
		}
		up.expect(t, tc.name+": Gone", func(m wire.Message) bool { _, g := m.(*wire.Gone); return g })
	}
	// The well-behaved client saw none of it.
	b := block(1, 60, 50)
	up.send(t, &wire.Estimates{LogBytesPerSec: 5, DisplayBytesPerSec: 7, WindowMillis: 1000, Tick: 1000})
	ok.send(t, &wire.Ping{Seq: 1, Sent: 2})
	if p, isPong := ok.next(t).(*wire.Pong); !isPong || p.Seq != 1 || p.Echo != 2 {
		t.Fatalf("pong %+v", p)
	}
	_ = b
}

func TestRateLimit(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, _ := join(t, srv, tok)
	b := enc(t, &wire.Pong{Seq: 1})
	for range 2 * msgRate {
		if err := c.ws.SendBytes(context.Background(), b); err != nil {
			break
		}
	}
	for {
		m := c.next(t)
		if e, ok := m.(*wire.Error); ok {
			if e.Code != wire.CodeLimit {
				t.Fatalf("error %+v", e)
			}
			return
		}
	}
}

func TestClientKilledMeansGoneUpstream(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	stay, _ := join(t, srv, tok)
	c, w := join(t, srv, tok)
	up := f.conn(t)
	c.ws.CloseNow()
	g := up.expect(t, "Gone", func(m wire.Message) bool { _, ok := m.(*wire.Gone); return ok }).(*wire.Gone)
	if uint16(g.Client%60000) != w.User {
		t.Fatalf("Gone for %d, the killed client is %d", g.Client, w.User)
	}
	stay.send(t, &wire.Ping{Seq: 1})
	if _, ok := stay.next(t).(*wire.Pong); !ok {
		t.Fatal("the other client is gone too")
	}
}

func TestChainedRelaysMapNumbersBothWays(t *testing.T) {
	f := newFakeUp(t)
	f.setState(announce(1, pos0))
	_, a := newRelay(t, Options{Upstream: f.srv.URL})
	_, b := newRelay(t, Options{Upstream: a.URL})
	c1, w1 := join(t, b, tok)
	c2, w2 := join(t, b, tok)
	if w1.User == w2.User {
		t.Fatal("two clients, one number")
	}
	up := f.conn(t)
	if up.hello.Caps&wire.CapRelay == 0 {
		t.Fatal("no relay Hello")
	}
	c1.send(t, &wire.ControlRequest{User: w1.User, Epoch: 1})
	r := up.expect(t, "c1's ControlRequest", func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		return ok && r.Msg.Type() == wire.TypeControlRequest
	}).(*wire.Routed)
	if uint16(r.Client%60000) != w1.User {
		t.Fatalf("routed from %d, c1 is user %d", r.Client, w1.User)
	}
	up.send(t, &wire.Routed{Client: r.Client, Msg: &wire.InputRefused{Seq: 7, Reason: wire.RefuseNotController, Text: "not yours"}})
	if m, ok := c1.next(t).(*wire.InputRefused); !ok || m.Seq != 7 {
		t.Fatalf("c1 got %+v", m)
	}
	// Unrouted log reaches a dual client through both relays.
	c2.dual(t)
	up.expect(t, "c2's switch", func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		return ok && r.Msg.Type() == wire.TypeModeSwitch
	})
	bl := block(0, pos0.Offset, 300)
	up.send(t, bl)
	expectLog(t, c2, announce(1, pos0), bl)
	// Dropped upstream after a routed Error: c2 gets the Error, closes.
	var c2n uint32
	for n := uint32(1); n < 100; n++ {
		if uint16(n) == w2.User {
			c2n = n
		}
	}
	up.send(t, &wire.Routed{Client: c2n, Msg: &wire.Error{Code: wire.CodeForbidden, Text: "kicked"}})
	up.send(t, &wire.Gone{Client: c2n, Reason: "kicked"})
	for {
		m := c2.next(t)
		if e, ok := m.(*wire.Error); ok {
			if e.Text != "kicked" {
				t.Fatalf("error %+v", e)
			}
			break
		}
	}
	// c1 vanishes: the server hears Gone with its number.
	c1.ws.CloseNow()
	g := up.expect(t, "Gone for c1", func(m wire.Message) bool {
		g, ok := m.(*wire.Gone)
		return ok && g.Client == r.Client
	})
	_ = g
}

func TestResumeFromHeldPosition(t *testing.T) {
	f := newFakeUp(t)
	bs := blocks(0, pos0.Offset, 10, 100)
	f.setState(append([]wire.Message{announce(1, pos0)}, asMsgs(bs)...)...)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, _ := join(t, srv, tok)
	up := f.conn(t)
	c.send(t, &wire.Resume{Pos: bs[5].Pos})
	expectLog(t, c, asMsgs(bs[5:])...)
	endOff := bs[9].Pos.Offset + int64(len(bs[9].Block))
	live := block(10, endOff, 100)
	up.send(t, live)
	expectLog(t, c, live)
	up.expect(t, "the resumed client's dual switch", func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		ms, ok2 := r.Msg.(*wire.ModeSwitch)
		return ok && ok2 && ms.Mode == wire.ModeDual
	})

	// Caught up exactly: nothing to resend, the next live block follows.
	c2, _ := join(t, srv, tok)
	c2.send(t, &wire.Resume{Pos: recordlog.Pos{Offset: endOff + int64(len(live.Block)), Tick: 1011}})
	c2.send(t, &wire.Ping{Seq: 5})
	if _, ok := c2.next(t).(*wire.Pong); !ok {
		t.Fatal("a caught-up resume got something first")
	}
	live2 := block(11, endOff+int64(len(live.Block)), 100)
	up.send(t, live2)
	expectLog(t, c2, live2)

	// Unknown position: the newest snapshot and the log after it.
	c3, _ := join(t, srv, tok)
	c3.send(t, &wire.Resume{Pos: recordlog.Pos{Segment: 7, Offset: 99}})
	expectLog(t, c3, append(append([]wire.Message{announce(1, pos0)}, asMsgs(bs)...), live, live2)...)
}

func TestDisplayDeltasOnlyAfterKeyFrame(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, _ := join(t, srv, tok)
	up := f.conn(t)
	id := up.expect(t, "Hello", func(m wire.Message) bool { _, ok := m.(*wire.Routed); return ok }).(*wire.Routed).Client
	frame := func(seq uint64, key bool) *wire.DisplayFrame {
		return &wire.DisplayFrame{Seq: seq, Tick: 1000 + seq, Key: key, Width: 8, Height: 8,
			Tiles: []wire.Tile{{X: 0, Y: 0, W: 8, H: 8, Encoding: wire.EncSolid, Data: []byte{1, 2, 3, 255}}}}
	}
	up.send(t, frame(1, false)) // before its key frame: not forwarded
	up.send(t, &wire.Routed{Client: id, Msg: frame(2, true)})
	up.send(t, frame(3, false))
	expectLog(t, c, frame(2, true), frame(3, false))
	// In replay mode, no display frames; the log instead.
	up.send(t, announce(1, pos0))
	c.dual(t)
	expectLog(t, c, announce(1, pos0))
	c.send(t, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay})
	c.send(t, &wire.Ping{Seq: 1}) // the switch is handled once the Pong comes
	if _, ok := c.next(t).(*wire.Pong); !ok {
		t.Fatal("no pong")
	}
	up.send(t, frame(4, false))
	b := block(0, pos0.Offset, 50)
	up.send(t, b)
	expectLog(t, c, b)
}

func TestPageCache(t *testing.T) {
	f := newFakeUp(t)
	dir := t.TempDir()
	reg := metrics.NewRegistry()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, CacheDir: dir, Metrics: reg})
	get := func(srv string, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for range 2 {
		code, body, h := get(srv.URL, "/pages/"+hashOf("abc"))
		if code != 200 || body != "page "+hashOf("abc") || !strings.Contains(h.Get("Cache-Control"), "immutable") || h.Get("ETag") != `"`+hashOf("abc")+`"` {
			t.Fatalf("got %d %q %v", code, body, h)
		}
	}
	if n := f.pageHit.Load(); n != 1 {
		t.Fatalf("upstream hit %d times for one page", n)
	}
	for range 2 {
		if code, _, _ := get(srv.URL, "/pages/"+hashOf("missing")); code != 404 {
			t.Fatalf("missing page: %d", code)
		}
		if code, body, _ := get(srv.URL, "/sessions/s1/snapshots"); code != 200 || body != "[]" {
			t.Fatalf("snapshots: %d %q", code, body)
		}
	}
	if n := f.pageHit.Load(); n != 5 {
		t.Fatalf("errors or mutable answers were cached: upstream hit %d times, want 5", n)
	}
	if h, m := reg.Counter("replaydesk_relay_cache_hits_total", "").Get(), reg.Counter("replaydesk_relay_cache_misses_total", "").Get(); h != 1 || m != 5 {
		t.Fatalf("hits %g misses %g", h, m)
	}
	for range 2 {
		req, _ := http.NewRequest("POST", srv.URL+"/pages/batch", strings.NewReader("abc"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "batch of abc" {
			t.Fatalf("batch: %d %q", resp.StatusCode, b)
		}
	}
	if n := f.pageHit.Load(); n != 7 {
		t.Fatalf("POST answers were cached: upstream hit %d times, want 7", n)
	}
	// A new relay on the same directory serves it from disk.
	_, srv2 := newRelay(t, Options{Upstream: f.srv.URL, CacheDir: dir})
	if code, body, _ := get(srv2.URL, "/pages/"+hashOf("abc")); code != 200 || body != "page "+hashOf("abc") {
		t.Fatalf("from disk: %d %q", code, body)
	}
	if n := f.pageHit.Load(); n != 7 {
		t.Fatal("the disk cache was not used")
	}
}

func TestUpstreamLostAndBack(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c1, _ := join(t, srv, tok)
	c2, _ := join(t, srv, tok)
	up := f.conn(t)
	f.down.Store(true)
	up.ws.CloseNow()
	for _, c := range []*cl{c1, c2} {
		e, ok := c.next(t).(*wire.Error)
		if !ok || e.Code != wire.CodeShutdown || e.Text != "upstream lost" {
			t.Fatalf("got %+v", e)
		}
	}
	// A client reconnecting while the upstream is down waits for it.
	c3 := dial(t, srv, "s1")
	c3.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: tok})
	f.down.Store(false)
	if _, ok := c3.next(t).(*wire.Welcome); !ok {
		t.Fatal("no Welcome after the upstream came back")
	}
	f.conn(t)
}

func TestUpstreamRefusalReachesClient(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c := dial(t, srv, "s1")
	c.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: tok, Name: "refuse-me"})
	e, ok := c.next(t).(*wire.Error)
	if !ok || e.Code != wire.CodeUnauthorized || e.Text != "refused upstream" {
		t.Fatalf("got %+v", e)
	}
	if _, _, err := c.ws.Recv(context.Background()); err == nil || !errors.Is(err, wsconn.ErrClosed) && err == nil {
		t.Fatal("still open")
	}
}

func FuzzRoutedInner(f *testing.F) {
	f.Add(routedBytes(5, []byte{16, 1, 2}))
	f.Add([]byte{19, 0, 16, 1, 2})
	f.Add(multicastBytes([]uint32{5, 300, 1 << 31}, []byte{16, 1, 2}))
	f.Add([]byte{22, 1, 0, 16, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.Decode(b)
		if mc, ok := m.(*wire.Multicast); err == nil && ok {
			inner, ierr := multicastInner(b)
			if ierr != nil || !bytes.Equal(enc(t, mc.Msg), inner) || !bytes.Equal(multicastBytes(mc.Clients, inner), b) {
				t.Fatalf("multicastInner disagrees with Decode on %x", b)
			}
		}
		c, inner, ierr := routedInner(b)
		r, isRouted := m.(*wire.Routed)
		if err == nil && isRouted {
			if ierr != nil || c != r.Client || !bytes.Equal(enc(t, r.Msg), inner) || !bytes.Equal(routedBytes(c, inner), b) {
				t.Fatalf("routedInner disagrees with Decode on %x", b)
			}
		}
	})
}

func TestDisplayViewerNeverGetsLogAndModesAreCounted(t *testing.T) {
	f := newFakeUp(t)
	f.role = wire.RoleDisplayViewer
	f.setState(announce(1, pos0))
	reg := metrics.NewRegistry()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, Metrics: reg})
	c3, _ := join(t, srv, tok) // keeps the session (and its upstream) open
	c, w := join(t, srv, tok)
	if w.Role != wire.RoleDisplayViewer {
		t.Fatal(w.Role)
	}
	up := f.conn(t)
	c.dual(t)
	c.send(t, &wire.Resume{Pos: pos0})
	if e, ok := c.next(t).(*wire.Error); !ok || e.Code != wire.CodeForbidden {
		t.Fatalf("resume by a display viewer: %+v", e)
	}
	up.expect(t, "Gone", func(m wire.Message) bool { _, ok := m.(*wire.Gone); return ok })

	f.role = wire.RoleViewer
	c2, _ := join(t, srv, tok)
	c2.dual(t)
	expectLog(t, c2, announce(1, pos0))
	c3.send(t, &wire.Ping{Seq: 1})
	c3.next(t)
	gauge := func(mode string) float64 { return reg.Gauge(`replaydesk_relay_clients{mode="`+mode+`"}`, "").Get() }
	if gauge("dual") != 1 || gauge("display") != 1 || gauge("pending") != 0 {
		t.Fatalf("clients by mode: dual %g display %g pending %g", gauge("dual"), gauge("display"), gauge("pending"))
	}
}

func TestHelloDeadline(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	old := helloTimeout
	helloTimeout = 200 * time.Millisecond
	defer func() { helloTimeout = old }()
	c := dial(t, srv, "s1")
	e, ok := c.next(t).(*wire.Error)
	if !ok || e.Code != wire.CodeMalformed || !strings.Contains(e.Text, "no Hello") {
		t.Fatalf("got %+v", e)
	}
	if n := len(f.conns); n != 0 {
		t.Fatal("went upstream for a client without Hello")
	}
}

func TestOriginChecked(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, AllowOrigins: []string{"good.example"}})
	upgrade := func(origin string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/ws/s1", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := upgrade("http://evil.example"); code != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", code)
	}
	if code := upgrade("http://good.example"); code != http.StatusSwitchingProtocols {
		t.Fatalf("allowed origin: %d", code)
	}
	if code := upgrade("http://" + strings.TrimPrefix(srv.URL, "http://")); code != http.StatusSwitchingProtocols {
		t.Fatalf("own origin: %d", code)
	}
}

func TestStuckClientClosed(t *testing.T) {
	old := fullTimeout
	fullTimeout = time.Second
	defer func() { fullTimeout = old }()
	f := newFakeUp(t)
	reg := metrics.NewRegistry()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, QueueBytes: 4 << 20, Metrics: reg})
	stay, _ := join(t, srv, tok)
	stuck, _ := join(t, srv, tok) // never reads again
	up := f.conn(t)
	var ids []uint32
	for len(ids) < 2 {
		ids = append(ids, up.expect(t, "Hello", func(m wire.Message) bool {
			r, ok := m.(*wire.Routed)
			return ok && r.Msg.Type() == wire.TypeHello
		}).(*wire.Routed).Client)
	}
	id := ids[1]
	frame := func(key bool) *wire.DisplayFrame {
		return &wire.DisplayFrame{Key: key, Width: 512, Height: 512,
			Tiles: []wire.Tile{{W: 512, H: 512, Encoding: wire.EncRaw, Data: make([]byte, 512*512*4)}}}
	}
	up.send(t, &wire.Routed{Client: id, Msg: frame(true)})
	keys := 0
	deadline := time.Now().Add(20 * time.Second)
	for gone := false; !gone; {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck client was never closed (%d key frames asked for)", keys)
		}
		up.send(t, frame(false))
		time.Sleep(5 * time.Millisecond)
	drain:
		for {
			select {
			case m := <-up.in:
				switch v := m.(type) {
				case *wire.Routed:
					if ms, ok := v.Msg.(*wire.ModeSwitch); ok && v.Client == id && ms.Kind == wire.SwitchForced {
						keys++ // as the server does: a fresh key frame
						up.send(t, &wire.Routed{Client: id, Msg: frame(true)})
					}
				case *wire.Gone:
					gone = gone || v.Client == id
				}
			default:
				break drain
			}
		}
	}
	if keys == 0 {
		t.Fatal("no key frame was asked for before closing")
	}
	if v := reg.Counter("replaydesk_relay_dropped_clients_total", "").Get(); v != 1 {
		t.Fatalf("dropped = %g", v)
	}
	stay.send(t, &wire.Ping{Seq: 3})
	for {
		if p, ok := stay.next(t).(*wire.Pong); ok && p.Seq == 3 {
			break
		}
	}
	_ = stuck
}

func TestOneBigBlockIsNotSlowness(t *testing.T) {
	f := newFakeUp(t)
	f.setState(announce(1, pos0))
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, QueueBytes: 64 << 10})
	c, _ := join(t, srv, tok)
	up := f.conn(t)
	c.dual(t)
	expectLog(t, c, announce(1, pos0))
	big := block(0, pos0.Offset, 256<<10)
	up.send(t, big)
	expectLog(t, c, big)
	c.send(t, &wire.Ping{Seq: 4})
	if p, ok := c.next(t).(*wire.Pong); !ok || p.Seq != 4 {
		t.Fatalf("got %+v, want the Pong (no forced switch)", p)
	}
}

func TestWebMounted(t *testing.T) {
	f := newFakeUp(t)
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web "+r.URL.Path) })
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, Web: web})
	for _, p := range []string{"/s/s1", "/web/app.js"} {
		resp, err := authGet(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "web "+p {
			t.Fatalf("%s: %q", p, b)
		}
	}
	resp, err := http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/other: %d", resp.StatusCode)
	}
}

func TestUnknownSessionUpstream(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c := dial(t, srv, "nosuch")
	c.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay,
		Token: token.Sign(testKey, token.Claims{Session: "nosuch", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})})
	if e, ok := c.next(t).(*wire.Error); !ok || e.Code != wire.CodeNoSession {
		t.Fatalf("got %+v", e)
	}
}

func TestPageCacheOneFetchForConcurrentMisses(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	const n = 20
	bodies := make(chan string, n)
	for range n {
		go func() {
			resp, err := authGet(srv.URL + "/pages/" + hashOf("slow"))
			if err != nil {
				bodies <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- string(b)
		}()
	}
	// Let the first reach the upstream; the others queue behind it.
	for f.pageHit.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(f.gate)
	for range n {
		if b := <-bodies; b != "page "+hashOf("slow") {
			t.Fatalf("got %q", b)
		}
	}
	if h := f.pageHit.Load(); h != 1 {
		t.Fatalf("%d concurrent misses made %d upstream fetches", n, h)
	}
}

func TestUpstreamErrorReachesClients(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, _ := join(t, srv, tok)
	up := f.conn(t)
	up.send(t, &wire.Error{Code: wire.CodeShutdown, Text: "session ended"})
	if e, ok := c.next(t).(*wire.Error); !ok || e.Code != wire.CodeShutdown || e.Text != "session ended" {
		t.Fatalf("got %+v", e)
	}
}

func TestChainWithKey(t *testing.T) {
	f := newFakeUp(t)
	key := token.NewKey()
	_, a := newRelay(t, Options{Upstream: f.srv.URL, Key: key})
	_, b := newRelay(t, Options{Upstream: a.URL, Key: key})
	good := token.Sign(key, token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})
	c, w := join(t, b, good)
	if w.User == 0 {
		t.Fatal("no user")
	}
	up := f.conn(t)
	if cl, err := token.Verify(key, up.hello.Token, time.Now()); err != nil || cl.Role != token.RoleRelay {
		t.Fatalf("A's upstream token: %v", err)
	}
	// A relay token does not admit a person; a person's token does not open a relay link.
	relayTok := token.Sign(key, token.Claims{Session: "s1", Role: token.RoleRelay, Expiry: time.Now().Add(time.Hour)})
	x := dial(t, b, "s1")
	x.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: relayTok})
	if e, ok := x.next(t).(*wire.Error); !ok || e.Code != wire.CodeForbidden {
		t.Fatalf("relay token on /ws: %+v", e)
	}
	ws, err := wsconn.Dial(context.Background(), a.URL+"/upstream/s1")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Send(context.Background(), &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapRelay, Token: good})
	if m, _, err := ws.Recv(context.Background()); err != nil || m.(*wire.Error).Code != wire.CodeForbidden {
		t.Fatalf("person's token on /upstream: %+v %v", m, err)
	}
	c.send(t, &wire.Ping{Seq: 1})
	if _, ok := c.next(t).(*wire.Pong); !ok {
		t.Fatal("the good client lost its connection")
	}
}

func TestBroadcastsReachEveryone(t *testing.T) {
	f := newFakeUp(t)
	_, a := newRelay(t, Options{Upstream: f.srv.URL})
	_, b := newRelay(t, Options{Upstream: a.URL})
	c1, _ := join(t, a, tok)
	c2, _ := join(t, b, tok)
	up := f.conn(t)
	msgs := []wire.Message{
		&wire.ControlGrant{By: 0, To: 1, Epoch: 2},
		&wire.ControlRevoke{By: 1, From: 2, Epoch: 3},
		&wire.ControlRelease{User: 1, Epoch: 4},
	}
	for _, m := range msgs {
		up.send(t, m)
	}
	for _, c := range []*cl{c1, c2} {
		expectLog(t, c, msgs...)
	}
}

// A session's files, log and snapshot list go only to roles that may replay
// when the relay holds the key; pages stay open (named by their hashes).
func TestSessionFilesNeedReplayRights(t *testing.T) {
	f := newFakeUp(t)
	key := token.NewKey()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, Key: key})
	get := func(path, tok string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(session, role string, exp time.Duration) string {
		return token.Sign(key, token.Claims{Session: session, Role: role, Expiry: time.Now().Add(exp)})
	}
	for _, c := range []struct {
		name, tok string
		want      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage", "x.y", http.StatusUnauthorized},
		{"expired viewer", sign("s1", token.RoleViewer, -time.Minute), http.StatusUnauthorized},
		{"display viewer", sign("s1", token.RoleDisplay, time.Hour), http.StatusForbidden},
		{"other session", sign("s2", token.RoleOwner, time.Hour), http.StatusForbidden},
		{"viewer", sign("s1", token.RoleViewer, time.Hour), http.StatusOK},
		{"controller", sign("s1", token.RoleController, time.Hour), http.StatusOK},
	} {
		if got := get("/sessions/s1/snapshots", c.tok); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := get("/pages/"+hashOf("abc"), ""); got != http.StatusUnauthorized {
		t.Errorf("a page without a token: %d, want 401 (TestPagesNeedAToken has the rest)", got)
	}
}

// A hub without a key would hand the log to anyone (issue 9, finding 3):
// New refuses to make one.
func TestNewRefusesNoKey(t *testing.T) {
	for _, key := range [][]byte{nil, {}, make([]byte, 8)} {
		if _, err := New(Options{Upstream: "http://127.0.0.1:1", Key: key}); err == nil || !strings.Contains(err.Error(), "key") {
			t.Fatalf("key of %d bytes: New said %v, want a refusal", len(key), err)
		}
	}
}

// Issue 9, finding 2: GETs of the all-zero page with a different query each
// were each a miss stored under a new key, so the cache grew without bound
// (60,000 of them took a relay from 65 MB to 1 GB). A name has one spelling
// now: anything else in the URL is refused, and nothing is stored for it.
func TestPageCacheNamesAreCanonical(t *testing.T) {
	f := newFakeUp(t)
	h, srv := newRelay(t, Options{Upstream: f.srv.URL})
	zero := strings.Repeat("0", 64)
	pad := strings.Repeat("x", 8000)
	get := func(path string) int {
		t.Helper()
		resp, err := authGet(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 300 {
		if code := get(fmt.Sprintf("/pages/%s?i=%d&pad=%s", zero, i, pad)); code != http.StatusBadRequest {
			t.Fatalf("request %d with a query: %d, want 400", i, code)
		}
	}
	for _, p := range []string{
		"/pages/" + strings.ToUpper(hashOf("a")), "/pages/" + zero[:63], "/manifests/" + zero + "?v=1",
		"/pages?h=" + zero + "&x=1", "/pages?h=" + zero + "&h=zz", "/sessions/s1/log/?i=1",
	} {
		if code := get(p); code != http.StatusBadRequest && code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want a refusal", cutText(p), code)
		}
	}
	if code := get("/pages/" + zero + "?" + strings.Repeat("y", maxURL)); code != http.StatusRequestURITooLong {
		t.Errorf("a %d-byte URL: %d, want 414", maxURL, code)
	}
	h.cache.mu.Lock()
	n, bytes := h.cache.lru.Len(), h.cache.memBytes
	h.cache.mu.Unlock()
	if n != 0 || bytes != 0 || f.pageHit.Load() != 0 {
		t.Fatalf("refused requests reached the cache: %d entries, %d bytes, %d upstream fetches", n, bytes, f.pageHit.Load())
	}
	// The page's own names still work, each cached once.
	for range 3 {
		if get("/pages/"+zero) != 200 || get("/pages?h="+zero+"&h="+hashOf("a")) != 200 {
			t.Fatal("a canonical name was refused")
		}
	}
	if h.cache.lru.Len() != 2 || f.pageHit.Load() != 2 {
		t.Fatalf("%d entries, %d upstream fetches; want 2 and 2", h.cache.lru.Len(), f.pageHit.Load())
	}
}

// 100,000 distinct names keep the cache under its bounds in bytes (names
// counted) and in entries, in memory and on disk.
func TestPageCacheBoundedInBytesAndEntries(t *testing.T) {
	f := newFakeUp(t)
	h, _ := newRelay(t, Options{Upstream: f.srv.URL})
	body := make([]byte, 1024) // shared: the test counts, it need not hold 100 MB
	var biggest int
	for i := range 100_000 {
		e := &entry{Key: "/pages/" + hashOf(fmt.Sprint(i)), Header: http.Header{"Etag": {`"x"`}}, body: body}
		h.cache.putMem(e)
		h.cache.mu.Lock()
		biggest = max(biggest, h.cache.lru.Len())
		var sum int64
		if i%10_000 == 0 {
			for el := h.cache.lru.Front(); el != nil; el = el.Next() {
				e := el.Value.(*entry)
				sum += int64(len(e.Key) + len(e.body))
			}
		}
		h.cache.mu.Unlock()
		if sum > 256<<20 {
			t.Fatalf("after %d names: %d bytes of names and bodies held", i, sum)
		}
	}
	if biggest > 1<<16 {
		t.Fatalf("the cache held %d entries, want at most 65536", biggest)
	}
	// What /metrics says is what the cache holds.
	h.cache.mu.Lock()
	n, b := h.cache.lru.Len(), h.cache.memBytes
	h.cache.mu.Unlock()
	if got := h.m.cacheMemEntries.Get(); got != float64(n) || n != 1<<16 {
		t.Fatalf("memory entries gauge %v; the cache holds %d", got, n)
	}
	if got := h.m.cacheMemBytes.Get(); got != float64(b) || b > 256<<20 {
		t.Fatalf("memory bytes gauge %v; the cache holds %d", got, b)
	}
	// Bytes: names count. 1 KiB bodies under 1 MiB: far fewer than 1024.
	h2, _ := newRelay(t, Options{Upstream: f.srv.URL, CacheMemBytes: 1 << 20})
	for i := range 5000 {
		h2.cache.putMem(&entry{Key: "/pages/" + hashOf(fmt.Sprint(i)), body: body})
	}
	if n := h2.cache.lru.Len(); n*(1024+64) > 1<<20 {
		t.Fatalf("%d entries of 1 KiB and a 71-byte name under a 1 MiB bound", n)
	}
	// Disk: at most CacheDiskEntries files.
	dir := t.TempDir()
	h3, _ := newRelay(t, Options{Upstream: f.srv.URL, CacheDir: dir, CacheDiskEntries: 50})
	for i := range 300 {
		h3.cache.put(&entry{Key: "/pages/" + hashOf(fmt.Sprint(i)), body: []byte("p")})
		if ents, _ := os.ReadDir(dir); len(ents) > 50 {
			t.Fatalf("after %d pages: %d files on disk, want at most 50", i+1, len(ents))
		}
	}
}

// Pages and manifests need a token too (issue 9: nothing is served to a
// stranger; the zero page's hash is known to all), one that may replay,
// of any session behind the relay.
func TestPagesNeedAToken(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	other := token.Sign([]byte("another key, another server....."), token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})
	for _, c := range []struct {
		name, bearer string
		want         int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"another server's token", other, http.StatusUnauthorized},
		{"a display link", token.Sign(testKey, token.Claims{Session: "s1", Role: token.RoleDisplay, Expiry: time.Now().Add(time.Hour)}), http.StatusForbidden},
		{"another session's viewer", token.Sign(testKey, token.Claims{Session: "s2", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)}), http.StatusOK},
		{"this session's viewer", tok, http.StatusOK},
	} {
		for _, path := range []string{"/pages/" + hashOf("abc"), "/pages?h=" + hashOf("abc"), "/manifests/" + hashOf("m")} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			if c.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+c.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if c.want == http.StatusOK {
				if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s %s: %d, want it served", c.name, path, resp.StatusCode)
				}
			} else if resp.StatusCode != c.want {
				t.Errorf("%s %s: %d, want %d", c.name, path, resp.StatusCode, c.want)
			}
		}
	}
}

// Every HTTP request the relay makes upstream carries its own relay token
// (issue 9, 8c: the server's upstream port requires one on every path),
// not the client's.
func TestUpstreamRequestsCarryRelayToken(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	for _, c := range []struct{ path, bearer, session string }{
		{"/pages/" + hashOf("q"), tok, "s1"},
		{"/sessions/s1/snapshots", tok, "s1"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", c.path, resp.StatusCode)
		}
		var got string
		select {
		case got = <-f.auth:
		default:
			t.Fatalf("%s: did not reach the upstream", c.path)
		}
		bearer, ok := strings.CutPrefix(got, "Bearer ")
		cl, err := token.Verify(testKey, bearer, time.Now())
		if !ok || err != nil || cl.Role != token.RoleRelay || cl.Session != c.session {
			t.Fatalf("%s: the upstream got Authorization %q (%+v, %v), want the relay's token for %q", c.path, cutText(got), cl, err, c.session)
		}
	}
}

// Issue 9, 8b: the origin check compared Origin with Host only, and a
// DNS-rebinding page (its own name pointed at the relay) sends a Host equal
// to its Origin. Origins are judged on their own now.
func TestOriginForgedHostRefused(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, AllowOrigins: []string{"good.example", "https://desk.example.com", "10.1.2.3:*"}})
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	upgrade := func(origin, host string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/ws/s1", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, origin, host string
		want               int
	}{
		{"rebinding: Origin and Host both the attacker's name", "http://evil.example:" + port, "evil.example:" + port, 403},
		{"rebinding without a port", "http://evil.example", "evil.example", 403},
		{"a name not listed, Host matching", "http://desk.example.com", "desk.example.com", 403},
		{"listed origin, wrong scheme", "http://desk.example.com", "", 403},
		{"listed origin", "https://desk.example.com", "", 101},
		{"listed host pattern", "http://good.example", "", 101},
		{"listed host:port pattern", "http://10.1.2.3:9999", "", 101},
		{"own IP origin", "http://127.0.0.1:" + port, "", 101},
		{"own origin, other scheme", "https://127.0.0.1:" + port, "", 403},
		{"localhost", "http://localhost:" + port, "localhost:" + port, 101},
		{"another port on this IP", "http://127.0.0.1:1", "", 403},
		{"opaque origin", "null", "", 403},
		{"not an origin", "http://127.0.0.1:" + port + "/x", "", 403},
		{"native client: no Origin", "", "evil.example", 101},
	} {
		if got := upgrade(c.origin, c.host); got != c.want {
			t.Errorf("%s (Origin %q, Host %q): %d, want %d", c.name, c.origin, c.host, got, c.want)
		}
	}
}

func signed(role, name string) string {
	return token.Sign(testKey, token.Claims{Session: "s1", Role: role, Name: name, Expiry: time.Now().Add(time.Hour)})
}

// Issue 9, finding 5: Input from a role that cannot type is answered by the
// relay (InputRefused, rate-limited) and never goes upstream; an owner's
// does.
func TestInputFromViewerRefusedAtRelay(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	owner, _ := join(t, srv, signed(token.RoleOwner, "o"))
	disp, _ := join(t, srv, signed(token.RoleDisplay, ""))
	up := f.conn(t)
	in := &wire.Input{Seq: 77, Events: []abi.Event{{Type: abi.EvText, Text: "x"}}}
	for range 50 {
		disp.send(t, in)
	}
	ref, ok := disp.next(t).(*wire.InputRefused)
	if !ok || ref.Seq != 77 || ref.Reason != wire.RefuseViewerOnly {
		t.Fatalf("got %+v, want InputRefused for seq 77", ref)
	}
	owner.send(t, &wire.Input{Seq: 1, Events: []abi.Event{{Type: abi.EvText, Text: "o"}}})
	var inputs []uint64
	up.expect(t, "the owner's Input", func(m wire.Message) bool {
		if r, ok := m.(*wire.Routed); ok {
			if x, ok := r.Msg.(*wire.Input); ok {
				inputs = append(inputs, x.Seq)
				return x.Seq == 1
			}
		}
		return false
	})
	if len(inputs) != 1 {
		t.Fatalf("Inputs upstream: seq %v, want only the owner's 1", inputs)
	}
	// At most refusalRate answers for 50 refused Inputs, then a Pong: the
	// connection stays.
	disp.send(t, &wire.Ping{Seq: 9})
	answers := 1
	for {
		m := disp.next(t)
		if p, ok := m.(*wire.Pong); ok && p.Seq == 9 {
			break
		}
		if _, ok := m.(*wire.InputRefused); ok {
			answers++
		}
	}
	if answers > refusalRate+1 {
		t.Fatalf("%d InputRefused for 50 Inputs: the answers are not rate-limited", answers)
	}
}

// Issue 9, findings 4 and 5: limits per token, not only per connection.
func TestPerTokenLimits(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, ConnsPerToken: 3, JoinsPerMinute: 5, TokenMsgRate: 60})
	display := signed(token.RoleDisplay, "")
	refusal := func(c *cl) *wire.Error {
		t.Helper()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, _, err := c.ws.Recv(ctx)
			cancel()
			if err != nil {
				t.Fatalf("closed without an Error: %v", err)
			}
			if e, ok := m.(*wire.Error); ok {
				return e
			}
		}
	}
	var conns []*cl
	for range 3 {
		c, _ := join(t, srv, display)
		conns = append(conns, c)
	}
	x := dial(t, srv, "s1")
	x.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: display})
	if e := refusal(x); e.Code != wire.CodeLimit || !strings.Contains(e.Text, "connections") {
		t.Fatalf("a 4th connection of one token: %+v, want a limit", e)
	}
	// Another token is not affected.
	other, _ := join(t, srv, signed(token.RoleViewer, "v"))
	// Joins: 5 a minute. Three were admitted and one refused (refusals
	// count: a flood of refused Hellos is still a flood).
	conns[0].ws.CloseNow()
	time.Sleep(100 * time.Millisecond)
	c5, _ := join(t, srv, display)
	conns[0] = c5
	conns[1].ws.CloseNow()
	time.Sleep(100 * time.Millisecond)
	y := dial(t, srv, "s1")
	y.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: display})
	if e := refusal(y); e.Code != wire.CodeLimit || !strings.Contains(e.Text, "minute") {
		t.Fatalf("a 6th join in a minute: %+v, want a limit", e)
	}
	// Messages: 60 a second over the token's connections, each well under
	// its own 400.
	for range 40 {
		conns[0].send(t, &wire.Ping{Seq: 1})
		conns[2].send(t, &wire.Ping{Seq: 1})
	}
	e0, e2 := make(chan *wire.Error, 1), make(chan *wire.Error, 1)
	go func() { e0 <- refusalNoFatal(conns[0]) }()
	go func() { e2 <- refusalNoFatal(conns[2]) }()
	got := []*wire.Error{<-e0, <-e2}
	limited := 0
	for _, e := range got {
		if e != nil && e.Code == wire.CodeLimit && strings.Contains(e.Text, "together") {
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("80 messages a second from one token's connections, limit 60: %+v %+v", got[0], got[1])
	}
	other.send(t, &wire.Ping{Seq: 5})
	for {
		if p, ok := other.next(t).(*wire.Pong); ok && p.Seq == 5 {
			break
		}
	}
}

// refusalNoFatal waits for c's Error (nil if it closes without one, or
// stays open for 3 s).
func refusalNoFatal(c *cl) *wire.Error {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		m, _, err := c.ws.Recv(ctx)
		cancel()
		if err != nil {
			return nil
		}
		if e, ok := m.(*wire.Error); ok {
			return e
		}
	}
}

// Issue 9, finding 4: a flood of display Hellos reaches the upstream at
// most maxHellosInFlight unanswered at a time, and an owner's Hello goes
// ahead of them.
func TestHelloAdmission(t *testing.T) {
	f := newFakeUp(t)
	f.holdRole = token.RoleDisplay // the upstream is slow to answer display viewers
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	first, _ := join(t, srv, signed(token.RoleViewer, "v")) // opens the upstream
	up := f.conn(t)
	display := signed(token.RoleDisplay, "")
	var flood []*cl
	for range 3 * maxHellosInFlight {
		c := dial(t, srv, "s1")
		c.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: display})
		flood = append(flood, c)
	}
	// Held clients that talk before their Welcome: nothing of theirs may
	// reach the upstream before their Hello.
	for _, c := range flood {
		c.send(t, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDisplay})
	}
	owner, w := join(t, srv, signed(token.RoleOwner, "o"))
	if w.User == 0 {
		t.Fatal("no Welcome for the owner")
	}
	// Count the display Hellos the upstream got before the owner's.
	hellos := 0
	known := map[uint32]bool{}
	check := func(m wire.Message) (isHello bool) {
		r, ok := m.(*wire.Routed)
		if !ok {
			return false
		}
		if r.Msg.Type() == wire.TypeHello {
			known[r.Client] = true
			return true
		}
		if !known[r.Client] {
			t.Fatalf("the upstream got %s for client %d before its Hello", r.Msg.Type(), r.Client)
		}
		return false
	}
	up.expect(t, "the owner's Hello", func(m wire.Message) bool {
		if !check(m) {
			return false
		}
		h := m.(*wire.Routed).Msg.(*wire.Hello)
		if cl, _ := token.Verify(testKey, h.Token, time.Now()); cl.Role == token.RoleOwner {
			return true
		}
		hellos++
		return false
	})
	time.Sleep(200 * time.Millisecond)
	for len(up.in) > 0 {
		if check(<-up.in) {
			hellos++
		}
	}
	if hellos > maxHellosInFlight+1 { // +1: the first viewer's
		t.Fatalf("%d unanswered Hellos went upstream, want at most %d", hellos, maxHellosInFlight)
	}
	owner.send(t, &wire.Ping{Seq: 1})
	first.send(t, &wire.Ping{Seq: 1})
	_ = flood
}

// Issue 9, finding 4: every join changes Presence; the relay sends it at
// most every presenceEvery, the newest, and a slow client holds one.
func TestPresenceCoalesced(t *testing.T) {
	f := newFakeUp(t)
	_, srv := newRelay(t, Options{Upstream: f.srv.URL})
	c, _ := join(t, srv, tok)
	up := f.conn(t)
	for i := range 200 {
		up.send(t, &wire.Presence{Control: wire.ControlShared, Users: []wire.PresenceUser{{User: uint16(i + 1), Name: "u", Role: wire.RoleViewer, Mode: wire.ModeDisplay}}})
	}
	// Read until the newest list arrives (one Recv deadline for all: the
	// library closes a connection whose read times out).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, last := 0, uint16(0)
	for last != 200 {
		m, _, err := c.ws.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d Presence messages (the last for user %d): %v", got, last, err)
		}
		if p, ok := m.(*wire.Presence); ok {
			got++
			last = p.Users[0].User
		}
	}
	if got > 5 || last != 200 {
		t.Fatalf("%d Presence messages for 200 changes, the last for user %d; want a few, the last for 200", got, last)
	}
}

// Issue 9, finding 4: a client that reads nothing was dropped only after
// 30-40 s; now one write blocked for writeTimeout closes it.
func TestNonReaderDroppedByWriteDeadline(t *testing.T) {
	oldW, oldF := writeTimeout, fullTimeout
	writeTimeout, fullTimeout = 300*time.Millisecond, time.Hour
	defer func() { writeTimeout, fullTimeout = oldW, oldF }()
	f := newFakeUp(t)
	reg := metrics.NewRegistry()
	_, srv := newRelay(t, Options{Upstream: f.srv.URL, Metrics: reg})
	stay, _ := join(t, srv, tok)
	stuck, _ := join(t, srv, tok) // never reads again
	up := f.conn(t)
	var ids []uint32
	for len(ids) < 2 {
		ids = append(ids, up.expect(t, "Hello", func(m wire.Message) bool {
			r, ok := m.(*wire.Routed)
			return ok && r.Msg.Type() == wire.TypeHello
		}).(*wire.Routed).Client)
	}
	frame := &wire.DisplayFrame{Key: true, Width: 512, Height: 512,
		Tiles: []wire.Tile{{W: 512, H: 512, Encoding: wire.EncRaw, Data: make([]byte, 512*512*4)}}}
	start := time.Now()
	for gone := false; !gone; {
		if time.Since(start) > 20*time.Second {
			t.Fatal("a client that reads nothing was not dropped")
		}
		up.send(t, &wire.Routed{Client: ids[1], Msg: frame})
		select {
		case m := <-up.in:
			if g, ok := m.(*wire.Gone); ok && g.Client == ids[1] {
				gone = true
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The library closes the connection as the write times out, so the
	// reader may report the client gone before the writer counts.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v := reg.Counter(`replaydesk_relay_refused_total{reason="write_timeout"}`, "").Get()
		if v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write timeouts counted: %g, want 1", v)
		}
	}
	stay.send(t, &wire.Ping{Seq: 3})
	for {
		if p, ok := stay.next(t).(*wire.Pong); ok && p.Seq == 3 {
			break
		}
	}
	_ = stuck
}

// A Multicast key frame reaches each client listed, direct or behind a
// child relay, once; deltas then flow to all of them.
func TestMulticastKeyFrame(t *testing.T) {
	f := newFakeUp(t)
	_, a := newRelay(t, Options{Upstream: f.srv.URL})
	_, b := newRelay(t, Options{Upstream: a.URL})
	var cs []*cl
	var ids []uint32
	for _, srv := range []*httptest.Server{a, a, b, b} {
		c, w := join(t, srv, tok)
		cs = append(cs, c)
		ids = append(ids, uint32(w.User)) // the fake's Welcome: user = the upstream's client number
	}
	up := f.conn(t)
	if up.hello.Caps&wire.CapMulticast == 0 {
		t.Fatal("the relay's Hello does not offer Multicast")
	}
	frame := func(seq uint64, key bool) *wire.DisplayFrame {
		return &wire.DisplayFrame{Seq: seq, Tick: 1000 + seq, Key: key, Width: 8, Height: 8,
			Tiles: []wire.Tile{{W: 8, H: 8, Encoding: wire.EncSolid, Data: []byte{1, 2, 3, byte(seq)}}}}
	}
	up.send(t, &wire.Multicast{Clients: append(slices.Clone(ids), 9999), Msg: frame(1, true)})
	up.send(t, frame(2, false))
	for i, c := range cs {
		expectLog(t, c, frame(1, true), frame(2, false))
		_ = i
	}
}
