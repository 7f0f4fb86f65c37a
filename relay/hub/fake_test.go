package hub

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/metrics"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// fakeUp is a scripted upstream: it speaks the server's side of
// docs/live-sessions.md with real wire messages on real WebSockets, answers
// routed Hellos with a routed Welcome (display mode), and records what the
// relay sends it. It also serves a tiny page service.
type fakeUp struct {
	t       testing.TB
	srv     *httptest.Server
	conns   chan *upConn
	down    atomic.Bool   // refuse upstream connections (503)
	pageHit atomic.Int64  // page-service requests served
	role    wire.Role     // role in Welcomes (default viewer)
	gate    chan struct{} // /pages/slow answers once this is closed
	auth    chan string   // the Authorization header of every HTTP request, if made
	// Hellos whose token (under testKey) has this role get no answer, as
	// from a server slow to admit them.
	holdRole string
	// state sent right after the relay's Welcome
	mu    sync.Mutex
	state [][]byte
}

type upConn struct {
	ws    *wsconn.Conn
	hello *wire.Hello
	in    chan wire.Message
	done  chan struct{}
}

func newFakeUp(t testing.TB) *fakeUp {
	f := &fakeUp{t: t, conns: make(chan *upConn, 16), role: wire.RoleViewer, gate: make(chan struct{})}
	f.auth = make(chan string, 1000)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /upstream/{session}", f.serveUpstream)
	mux.HandleFunc("GET /pages/{hash}", func(w http.ResponseWriter, r *http.Request) {
		f.pageHit.Add(1)
		if r.PathValue("hash") == hashOf("slow") {
			<-f.gate
		}
		if r.PathValue("hash") == hashOf("missing") {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "no such page", http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+r.PathValue("hash")+`"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		fmt.Fprintf(w, "page %s", r.PathValue("hash"))
	})
	mux.HandleFunc("GET /pages", func(w http.ResponseWriter, r *http.Request) {
		f.pageHit.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fmt.Fprintf(w, "pages %s", r.URL.RawQuery)
	})
	mux.HandleFunc("POST /pages/batch", func(w http.ResponseWriter, r *http.Request) {
		f.pageHit.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fmt.Fprintf(w, "batch of %s", b)
	})
	mux.HandleFunc("GET /sessions/{id}/snapshots", func(w http.ResponseWriter, r *http.Request) {
		f.pageHit.Add(1)
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprintf(w, "[]")
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upstream/"+r.PathValue("session") {
			select {
			case f.auth <- r.Header.Get("Authorization"):
			default:
			}
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUp) setState(msgs ...wire.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = nil
	for _, m := range msgs {
		f.state = append(f.state, enc(f.t, m))
	}
}

func (f *fakeUp) serveUpstream(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("session") == "nosuch" {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if f.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	ws, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
	if err != nil {
		return
	}
	msg, _, err := ws.Recv(r.Context())
	if err != nil {
		return
	}
	hello, ok := msg.(*wire.Hello)
	if !ok || hello.Caps&wire.CapRelay == 0 {
		ws.Fail(wire.CodeMalformed, "want a relay Hello")
		return
	}
	welcome := &wire.Welcome{Major: 1, Minor: 1, SessionID: r.PathValue("session"), User: 1, Role: wire.RoleViewer, Mode: wire.ModeReplay, TickRate: 60, Tick: 1000}
	if err := ws.Send(r.Context(), welcome); err != nil {
		return
	}
	f.mu.Lock()
	state := f.state
	f.mu.Unlock()
	for _, b := range state {
		ws.SendBytes(r.Context(), b)
	}
	c := &upConn{ws: ws, hello: hello, in: make(chan wire.Message, 100000), done: make(chan struct{})}
	f.conns <- c
	defer close(c.done)
	for {
		msg, _, err := ws.Recv(context.Background())
		if err != nil {
			return
		}
		if rt, ok := msg.(*wire.Routed); ok {
			if h, ok := rt.Msg.(*wire.Hello); ok {
				if cl, err := token.Verify(testKey, h.Token, time.Now()); err == nil && f.holdRole != "" && cl.Role == f.holdRole {
					c.in <- msg
					continue
				}
				var ans wire.Message = &wire.Welcome{Major: 1, Minor: 1, SessionID: "s1", User: uint16(rt.Client % 60000), Role: f.role, Mode: wire.ModeDisplay, TickRate: 60, Tick: 1000}
				if h.Name == "refuse-me" {
					ans = &wire.Error{Code: wire.CodeUnauthorized, Text: "refused upstream"}
				}
				ws.Send(context.Background(), &wire.Routed{Client: rt.Client, Msg: ans})
			}
		}
		c.in <- msg
	}
}

// conn waits for the relay's next upstream connection.
func (f *fakeUp) conn(t testing.TB) *upConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not connect upstream")
		return nil
	}
}

func (c *upConn) send(t *testing.T, m wire.Message) {
	t.Helper()
	if err := c.ws.Send(context.Background(), m); err != nil {
		t.Fatalf("upstream send: %v", err)
	}
}

// expect waits for a message from the relay matching ok, skipping others.
func (c *upConn) expect(t *testing.T, what string, ok func(wire.Message) bool) wire.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.in:
			if ok(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("upstream never got %s", what)
			return nil
		}
	}
}

func enc(t testing.TB, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// block makes a LogBlock of n payload bytes at segment 0, offset off;
// the payload starts with seq, then the sending time (for lag).
func block(seq uint64, off int64, n int) *wire.LogBlock {
	n = max(n, 16)
	b := make([]byte, 9+n)
	binary.LittleEndian.PutUint32(b, uint32(n))
	binary.LittleEndian.PutUint64(b[9:], seq)
	binary.LittleEndian.PutUint64(b[17:], uint64(time.Now().UnixNano()))
	return &wire.LogBlock{Pos: recordlog.Pos{Segment: 0, Offset: off, Tick: 1000 + seq, Step: seq}, Block: b}
}

// blocks makes count consecutive blocks starting at seq from, offset off.
func blocks(from uint64, off int64, count, size int) []*wire.LogBlock {
	var out []*wire.LogBlock
	for i := range count {
		b := block(from+uint64(i), off, size)
		off += int64(len(b.Block))
		out = append(out, b)
	}
	return out
}

func announce(n uint64, pos recordlog.Pos) *wire.SnapshotAnnounce {
	return &wire.SnapshotAnnounce{Number: n, ManifestHash: [32]byte{byte(n)}, Tick: pos.Tick, Step: pos.Step, Pos: pos}
}

// hashOf names a test page: 64 hex digits, as the page service's names are.
func hashOf(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

// testKey is the key of the tests' relays (unless a test brings its own);
// tok is a viewer's token for session s1 under it.
var (
	testKey = token.NewKey()
	tok     = token.Sign(testKey, token.Claims{Session: "s1", Role: token.RoleViewer, Name: "t", Expiry: time.Now().Add(24 * time.Hour)})
)

// newRelay starts a hub in front of upstream URL up.
// authGet GETs url with the viewer token tok (pages and manifests need one).
func authGet(url string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return http.DefaultClient.Do(req)
}

func newRelay(t testing.TB, o Options) (*Hub, *httptest.Server) {
	t.Helper()
	if o.Key == nil {
		o.Key = testKey
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
	o.Log = zerolog.Nop()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		h.Close()
		srv.Close()
	})
	return h, srv
}

// cl is a test client on a relay.
type cl struct {
	ws *wsconn.Conn
}

func dial(t testing.TB, srv *httptest.Server, session string) *cl {
	t.Helper()
	ws, err := wsconn.Dial(context.Background(), srv.URL+"/ws/"+session)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ws.CloseNow)
	return &cl{ws: ws}
}

// join dials, says Hello with tok and waits for the Welcome.
func join(t testing.TB, srv *httptest.Server, tok string) (*cl, *wire.Welcome) {
	t.Helper()
	c := dial(t, srv, "s1")
	c.send(t, &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapReplay | wire.CapDisplay | wire.CapDualStream, Token: tok, Want: wire.ModeAuto, Name: "t"})
	w := c.next(t).(*wire.Welcome)
	return c, w
}

func (c *cl) send(t testing.TB, m wire.Message) {
	t.Helper()
	if err := c.ws.Send(context.Background(), m); err != nil {
		t.Fatalf("client send: %v", err)
	}
}

// next returns the next message, skipping Presence and Estimates.
func (c *cl) next(t testing.TB) wire.Message {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, _, err := c.ws.Recv(ctx)
		cancel()
		if err != nil {
			t.Fatalf("client recv: %v", err)
		}
		switch m.(type) {
		case *wire.Presence, *wire.Estimates:
			continue
		}
		return m
	}
}

// nextRaw returns the next message's bytes.
func (c *cl) nextRaw(t testing.TB) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.ws.Recv(ctx)
	if err != nil {
		t.Fatalf("client recv: %v", err)
	}
	return b
}

// dual asks for dual mode.
func (c *cl) dual(t testing.TB) {
	c.send(t, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual})
}
