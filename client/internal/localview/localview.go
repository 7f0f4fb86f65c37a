// Package localview shows a live client's session in a browser tab on the
// loopback interface. It serves the web app (or, without one, a fallback
// page) and a /ws/{session} endpoint that speaks the wire protocol to the
// page as a server would: a Welcome, LOSSLESS DisplayFrames of the client's
// own screen (a key frame on connect, then the tiles that changed), and the
// session's presence and control messages; the page's Input and control
// messages go to the session as the client's own (the page is this user).
//
// It must not know how the client gets its screen (display frames or its
// own replay), modes, or the relay: a Source hands it pictures and messages.
package localview

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Source is the live client as the local view sees it.
type Source interface {
	// Welcome is the session's Welcome to the client (false before it).
	Welcome() (wire.Welcome, bool)
	// Frame copies the current screen (tightly packed RGBA) into dst's
	// buffer; false if there is nothing to show yet.
	Frame(dst []byte) (pix []byte, w, h int, tick uint64, ok bool)
	// Changed is closed at the screen's next change.
	Changed() <-chan struct{}
	// Subscribe passes on the session's presence and control messages.
	Subscribe() (<-chan wire.Message, func())
	// Send sends a page's message to the session as the client's.
	Send(ctx context.Context, m wire.Message) error
}

// Options configure a Server.
type Options struct {
	Addr    string // default 127.0.0.1:0 (a free port)
	Session string
	// App serves /s/{session} and /web/… (the web app, package web);
	// nil: a fallback page that shows the screen as refreshed PNGs.
	App http.Handler
	// FrameEvery is the shortest time between two frames to the page:
	// 33 ms.
	FrameEvery time.Duration
	Log        zerolog.Logger
}

// Caps are what the local endpoint sends a page: lossless tiles only.
const Caps = wire.CapDisplay | wire.CapZlib | wire.CapPalette

// Server is a running local view.
type Server struct {
	o     Options
	src   Source
	token string
	ln    net.Listener
	srv   *http.Server
}

// Start listens and serves in the background.
func Start(src Source, o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.FrameEvery == 0 {
		o.FrameEvery = 33 * time.Millisecond
	}
	var tok [16]byte
	rand.Read(tok[:])
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, src: src, token: hex.EncodeToString(tok[:]), ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{session}", s.serveWS)
	mux.HandleFunc("GET /screen.png", s.servePNG)
	if o.App != nil {
		mux.Handle("/", o.App)
	} else {
		mux.HandleFunc("GET /s/{session}", s.serveFallback)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the page to open: http://127.0.0.1:PORT/s/SESSION?t=LOCALTOKEN.
// The token is this process's own (not the session's): only who was shown
// the URL can watch and type through this client.
func (s *Server) URL() string {
	return fmt.Sprintf("http://%s/s/%s?t=%s", s.ln.Addr(), url.PathEscape(s.o.Session), s.token)
}

// Token is the local token pages must present.
func (s *Server) Token() string { return s.token }

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.token)) == 1
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("session") != s.o.Session {
		http.Error(w, "no such session here", http.StatusNotFound)
		return
	}
	conn, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
	if err != nil {
		s.o.Log.Warn().Err(err).Msg("local view: refused a WebSocket")
		return
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if err := s.page(ctx, conn); err != nil && ctx.Err() == nil {
		s.o.Log.Debug().Err(err).Msg("local view: page left")
	}
}

// page runs one page's connection.
func (s *Server) page(ctx context.Context, conn *wsconn.Conn) error {
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	m, _, err := conn.Recv(hctx)
	hcancel()
	if err != nil {
		return err
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		conn.Fail(wire.CodeMalformed, "the first message must be a Hello")
		return errors.New("no Hello")
	}
	if !s.tokenOK(h.Token) {
		conn.Fail(wire.CodeUnauthorized, "this local view needs the token of the link the client printed")
		return errors.New("bad local token")
	}
	wel, ok := s.src.Welcome()
	if !ok {
		conn.Fail(wire.CodeShutdown, "the client is not connected to the session yet; reload in a moment")
		return errors.New("no session yet")
	}
	wel.Major, wel.Minor, wel.Caps, wel.Mode = wire.Major, wire.Minor, Caps, wire.ModeDisplay
	if err := conn.Send(ctx, &wel); err != nil {
		return err
	}
	msgs, unsub := s.src.Subscribe()
	defer unsub()
	errc := make(chan error, 2)
	go func() { errc <- s.readPage(ctx, conn) }()
	go func() { errc <- s.writePage(ctx, conn, msgs) }()
	return <-errc
}

