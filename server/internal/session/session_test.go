package session

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
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/server/internal/recorder"
	"replaydesk/shared/abi"
	"replaydesk/shared/machine"
	"replaydesk/shared/metrics"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

func TestMain(m *testing.M) {
	machine.RunPageServerIfChild()
	os.Exit(m.Run())
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

type harness struct {
	t   testing.TB
	s   *Session
	srv *httptest.Server
	dir string
	reg *metrics.Registry
}

// start opens (or continues) a testcard session in dir and serves it.
func start(t testing.TB, dir string, snapEvery time.Duration) *harness {
	t.Helper()
	return startWith(t, dir, snapEvery, nil)
}

// startWith is start with a change to the options.
func startWith(t testing.TB, dir string, snapEvery time.Duration, change func(*Options)) *harness {
	t.Helper()
	img, err := images.Lookup("testcard")
	if err != nil {
		t.Fatal(err)
	}
	store, err := pagestore.OpenDir(filepath.Join(filepath.Dir(dir), "pagestore"))
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Exclusive control: these tests exercise request, grant and revoke
	// (shared control is the e2e convergence test's).
	o := Options{Image: img, Dir: dir, Key: testKey, Store: store, SnapshotEvery: snapEvery,
		Exclusive: true, Metrics: reg, Log: zerolog.New(zerolog.NewTestWriter(t.(zerolog.TestingLog))).Level(zerolog.WarnLevel)}
	if change != nil {
		change(&o)
	}
	s, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, srv: httptest.NewServer(s.Handler()), dir: dir, reg: reg}
	t.Cleanup(h.stop)
	return h
}

// get GETs path from the session endpoint with tok ("" for none).
func (h *harness) get(path, tok string) (*http.Response, error) {
	req, err := http.NewRequest("GET", h.srv.URL+path, nil)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return http.DefaultClient.Do(req)
}

// bearer is a transport that sends tok with every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

func (h *harness) stop() {
	h.srv.Close()
	h.s.Close()
}

func sign(role, session string, expiry time.Duration) string {
	return token.Sign(testKey, token.Claims{Session: session, Role: role, Expiry: time.Now().Add(expiry)})
}

// peer is the test acting as a relay: a real WebSocket to /upstream.
type peer struct {
	t    testing.TB
	conn *wsconn.Conn
	msgs chan wire.Message
	err  chan error
}

func (h *harness) dialRelay(tok string) *peer {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := wsconn.Dial(ctx, strings.Replace(h.srv.URL, "http", "ws", 1)+"/upstream/"+h.s.ID())
	if err != nil {
		h.t.Fatal(err)
	}
	p := &peer{t: h.t, conn: conn, msgs: make(chan wire.Message, 100000), err: make(chan error, 1)}
	h.t.Cleanup(func() { conn.CloseNow() })
	p.send(&wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapRelay, Token: tok, Name: "test relay"})
	go func() {
		for {
			m, _, err := conn.Recv(context.Background())
			if err != nil {
				p.err <- err
				close(p.msgs)
				return
			}
			p.msgs <- m
		}
	}()
	return p
}

func (p *peer) send(m wire.Message) {
	p.t.Helper()
	if err := p.conn.Send(context.Background(), m); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) routed(c uint32, m wire.Message) {
	p.t.Helper()
	p.send(&wire.Routed{Client: c, Msg: m})
}

// expect reads messages until one satisfies ok (within 10 s).
func (p *peer) expect(what string, ok func(wire.Message) bool) wire.Message {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, open := <-p.msgs:
			if !open {
				p.t.Fatalf("waiting for %s: connection ended: %v", what, <-p.err)
			}
			if ok(m) {
				return m
			}
		case <-timeout:
			p.t.Fatalf("no %s within 10 s", what)
		}
	}
}

// routedTo waits for a routed message of type T to client c.
func routedTo[T wire.Message](p *peer, c uint32) T {
	p.t.Helper()
	var zero T
	m := p.expect(fmt.Sprintf("routed %T for client %d", zero, c), func(m wire.Message) bool {
		r, ok := m.(*wire.Routed)
		if !ok || r.Client != c {
			return false
		}
		_, ok = r.Msg.(T)
		return ok
	})
	return m.(*wire.Routed).Msg.(T)
}

func is[T wire.Message](m wire.Message) bool { _, ok := m.(T); return ok }

