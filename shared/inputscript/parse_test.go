package inputscript

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func TestParseValid(t *testing.T) {
	key := func(c abi.KeyCode, down, repeat bool) abi.Event {
		return abi.Event{Type: abi.EvKey, Code: c, Down: down, Repeat: repeat}
	}
	tests := []struct {
		name string
		in   string
		want []Timed
	}{
		{"empty", "", nil},
		{"only blanks and comments", "\n  \n\t\n# hello\n   # indented comment\n", nil},
		{"key down", `{"t":1.25,"user":"u1","type":"key","code":"KeyA","down":true}`,
			[]Timed{{ms(1250), "u1", key(abi.CodeKeyA, true, false)}}},
		{"key up default user", `{"t":0,"type":"key","code":"ArrowLeft","down":false}`,
			[]Timed{{0, "user", key(abi.CodeArrowLeft, false, false)}}},
		{"key repeat", `{"t":0,"type":"key","code":"Space","down":true,"repeat":true}`,
			[]Timed{{0, "user", key(abi.CodeSpace, true, true)}}},
		{"key repeat false", `{"t":0,"type":"key","code":"Space","down":false,"repeat":false}`,
			[]Timed{{0, "user", key(abi.CodeSpace, false, false)}}},
		{"fields in any order", `{"down":true,"code":"KeyZ","type":"key","t":2}`,
			[]Timed{{2 * time.Second, "user", key(abi.CodeKeyZ, true, false)}}},
		{"text", `{"t":1.30,"type":"text","text":"hello"}`,
			[]Timed{{ms(1300), "user", abi.Event{Type: abi.EvText, Text: "hello"}}}},
		{"text escapes", `{"t":1,"type":"text","text":"a\n\"\u00e9\ud83d\ude42"}`,
			[]Timed{{time.Second, "user", abi.Event{Type: abi.EvText, Text: "a\n\"é🙂"}}}},
		{"long text is split", `{"t":3,"user":"bo","type":"text","text":"` + strings.Repeat("é", 20) + `"}`,
			[]Timed{
				{3 * time.Second, "bo", abi.Event{Type: abi.EvText, Text: strings.Repeat("é", 12)}},
				{3 * time.Second, "bo", abi.Event{Type: abi.EvText, Text: strings.Repeat("é", 8)}},
			}},
		{"text of 4096 bytes", `{"t":0,"type":"text","text":"` + strings.Repeat("x", 4096) + `"}`,
			func() []Timed {
				var out []Timed
				for _, p := range abi.SplitText(strings.Repeat("x", 4096)) {
					out = append(out, Timed{0, "user", abi.Event{Type: abi.EvText, Text: p}})
				}
				return out
			}()},
		{"move", `{"t":2,"type":"move","x":10,"y":20}`,
			[]Timed{{2 * time.Second, "user", abi.Event{Type: abi.EvMove, X: 10, Y: 20}}}},
		{"move bounds", `{"t":2,"type":"move","x":0,"y":8192}`,
			[]Timed{{2 * time.Second, "user", abi.Event{Type: abi.EvMove, X: 0, Y: 8192}}}},
		{"move -0", `{"t":2,"type":"move","x":-0,"y":0}`,
			[]Timed{{2 * time.Second, "user", abi.Event{Type: abi.EvMove}}}},
		{"button", `{"t":2.1,"type":"button","button":0,"down":true}`,
			[]Timed{{ms(2100), "user", abi.Event{Type: abi.EvButton, Button: 0, Down: true}}}},
		{"button 4 up", `{"t":2.1,"type":"button","button":4,"down":false}`,
			[]Timed{{ms(2100), "user", abi.Event{Type: abi.EvButton, Button: 4}}}},
		{"wheel dy", `{"t":3,"type":"wheel","dy":-3}`,
			[]Timed{{3 * time.Second, "user", abi.Event{Type: abi.EvWheel, Y: -3}}}},
		{"wheel dx", `{"t":3,"type":"wheel","dx":10000}`,
			[]Timed{{3 * time.Second, "user", abi.Event{Type: abi.EvWheel, X: 10000}}}},
		{"wheel both", `{"t":3,"type":"wheel","dx":-10000,"dy":5}`,
			[]Timed{{3 * time.Second, "user", abi.Event{Type: abi.EvWheel, X: -10000, Y: 5}}}},
		{"wheel zero", `{"t":3,"type":"wheel","dy":0}`,
			[]Timed{{3 * time.Second, "user", abi.Event{Type: abi.EvWheel}}}},
		{"time forms", strings.Join([]string{
			`{"t":0,"type":"wheel","dy":1}`,
			`{"t":-0,"type":"wheel","dy":1}`,
			`{"t":1e-9,"type":"wheel","dy":1}`,
			`{"t":0.0000000015,"type":"wheel","dy":1}`, // rounds half up to 2 ns
			`{"t":1.5E0,"type":"wheel","dy":1}`,
			`{"t":15e-1,"type":"wheel","dy":1}`,
			`{"t":0.00015e4,"type":"wheel","dy":1}`,
			`{"t":1e9,"type":"wheel","dy":1}`,
		}, "\n"), []Timed{
			{0, "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{0, "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{1, "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{2, "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{ms(1500), "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{ms(1500), "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{ms(1500), "user", abi.Event{Type: abi.EvWheel, Y: 1}},
			{MaxAt, "user", abi.Event{Type: abi.EvWheel, Y: 1}},
		}},
		{"user names", strings.Join([]string{
			`{"t":0,"user":"x","type":"wheel","dy":1}`,
			`{"t":0,"user":"` + strings.Repeat("a", 24) + `","type":"wheel","dy":1}`,
			`{"t":0,"user":"Zoë 🙂 日本","type":"wheel","dy":1}`,
		}, "\n"), []Timed{
			{0, "x", abi.Event{Type: abi.EvWheel, Y: 1}},
			{0, strings.Repeat("a", 24), abi.Event{Type: abi.EvWheel, Y: 1}},
			{0, "Zoë 🙂 日本", abi.Event{Type: abi.EvWheel, Y: 1}},
		}},
		{"equal times, CRLF, comments, blanks, spaces, BOM, no final newline",
			"\uFEFF# script\r\n{\"t\":1,\"type\":\"move\",\"x\":1,\"y\":2}\r\n\r\n  { \"t\" : 1 , \"type\" : \"move\" , \"x\" : 3 , \"y\" : 4 }  \n#end\n{\"t\":1.0,\"type\":\"move\",\"x\":5,\"y\":6}",
			[]Timed{
				{time.Second, "user", abi.Event{Type: abi.EvMove, X: 1, Y: 2}},
				{time.Second, "user", abi.Event{Type: abi.EvMove, X: 3, Y: 4}},
				{time.Second, "user", abi.Event{Type: abi.EvMove, X: 5, Y: 6}},
			}},
		{"line of exactly MaxLine bytes", `{"t":0,"type":"text","text":"a"}` + strings.Repeat(" ", MaxLine-len(`{"t":0,"type":"text","text":"a"}`)) + "\r\n",
			[]Timed{{0, "user", abi.Event{Type: abi.EvText, Text: "a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ok := `{"t":1.5,"type":"move","x":1,"y":1}` + "\n"
	tests := []struct {
		name string
		in   string
		line int
		msg  string // the whole message after "input script line N: "
	}{
		// JSON shape
		{"not JSON", "hello", 1, "invalid JSON: invalid character 'h' looking for beginning of value"},
		{"not an object", ok + "[1,2]", 2, "line is not a JSON object"},
		{"a number", "42", 1, "line is not a JSON object"},
		{"a huge number", "1E700", 1, "line is not a JSON object"},
		{"a string", `"t"`, 1, "line is not a JSON object"},
		{"null", `null`, 1, "line is not a JSON object"},
		{"truncated", `{"t":1,"type":"move"`, 1, "invalid JSON: unexpected end of line"},
		{"trailing comma", `{"t":1,"type":"move","x":1,"y":1,}`, 1, "invalid JSON: invalid character '}' looking for beginning of object key string"},
		{"two objects", `{"t":1,"type":"move","x":1,"y":1} {}`, 1, "unexpected data after the JSON object"},
		{"trailing garbage", `{"t":1,"type":"move","x":1,"y":1} x`, 1, "unexpected data after the JSON object"},
		{"invalid UTF-8", "{\"t\":1,\"type\":\"text\",\"text\":\"\xff\"}", 1, "line is not valid UTF-8"},
		{"line too long", ok + `{"t":2,"type":"text","text":"` + strings.Repeat("a", MaxLine) + `"}`, 2, "line is longer than 65536 bytes"},
		{"line one byte too long", `{"t":0,"type":"text","text":"a"}` + strings.Repeat(" ", MaxLine+1-len(`{"t":0,"type":"text","text":"a"}`)) + "\n", 1, "line is longer than 65536 bytes"},
		{"unknown field", ok + ok + `{"t":2,"type":"move","x":1,"y":1,"z":3}`, 3, `unknown field "z"`},
		{"unknown field case", `{"T":2,"type":"move","x":1,"y":1}`, 1, `unknown field "T"`},
		{"duplicate field", `{"t":2,"type":"move","x":1,"y":1,"x":2}`, 1, `duplicate field "x"`},
		{"duplicate via escape", `{"t":2,"type":"move","x":1,"y":1,"\u0078":2}`, 1, `duplicate field "x"`},
		{"code on move", `{"t":2,"type":"move","x":1,"y":1,"code":"KeyA"}`, 1, `field "code" does not belong to a move event`},
		{"x on key", `{"t":2,"type":"key","code":"KeyA","down":true,"x":1}`, 1, `field "x" does not belong to a key event`},
		{"down on text", `{"t":2,"type":"text","text":"a","down":true}`, 1, `field "down" does not belong to a text event`},
		{"repeat on button", `{"t":2,"type":"button","button":1,"down":true,"repeat":false}`, 1, `field "repeat" does not belong to a button event`},
		{"text on wheel", `{"t":2,"type":"wheel","dy":1,"text":"a"}`, 1, `field "text" does not belong to a wheel event`},
		// type
		{"missing type", `{"t":2,"x":1,"y":1}`, 1, `missing "type"`},
		{"unknown type", `{"t":2,"type":"mouse"}`, 1, `unknown event type "mouse" (want key, text, move, button or wheel)`},
		{"user type", `{"t":2,"type":"user"}`, 1, `unknown event type "user" (want key, text, move, button or wheel)`},
		{"type not string", `{"t":2,"type":3}`, 1, `"type" must be a string, got 3`},
		// time
		{"missing t", `{"type":"wheel","dy":1}`, 1, `missing "t"`},
		{"t string", `{"t":"1","type":"wheel","dy":1}`, 1, `"t" must be a number of seconds, got "1"`},
		{"t null", `{"t":null,"type":"wheel","dy":1}`, 1, `"t" must be a number of seconds, got null`},
		{"t negative", `{"t":-1,"type":"wheel","dy":1}`, 1, `"t" -1 is negative`},
		{"t tiny negative", `{"t":-1e-30,"type":"wheel","dy":1}`, 1, `"t" -1e-30 is negative`},
		{"t too large", `{"t":1000000000.000000001,"type":"wheel","dy":1}`, 1, `"t" 1000000000.000000001 is too large (at most 1000000000 seconds)`},
		{"t overflow", `{"t":1e400,"type":"wheel","dy":1}`, 1, `"t" 1e400 is too large (at most 1000000000 seconds)`},
		{"t huge exponent", `{"t":1e999999999999999999999,"type":"wheel","dy":1}`, 1, `"t" 1e999999999999999999999 is too large (at most 1000000000 seconds)`},
		{"t decreasing", "# c\n\n" + ok + `{"t":1.2,"type":"wheel","dy":1}`, 4, `"t" 1.2 is before the previous event's 1.5`},
		{"t decreasing by 1ns", `{"t":1.000000001,"type":"wheel","dy":1}` + "\n" + `{"t":1,"type":"wheel","dy":1}`, 2, `"t" 1 is before the previous event's 1.000000001`},
		// user
		{"user empty", `{"t":1,"user":"","type":"wheel","dy":1}`, 1, `"user" is empty`},
		{"user too long", `{"t":1,"user":"` + strings.Repeat("a", 25) + `","type":"wheel","dy":1}`, 1, `"user" "aaaaaaaaaaaaaaaaaaaaaaaaa" is longer than 24 bytes`},
		{"user control", `{"t":1,"user":"a\tb","type":"wheel","dy":1}`, 1, `"user" "a\tb" contains a control character`},
		{"user DEL", `{"t":1,"user":"a` + "\x7f" + `","type":"wheel","dy":1}`, 1, `"user" "a\x7f" contains a control character`},
		{"user number", `{"t":1,"user":1,"type":"wheel","dy":1}`, 1, `"user" must be a string, got 1`},
		// key
		{"unknown key code", `{"t":1,"type":"key","code":"KeyAA","down":true}`, 1, `unknown key code "KeyAA"`},
		{"key code lower case", `{"t":1,"type":"key","code":"keya","down":true}`, 1, `unknown key code "keya"`},
		{"key without code", `{"t":1,"type":"key","down":true}`, 1, `key event without "code"`},
		{"key code number", `{"t":1,"type":"key","code":4,"down":true}`, 1, `"code" must be a string, got 4`},
		{"key without down", `{"t":1,"type":"key","code":"KeyA"}`, 1, `key event without "down"`},
		{"key down string", `{"t":1,"type":"key","code":"KeyA","down":"true"}`, 1, `"down" must be true or false, got "true"`},
		{"key down number", `{"t":1,"type":"key","code":"KeyA","down":1}`, 1, `"down" must be true or false, got 1`},
		{"key repeat null", `{"t":1,"type":"key","code":"KeyA","down":true,"repeat":null}`, 1, `"repeat" must be true or false, got null`},
		{"key repeat on release", `{"t":1,"type":"key","code":"KeyA","down":false,"repeat":true}`, 1, `"repeat" is true on a key release ("down":false)`},
		// text
		{"text empty", `{"t":1,"type":"text","text":""}`, 1, `"text" is empty`},
		{"text missing", `{"t":1,"type":"text"}`, 1, `text event without "text"`},
		{"text too long", `{"t":1,"type":"text","text":"` + strings.Repeat("a", 4097) + `"}`, 1, `"text" is 4097 bytes, more than 4096`},
		{"text array", `{"t":1,"type":"text","text":["a"]}`, 1, `"text" must be a string, got ["a"]`},
		// move
		{"move without x", `{"t":1,"type":"move","y":1}`, 1, `move event without "x"`},
		{"move without y", `{"t":1,"type":"move","x":1}`, 1, `move event without "y"`},
		{"move x negative", `{"t":1,"type":"move","x":-1,"y":1}`, 1, `"x" -1 is out of range (0..8192)`},
		{"move y too big", `{"t":1,"type":"move","x":1,"y":8193}`, 1, `"y" 8193 is out of range (0..8192)`},
		{"move x beyond int64", `{"t":1,"type":"move","x":99999999999999999999,"y":1}`, 1, `"x" 99999999999999999999 is out of range (0..8192)`},
		{"move x fraction", `{"t":1,"type":"move","x":1.5,"y":1}`, 1, `"x" must be an integer, got 1.5`},
		{"move x exponent", `{"t":1,"type":"move","x":1e1,"y":1}`, 1, `"x" must be an integer, got 1e1`},
		{"move x string", `{"t":1,"type":"move","x":"1","y":1}`, 1, `"x" must be a number, got "1"`},
		{"move x bool", `{"t":1,"type":"move","x":true,"y":1}`, 1, `"x" must be a number, got true`},
		// button
		{"button missing", `{"t":1,"type":"button","down":true}`, 1, `button event without "button"`},
		{"button 5", `{"t":1,"type":"button","button":5,"down":true}`, 1, `"button" 5 is out of range (0..4)`},
		{"button -1", `{"t":1,"type":"button","button":-1,"down":true}`, 1, `"button" -1 is out of range (0..4)`},
		{"button without down", `{"t":1,"type":"button","button":0}`, 1, `button event without "down"`},
		// wheel
		{"wheel without deltas", `{"t":1,"type":"wheel"}`, 1, `wheel event without "dx" or "dy"`},
		{"wheel dy too big", `{"t":1,"type":"wheel","dy":10001}`, 1, `"dy" 10001 is out of range (-10000..10000)`},
		{"wheel dx too small", `{"t":1,"type":"wheel","dx":-10001,"dy":0}`, 1, `"dx" -10001 is out of range (-10000..10000)`},
		{"wheel dx null", `{"t":1,"type":"wheel","dx":null}`, 1, `"dx" must be a number, got null`},
		{"long value is shortened", `{"t":1,"type":"wheel","dx":"` + strings.Repeat("é", 30) + `"}`, 1, `"dx" must be a number, got "` + strings.Repeat("é", 19) + `...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", evs)
			}
			if evs != nil {
				t.Errorf("Parse returned events with an error: %+v", evs)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v (%T) is not a *LineError", err, err)
			}
			if le.Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", le.Line, tt.line, err)
			}
			if got := le.Err.Error(); got != tt.msg {
				t.Errorf("message = %s\nwant      %s", got, tt.msg)
			}
			if want := "input script line " + strconv.Itoa(tt.line) + ": " + tt.msg; err.Error() != want {
				t.Errorf("Error() = %s\nwant      %s", err.Error(), want)
			}
		})
	}
}

func TestParseStopsAtFirstError(t *testing.T) {
	in := `{"t":1,"type":"move","x":1,"y":1}` + "\n" +
		`{"t":2,"type":"key","code":"KeyAA","down":true}` + "\n" +
		`{"t":0,"type":"nope"}` + "\n"
	_, err := Parse(strings.NewReader(in))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("err = %v, want line 2", err)
	}
}

func TestTooManyUsers(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= MaxUsers; i++ {
		b.WriteString(`{"t":0,"user":"u`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`","type":"wheel","dy":1}` + "\n")
	}
	_, err := Parse(strings.NewReader(b.String()))
	var le *LineError
	if !errors.As(err, &le) || le.Line != MaxUsers+1 || le.Err.Error() != "too many users (at most 65535)" {
		t.Fatalf("err = %v, want line %d too many users", err, MaxUsers+1)
	}
	// A known user on a later line is fine: only new names count.
	evs, err := Parse(strings.NewReader(b.String()[:strings.LastIndex(strings.TrimSuffix(b.String(), "\n"), "\n")+1] + `{"t":0,"user":"u7","type":"wheel","dy":1}`))
	if err != nil || len(evs) != MaxUsers+1 {
		t.Fatalf("Parse = %d events, %v", len(evs), err)
	}
}

type failReader struct{ n int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(p, `{"t":1,"type":"move","x":1,"y":1}`+"\n"+`{"t":2,`), nil
	}
	return 0, errors.New("disk on fire")
}

func TestParseReadError(t *testing.T) {
	_, err := Parse(&failReader{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	if err := os.WriteFile(good, []byte(`{"t":1,"type":"text","text":"hi"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	evs, err := ParseFile(good)
	if err != nil || len(evs) != 1 || evs[0].Ev.Text != "hi" {
		t.Fatalf("ParseFile = %+v, %v", evs, err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("\n"+`{"t":1,"type":"key","code":"KeyAA","down":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ParseFile(bad)
	var le *LineError
	if err == nil || !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("ParseFile(bad) = %v", err)
	}
	if want := bad + `: input script line 2: unknown key code "KeyAA"`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	missing := filepath.Join(dir, "missing.jsonl")
	if _, err := ParseFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ParseFile(missing) = %v, want an error naming the path", err)
	}
}

func TestSeconds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 999, time.Millisecond, 1500 * time.Millisecond, time.Second + 1, 123456789 * time.Millisecond, MaxAt - 1, MaxAt} {
		s := formatSeconds(d)
		got, err := parseSeconds(s)
		if err != nil || got != d {
			t.Errorf("parseSeconds(formatSeconds(%d) = %q) = %d, %v", int64(d), s, int64(got), err)
		}
	}
	for s, want := range map[string]time.Duration{
		"0.0000000004": 0, "0.0000000005": 1, "0.00000000049999": 0, "1.9999999995": 2 * time.Second,
		"0.1e-9": 0, "5e-10": 1, "123e-3": ms(123), "0.000e5": 0, "00": 0, "1E+2": 100 * time.Second,
		"1e-999999999999": 0, "0e999999999999": 0, "999999999.9999999994": MaxAt - 1, "999999999.9999999995": MaxAt,
	} {
		got, err := parseSeconds(s)
		if err != nil || got != want {
			t.Errorf("parseSeconds(%q) = %d, %v; want %d", s, int64(got), err, int64(want))
		}
	}
	for _, s := range []string{"", "-", ".5", "1.", "1e", "1e+", "1x", "1000000000.0000000005", "1e10"} {
		if got, err := parseSeconds(s); err == nil {
			t.Errorf("parseSeconds(%q) = %d, want an error", s, got)
		}
	}
}
