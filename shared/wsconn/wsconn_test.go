package wsconn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"nhooyr.io/websocket"

	"replaydesk/shared/wire"
)

// echoServer answers every message with the same message, and reports what
// Recv returned when it failed.
func echoServer(t *testing.T) (url string, failures chan error) {
	failures = make(chan error, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, AcceptOptions{})
		if err != nil {
			return
		}
		for {
			m, _, err := c.Recv(r.Context())
			if err != nil {
				failures <- err
				return
			}
			c.Send(r.Context(), m)
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), failures
}

func TestRoundTripAndBadInput(t *testing.T) {
	url, failures := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, &wire.Ping{Seq: 7, Sent: 9}); err != nil {
		t.Fatal(err)
	}
	m, b, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(*wire.Ping); !ok || p.Seq != 7 || len(b) != 3 {
		t.Fatalf("echo: %#v (%d bytes)", m, len(b))
	}
	if c.BytesSent() != 3 || c.BytesReceived() != 3 {
		t.Fatalf("counters %d/%d, want 3/3", c.BytesSent(), c.BytesReceived())
	}

	// A malformed message: the server says why and closes.
	c.SendBytes(ctx, []byte{16, 0x81, 0x00, 0})
	m, _, err = c.Recv(ctx)
	if e, ok := m.(*wire.Error); err != nil || !ok || e.Code != wire.CodeMalformed || !strings.Contains(e.Text, "non-minimal") {
		t.Fatalf("after a malformed message: %#v, %v", m, err)
	}
	if err := <-failures; !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("server side: %v", err)
	}
	if _, _, err := c.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after the Error: %v, want the connection closed", err)
	}
}

func TestOversizedAndTextFrames(t *testing.T) {
	url, failures := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A message over the limit is not buffered past the limit: the peer
	// gets a wire Error saying why, then the close.
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	big := make([]byte, wire.MaxMessage+1)
	go ws.Write(ctx, websocket.MessageBinary, big) // the server stops reading it at the limit
	if err := <-failures; !errors.Is(err, ErrTooBig) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized: %v", err)
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("oversized: no wire Error before the close: %v", err)
	}
	if m, err := wire.Decode(b); err != nil || m.(*wire.Error).Code != wire.CodeLimit || !strings.Contains(m.(*wire.Error).Text, "larger than") {
		t.Fatalf("oversized answered with %#v %v", m, err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized: closed with %v, want status message too big", err)
	}
	ws.CloseNow()

	// A text frame is refused with a wire Error.
	ws, _, err = websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte("hello"))
	typ, b, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageBinary {
		t.Fatalf("read: %v %v", typ, err)
	}
	m, err := wire.Decode(b)
	if e, ok := m.(*wire.Error); err != nil || !ok || !strings.Contains(e.Text, "text frames") {
		t.Fatalf("text frame answered with %#v %v", m, err)
	}
	<-failures
}