// join admits client c with a token of role and returns its Welcome.
func (p *peer) join(c uint32, role, session string) *wire.Welcome {
	p.t.Helper()
	p.routed(c, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapReplay | wire.CapDisplay | wire.CapJPEG | wire.CapZlib | wire.CapPalette | wire.CapDualStream,
		Token: sign(role, session, time.Hour), Name: role + " " + fmt.Sprint(c)})
	return routedTo[*wire.Welcome](p, c)
}

func TestRelaysGetWelcomeStateAndTheSameBlocks(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s1"), -1)
	a := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	w := a.expect("Welcome", is[*wire.Welcome]).(*wire.Welcome)
	if w.SessionID != h.s.ID() || w.TickRate != 60 || w.ModuleHash.IsZero() || len(w.Params) == 0 {
		t.Fatalf("Welcome %+v", w)
	}
	a.expect("Presence", is[*wire.Presence])
	a.expect("Estimates", is[*wire.Estimates])
	b := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	b.expect("Welcome", is[*wire.Welcome])

	// Both relays see the same blocks: B got the backlog since the start,
	// A got them live; collect 1.5 s of log from each and compare the tail.
	collect := func(p *peer, until recordlog.Pos) map[recordlog.Pos][]byte {
		got := map[recordlog.Pos][]byte{}
		p.expect("log up to the mark", func(m wire.Message) bool {
			if lb, ok := m.(*wire.LogBlock); ok {
				got[lb.Pos] = lb.Block
				return !before(lb.Pos, until)
			}
			return false
		})
		return got
	}
	time.Sleep(2500 * time.Millisecond)
	// Everything A has by now; its newest block is a mark B must reach.
	ga := map[recordlog.Pos][]byte{}
	var mark recordlog.Pos
drain:
	for {
		select {
		case m := <-a.msgs:
			if lb, ok := m.(*wire.LogBlock); ok {
				ga[lb.Pos] = lb.Block
				mark = lb.Pos
			}
		default:
			break drain
		}
	}
	gb := collect(b, mark)
	if len(gb) < 2 {
		t.Fatalf("relay B got %d blocks", len(gb))
	}
	// Every block B holds at or before the mark, A has too (A may have
	// seen earlier ones before the collection started), byte for byte.
	n := 0
	for pos, blk := range gb {
		if before(mark, pos) {
			continue
		}
		if ab, ok := ga[pos]; ok {
			n++
			if !bytes.Equal(ab, blk) {
				t.Fatalf("block at %+v differs between relays", pos)
			}
		}
	}
	if n == 0 {
		t.Fatal("the relays share no block")
	}
	// B's blocks form a gapless log from the session's start.
	st := recordlog.NewStream(recordlog.Pos{})
	var poss []recordlog.Pos
	for pos := range gb {
		poss = append(poss, pos)
	}
	sortPos(poss)
	for _, pos := range poss {
		if err := st.Push(pos, gb[pos]); err != nil {
			t.Fatalf("block at %+v does not follow: %v", pos, err)
		}
	}
	if got := h.s.Stats().Relays; got != 2 {
		t.Fatalf("%d relays", got)
	}
}

func sortPos(p []recordlog.Pos) {
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			if before(p[j], p[i]) {
				p[i], p[j] = p[j], p[i]
			}
		}
	}
}

