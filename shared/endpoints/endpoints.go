// Package endpoints provides the host side of a session's net streams: the
// named endpoints a guest may open with net_open (DESIGN.md section 4). Only
// a recording (or live) machine talks to them; a replay never does.
//
// It must not know about the machine or the log: it offers streams of bytes.
package endpoints

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"sync"
	"time"

	"replaydesk/shared/machine"
)

// Factory opens one stream of an endpoint.
type Factory func() (machine.Stream, error)

// Host is a set of named endpoints; it implements machine.NetHost.
type Host struct {
	mu        sync.Mutex
	factories map[string]Factory
}

// NewHost returns a host with the built-in endpoints ("echo").
func NewHost() *Host {
	h := &Host{factories: map[string]Factory{}}
	h.Add("echo", func() (machine.Stream, error) { return &Echo{}, nil })
	return h
}

// Add registers (or replaces) an endpoint.
func (h *Host) Add(name string, f Factory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.factories[name] = f
}

// AddTCP registers an endpoint that dials addr for each stream.
func (h *Host) AddTCP(name, addr string) {
	h.Add(name, func() (machine.Stream, error) { return DialTCP(addr) })
}

// Names lists the registered endpoints.
func (h *Host) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Open implements machine.NetHost.
func (h *Host) Open(name string) (machine.Stream, error) {
	h.mu.Lock()
	f, ok := h.factories[name]
	h.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("endpoints: no endpoint %q: %w", name, fs.ErrNotExist)
	}
	return f()
}

// Echo returns what was sent to it; the bytes are readable at once.
type Echo struct {
	buf    []byte
	closed bool
}

// MaxEcho bounds what an echo stream holds unread.
const MaxEcho = 1 << 20

func (e *Echo) Send(p []byte) (int, error) {
	if e.closed {
		return 0, io.ErrClosedPipe
	}
	n := min(len(p), MaxEcho-len(e.buf))
	e.buf = append(e.buf, p[:n]...)
	return n, nil
}

func (e *Echo) Recv(p []byte) (int, error) {
	if e.closed {
		return 0, io.EOF
	}
	n := copy(p, e.buf)
	e.buf = e.buf[n:]
	return n, nil
}

func (e *Echo) Pending() bool { return len(e.buf) > 0 }
func (e *Echo) Close() error  { e.closed = true; return nil }

// TCP is a stream to a TCP endpoint. A reader goroutine fills a buffer so
// Recv never blocks the machine.
type TCP struct {
	c   net.Conn
	mu  sync.Mutex
	buf []byte
	err error
}

// DialTCP connects to addr.
func DialTCP(addr string) (*TCP, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	t := &TCP{c: c}
	go t.readLoop()
	return t, nil
}

const maxTCPBuffer = 4 << 20

func (t *TCP) readLoop() {
	b := make([]byte, 64<<10)
	for {
		// Back-pressure: stop reading while the guest is behind.
		for {
			t.mu.Lock()
			full := len(t.buf) >= maxTCPBuffer
			t.mu.Unlock()
			if !full {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		n, err := t.c.Read(b)
		t.mu.Lock()
		t.buf = append(t.buf, b[:n]...)
		if err != nil {
			t.err = err
		}
		t.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (t *TCP) Send(p []byte) (int, error) {
	t.c.SetWriteDeadline(time.Now().Add(time.Second))
	return t.c.Write(p)
}

func (t *TCP) Recv(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		if t.err != nil {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}

func (t *TCP) Pending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buf) > 0 || t.err != nil
}

func (t *TCP) Close() error { return t.c.Close() }
