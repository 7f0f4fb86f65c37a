package inputscript

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

func TestEncode(t *testing.T) {
	evs := []Timed{
		{ms(1250), "u1", abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true}},
		{ms(1250), "u1", abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true, Repeat: true}},
		{ms(1300), "user", abi.Event{Type: abi.EvText, Text: `<a & "b">` + "\n"}},
		{2 * time.Second, "", abi.Event{Type: abi.EvMove, X: 0, Y: 20}},
		{2*time.Second + 1, "bob", abi.Event{Type: abi.EvButton, Button: 0, Down: false}},
		{3 * time.Second, "bob", abi.Event{Type: abi.EvWheel, Y: -3}},
		{3 * time.Second, "bob", abi.Event{Type: abi.EvWheel, X: 7}},
		{3 * time.Second, "bob", abi.Event{Type: abi.EvWheel, X: 7, Y: 8}},
		{3 * time.Second, "bob", abi.Event{Type: abi.EvWheel}},
		{3 * time.Second, "bob", abi.Event{Type: abi.EvKey, Code: abi.CodeArrowUp, User: 9}}, // Ev.User is ignored
	}
	want := `{"t":1.25,"user":"u1","type":"key","code":"KeyA","down":true}
{"t":1.25,"user":"u1","type":"key","code":"KeyA","down":true,"repeat":true}
{"t":1.3,"user":"user","type":"text","text":"<a & \"b\">\n"}
{"t":2,"type":"move","x":0,"y":20}
{"t":2.000000001,"user":"bob","type":"button","button":0,"down":false}
{"t":3,"user":"bob","type":"wheel","dy":-3}
{"t":3,"user":"bob","type":"wheel","dx":7}
{"t":3,"user":"bob","type":"wheel","dx":7,"dy":8}
{"t":3,"user":"bob","type":"wheel","dy":0}
{"t":3,"user":"bob","type":"key","code":"ArrowUp","down":false}
`
	var b bytes.Buffer
	if err := Encode(&b, evs); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Fatalf("Encode wrote\n%s\nwant\n%s", b.String(), want)
	}
	back, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	evs[3].User = DefaultUser
	evs[9].Ev.User = 0
	if !reflect.DeepEqual(back, evs) {
		t.Fatalf("Parse(Encode) =\n%+v\nwant\n%+v", back, evs)
	}
}

func TestEncodeLongTextIsResplit(t *testing.T) {
	long := strings.Repeat("ab", 20)
	var b bytes.Buffer
	if err := Encode(&b, []Timed{{0, "u", abi.Event{Type: abi.EvText, Text: long}}}); err != nil {
		t.Fatal(err)
	}
	back, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0].Ev.Text+back[1].Ev.Text != long {
		t.Fatalf("Parse(Encode(long text)) = %+v", back)
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := Timed{time.Second, "u", abi.Event{Type: abi.EvMove, X: 1, Y: 1}}
	tests := []struct {
		name string
		evs  []Timed
		msg  string
	}{
		{"negative time", []Timed{{-1, "u", ok.Ev}}, "outside"},
		{"time too large", []Timed{{MaxAt + 1, "u", ok.Ev}}, "outside"},
		{"decreasing", []Timed{ok, {time.Second - 1, "u", ok.Ev}}, "before the previous"},
		{"bad user", []Timed{{0, strings.Repeat("x", 25), ok.Ev}}, "longer than 24"},
		{"control user", []Timed{{0, "a\nb", ok.Ev}}, "control character"},
		{"EvUser", []Timed{{0, "u", abi.Event{Type: abi.EvUser, Text: "u", Down: true}}}, "cannot be scripted"},
		{"zero type", []Timed{{0, "u", abi.Event{}}}, "cannot be scripted"},
		{"unknown key", []Timed{{0, "u", abi.Event{Type: abi.EvKey, Code: 0x03}}}, "unknown key code"},
		{"repeat release", []Timed{{0, "u", abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, Repeat: true}}}, "Repeat"},
		{"key with X", []Timed{{0, "u", abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, X: 1}}}, "does not use"},
		{"empty text", []Timed{{0, "u", abi.Event{Type: abi.EvText}}}, "empty"},
		{"bad UTF-8 text", []Timed{{0, "u", abi.Event{Type: abi.EvText, Text: "\xff"}}}, "UTF-8"},
		{"huge text", []Timed{{0, "u", abi.Event{Type: abi.EvText, Text: strings.Repeat("a", 4097)}}}, "4097"},
		{"text with Down", []Timed{{0, "u", abi.Event{Type: abi.EvText, Text: "a", Down: true}}}, "does not use"},
		{"move outside", []Timed{{0, "u", abi.Event{Type: abi.EvMove, X: 8193}}}, "outside"},
		{"move negative", []Timed{{0, "u", abi.Event{Type: abi.EvMove, Y: -1}}}, "outside"},
		{"move with Text", []Timed{{0, "u", abi.Event{Type: abi.EvMove, Text: "a"}}}, "does not use"},
		{"button 5", []Timed{{0, "u", abi.Event{Type: abi.EvButton, Button: 5}}}, "outside"},
		{"button with Code", []Timed{{0, "u", abi.Event{Type: abi.EvButton, Code: 4}}}, "does not use"},
		{"wheel too far", []Timed{{0, "u", abi.Event{Type: abi.EvWheel, X: math.MinInt32}}}, "outside"},
		{"wheel with Down", []Timed{{0, "u", abi.Event{Type: abi.EvWheel, Y: 1, Down: true}}}, "does not use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Encode(&b, append([]Timed{{0, "first", ok.Ev}}, tt.evs...))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Encode error = %v, want one containing %q", err, tt.msg)
			}
			if b.Len() != 0 {
				t.Errorf("Encode wrote %q before failing", b.String())
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

var errWrite = errors.New("write failed")

func TestEncodeWriteError(t *testing.T) {
	if err := Encode(failWriter{}, []Timed{{0, "u", abi.Event{Type: abi.EvMove}}}); err != errWrite {
		t.Fatalf("Encode = %v, want the writer's error", err)
	}
}
