// Package wsconn carries wire messages over a WebSocket connection: one
// binary WebSocket message per wire message (docs/wire-protocol.md), with the
// protocol's size limit enforced before a byte is buffered, text frames and
// undecodable messages answered with a wire Error and a close, and the close
// reason turned into an error a person can read.
//
// It keeps the WebSocket library (nhooyr.io/websocket) behind its API. It
// must not know about sessions, roles, relays or what messages mean.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nhooyr.io/websocket"

	"replaydesk/shared/wire"
)

// Conn is one WebSocket connection speaking the wire protocol. Send may be
// called from several goroutines; Recv from one.
type Conn struct {
	ws     *websocket.Conn
	wmu    sync.Mutex
	remote string
	closed atomic.Bool
	// Byte counters (whole WebSocket payloads), for metrics.
	sent, recv atomic.Int64
}

// AcceptOptions tune Accept.
type AcceptOptions struct {
	// OriginPatterns are hosts (path.Match patterns, e.g. "127.0.0.1:*")
	// whose pages may open a connection besides the server's own host.
	// Browsers send Origin; native clients do not, and are not checked.
	OriginPatterns []string
}

// Accept upgrades an HTTP request. A browser page from an origin not allowed
// gets 403 and an error.
func Accept(w http.ResponseWriter, r *http.Request, o AcceptOptions) (*Conn, error) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  o.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled, // blocks are compressed already; tiles are JPEG/zlib
	})
	if err != nil {
		return nil, fmt.Errorf("wsconn: accept from %s: %w", r.RemoteAddr, err)
	}
	ws.SetReadLimit(-1) // Recv enforces the limit, so that the peer hears why
	return &Conn{ws: ws, remote: r.RemoteAddr}, nil
}

// Dial connects to url (ws:// or wss://; http:// and https:// are accepted
// and mapped by the library).
func Dial(ctx context.Context, url string) (*Conn, error) {
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("wsconn: dial %s: HTTP %s: %w", url, resp.Status, err)
		}
		return nil, fmt.Errorf("wsconn: dial %s: %w", url, err)
	}
	ws.SetReadLimit(-1) // Recv enforces the limit, so that the peer hears why
	return &Conn{ws: ws, remote: url}, nil
}

// Remote names the peer (address or URL) for logs.
func (c *Conn) Remote() string { return c.remote }

// BytesSent and BytesReceived count WebSocket payload bytes.
func (c *Conn) BytesSent() int64     { return c.sent.Load() }
func (c *Conn) BytesReceived() int64 { return c.recv.Load() }

// Send encodes and sends m.
func (c *Conn) Send(ctx context.Context, m wire.Message) error {
	b, err := wire.Encode(m)
	if err != nil {
		return err
	}
	return c.SendBytes(ctx, b)
}

// SendBytes sends an already encoded message (a relay encodes a broadcast
// once and sends the same bytes to every client).
func (c *Conn) SendBytes(ctx context.Context, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		return c.explain(err)
	}
	c.sent.Add(int64(len(b)))
	return nil
}

