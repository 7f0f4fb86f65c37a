package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// One Chromium for the whole package, started by the first browser test and
// stopped by TestMain; every test drives the same tab.
var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
	browserStop = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	browserStop()
	os.Exit(code)
}

// chromiumCandidates are tried in order after $REPLAYDESK_CHROMIUM.
var chromiumCandidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}

// chromiumPath finds Chromium. Without it the browser tests fail when CI is
// set (CI installs it: .ci/run) and skip, saying why, on a developer machine.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REPLAYDESK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range chromiumCandidates {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found (CI is set): install it (apt-get install chromium) or set REPLAYDESK_CHROMIUM")
	} else {
		t.Skip("Chromium not found: the browser tests need it (apt-get install chromium, or set REPLAYDESK_CHROMIUM)")
	}
	return ""
}

// tab returns the shared browser tab, starting Chromium the first time.
func tab(t testing.TB) context.Context {
	t.Helper()
	path := chromiumPath(t)
	browserOnce.Do(func() {
		dir, err := os.MkdirTemp("", "replaydesk-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(dir),
			chromedp.Flag("no-sandbox", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,NetworkTimeServiceQuerying"),
			// Nothing but the test's own loopback server is reachable.
			chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
			chromedp.WindowSize(1200, 800),
		)
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(alloc)
		browserStop = func() { cancel(); cancelAlloc(); os.RemoveAll(dir) }
		browserCtx = ctx
		browserErr = chromedp.Do(ctx) // starts the browser and its first tab
	})
	if browserErr != nil {
		t.Fatalf("starting Chromium: %v", browserErr)
	}
	return browserCtx
}

// run runs an action with a deadline (derived from the browser's context,
// which must not carry one itself).
func run[T any](t testing.TB, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab(t), 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

func eval[T any](t testing.TB, js string) T {
	t.Helper()
	return run(t, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// waitJS polls a page expression until it is truthy.
func waitJS(t testing.TB, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab(t), 8*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(tab(t), chromedp.Evaluate[string](`(window.replaydesk ? window.replaydesk.state + " / " + window.replaydesk.lastError : "no app") + " / " + document.body.innerText`))
		t.Fatalf("waiting for %s: %v (page: %s)", js, err, state)
	}
}

// peer is the Go side of one page's WebSocket: the test plays the server.
type peer struct {
	t     *testing.T
	conn  *wsconn.Conn
	hello *wire.Hello
	in    chan wire.Message // everything the page sent after its Hello
	done  chan struct{}
}

// fakeServer serves the app and a /ws/{session} endpoint that hands every
// connection, after its Hello, to the test.
type fakeServer struct {
	*httptest.Server
	peers chan *peer
}

func newServer(t *testing.T) *fakeServer {
	s := &fakeServer{peers: make(chan *peer, 8)}
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("GET /blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>blank</title>")
	})
	stop := make(chan struct{})
	mux.HandleFunc("GET /ws/{session}", func(w http.ResponseWriter, r *http.Request) {
		c, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		m, _, err := c.Recv(ctx)
		cancel()
		if err != nil {
			return
		}
		h, ok := m.(*wire.Hello)
		if !ok {
			c.Fail(wire.CodeMalformed, "want Hello")
			return
		}
		p := &peer{t: t, conn: c, hello: h, in: make(chan wire.Message, 1024), done: make(chan struct{})}
		s.peers <- p
		defer close(p.done)
		for {
			m, _, err := c.Recv(context.Background())
			if err != nil {
				close(p.in)
				return
			}
			select {
			case p.in <- m:
			case <-stop:
				return
			}
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(stop)
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

// open loads the app for session "s1" and returns its connection.
func (s *fakeServer) open(t *testing.T, query string) *peer {
	t.Helper()
	run(t, chromedp.Navigate(s.URL+"/s/s1?"+query))
	return s.next(t)
}

func (s *fakeServer) next(t *testing.T) *peer {
	t.Helper()
	select {
	case p := <-s.peers:
		t.Cleanup(func() { p.conn.CloseNow() })
		return p
	case <-time.After(8 * time.Second):
		t.Fatal("the page did not connect and say Hello")
		return nil
	}
}

func (p *peer) send(m wire.Message) {
	p.t.Helper()
	if err := p.conn.Send(context.Background(), m); err != nil {
		p.t.Fatalf("send %T: %v", m, err)
	}
}

// welcome answers the Hello.
func (p *peer) welcome(user uint16, role wire.Role) {
	p.t.Helper()
	p.send(&wire.Welcome{Major: 1, Minor: 1, Caps: wire.CapDisplay, SessionID: "s1", User: user, Role: role, Mode: wire.ModeDisplay, TickRate: 60})
}

// expect returns the next message from the page that match accepts,
// passing over others (pings, earlier input).
func expect[M wire.Message](p *peer, match func(M) bool) M {
	p.t.Helper()
	timeout := time.After(8 * time.Second)
	for {
		select {
		case m, ok := <-p.in:
			if !ok {
				var zero M
				p.t.Fatalf("connection closed while waiting for %T", zero)
			}
			if mm, ok := m.(M); ok && (match == nil || match(mm)) {
				return mm
			}
		case <-timeout:
			var zero M
			p.t.Fatalf("no %T from the page", zero)
		}
	}
}

// canvasPixels reads the page's canvas back with getImageData.
func canvasPixels(t *testing.T) (w, h int, pix []byte) {
	t.Helper()
	type img struct {
		W, H int
		B64  string
	}
	r := eval[img](t, `(() => {
		const c = document.getElementById("screen");
		const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		let s = "";
		for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
		return {W: c.width, H: c.height, B64: btoa(s)};
	})()`)
	b, err := base64.StdEncoding.DecodeString(r.B64)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != r.W*r.H*4 {
		t.Fatal(errors.New("canvas pixel count does not match its size"))
	}
	return r.W, r.H, b
}
