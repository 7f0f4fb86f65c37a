//go:build wasip1

package guest

import (
	"io"
	"runtime"
	"unsafe"

	"replaydesk/shared/abi"
)

// Conn is a byte stream to a named host endpoint. Its methods never block.
type Conn struct {
	h      int32
	name   string
	closed bool
}

// Dial opens a stream to the host endpoint name, one the session allows
// (for example "echo"). It fails with ErrNoent or ErrAcces for an endpoint
// the session does not offer, ErrInval for an empty or over-long name, and
// ErrAgain when all abi.MaxNetHandles handles are in use.
func Dial(name string) (*Conn, error) {
	if name == "" || len(name) > abi.MaxNetName {
		return nil, ErrInval
	}
	b := []byte(name)
	h := hostNetOpen(unsafe.Pointer(&b[0]), int32(len(b)))
	runtime.KeepAlive(b)
	if h < 0 {
		return nil, Errno(-h)
	}
	return &Conn{h: h, name: name}, nil
}

// Name returns the endpoint name the connection was dialed with.
func (c *Conn) Name() string { return c.name }

// Send queues bytes for the peer and returns how many the host accepted,
// which may be fewer than len(b) (even 0) when its buffer is full; send the
// rest on a later step. It returns ErrPipe once the peer has closed.
func (c *Conn) Send(b []byte) (int, error) {
	if c.closed {
		return 0, ErrBadf
	}
	total := 0
	for len(b) > 0 {
		chunk := min(len(b), abi.MaxNetChunk)
		n := hostNetSend(c.h, unsafe.Pointer(&b[0]), int32(chunk))
		runtime.KeepAlive(b)
		if n < 0 {
			return total, Errno(-n)
		}
		if int(n) > chunk {
			n = int32(chunk) // a host bug; never claim more than offered
		}
		total += int(n)
		b = b[n:]
		if int(n) < chunk {
			break
		}
	}
	return total, nil
}

// Recv copies received bytes into b. It returns 0, nil when nothing has
// arrived yet and 0, io.EOF once the peer has closed the stream and all its
// data has been read. At most abi.MaxNetChunk bytes are read per call.
func (c *Conn) Recv(b []byte) (int, error) {
	if c.closed {
		return 0, ErrBadf
	}
	if len(b) == 0 {
		return 0, nil
	}
	chunk := min(len(b), abi.MaxNetChunk)
	n := hostNetRecv(c.h, unsafe.Pointer(&b[0]), int32(chunk))
	runtime.KeepAlive(b)
	switch {
	case n == -abi.ErrnoPipe:
		return 0, io.EOF
	case n < 0:
		return 0, Errno(-n)
	case int(n) > chunk:
		return chunk, nil // a host bug; never claim more than the buffer
	}
	return int(n), nil
}

// Close releases the handle. Closing twice returns ErrBadf.
func (c *Conn) Close() error {
	if c.closed {
		return ErrBadf
	}
	c.closed = true
	return errnoErr(hostNetClose(c.h))
}
