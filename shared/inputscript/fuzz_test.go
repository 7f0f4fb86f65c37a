package inputscript

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"\n\n# comment\n",
		`{"t":1.25,"user":"u1","type":"key","code":"KeyA","down":true}`,
		`{"t":1.30,"type":"text","text":"hello"}`,
		`{"t":2,"type":"move","x":10,"y":20}`,
		`{"t":2.1,"type":"button","button":0,"down":true}`,
		`{"t":3,"type":"wheel","dy":-3}`,
		`{"t":3,"type":"wheel","dx":5,"dy":0}`,
		`{"t":0,"type":"key","code":"Space","down":true,"repeat":true}`,
		`{"t":1e-9,"type":"text","text":"` + strings.Repeat("日本", 10) + `"}`,
		`{"t":0.0000000015,"type":"wheel","dy":1}`,
		"\uFEFF{\"t\":1,\"type\":\"move\",\"x\":1,\"y\":2}\r\n{\"t\":1,\"type\":\"move\",\"x\":3,\"y\":4}",
		`{"t":1,"type":"key","code":"KeyAA","down":true}`,
		`{"t":1.5,"type":"move","x":1,"y":1}` + "\n" + `{"t":1.2,"type":"move","x":1,"y":1}`,
		`{"t":1,"type":"move","x":1,"y":1,"code":"KeyA"}`,
		`{"t":1,"type":"move","x":1,"y":1,"x":2}`,
		`{"t":1,"type":"move","x":1.5,"y":1}`,
		`{"t":"1","type":"wheel","dy":1}`,
		`{"t":-1,"type":"wheel","dy":1}`,
		`{"t":1e400,"type":"wheel","dy":1}`,
		`{"t":1,"user":"","type":"wheel","dy":1}`,
		`{"t":1,"type":"text","text":"\ud800"}`,
		`{"t":1,"type":"wheel"} {}`,
		`[{"t":1}]`,
		"{\"t\":1,\"type\":\"text\",\"text\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	var b bytes.Buffer
	if err := Encode(&b, Random(1, 3*time.Second, 10, []string{"a", "b"}, 100, 100)); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := Parse(bytes.NewReader(data))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; le.Line < 1 || le.Line > lines {
				t.Fatalf("error on line %d of %d: %v", le.Line, lines, err)
			}
			if !strings.HasPrefix(err.Error(), "input script line ") || le.Err == nil {
				t.Fatalf("bad error %q", err)
			}
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		var prev time.Duration
		for i, e := range evs {
			if e.At < prev || e.At > MaxAt {
				t.Fatalf("event %d at %v after %v", i, e.At, prev)
			}
			prev = e.At
			if err := checkUser(e.User); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if err := checkEvent(e.Ev); err != nil || e.Ev.User != 0 || len(e.Ev.Text) > 24 {
				t.Fatalf("event %d %+v: %v", i, e.Ev, err)
			}
		}
		var out bytes.Buffer
		if err := Encode(&out, evs); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := Parse(&out)
		if err != nil {
			t.Fatalf("Parse(Encode): %v\n%s", err, out.String())
		}
		if len(back) != len(evs) || (len(evs) > 0 && !reflect.DeepEqual(back, evs)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", evs, back)
		}
		// The sequencer hands every event out once.
		s := NewSequencer(evs)
		due := s.Due(MaxAt)
		if n := len(due) - len(s.Users()); n != len(evs) {
			t.Fatalf("Sequencer returned %d events for %d", n, len(evs))
		}
		if _, ok := s.Next(); ok {
			t.Fatal("events left after Due(MaxAt)")
		}
	})
}
