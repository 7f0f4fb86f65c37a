package endpoints

import (
	"io"

	"replaydesk/shared/machine"
)

// Bytes is a stream that serves a fixed byte slice and then closes: the
// host end of a LAN file or media server. Everything is available at once,
// so Recv returns as much as the guest asks for; the guest decides how fast
// it reads (and so how fast its log grows). Bytes sent to it are accepted
// and dropped.
type Bytes struct {
	data   []byte
	off    int
	eof    bool // io.EOF has been returned
	closed bool
}

// NewBytes returns a stream serving data, which it does not copy or modify.
func NewBytes(data []byte) *Bytes { return &Bytes{data: data} }

// BytesFactory returns a Factory whose every stream serves data from its
// start.
func BytesFactory(data []byte) Factory {
	return func() (machine.Stream, error) { return NewBytes(data), nil }
}

func (b *Bytes) Send(p []byte) (int, error) {
	if b.closed {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func (b *Bytes) Recv(p []byte) (int, error) {
	if b.closed || b.off == len(b.data) {
		b.eof = true
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

// Pending is true while data or the end of the stream remain to be read.
func (b *Bytes) Pending() bool { return !b.closed && !b.eof }

func (b *Bytes) Close() error { b.closed = true; return nil }
