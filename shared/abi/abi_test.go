package abi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEventLayoutRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Type: EvKey, Down: true, Repeat: true, User: 7, Code: CodeArrowLeft},
		{Type: EvText, User: 1, Text: "héllo wörld, 24 bytes."},
		{Type: EvMove, User: 65535, X: 8192, Y: -5},
		{Type: EvButton, Down: true, Button: 2},
		{Type: EvWheel, X: -3, Y: 10000},
		{Type: EvUser, Down: true, User: 2, Text: "bob"},
	} {
		var b [EventSize]byte
		e.Put(b[:])
		got, err := DecodeEvent(b[:])
		if err != nil || got != e {
			t.Fatalf("%+v came back as %+v (%v)", e, got, err)
		}
	}
	var b [EventSize]byte
	(&Event{Type: EvText, Text: "ééééééééééééé"}).Put(b[:]) // 26 bytes: cut before the 13th é
	if got, _ := DecodeEvent(b[:]); got.Text != "éééééééééééé" {
		t.Fatalf("over-long text became %q", got.Text)
	}
	if _, err := DecodeEvent(make([]byte, EventSize)); err == nil {
		t.Fatal("type 0 decoded")
	}
}

func TestSplitText(t *testing.T) {
	s := strings.Repeat("añ€😀", 20)
	parts := SplitText(s)
	if strings.Join(parts, "") != s {
		t.Fatal("pieces do not add up")
	}
	for _, p := range parts {
		if len(p) > MaxText || !utf8.ValidString(p) {
			t.Fatalf("piece %q: %d bytes", p, len(p))
		}
	}
}

func TestKeyNames(t *testing.T) {
	for c, n := range keyNames {
		if got, ok := KeyCodeByName(n); !ok || got != c || c.String() != n {
			t.Fatalf("%s: %v %v", n, got, ok)
		}
	}
	if c, ok := KeyCodeByName("KeyA"); !ok || c != 0x04 {
		t.Fatal("KeyA is not USB HID usage 4")
	}
	if _, ok := KeyCodeByName("Nope"); ok {
		t.Fatal("unknown name accepted")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	var b [EventSize]byte
	(&Event{Type: EvText, Text: "seed"}).Put(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := DecodeEvent(raw)
		if err != nil {
			return
		}
		var out [EventSize]byte
		e.Put(out[:])
		again, err := DecodeEvent(out[:])
		if err != nil || again != e {
			t.Fatalf("%+v does not re-encode: %+v %v", e, again, err)
		}
	})
}
