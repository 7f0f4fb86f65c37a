// Package card is the testcard guest's logic: its state machine and drawing,
// in plain Go so that it builds and is tested natively. The wasip1 program in
// the parent directory only connects it to the real host through package
// guest; tests connect it to a fake host.
//
// The card exercises every device of guest ABI v1 and draws something that
// depends on each of them, so that a lost or altered input shows as a
// different picture:
//
//   - header: title, step number, mode and the virtual clock with milliseconds;
//   - random: a colour panel regenerated each second from 8 random bytes;
//   - disk: disk_info, a checksum of blocks 1..N read at start, and a counter
//     kept in block 0 that every click and Enter key increments and writes back;
//   - net: the "echo" endpoint, one numbered message sent per second, bytes
//     sent and received and the last line received;
//   - pointer: a half-scale map of the screen with each user's pointer, name,
//     trail and click dots; a striped bar the wheel scrolls; a user list with
//     button state;
//   - keyboard: the last 40 characters typed, the last key, modifiers and the
//     keys held down;
//   - animation: Space toggles a bouncing ball (busy: step returns 0);
//     otherwise step sleeps until the next whole second of virtual time.
//
// Every step presents only the rectangles whose pixels changed.
package card

import (
	"image"
	"io"
	"time"

	"replaydesk/shared/abi"
)

// Host is what the card needs from the machine it runs on; its methods mirror
// package guest. All are called only from Step.
type Host interface {
	Now() time.Time
	// Random fills b with random bytes.
	Random(b []byte)
	// PollInput appends all pending input events to dst.
	PollInput(dst []abi.Event) []abi.Event
	DiskInfo() (blocks uint64, mode abi.DiskMode, err error)
	ReadBlock(n uint64, buf []byte) error
	WriteBlock(n uint64, buf []byte) error
	Dial(name string) (Conn, error)
	// Present shows img; damage is in img's coordinates, none = whole frame.
	Present(img *image.RGBA, damage []image.Rectangle)
	// Console receives one line per input event and per second.
	Console() io.Writer
}

// Conn is a non-blocking stream (guest.Conn): Recv returns 0, nil when
// nothing has arrived and io.EOF once the peer has closed.
type Conn interface {
	Send(b []byte) (int, error)
	Recv(b []byte) (int, error)
	Close() error
}