func TestTokensAreChecked(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s2"), -1)

	// A relay with a token from another key is refused outright.
	bad := h.dialRelay(token.Sign([]byte("another key, another server....."), token.Claims{Session: h.s.ID(), Role: token.RoleRelay, Expiry: time.Now().Add(time.Hour)}))
	e := bad.expect("Error", is[*wire.Error]).(*wire.Error)
	if e.Code != wire.CodeUnauthorized {
		t.Fatalf("relay with a foreign token: %+v", e)
	}

	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	cases := []struct {
		name string
		tok  string
		code wire.ErrorCode
	}{
		{"wrong key", token.Sign([]byte("not the session's key.........."), token.Claims{Session: h.s.ID(), Role: token.RoleOwner, Expiry: time.Now().Add(time.Hour)}), wire.CodeUnauthorized},
		{"expired", sign(token.RoleOwner, h.s.ID(), -time.Minute), wire.CodeUnauthorized},
		{"garbage", "not a token", wire.CodeUnauthorized},
		{"other session", sign(token.RoleOwner, "elsewhere", time.Hour), wire.CodeNoSession},
		{"relay token as a person", sign(token.RoleRelay, h.s.ID(), time.Hour), wire.CodeForbidden},
	}
	for i, tc := range cases {
		c := uint32(10 + i)
		p.routed(c, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapDisplay, Token: tc.tok})
		e := routedTo[*wire.Error](p, c)
		if e.Code != tc.code {
			t.Fatalf("%s: %+v, want code %d", tc.name, e, tc.code)
		}
		g := p.expect("Gone", func(m wire.Message) bool { g, ok := m.(*wire.Gone); return ok && g.Client == c }).(*wire.Gone)
		if g.Reason == "" {
			t.Fatalf("%s: Gone without a reason", tc.name)
		}
	}
	// Input from a client that never said Hello is refused too.
	p.routed(99, &wire.Input{Seq: 1, Epoch: 1, Events: []abi.Event{{Type: abi.EvText, Text: "x"}}})
	if e := routedTo[*wire.Error](p, 99); e.Code != wire.CodeMalformed {
		t.Fatalf("input before Hello: %+v", e)
	}
	if n := h.s.Stats().Clients; n != 0 {
		t.Fatalf("%d clients admitted", n)
	}
}

// A viewer's input is refused; a controller who asked for control types,
// and the log records the text under the controller's user number.
func TestInputIsArbitratedAndRecordedWithItsUser(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s3")
	h := start(t, dir, -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])

	viewer := p.join(1, token.RoleViewer, h.s.ID())
	if viewer.Role != wire.RoleViewer || viewer.Mode != wire.ModeDisplay || viewer.User == 0 {
		t.Fatalf("viewer's Welcome %+v", viewer)
	}
	p.routed(1, &wire.Input{Seq: 7, Epoch: 1, Events: []abi.Event{{Type: abi.EvText, Text: "nope"}}})
	r := routedTo[*wire.InputRefused](p, 1)
	if r.Seq != 7 || r.Reason != wire.RefuseViewerOnly || r.Text == "" {
		t.Fatalf("viewer's input: %+v", r)
	}

	ctl := p.join(2, token.RoleController, h.s.ID())
	p.routed(2, &wire.ControlRequest{User: ctl.User, Epoch: 1})
	g := p.expect("ControlGrant", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == ctl.User }).(*wire.ControlGrant)
	// Input under the old epoch is refused, under the new one accepted.
	p.routed(2, &wire.Input{Seq: 1, Epoch: g.Epoch - 1, Events: []abi.Event{{Type: abi.EvText, Text: "stale"}}})
	if r := routedTo[*wire.InputRefused](p, 2); r.Reason != wire.RefuseStaleEpoch {
		t.Fatalf("stale input: %+v", r)
	}
	const text = "typed-by-ctl"
	p.routed(2, &wire.Input{Seq: 2, Epoch: g.Epoch, Events: []abi.Event{{Type: abi.EvText, Text: text}, {Type: abi.EvMove, X: 30, Y: 40}}})
	// Presence shows the pointer.
	p.expect("Presence with the pointer", func(m wire.Message) bool {
		pr, ok := m.(*wire.Presence)
		if !ok {
			return false
		}
		for _, u := range pr.Users {
			if u.User == ctl.User && u.X == 30 && u.Y == 40 && u.HasControl {
				return true
			}
		}
		return false
	})
	// Rate limit: a burst far over the limit is refused.
	refused := false
	for i := 0; i < 3 && !refused; i++ {
		evs := make([]abi.Event, 256)
		for j := range evs {
			evs[j] = abi.Event{Type: abi.EvMove, X: int32(j), Y: 1}
		}
		p.routed(2, &wire.Input{Seq: uint64(10 + i), Epoch: g.Epoch, Events: evs})
	}
	if r := routedTo[*wire.InputRefused](p, 2); r.Reason != wire.RefuseRateLimited {
		t.Fatalf("burst: %+v", r)
	}
	time.Sleep(300 * time.Millisecond) // a few ticks: the text reaches the log
	h.stop()

	// The log holds the text event stamped with the controller's number
	// (input_poll is import 3; its outcome is type, flags, user, text).
	want := append([]byte{byte(abi.EvText), 0}, binary.AppendUvarint(nil, uint64(ctl.User))...)
	want = append(binary.AppendUvarint(want, uint64(len(text))), text...)
	found := len(inputPolls(t, dir, want)) > 0
	if len(inputPolls(t, dir, []byte("nope"))) > 0 {
		t.Fatal("the viewer's refused input reached the log")
	}
	if !found {
		t.Fatalf("the log has no text %q from user %d", text, ctl.User)
	}
}

