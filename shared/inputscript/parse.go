package inputscript

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"replaydesk/shared/abi"
)

// Limits of the input script format.
const (
	// MaxLine is the longest line Parse accepts, in bytes, not counting the
	// line ending ("\n" or "\r\n").
	MaxLine = 64 << 10
	// MaxTextBytes is the most UTF-8 bytes one "text" line may carry; Parse
	// splits it into events of at most abi.MaxText bytes.
	MaxTextBytes = 4096
	// MaxUserName is the longest user name, in bytes, so that a name fits one
	// abi.EvUser event.
	MaxUserName = abi.MaxText
	// MaxCoord is the largest x or y of a move event (abi.MaxWidth and
	// abi.MaxHeight); the smallest is 0.
	MaxCoord = 8192
	// MaxWheel is the largest absolute dx or dy of a wheel event.
	MaxWheel = 10000
	// MaxButton is the largest W3C MouseEvent.button number.
	MaxButton = 4
	// MaxUsers is the most distinct users one script may name: user numbers
	// are uint16 and 0 is the host.
	MaxUsers = 65535
	// MaxAt is the latest time an event may have (10^9 seconds, about 31.7
	// years).
	MaxAt = 1_000_000_000 * time.Second
	// DefaultUser is the user of a line without a "user" field.
	DefaultUser = "user"
)

// Timed is one scripted event: when, who, what. Ev.User is left 0; users are
// numbered by Sequencer.
type Timed struct {
	At   time.Duration
	User string
	Ev   abi.Event
}

// LineError is a problem with one line of an input script. Line counts every
// line of the input from 1, blank and comment lines included.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("input script line %d: %v", e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ParseFile reads the input script at path. Its errors start with the path.
func ParseFile(path string) ([]Timed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	evs, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return evs, nil
}

// Parse reads an input script: JSON Lines, one event per line, blank lines
// and lines whose first non-blank character is '#' skipped. It checks every
// line strictly (see the package documentation of the format) and stops at
// the first bad line, returning a *LineError for it and no events.
//
// Times are converted exactly from their decimal text and rounded to the
// nearest nanosecond (halves up). A "text" line becomes one or more EvText
// events (abi.SplitText) with the same time and user.
func Parse(r io.Reader) ([]Timed, error) {
	br := bufio.NewReaderSize(r, MaxLine+2)
	p := parser{users: make(map[string]struct{})}
	var out []Timed
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &LineError{lineNo, fmt.Errorf("line is longer than %d bytes", MaxLine)}
		}
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return nil, &LineError{lineNo, fmt.Errorf("read: %w", err)}
		}
		if eof && len(line) == 0 {
			break
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > MaxLine {
			return nil, &LineError{lineNo, fmt.Errorf("line is longer than %d bytes", MaxLine)}
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		out, err = p.line(out, line)
		if err != nil {
			return nil, &LineError{lineNo, err}
		}
		if eof {
			break
		}
	}
	return out, nil
}

type parser struct {
	prev  time.Duration
	users map[string]struct{}
}

// Field names and which event types use them.
var (
	commonFields = map[string]bool{"t": true, "user": true, "type": true}
	typeFields   = map[string]map[string]bool{
		"key":    {"code": true, "down": true, "repeat": true},
		"text":   {"text": true},
		"move":   {"x": true, "y": true},
		"button": {"button": true, "down": true},
		"wheel":  {"dx": true, "dy": true},
	}
	allFields = func() map[string]bool {
		m := map[string]bool{}
		for f := range commonFields {
			m[f] = true
		}
		for _, fs := range typeFields {
			for f := range fs {
				m[f] = true
			}
		}
		return m
	}()
)

type field struct {
	name string
	raw  json.RawMessage
}

type object struct {
	fields []field
	byName map[string]json.RawMessage
}

func (o *object) get(name string) (json.RawMessage, bool) {
	raw, ok := o.byName[name]
	return raw, ok
}

