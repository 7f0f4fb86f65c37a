package inputscript

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"replaydesk/shared/abi"
)

// encLine is one line of Encode's output; field order is the output order.
type encLine struct {
	T      json.Number `json:"t"`
	User   string      `json:"user,omitempty"`
	Type   string      `json:"type"`
	Code   string      `json:"code,omitempty"`
	Text   string      `json:"text,omitempty"`
	X      *int32      `json:"x,omitempty"`
	Y      *int32      `json:"y,omitempty"`
	DX     *int32      `json:"dx,omitempty"`
	DY     *int32      `json:"dy,omitempty"`
	Button *uint32     `json:"button,omitempty"`
	Down   *bool       `json:"down,omitempty"`
	Repeat bool        `json:"repeat,omitempty"`
}

// Encode writes evs as an input script, one line per event, that Parse reads
// back equal to evs. It writes nothing and returns an error if some event is
// not one Parse could produce: times must be in 0..MaxAt and non-decreasing,
// users valid (an empty User is written without a "user" field and so reads
// back as DefaultUser), events of types key, text, move, button or wheel with
// values in range and no fields their type does not use. Ev.User is ignored.
//
// Each EvText event becomes its own "text" line. Parse splits a text longer
// than abi.MaxText bytes again (abi.SplitText), so such an event, which Parse
// never produces, reads back as several events; a long text Parse read comes
// back as the same pieces on several lines rather than the original one line.
func Encode(w io.Writer, evs []Timed) error {
	lines := make([]encLine, len(evs))
	var prev Timed
	for i, e := range evs {
		if err := checkTimed(e, prev.At); err != nil {
			return fmt.Errorf("inputscript: cannot encode event %d: %w", i, err)
		}
		prev = e
		lines[i] = toLine(e)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func ptr[T any](v T) *T { return &v }

func toLine(e Timed) encLine {
	l := encLine{T: json.Number(formatSeconds(e.At)), User: e.User}
	ev := e.Ev
	switch ev.Type {
	case abi.EvKey:
		l.Type, l.Code, l.Down, l.Repeat = "key", ev.Code.String(), ptr(ev.Down), ev.Repeat
	case abi.EvText:
		l.Type, l.Text = "text", ev.Text
	case abi.EvMove:
		l.Type, l.X, l.Y = "move", ptr(ev.X), ptr(ev.Y)
	case abi.EvButton:
		l.Type, l.Button, l.Down = "button", ptr(ev.Button), ptr(ev.Down)
	case abi.EvWheel:
		l.Type = "wheel"
		if ev.X != 0 {
			l.DX = ptr(ev.X)
		}
		if ev.Y != 0 || ev.X == 0 {
			l.DY = ptr(ev.Y)
		}
	}
	return l
}

// checkTimed reports whether Parse could have produced e after an event at
// prev.
func checkTimed(e Timed, prev time.Duration) error {
	if e.At < 0 || e.At > MaxAt {
		return fmt.Errorf("time %v is outside 0..%v", e.At, MaxAt)
	}
	if e.At < prev {
		return fmt.Errorf("time %v is before the previous event's %v", e.At, prev)
	}
	if e.User != "" {
		if err := checkUser(e.User); err != nil {
			return err
		}
	}
	return checkEvent(e.Ev)
}

// checkEvent reports whether ev is an event Parse could produce, apart from
// its User, which is ignored.
func checkEvent(ev abi.Event) error {
	ev.User = 0
	var zeroed abi.Event
	switch ev.Type {
	case abi.EvKey:
		if c, ok := abi.KeyCodeByName(ev.Code.String()); !ok || c != ev.Code {
			return fmt.Errorf("key event with unknown key code %v", ev.Code)
		}
		if ev.Repeat && !ev.Down {
			return errors.New("key release with Repeat set")
		}
		zeroed = abi.Event{Type: ev.Type, Code: ev.Code, Down: ev.Down, Repeat: ev.Repeat}
	case abi.EvText:
		if err := checkText(ev.Text); err != nil {
			return err
		}
		zeroed = abi.Event{Type: ev.Type, Text: ev.Text}
	case abi.EvMove:
		if ev.X < 0 || ev.X > MaxCoord || ev.Y < 0 || ev.Y > MaxCoord {
			return fmt.Errorf("move to (%d, %d) is outside 0..%d", ev.X, ev.Y, MaxCoord)
		}
		zeroed = abi.Event{Type: ev.Type, X: ev.X, Y: ev.Y}
	case abi.EvButton:
		if ev.Button > MaxButton {
			return fmt.Errorf("button %d is outside 0..%d", ev.Button, MaxButton)
		}
		zeroed = abi.Event{Type: ev.Type, Button: ev.Button, Down: ev.Down}
	case abi.EvWheel:
		if ev.X < -MaxWheel || ev.X > MaxWheel || ev.Y < -MaxWheel || ev.Y > MaxWheel {
			return fmt.Errorf("wheel (%d, %d) is outside ±%d", ev.X, ev.Y, MaxWheel)
		}
		zeroed = abi.Event{Type: ev.Type, X: ev.X, Y: ev.Y}
	default:
		return fmt.Errorf("event type %d cannot be scripted", ev.Type)
	}
	if ev != zeroed {
		return fmt.Errorf("event of type %d has fields its type does not use: %+v", ev.Type, ev)
	}
	return nil
}