// A client going to dual with no recent snapshot makes the server take
// one; its manifest is served by the page service.
func TestDualRequestGetsAFreshSnapshot(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s4"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	p.join(1, token.RoleViewer, h.s.ID())
	if h.s.Stats().Snapshot != nil {
		t.Fatal("a snapshot before anyone asked")
	}
	p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual})
	a := p.expect("SnapshotAnnounce", is[*wire.SnapshotAnnounce]).(*wire.SnapshotAnnounce)
	if a.Number != 1 || a.Tick == 0 {
		t.Fatalf("announce %+v", a)
	}
	resp, err := h.get(fmt.Sprintf("/manifests/%x", a.ManifestHash), sign(token.RoleRelay, h.s.ID(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("GET manifest: %s (%d bytes)", resp.Status, len(body))
	}
	m, err := pagestore.DecodeManifest(body)
	if err != nil || m.Tick != a.Tick || m.LogPos != a.Pos {
		t.Fatalf("manifest %+v, %v; announce %+v", m, err, a)
	}
	// The log after the snapshot follows it without a gap.
	st := recordlog.NewStream(a.Pos)
	lb := p.expect("a block after the snapshot", func(m wire.Message) bool {
		lb, ok := m.(*wire.LogBlock)
		return ok && !before(lb.Pos, a.Pos)
	}).(*wire.LogBlock)
	if lb.Pos == a.Pos {
		if err := st.Push(lb.Pos, lb.Block); err != nil {
			t.Fatal(err)
		}
	}
	// A second relay joining now starts from the snapshot.
	q := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	q.expect("Welcome", is[*wire.Welcome])
	if a2 := q.expect("the announcement", is[*wire.SnapshotAnnounce]).(*wire.SnapshotAnnounce); a2.ManifestHash != a.ManifestHash {
		t.Fatal("a late relay got another snapshot")
	}
	for _, f := range []string{"session.json", "module.wasm"} {
		r, err := h.get("/sessions/"+h.s.ID()+"/files/"+f, sign(token.RoleViewer, h.s.ID(), time.Hour))
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", f, err, r.Status)
		}
		r.Body.Close()
	}
}

// Display frames are encoded only while a client is in display (or dual)
// mode: with only the relay, or only replaying clients, nothing is encoded.
func TestDisplayEncodesOnlyForDisplayClients(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s5"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	time.Sleep(1200 * time.Millisecond) // the testcard redraws its clock every second
	if n := h.s.Stats().Encodes; n != 0 {
		t.Fatalf("%d encodes with nobody watching", n)
	}

	p.join(1, token.RoleViewer, h.s.ID())
	key := routedTo[*wire.DisplayFrame](p, 1)
	if !key.Key || key.Width != 640 || key.Height != 360 || len(key.Tiles) == 0 {
		t.Fatalf("key frame %v %dx%d %d tiles", key.Key, key.Width, key.Height, len(key.Tiles))
	}
	delta := p.expect("a delta", func(m wire.Message) bool { _, ok := m.(*wire.DisplayFrame); return ok }).(*wire.DisplayFrame)
	if delta.Key || delta.Seq <= key.Seq {
		t.Fatalf("delta seq %d key %v after key seq %d", delta.Seq, delta.Key, key.Seq)
	}

	p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay})
	p.expect("Presence in replay", func(m wire.Message) bool {
		pr, ok := m.(*wire.Presence)
		return ok && len(pr.Users) == 1 && pr.Users[0].Mode == wire.ModeReplay
	})
	time.Sleep(100 * time.Millisecond) // an encode under way finishes
	before := h.s.Stats().Encodes
	time.Sleep(1500 * time.Millisecond)
	if after := h.s.Stats().Encodes; after != before {
		t.Fatalf("encoded %d frames with only a replaying client", after-before)
	}
	// The estimate of display traffic goes on from damage.
	e := p.expect("Estimates", is[*wire.Estimates]).(*wire.Estimates)
	if e.LogBytesPerSec == 0 || e.DisplayBytesPerSec == 0 || e.WindowMillis == 0 {
		t.Fatalf("estimates %+v", e)
	}
	// Back to display: a fresh key frame.
	p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDisplay})
	if k := routedTo[*wire.DisplayFrame](p, 1); !k.Key {
		t.Fatal("no key frame after switching back to display")
	}
	var out bytes.Buffer
	h.reg.Write(&out)
	if !strings.Contains(out.String(), "replaydesk_relays 1") {
		t.Fatalf("metrics:\n%s", out.String())
	}
}

