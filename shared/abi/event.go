package abi

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// EventSize is the size of one input event in guest memory.
const EventSize = 32

// EventType is byte 0 of an event.
type EventType uint8

const (
	EvKey    EventType = 1 // Code, Down, Repeat
	EvText   EventType = 2 // Text (at most MaxText bytes of UTF-8)
	EvMove   EventType = 3 // X, Y: absolute framebuffer coordinates
	EvButton EventType = 4 // Button (W3C MouseEvent.button), Down
	EvWheel  EventType = 5 // X = dx, Y = dy
	EvUser   EventType = 6 // Text = the user's name (at most MaxText bytes); Down = false means the user left
)

// MaxText is the most UTF-8 bytes one text or user event carries; longer
// text is split at rune boundaries into several events (SplitText).
const MaxText = 24

// Event is one input event. User is the session-local number of the person
// who sent it (0 is the host itself); the server assigns numbers and sends an
// EvUser event before a user's first event, so a guest can show names.
//
// Layout (little-endian), 32 bytes:
//
//	0  u8   type
//	1  u8   flags: bit 0 down, bit 1 repeat
//	2  u16  user
//	4  u32  key code (EvKey), button (EvButton), text length (EvText, EvUser)
//	8  i32  x / dx      } or, for EvText and EvUser,
//	12 i32  y / dy      } 24 bytes of UTF-8 at 8..31
//	16 [16] reserved, zero
type Event struct {
	Type   EventType
	Down   bool
	Repeat bool
	User   uint16
	Code   KeyCode // EvKey
	Button uint32  // EvButton
	X, Y   int32   // EvMove, EvWheel
	Text   string  // EvText, EvUser
}

// Flag bits of byte 1.
const (
	flagDown   = 1 << 0
	flagRepeat = 1 << 1
)

// ErrBadEvent is returned by DecodeEvent for bytes no valid event has.
var ErrBadEvent = errors.New("abi: malformed input event")

// Put writes e into b[:EventSize].
func (e *Event) Put(b []byte) {
	_ = b[EventSize-1]
	clear(b[:EventSize])
	b[0] = byte(e.Type)
	if e.Down {
		b[1] |= flagDown
	}
	if e.Repeat {
		b[1] |= flagRepeat
	}
	binary.LittleEndian.PutUint16(b[2:], e.User)
	switch e.Type {
	case EvKey:
		binary.LittleEndian.PutUint32(b[4:], uint32(e.Code))
	case EvButton:
		binary.LittleEndian.PutUint32(b[4:], e.Button)
	case EvText, EvUser:
		t := e.Text
		if len(t) > MaxText { // callers split with SplitText; never cut a rune
			t = SplitText(t)[0]
		}
		n := copy(b[8:8+MaxText], t)
		binary.LittleEndian.PutUint32(b[4:], uint32(n))
	case EvMove, EvWheel:
		binary.LittleEndian.PutUint32(b[8:], uint32(e.X))
		binary.LittleEndian.PutUint32(b[12:], uint32(e.Y))
	}
}

// DecodeEvent reads one event from b[:EventSize].
func DecodeEvent(b []byte) (Event, error) {
	if len(b) < EventSize {
		return Event{}, ErrBadEvent
	}
	e := Event{
		Type:   EventType(b[0]),
		Down:   b[1]&flagDown != 0,
		Repeat: b[1]&flagRepeat != 0,
		User:   binary.LittleEndian.Uint16(b[2:]),
	}
	switch e.Type {
	case EvKey:
		e.Code = KeyCode(binary.LittleEndian.Uint32(b[4:]))
	case EvButton:
		e.Button = binary.LittleEndian.Uint32(b[4:])
	case EvText, EvUser:
		n := binary.LittleEndian.Uint32(b[4:])
		if n > MaxText {
			return Event{}, ErrBadEvent
		}
		e.Text = string(b[8 : 8+n])
	case EvMove, EvWheel:
		e.X = int32(binary.LittleEndian.Uint32(b[8:]))
		e.Y = int32(binary.LittleEndian.Uint32(b[12:]))
	default:
		return Event{}, ErrBadEvent
	}
	return e, nil
}

// SplitText cuts s into pieces of at most MaxText bytes at rune boundaries.
func SplitText(s string) []string {
	var out []string
	for len(s) > MaxText {
		n := MaxText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}