// line parses one line and appends its events to out.
func (p *parser) line(out []Timed, b []byte) ([]Timed, error) {
	trimmed := bytes.TrimLeft(b, " \t")
	if len(trimmed) == 0 || trimmed[0] == '#' {
		return out, nil
	}
	if !utf8.Valid(b) {
		return out, errors.New("line is not valid UTF-8")
	}
	obj, err := decodeObject(b)
	if err != nil {
		return out, err
	}

	// The event type decides which fields belong.
	rawType, ok := obj.get("type")
	if !ok {
		return out, errors.New(`missing "type"`)
	}
	typ, err := stringValue("type", rawType)
	if err != nil {
		return out, err
	}
	own, ok := typeFields[typ]
	if !ok {
		return out, fmt.Errorf("unknown event type %q (want key, text, move, button or wheel)", typ)
	}
	for _, f := range obj.fields {
		if !commonFields[f.name] && !own[f.name] {
			return out, fmt.Errorf("field %q does not belong to a %s event", f.name, typ)
		}
	}

	// Time.
	rawT, ok := obj.get("t")
	if !ok {
		return out, errors.New(`missing "t"`)
	}
	at, err := timeValue(rawT)
	if err != nil {
		return out, err
	}
	if at < p.prev {
		return out, fmt.Errorf(`"t" %s is before the previous event's %s`, formatSeconds(at), formatSeconds(p.prev))
	}

	// User.
	user := DefaultUser
	if raw, ok := obj.get("user"); ok {
		if user, err = stringValue("user", raw); err != nil {
			return out, err
		}
		if err := checkUser(user); err != nil {
			return out, err
		}
	}
	if _, ok := p.users[user]; !ok {
		if len(p.users) >= MaxUsers {
			return out, fmt.Errorf("too many users (at most %d)", MaxUsers)
		}
	}

	var evs []abi.Event
	switch typ {
	case "key":
		ev := abi.Event{Type: abi.EvKey}
		raw, ok := obj.get("code")
		if !ok {
			return out, errors.New(`key event without "code"`)
		}
		name, err := stringValue("code", raw)
		if err != nil {
			return out, err
		}
		if ev.Code, ok = abi.KeyCodeByName(name); !ok {
			return out, fmt.Errorf("unknown key code %q", name)
		}
		if ev.Down, err = requiredBool(obj, "key", "down"); err != nil {
			return out, err
		}
		if raw, ok := obj.get("repeat"); ok {
			if ev.Repeat, err = boolValue("repeat", raw); err != nil {
				return out, err
			}
		}
		if ev.Repeat && !ev.Down {
			return out, errors.New(`"repeat" is true on a key release ("down":false)`)
		}
		evs = []abi.Event{ev}
	case "text":
		raw, ok := obj.get("text")
		if !ok {
			return out, errors.New(`text event without "text"`)
		}
		text, err := stringValue("text", raw)
		if err != nil {
			return out, err
		}
		if err := checkText(text); err != nil {
			return out, err
		}
		for _, piece := range abi.SplitText(text) {
			evs = append(evs, abi.Event{Type: abi.EvText, Text: piece})
		}
	case "move":
		ev := abi.Event{Type: abi.EvMove}
		if ev.X, err = requiredInt(obj, "move", "x", 0, MaxCoord); err != nil {
			return out, err
		}
		if ev.Y, err = requiredInt(obj, "move", "y", 0, MaxCoord); err != nil {
			return out, err
		}
		evs = []abi.Event{ev}
	case "button":
		ev := abi.Event{Type: abi.EvButton}
		b, err := requiredInt(obj, "button", "button", 0, MaxButton)
		if err != nil {
			return out, err
		}
		ev.Button = uint32(b)
		if ev.Down, err = requiredBool(obj, "button", "down"); err != nil {
			return out, err
		}
		evs = []abi.Event{ev}
	case "wheel":
		ev := abi.Event{Type: abi.EvWheel}
		rawDX, okX := obj.get("dx")
		rawDY, okY := obj.get("dy")
		if !okX && !okY {
			return out, errors.New(`wheel event without "dx" or "dy"`)
		}
		if okX {
			if ev.X, err = intValue("dx", rawDX, -MaxWheel, MaxWheel); err != nil {
				return out, err
			}
		}
		if okY {
			if ev.Y, err = intValue("dy", rawDY, -MaxWheel, MaxWheel); err != nil {
				return out, err
			}
		}
		evs = []abi.Event{ev}
	}

	p.prev = at
	p.users[user] = struct{}{}
	for _, ev := range evs {
		out = append(out, Timed{At: at, User: user, Ev: ev})
	}
	return out, nil
}