// A session stopped and continued rebuilds the same machine state from its
// log, and new blocks continue the old positions.
func TestRestartContinuesTheLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s6")
	h := start(t, dir, -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	owner := p.join(1, token.RoleOwner, h.s.ID())
	g := p.expect("the owner's control", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == owner.User }).(*wire.ControlGrant)
	p.routed(1, &wire.Input{Seq: 1, Epoch: g.Epoch, Events: []abi.Event{{Type: abi.EvKey, Code: abi.KeyCode(0x28), Down: true}, {Type: abi.EvKey, Code: abi.KeyCode(0x28)}}})
	time.Sleep(time.Second)
	// A copy taken while recording is what a crash leaves (perhaps a torn
	// block at the end): it continues too.
	crashed := filepath.Join(filepath.Dir(dir), "crashed")
	if out, err := exec.Command("cp", "-r", dir, crashed).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	h.srv.Close()
	res, err := h.s.Close()
	if err != nil {
		t.Fatal(err)
	}
	var last recordlog.Pos
	for m := range p.msgs { // the connection ended with the session
		if lb, ok := m.(*wire.LogBlock); ok {
			last = lb.Pos
		}
	}

	h2 := start(t, dir, -1)
	r := h2.s.Ready()
	if got := fmt.Sprintf("%016x", r.StateHash); got != res.FinalStateHash || r.Tick != res.Ticks || r.Replayed == 0 {
		t.Fatalf("continued at tick %d state %s (replayed %d); the session ended at tick %d state %s",
			r.Tick, got, r.Replayed, res.Ticks, res.FinalStateHash)
	}
	q := h2.dialRelay(sign(token.RoleRelay, h2.s.ID(), time.Hour))
	q.expect("Welcome", is[*wire.Welcome])
	// The backlog replays the whole log (no snapshot yet), then new blocks
	// follow: one gapless log across the restart.
	st := recordlog.NewStream(recordlog.Pos{})
	var newest recordlog.Pos
	q.expect("a block recorded after the restart", func(m wire.Message) bool {
		lb, ok := m.(*wire.LogBlock)
		if !ok {
			return false
		}
		if err := st.Push(lb.Pos, lb.Block); err != nil {
			t.Fatalf("block at %+v: %v", lb.Pos, err)
		}
		newest = lb.Pos
		return lb.Pos.Tick > res.Ticks
	})
	if !before(last, newest) {
		t.Fatalf("new block at %+v does not follow the old log's %+v", newest, last)
	}
	// The owner left when the session stopped (recorded before the first
	// tick, checked below), so a newcomer may take the number again.
	if v := q.join(1, token.RoleViewer, h2.s.ID()); v.User != owner.User {
		t.Fatalf("a newcomer after the restart is user %d; want the lowest free number, %d", v.User, owner.User)
	}
	h2.stop()
	// The owner present when the session stopped is recorded leaving when
	// it continued (a user event, not down, with the owner's number).
	left := append([]byte{byte(abi.EvUser), 0}, binary.AppendUvarint(nil, uint64(owner.User))...)
	left = append(binary.AppendUvarint(left, uint64(len("owner 1"))), "owner 1"...)
	if len(inputPolls(t, dir, left)) == 0 {
		t.Fatal("the continued session did not record that the owner left")
	}

	h3 := start(t, crashed, -1)
	if r := h3.s.Ready(); r.Tick == 0 || r.Tick > res.Ticks {
		t.Fatalf("the crashed copy continued at tick %d (the session ran to %d)", r.Tick, res.Ticks)
	}
	h3.stop()
	// A sealed session does not go on.
	if err := recorder.Seal(crashed); err != nil {
		t.Fatal(err)
	}
	img, _ := images.Lookup("testcard")
	store, _ := pagestore.OpenDir(filepath.Join(t.TempDir(), "ps"))
	if _, err := Open(context.Background(), Options{Image: img, Dir: crashed, Key: testKey, Store: store, Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("continuing a sealed session: %v", err)
	}
}