// Recv reads the next message and returns it with its encoded bytes (which
// stay valid: each message gets its own buffer). A message that does not
// decode, a text frame or an oversized message ends the connection: the
// peer gets a wire Error saying why, and Recv returns that reason. A wire
// Error from the peer is returned as a message, like any other.
func (c *Conn) Recv(ctx context.Context) (wire.Message, []byte, error) {
	b, err := c.RecvBytes(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := c.Decode(b)
	if err != nil {
		return nil, nil, err
	}
	return m, b, nil
}

// RecvBytes is Recv without the decoding: the next message's bytes, checked
// for size and frame type only, so that a relay can drop a message by its
// type byte without paying for its decoding. Decode the rest.
func (c *Conn) RecvBytes(ctx context.Context) ([]byte, error) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, c.explain(err)
	}
	// The limit is ours, not the library's: the library would close with
	// a bare "read limited" before the peer could be told, in a wire Error,
	// what it did wrong. Nothing past the limit is buffered.
	b, err := io.ReadAll(io.LimitReader(r, wire.MaxMessage+1))
	if err != nil {
		return nil, c.explain(err)
	}
	c.recv.Add(int64(len(b)))
	if len(b) > wire.MaxMessage {
		text := fmt.Sprintf("message larger than the protocol's %d bytes", wire.MaxMessage)
		c.failStatus(wire.CodeLimit, text, websocket.StatusMessageTooBig)
		return nil, fmt.Errorf("wsconn: %s sent a %s: %w", c.remote, text, ErrTooBig)
	}
	if typ != websocket.MessageBinary {
		err := errors.New("text frames are not part of the protocol: send binary wire messages")
		c.Fail(wire.CodeMalformed, err.Error())
		return nil, err
	}
	if len(b) == 0 {
		// Decode would refuse it too; said here so that a caller peeking
		// at b[0] never sees an empty message.
		c.Fail(wire.CodeMalformed, "empty message")
		return nil, errors.New("wsconn: " + c.remote + " sent an empty message")
	}
	return b, nil
}

// Decode decodes a message RecvBytes returned; one that does not decode
// ends the connection as in Recv.
func (c *Conn) Decode(b []byte) (wire.Message, error) {
	m, err := wire.Decode(b)
	if err != nil {
		code := wire.CodeMalformed
		switch {
		case errors.Is(err, wire.ErrVersion):
			code = wire.CodeVersion
		case errors.Is(err, wire.ErrLimit):
			code = wire.CodeLimit
		}
		c.Fail(code, err.Error())
		return nil, err
	}
	return m, nil
}

// Fail sends a wire Error (best effort, briefly) and closes the connection.
func (c *Conn) Fail(code wire.ErrorCode, text string) {
	status := websocket.StatusPolicyViolation
	if code == wire.CodeShutdown {
		status = websocket.StatusGoingAway
	}
	c.failStatus(code, text, status)
}

func (c *Conn) failStatus(code wire.ErrorCode, text string, status websocket.StatusCode) {
	text = cut(text, wire.MaxText)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	c.Send(ctx, &wire.Error{Code: code, Text: text})
	cancel()
	c.close(status, text)
}

// Close ends the connection normally.
func (c *Conn) Close(reason string) { c.close(websocket.StatusNormalClosure, reason) }

func (c *Conn) close(status websocket.StatusCode, reason string) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	reason = cut(reason, 120)     // a close frame's reason is at most 123 bytes
	go c.ws.Close(status, reason) // waits up to 5 s for the peer's close frame
	time.AfterFunc(6*time.Second, func() { c.ws.CloseNow() })
}

// CloseNow drops the connection without a handshake.
func (c *Conn) CloseNow() {
	c.closed.Store(true)
	c.ws.CloseNow()
}

// explain turns the library's close errors into plain ones.
func (c *Conn) explain(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.StatusMessageTooBig:
			return fmt.Errorf("wsconn: %s: message larger than the protocol's %d bytes: %w", c.remote, wire.MaxMessage, ErrClosed)
		case websocket.StatusNormalClosure, websocket.StatusGoingAway:
			return fmt.Errorf("wsconn: %s closed the connection (%s): %w", c.remote, ce.Reason, ErrClosed)
		}
		return fmt.Errorf("wsconn: %s closed the connection with status %d (%s): %w", c.remote, ce.Code, ce.Reason, ErrClosed)
	}
	if strings.Contains(err.Error(), "read limited at") {
		// The library closed with "message too big" and says only this.
		return fmt.Errorf("wsconn: %s sent a message larger than the protocol's %d bytes: %w", c.remote, wire.MaxMessage, ErrTooBig)
	}
	return fmt.Errorf("wsconn: %s: %w", c.remote, err)
}

// ErrClosed is wrapped by errors that mean the peer closed the connection;
// ErrTooBig by the error after a peer sent an oversized message (the
// connection is closed then too).
var (
	ErrClosed = errors.New("connection closed")
	ErrTooBig = errors.New("message too big")
)

// cut shortens s to at most n bytes without splitting a rune.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
