package localview

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// still is a Source showing one picture.
type still struct {
	pix  []byte
	w, h int
	mu   sync.Mutex
	sent []wire.Message
}

func (s *still) Welcome() (wire.Welcome, bool) {
	return wire.Welcome{SessionID: "x", User: 2, Role: wire.RoleController, Mode: wire.ModeReplay, TickRate: 60}, true
}
func (s *still) Frame(dst []byte) ([]byte, int, int, uint64, bool) {
	return append(dst[:0], s.pix...), s.w, s.h, 9, true
}
func (s *still) Changed() <-chan struct{}                 { return nil }
func (s *still) Subscribe() (<-chan wire.Message, func()) { return nil, func() {} }
func (s *still) Send(_ context.Context, m wire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func dialPage(t *testing.T, v *Server) (*wsconn.Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	u := strings.Replace(strings.SplitN(v.URL(), "/s/", 2)[0], "http", "ws", 1) + "/ws/x"
	c, err := wsconn.Dial(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseNow)
	return c, ctx
}

// A screen whose lossless tiles exceed one message arrives as several
// DisplayFrames (the first the key frame) that together paint it exactly.
func TestBigScreenSplitsIntoMessages(t *testing.T) {
	const w, h = 2048, 1600 // 12.5 MiB of noise: zlib cannot shrink it
	pix := make([]byte, w*h*4)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pix {
		pix[i] = byte(r.Uint32())
	}
	src := &still{pix: pix, w: w, h: h}
	v, err := Start(src, Options{Session: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c, ctx := dialPage(t, v)
	c.Send(ctx, &wire.Hello{Major: 1, Caps: Caps, Token: v.Token()})
	m, _, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wel, ok := m.(*wire.Welcome); !ok || wel.Mode != wire.ModeDisplay || wel.Role != wire.RoleController || wel.Caps != Caps {
		t.Fatalf("Welcome %+v", m)
	}
	fb := make([]byte, w*h*4)
	var dec display.Decoder
	msgs := 0
	for !bytes.Equal(fb, pix) {
		m, b, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d frames: %v", msgs, err)
		}
		f := m.(*wire.DisplayFrame)
		if f.Key != (msgs == 0) || len(b) > wire.MaxMessage {
			t.Fatalf("frame %d: key %v, %d bytes", msgs, f.Key, len(b))
		}
		tiles := make([]display.Tile, len(f.Tiles))
		for i, tl := range f.Tiles {
			tiles[i] = display.FromWire(tl)
		}
		if err := dec.Apply(tiles, fb, w, h, w*4); err != nil {
			t.Fatal(err)
		}
		msgs++
	}
	if msgs < 2 {
		t.Fatalf("%d messages for a screen bigger than one", msgs)
	}
	// Input and control from the page go to the session; nothing else does.
	in := &wire.ControlRequest{User: 2, Epoch: 1}
	c.Send(ctx, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDisplay})
	c.Send(ctx, in)
	c.Send(ctx, &wire.Ping{Seq: 4, Sent: 77})
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := m.(*wire.Pong); ok {
			if p.Seq != 4 || p.Echo != 77 {
				t.Fatalf("Pong %+v", p)
			}
			break
		}
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.sent) != 1 || src.sent[0].Type() != wire.TypeControlRequest {
		t.Fatalf("passed on %v", src.sent)
	}
}

func TestPageRefusals(t *testing.T) {
	v, err := Start(&still{pix: make([]byte, 64*64*4), w: 64, h: 64}, Options{Session: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, first := range []wire.Message{
		&wire.Hello{Major: 1, Caps: Caps, Token: "not-the-local-token"},
		&wire.Ping{Seq: 1},
	} {
		c, ctx := dialPage(t, v)
		c.Send(ctx, first)
		m, _, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("%s first: %v", first.Type(), err)
		}
		if e, ok := m.(*wire.Error); !ok || (e.Code != wire.CodeUnauthorized && e.Code != wire.CodeMalformed) {
			t.Fatalf("%s first: got %+v", first.Type(), m)
		}
	}
}