// A snapshot that fails sends the clients waiting for it back to display
// mode with the reason.
func TestFailedSnapshotForcesDisplay(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s7"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	v := p.join(1, token.RoleViewer, h.s.ID())
	p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual})
	p.expect("Presence in dual", func(m wire.Message) bool {
		pr, ok := m.(*wire.Presence)
		return ok && len(pr.Users) == 1 && pr.Users[0].User == v.User && pr.Users[0].Mode == wire.ModeDual
	})
	// What the recorder reports when background copying did not converge.
	h.s.publish <- recorder.Snapshot{Err: errors.New("did not converge in 30 rounds")}
	ms := routedTo[*wire.ModeSwitch](p, 1)
	if ms.Kind != wire.SwitchForced || ms.Mode != wire.ModeDisplay || !strings.Contains(ms.Reason, "converge") {
		t.Fatalf("after a failed snapshot: %+v", ms)
	}
	var out bytes.Buffer
	h.reg.Write(&out)
	if !strings.Contains(out.String(), "replaydesk_snapshot_failures_total 1") {
		t.Fatalf("metrics:\n%s", out.String())
	}
}

// The owner can always take control back; the previous holder's input is
// then refused.
func TestOwnerTakesControlBack(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s8"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	ctl := p.join(1, token.RoleController, h.s.ID())
	p.routed(1, &wire.ControlRequest{User: ctl.User, Epoch: 1})
	g := p.expect("grant to the controller", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == ctl.User }).(*wire.ControlGrant)
	owner := p.join(2, token.RoleOwner, h.s.ID())
	p.routed(2, &wire.ControlRequest{User: owner.User, Epoch: g.Epoch})
	g2 := p.expect("grant to the owner", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == owner.User }).(*wire.ControlGrant)
	if g2.Epoch <= g.Epoch || g2.By != owner.User {
		t.Fatalf("force-take %+v after %+v", g2, g)
	}
	p.routed(1, &wire.Input{Seq: 3, Epoch: g2.Epoch, Events: []abi.Event{{Type: abi.EvText, Text: "late"}}})
	if r := routedTo[*wire.InputRefused](p, 1); r.Reason != wire.RefuseNotController {
		t.Fatalf("the old holder's input: %+v", r)
	}
	// The owner leaving passes control on to nobody; presence shows it.
	p.send(&wire.Gone{Client: 2, Reason: "closed the tab"})
	p.expect("release", func(m wire.Message) bool { r, ok := m.(*wire.ControlRelease); return ok && r.User == owner.User })
	p.expect("Presence without the owner", func(m wire.Message) bool {
		pr, ok := m.(*wire.Presence)
		return ok && len(pr.Users) == 1 && pr.Users[0].User == ctl.User && !pr.Users[0].HasControl
	})
}

