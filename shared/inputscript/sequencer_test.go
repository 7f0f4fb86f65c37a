package inputscript

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

func TestSequencer(t *testing.T) {
	script := `{"t":1,"user":"bob","type":"key","code":"KeyA","down":true}
{"t":1,"type":"move","x":1,"y":2}
{"t":1.5,"user":"bob","type":"key","code":"KeyA","down":false}
{"t":2,"user":"carol","type":"text","text":"` + strings.Repeat("x", 30) + `"}
{"t":2,"user":"bob","type":"wheel","dy":1}
{"t":3,"type":"button","button":0,"down":true}
`
	evs, err := Parse(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSequencer(evs)
	wantUsers := map[string]uint16{"bob": 1, "user": 2, "carol": 3}
	if got := s.Users(); !reflect.DeepEqual(got, wantUsers) {
		t.Fatalf("Users = %v, want %v", got, wantUsers)
	}
	s.Users()["bob"] = 99 // a copy
	if s.Users()["bob"] != 1 {
		t.Fatal("Users returned the Sequencer's own map")
	}

	user := func(n uint16, name string) abi.Event {
		return abi.Event{Type: abi.EvUser, Down: true, User: n, Text: name}
	}
	steps := []struct {
		now      time.Duration
		want     []abi.Event
		next     time.Duration
		nextOK   bool
		describe string
	}{
		{0, nil, time.Second, true, "before the first event"},
		{time.Second - 1, nil, time.Second, true, "1 ns before"},
		{time.Second, []abi.Event{
			user(1, "bob"),
			{Type: abi.EvKey, User: 1, Code: abi.CodeKeyA, Down: true},
			user(2, "user"),
			{Type: abi.EvMove, User: 2, X: 1, Y: 2},
		}, ms(1500), true, "exactly at the first time"},
		{time.Second, nil, ms(1500), true, "same time again"},
		{ms(2500), []abi.Event{
			{Type: abi.EvKey, User: 1, Code: abi.CodeKeyA},
			user(3, "carol"),
			{Type: abi.EvText, User: 3, Text: strings.Repeat("x", 24)},
			{Type: abi.EvText, User: 3, Text: strings.Repeat("x", 6)},
			{Type: abi.EvWheel, User: 1, Y: 1},
		}, 3 * time.Second, true, "several times at once"},
		{time.Hour, []abi.Event{{Type: abi.EvButton, User: 2, Down: true}}, 0, false, "the rest"},
		{2 * time.Hour, nil, 0, false, "nothing left"},
	}
	for _, st := range steps {
		got := s.Due(st.now)
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: Due(%v) =\n%+v\nwant\n%+v", st.describe, st.now, got, st.want)
		}
		next, ok := s.Next()
		if next != st.next || ok != st.nextOK {
			t.Fatalf("%s: Next = %v, %v; want %v, %v", st.describe, next, ok, st.next, st.nextOK)
		}
	}
	if evs[0].Ev.User != 0 {
		t.Fatal("NewSequencer modified its input")
	}
}

func TestSequencerSortsAndDefaults(t *testing.T) {
	evs := []Timed{
		{3 * time.Second, "b", abi.Event{Type: abi.EvWheel, Y: 3}},
		{time.Second, "", abi.Event{Type: abi.EvWheel, Y: 1}},
		{3 * time.Second, "a", abi.Event{Type: abi.EvWheel, Y: 4}},
		{time.Second, "b", abi.Event{Type: abi.EvWheel, Y: 2}},
	}
	s := NewSequencer(evs)
	if want := map[string]uint16{"user": 1, "b": 2, "a": 3}; !reflect.DeepEqual(s.Users(), want) {
		t.Fatalf("Users = %v, want %v", s.Users(), want)
	}
	got := s.Due(time.Hour)
	want := []abi.Event{
		{Type: abi.EvUser, Down: true, User: 1, Text: "user"},
		{Type: abi.EvWheel, User: 1, Y: 1},
		{Type: abi.EvUser, Down: true, User: 2, Text: "b"},
		{Type: abi.EvWheel, User: 2, Y: 2},
		{Type: abi.EvWheel, User: 2, Y: 3},
		{Type: abi.EvUser, Down: true, User: 3, Text: "a"},
		{Type: abi.EvWheel, User: 3, Y: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Due =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSequencerEmpty(t *testing.T) {
	s := NewSequencer(nil)
	if _, ok := s.Next(); ok {
		t.Fatal("Next on empty")
	}
	if got := s.Due(time.Hour); got != nil {
		t.Fatalf("Due = %v", got)
	}
	if len(s.Users()) != 0 {
		t.Fatal("Users not empty")
	}
}

// TestSequencerRandom plays a random session in small steps and checks that
// each user is announced exactly once, before its first event, and that every
// event comes out once, in order, no earlier than due.
func TestSequencerRandom(t *testing.T) {
	users := []string{"a", "b", "c", "d"}
	evs := Random(9, time.Minute, 30, users, 640, 480)
	s := NewSequencer(evs)
	announced := map[uint16]string{}
	var out []Timed
	var last time.Duration
	for now := time.Duration(0); ; now += 7 * time.Millisecond {
		next, ok := s.Next()
		if !ok {
			break
		}
		if next < last {
			t.Fatalf("Next went back from %v to %v", last, next)
		}
		last = next
		for _, ev := range s.Due(now) {
			if ev.Type == abi.EvUser {
				if _, dup := announced[ev.User]; dup {
					t.Fatalf("user %d announced twice", ev.User)
				}
				if !ev.Down {
					t.Fatal("EvUser with Down=false")
				}
				announced[ev.User] = ev.Text
				continue
			}
			name, ok := announced[ev.User]
			if !ok {
				t.Fatalf("event for user %d before its EvUser", ev.User)
			}
			ev.User = 0
			out = append(out, Timed{At: now, User: name, Ev: ev})
		}
	}
	if len(out) != len(evs) {
		t.Fatalf("got %d events, want %d", len(out), len(evs))
	}
	for i := range evs {
		if out[i].User != evs[i].User || out[i].Ev != evs[i].Ev {
			t.Fatalf("event %d = %+v, want %+v", i, out[i], evs[i])
		}
		if out[i].At < evs[i].At || out[i].At >= evs[i].At+7*time.Millisecond {
			t.Fatalf("event %d due at %v came out at %v", i, evs[i].At, out[i].At)
		}
	}
	if len(announced) != len(users) {
		t.Fatalf("announced %v", announced)
	}
	for n, name := range announced {
		if s.Users()[name] != n {
			t.Fatalf("Users()[%q] = %d, announced as %d", name, s.Users()[name], n)
		}
	}
}