// readPage forwards the page's input and control to the session.
func (s *Server) readPage(ctx context.Context, conn *wsconn.Conn) error {
	for {
		m, _, err := conn.Recv(ctx)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *wire.Input, *wire.ControlRequest, *wire.ControlGrant, *wire.ControlRevoke, *wire.ControlRelease:
			if err := s.src.Send(ctx, m); err != nil {
				s.o.Log.Warn().Err(err).Stringer("type", m.Type()).Msg("local view: could not pass the page's message on")
			}
		case *wire.Ping:
			if err := conn.Send(ctx, &wire.Pong{Seq: m.Seq, Echo: m.Sent, Sent: uint64(time.Now().UnixNano())}); err != nil {
				return err
			}
		}
	}
}

// writePage sends frames of the client's screen and the session's
// presence and control messages.
func (s *Server) writePage(ctx context.Context, conn *wsconn.Conn, msgs <-chan wire.Message) error {
	enc := display.NewEncoder(display.Options{Lossless: true})
	var pix []byte
	var seq uint64
	key := true
	var last time.Time
	for {
		wake := s.src.Changed()
		var w, h int
		var tick uint64
		var ok bool
		pix, w, h, tick, ok = s.src.Frame(pix)
		if ok {
			var tiles []display.Tile
			if key {
				tiles = enc.Key(pix, w, h, w*4)
			} else {
				tiles = enc.Encode(pix, w, h, w*4, []image.Rectangle{image.Rect(0, 0, w, h)})
			}
			if key || len(tiles) > 0 {
				if err := sendFrame(ctx, conn, &seq, tick, key, w, h, tiles); err != nil {
					return err
				}
				key = false
			}
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if err := conn.Send(ctx, m); err != nil {
				return err
			}
			continue
		case <-wake:
		}
		// Pace: a screen changing at 60 Hz costs the page 30 frames.
		if d := s.o.FrameEvery - time.Since(last); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
	}
}

// frameBudget keeps one DisplayFrame under the protocol's message limit:
// a big lossless screen goes as several messages (the first carries key).
const frameBudget = wire.MaxMessage - 64<<10

func sendFrame(ctx context.Context, conn *wsconn.Conn, seq *uint64, tick uint64, key bool, w, h int, tiles []display.Tile) error {
	for first := true; first || len(tiles) > 0; first = false {
		n, size := 0, 0
		for n < len(tiles) && n < wire.MaxTiles && size+len(tiles[n].Data)+32 <= frameBudget {
			size += len(tiles[n].Data) + 32
			n++
		}
		if n == 0 && len(tiles) > 0 {
			return fmt.Errorf("a tile of %d bytes does not fit a message", len(tiles[0].Data))
		}
		f := &wire.DisplayFrame{Seq: *seq, Tick: tick, Key: key && first, Width: uint32(w), Height: uint32(h), Tiles: make([]wire.Tile, n)}
		for i, t := range tiles[:n] {
			f.Tiles[i] = t.Wire()
		}
		*seq++
		if err := conn.Send(ctx, f); err != nil {
			return err
		}
		tiles = tiles[n:]
	}
	return nil
}

func (s *Server) servePNG(w http.ResponseWriter, r *http.Request) {
	if !s.tokenOK(r.URL.Query().Get("t")) {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	pix, fw, fh, _, ok := s.src.Frame(nil)
	if !ok {
		http.Error(w, "nothing to show yet", http.StatusServiceUnavailable)
		return
	}
	img := &image.RGBA{Pix: pix, Stride: fw * 4, Rect: image.Rect(0, 0, fw, fh)}
	for i := 3; i < len(pix); i += 4 {
		pix[i] = 255 // the guest ABI ignores alpha; a browser would not
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

var fallback = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>replaydesk {{.Session}} (local)</title>
<style>body{margin:0;background:#222;color:#ccc;font:14px sans-serif}img{display:block;margin:auto;image-rendering:pixelated;max-width:100vw}</style>
</head><body><p>Session {{.Session}}, shown by the native client (a preview: the web app is not built into this binary).</p>
<img id="s" alt="screen">
<script>
const img = document.getElementById("s");
function next() { img.src = "/screen.png?t={{.Token}}&n=" + Date.now(); }
img.onload = () => setTimeout(next, 100);
img.onerror = () => setTimeout(next, 1000);
next();
</script></body></html>`))

func (s *Server) serveFallback(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("session") != s.o.Session || !s.tokenOK(r.URL.Query().Get("t")) {
		http.Error(w, "open the link the client printed", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fallback.Execute(w, struct{ Session, Token string }{s.o.Session, s.token})
}