// decodeObject reads one JSON object whose members are all known fields,
// each at most once, and nothing after it.
func decodeObject(b []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // so that Token never converts a number to float64 and fails
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("line is not a JSON object")
	}
	obj := &object{byName: make(map[string]json.RawMessage)}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: expected a field name")
		}
		if !allFields[name] {
			return nil, fmt.Errorf("unknown field %q", name)
		}
		if _, dup := obj.byName[name]; dup {
			return nil, fmt.Errorf("duplicate field %q", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(err)
		}
		obj.fields = append(obj.fields, field{name, raw})
		obj.byName[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return obj, nil
}

func jsonError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of line")
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

// show quotes a raw JSON value for an error message, shortened if long.
func show(raw []byte) string {
	const max = 40
	s := string(raw)
	if len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s
}

func stringValue(name string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%q must be a string, got %s", name, show(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q: %v", name, err)
	}
	return s, nil
}

func boolValue(name string, raw json.RawMessage) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q must be true or false, got %s", name, show(raw))
}

func requiredBool(obj *object, typ, name string) (bool, error) {
	raw, ok := obj.get(name)
	if !ok {
		return false, fmt.Errorf("%s event without %q", typ, name)
	}
	return boolValue(name, raw)
}

func isNumber(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

func intValue(name string, raw json.RawMessage, lo, hi int64) (int32, error) {
	if !isNumber(raw) {
		return 0, fmt.Errorf("%q must be a number, got %s", name, show(raw))
	}
	if bytes.ContainsAny(raw, ".eE") {
		return 0, fmt.Errorf("%q must be an integer, got %s", name, show(raw))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q %s is out of range (%d..%d)", name, show(raw), lo, hi)
	}
	return int32(n), nil
}

func requiredInt(obj *object, typ, name string, lo, hi int64) (int32, error) {
	raw, ok := obj.get(name)
	if !ok {
		return 0, fmt.Errorf("%s event without %q", typ, name)
	}
	return intValue(name, raw, lo, hi)
}

func timeValue(raw json.RawMessage) (time.Duration, error) {
	if !isNumber(raw) {
		return 0, fmt.Errorf(`"t" must be a number of seconds, got %s`, show(raw))
	}
	d, err := parseSeconds(string(raw))
	if err != nil {
		return 0, fmt.Errorf(`"t" %s %v`, show(raw), err)
	}
	return d, nil
}

func checkUser(name string) error {
	if name == "" {
		return errors.New(`"user" is empty`)
	}
	if len(name) > MaxUserName {
		return fmt.Errorf(`"user" %q is longer than %d bytes`, name, MaxUserName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf(`"user" %q is not valid UTF-8`, name)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf(`"user" %q contains a control character`, name)
	}
	return nil
}

func checkText(text string) error {
	if text == "" {
		return errors.New(`"text" is empty`)
	}
	if len(text) > MaxTextBytes {
		return fmt.Errorf(`"text" is %d bytes, more than %d`, len(text), MaxTextBytes)
	}
	if !utf8.ValidString(text) {
		return errors.New(`"text" is not valid UTF-8`)
	}
	return nil
}