// What a replay client does with what the server sends: restore the
// announced snapshot from the page service, follow the log blocks from its
// position, and replay them — with input typed meanwhile — without a
// divergence, to where the session is.
func TestAReplayerFollowsTheLiveSession(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s9"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	w := p.expect("Welcome", is[*wire.Welcome]).(*wire.Welcome)
	owner := p.join(1, token.RoleOwner, h.s.ID())
	g := p.expect("control", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == owner.User }).(*wire.ControlGrant)
	p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual})
	// Blocks after the snapshot's position may come before its
	// announcement (it is published meanwhile): a relay keeps them.
	var early []*wire.LogBlock
	a := p.expect("SnapshotAnnounce", func(m wire.Message) bool {
		if lb, ok := m.(*wire.LogBlock); ok {
			early = append(early, lb)
		}
		return is[*wire.SnapshotAnnounce](m)
	}).(*wire.SnapshotAnnounce)
	if a.Tick == 0 {
		t.Fatalf("announce %+v", a)
	}

	ctx := context.Background()
	pc := pageservice.NewClient(h.srv.URL, &http.Client{Transport: bearer(sign(token.RoleRelay, h.s.ID(), time.Hour))})
	m, err := pc.Manifest(ctx, a.ManifestHash)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := pagestore.AssembleFrom(ctx, m, pc, 256)
	if err != nil {
		t.Fatal(err)
	}
	params, err := machine.DecodeParams(w.Params)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := images.Lookup("testcard")
	eng, err := machine.NewEngine(ctx, img.Wasm, machine.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	stream := recordlog.NewStream(a.Pos)
	rm, err := machine.Restore(ctx, eng, machine.Config{Mode: machine.Replay, Params: params, Source: stream, Disk: img.Disk}, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close(ctx)

	// Type while following: Enter bumps the testcard's counter.
	for i := 0; i < 3; i++ {
		p.routed(1, &wire.Input{Seq: uint64(i + 1), Epoch: g.Epoch, Events: []abi.Event{{Type: abi.EvKey, Code: 0x28, Down: true}, {Type: abi.EvKey, Code: 0x28}}})
	}
	push := func(lb *wire.LogBlock) {
		if before(lb.Pos, a.Pos) {
			return
		}
		if err := stream.Push(lb.Pos, lb.Block); err != nil {
			t.Fatalf("block at %+v: %v", lb.Pos, err)
		}
		for stream.Ready() {
			if _, err := rm.ReplayNext(ctx); err != nil {
				t.Fatalf("replaying the live log at tick %d: %v", rm.Ticks(), err)
			}
		}
	}
	for _, lb := range early {
		push(lb)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rm.Ticks() < a.Tick+90 && time.Now().Before(deadline) {
		select {
		case msg := <-p.msgs:
			if lb, ok := msg.(*wire.LogBlock); ok {
				push(lb)
			}
		case <-time.After(time.Second):
		}
	}
	if rm.Ticks() < a.Tick+90 {
		t.Fatalf("the replayer reached tick %d, the snapshot was at %d", rm.Ticks(), a.Tick)
	}
	if st := rm.Stats(); st.Calls[3] == 0 || st.Checkpoints == 0 {
		t.Fatalf("replayed %d input polls and verified %d checkpoints", st.Calls[3], st.Checkpoints)
	}
}

// A relay that vanishes takes its clients with it: they leave the
// presence and control they held is released.
func TestVanishedRelayReleasesItsClients(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s10"), -1)
	watcher := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	watcher.expect("Welcome", is[*wire.Welcome])
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	owner := p.join(1, token.RoleOwner, h.s.ID())
	watcher.expect("the owner's control", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == owner.User })
	p.conn.CloseNow()
	watcher.expect("release", func(m wire.Message) bool { r, ok := m.(*wire.ControlRelease); return ok && r.User == owner.User })
	watcher.expect("empty Presence", func(m wire.Message) bool { pr, ok := m.(*wire.Presence); return ok && len(pr.Users) == 0 })
	if st := h.s.Stats(); st.Clients != 0 || st.Relays != 1 {
		t.Fatalf("after the relay vanished: %+v", st)
	}
}

// inputPolls returns the outcomes of the input_poll calls (import 3) in
// dir's log that contain want.
func inputPolls(t testing.TB, dir string, want []byte) [][]byte {
	t.Helper()
	rd, err := recordlog.Open(filepath.Join(dir, "log"), recordlog.ModuleHash{}, recordlog.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out [][]byte
	for {
		rec, err := rd.Next(context.Background())
		if err != nil {
			if !errors.Is(err, recordlog.ErrUnsealed) && err != io.EOF {
				t.Fatal(err)
			}
			return out
		}
		if rec.Kind == recordlog.KindCall && rec.Fn == 3 && bytes.Contains(rec.Data, want) {
			out = append(out, rec.Data)
		}
	}
}

// A session shutting down delivers to its relays every block it wrote,
// then the Error: a stopped session's viewers replay to its very end.
func TestShutdownDeliversTheLastBlocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s9")
	h := start(t, dir, -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	p.expect("a block", is[*wire.LogBlock])
	if _, err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	var last *wire.LogBlock
	var shutdown *wire.Error
	for m := range p.msgs {
		switch m := m.(type) {
		case *wire.LogBlock:
			if shutdown != nil {
				t.Fatal("a block after the Error")
			}
			last = m
		case *wire.Error:
			shutdown = m
		}
	}
	if shutdown == nil || shutdown.Code != wire.CodeShutdown {
		t.Fatalf("the relay got no shutdown Error (got %v)", shutdown)
	}
	fi, err := os.Stat(filepath.Join(dir, "log", recordlog.SegmentName(last.Pos.Segment)))
	if err != nil {
		t.Fatal(err)
	}
	if end := last.Pos.Offset + int64(len(last.Block)); end != fi.Size() {
		t.Fatalf("the relay's last block ends at offset %d of segment %d; the log ends at %d", end, last.Pos.Segment, fi.Size())
	}
}
