package wire

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
)

func hash(b byte) (h [32]byte) {
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

// block returns a raw record-log block with a payload of n bytes.
func block(n int) []byte {
	b := make([]byte, 9+n)
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	for i := 9; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

var pos = recordlog.Pos{Segment: 3, Offset: 1 << 40, Tick: 123456, Step: 7890}

// samples has at least one message of every type, and edge values.
func samples() []Message {
	return []Message{
		&Hello{Major: Major, Minor: Minor, Caps: CapReplay | CapDisplay | CapZlib | 1<<63, Token: "tok.en",
			Want: ModeAuto, Name: "ada", KnownSnapshots: [][32]byte{hash(1), hash(2)}, CacheFilter: []byte{1, 2, 3}},
		&Hello{Major: Major, Minor: 7, Want: ModeReplay},
		&Hello{Major: Major, Want: ModeDisplay, Name: strings.Repeat("é", MaxName/2), Token: strings.Repeat("t", MaxToken)},
		&Welcome{Major: Major, Minor: Minor, Caps: CapReplay, SessionID: "s-1", User: 65535, Role: RoleOwner,
			Mode: ModeDisplay, ModuleHash: recordlog.ModuleHash(hash(9)), Params: []byte(`{"hz":60}`), TickRate: 60, Tick: 1 << 50},
		&Welcome{Major: Major, User: 1, Role: RoleDisplayViewer, Mode: ModeReplay, TickRate: MaxTickRate},
		&Error{Code: CodeVersion, Text: "speak version 1"},
		&Error{Code: 1 << 31},
		&LogBlock{Pos: pos, Block: block(0)},
		&LogBlock{Pos: recordlog.Pos{Offset: MaxOffset}, Block: block(300)},
		&SnapshotAnnounce{Number: 2, ManifestHash: hash(4), Tick: 600, Step: 300, Pos: pos},
		&SnapshotAnnounce{},
		&Input{Seq: 1, Epoch: 9, Events: []abi.Event{
			{Type: abi.EvKey, Code: abi.KeyCode(4), Down: true, Repeat: true},
			{Type: abi.EvKey, Code: 1<<32 - 1},
			{Type: abi.EvText, Text: "héllo wörld"},
			{Type: abi.EvText, Text: strings.Repeat("x", abi.MaxText)},
			{Type: abi.EvMove, X: -2147483648, Y: 2147483647},
			{Type: abi.EvButton, Button: 2, Down: true},
			{Type: abi.EvButton, Button: 0},
			{Type: abi.EvWheel, X: 0, Y: -3},
		}},
		&InputRefused{Seq: 77, Reason: RefuseStaleEpoch, Text: "control changed hands"},
		&InputRefused{Reason: RefuseRateLimited},
		&ControlRequest{User: 4, Epoch: 3},
		&ControlGrant{By: 1, To: 4, Epoch: 4},
		&ControlGrant{By: 0, To: 2, Epoch: 1 << 63},
		&ControlRevoke{By: 1, From: 4, Epoch: 5},
		&ControlRelease{User: 4, Epoch: 6},
		&Presence{Control: ControlExclusive, Epoch: 6, Users: []PresenceUser{
			{User: 1, Name: "owner", Role: RoleOwner, Mode: ModeReplay, HasControl: true, X: 10, Y: -20},
			{User: 2, Name: "", Role: RoleViewer, Mode: ModeDual},
			{User: 300, Name: "bob", Role: RoleDisplayViewer, Mode: ModeDisplay, X: 639, Y: 359},
		}},
		&Presence{Control: ControlShared},
		&ModeSwitch{Kind: SwitchRequested, Mode: ModeDual, Reason: "display 1.6x replay over 20 s"},
		&ModeSwitch{Kind: SwitchForced, Mode: ModeDisplay, Reason: "log buffer full"},
		&ModeSwitch{Kind: SwitchPinned, Mode: ModeAuto},
		&ModeSwitch{Kind: SwitchPinned, Mode: ModeReplay},
		&Estimates{LogBytesPerSec: 345, DisplayBytesPerSec: 1 << 20, WindowMillis: 20000, Tick: 1200},
		&DisplayFrame{Seq: 5, Tick: 99, Key: true, Width: 640, Height: 360, Tiles: []Tile{
			{X: 0, Y: 0, W: 2, H: 2, Encoding: EncRaw, Data: make([]byte, 16)},
			{X: 630, Y: 350, W: 10, H: 10, Encoding: EncSolid, Data: []byte{1, 2, 3, 255}},
			{X: 64, Y: 0, W: 64, H: 64, Encoding: EncZlib, Data: []byte{0x78, 0x9c, 3, 0}},
			{X: 0, Y: 64, W: 64, H: 64, Encoding: EncPalette, Data: []byte{1}},
			{X: 0, Y: 128, W: 64, H: 64, Encoding: EncJPEG, Data: []byte{0xff, 0xd8}},
			{X: 0, Y: 192, W: 640, H: 168, Encoding: EncPNG, Data: []byte{0x89, 'P'}},
		}},
		&DisplayFrame{Width: MaxSide, Height: 1},
		&Ping{Seq: 1, Sent: 1 << 62},
		&Pong{Seq: 1, Echo: 1 << 62, Sent: 5},
		&Lag{ReplayTick: 100, ReceivedTick: 160, BufferBytes: 4096},
		&Lag{},
		&Routed{Client: 1, Msg: &Hello{Major: Major, Minor: Minor, Token: "t", Want: ModeReplay}},
		&Routed{Client: MaxClient, Msg: &DisplayFrame{Width: 2, Height: 2, Tiles: []Tile{{W: 2, H: 2, Encoding: EncSolid, Data: []byte{1, 2, 3, 4}}}}},
		&Gone{Client: 7, Reason: "connection closed"},
		&Gone{Client: 1},
		&Resume{Pos: pos},
		&Multicast{Clients: []uint32{3, 1, MaxClient}, Msg: &DisplayFrame{Key: true, Width: 2, Height: 2, Tiles: []Tile{{W: 2, H: 2, Encoding: EncSolid, Data: []byte{1, 2, 3, 4}}}}},
		&Multicast{Clients: []uint32{9}, Msg: &Ping{Seq: 1}},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range samples() {
		seen[m.Type()] = true
		t.Run(m.Type().String(), func(t *testing.T) {
			b, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
			b2, err := Encode(got)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs (%v):\n%x\n%x", err, b, b2)
			}
			// Every proper prefix is refused: nothing is optional.
			for i := range len(b) {
				if _, err := Decode(b[:i]); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded", i, len(b))
				}
			}
			if _, err := Decode(append(b, 0)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte: %v", err)
			}
		})
	}
	for ty := TypeHello; ty <= TypeMulticast; ty++ {
		if !seen[ty] {
			t.Errorf("no round-trip sample of %s", ty)
		}
	}
}

// TestBytes pins the documented encodings (docs/wire-protocol.md examples).
func TestBytes(t *testing.T) {
	for _, c := range []struct {
		m    Message
		want []byte
	}{
		{&Ping{Seq: 1, Sent: 300}, []byte{16, 1, 0xac, 0x02}},
		{&ControlGrant{By: 1, To: 4, Epoch: 7}, []byte{9, 1, 4, 7}},
		{&Input{Seq: 5, Epoch: 2, Events: []abi.Event{
			{Type: abi.EvKey, Code: 4, Down: true},
			{Type: abi.EvText, Text: "a"},
			{Type: abi.EvMove, X: -1, Y: 64},
		}}, []byte{6, 5, 2, 3, 1, 1, 4, 2, 0, 1, 'a', 3, 0, 1, 0x80, 0x01}},
		{&Hello{Major: 1, Caps: 3, Token: "t", Want: ModeReplay, Name: "ab"},
			[]byte{1, 1, 0, 3, 1, 't', 3, 2, 'a', 'b', 0, 0}},
		{&Error{Code: CodeVersion, Text: "v"}, []byte{3, 1, 1, 'v'}},
	} {
		got, err := Encode(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: got % x, want % x", c.m.Type(), got, c.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	ev := func(b ...byte) []byte { return append([]byte{6, 0, 0, 1}, b...) }
	for _, c := range []struct {
		name  string
		b     []byte
		err   error
		typ   Type
		field string
		off   int
	}{
		{"empty", nil, ErrMalformed, 0, "", 0},
		{"unknown type", []byte{200}, ErrUnknownType, 200, "", 0},
		{"type zero", []byte{0}, ErrUnknownType, 0, "", 0},
		{"hello major 2", []byte{1, 2, 0, 0, 0, 0, 0, 0, 0}, ErrVersion, TypeHello, "major", 1},
		{"hello major 0", []byte{1, 0}, ErrVersion, TypeHello, "major", 1},
		{"welcome major 9", []byte{2, 9}, ErrVersion, TypeWelcome, "major", 1},
		{"hello want dual", []byte{1, 1, 0, 0, 0, 2, 0, 0, 0}, ErrMalformed, TypeHello, "want", 5},
		{"hello want 4", []byte{1, 1, 0, 0, 0, 4, 0, 0, 0}, ErrMalformed, TypeHello, "want", 5},
		{"hello token too long", append([]byte{1, 1, 0, 0, 0x81, 0x20}, make([]byte, 4097)...), ErrLimit, TypeHello, "token", 4},
		{"hello bad utf8", []byte{1, 1, 0, 0, 0, 0, 1, 0xff, 0, 0}, ErrMalformed, TypeHello, "name", 6},
		{"hello many snapshots", []byte{1, 1, 0, 0, 0, 0, 0, 65}, ErrLimit, TypeHello, "known_snapshots", 7},
		{"hello snapshots past end", []byte{1, 1, 0, 0, 0, 0, 0, 2, 0}, ErrMalformed, TypeHello, "known_snapshots", 7},
		{"non-minimal varint", []byte{16, 0x81, 0x00, 0}, ErrMalformed, TypePing, "seq", 1},
		{"varint overflow", []byte{16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0}, ErrMalformed, TypePing, "seq", 1},
		{"truncated varint", []byte{16, 1, 0x80}, ErrMalformed, TypePing, "sent", 2},
		{"trailing", []byte{16, 1, 1, 9}, ErrMalformed, TypePing, "", 3},
		{"error code 0", []byte{3, 0, 0}, ErrMalformed, TypeError, "code", 1},
		{"welcome user 0", []byte{2, 1, 0, 0, 0, 0}, ErrMalformed, TypeWelcome, "user", 5},
		{"log block short", []byte{4, 0, 0, 0, 0, 3, 0, 0, 0}, ErrMalformed, TypeLogBlock, "block", 5},
		{"log block length mismatch", []byte{4, 0, 0, 0, 0, 10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1}, ErrMalformed, TypeLogBlock, "block", 5},
		{"log block length past end", []byte{4, 0, 0, 0, 0, 10, 0}, ErrMalformed, TypeLogBlock, "block", 5},
		{"input no events", []byte{6, 0, 0, 0}, ErrMalformed, TypeInput, "events", 3},
		{"input too many events", []byte{6, 0, 0, 0x81, 0x02}, ErrLimit, TypeInput, "events", 3},
		{"input count past end", []byte{6, 0, 0, 2, 1, 0, 0}, ErrMalformed, TypeInput, "events", 3},
		{"event type user", ev(6, 0, 0), ErrMalformed, TypeInput, "events[0].type", 4},
		{"event type 0", ev(0, 0, 0), ErrMalformed, TypeInput, "events[0].type", 4},
		{"move with down flag", ev(3, 1, 0, 0), ErrMalformed, TypeInput, "events[0].flags", 5},
		{"button repeat", ev(4, 2, 0), ErrMalformed, TypeInput, "events[0].flags", 5},
		{"key flag bit 2", ev(1, 4, 0), ErrMalformed, TypeInput, "events[0].flags", 5},
		{"empty text", ev(2, 0, 0), ErrMalformed, TypeInput, "events[0].text", 6},
		{"long text", append(ev(2, 0, 25), make([]byte, 25)...), ErrLimit, TypeInput, "events[0].text", 6},
		{"move x past int32", ev(3, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0), ErrLimit, TypeInput, "events[0].x", 6},
		{"key code past u32", ev(1, 0, 0x80, 0x80, 0x80, 0x80, 0x10), ErrLimit, TypeInput, "events[0].code", 6},
		{"refused reason 0", []byte{7, 0, 0, 0}, ErrMalformed, TypeInputRefused, "reason", 2},
		{"grant to 0", []byte{9, 1, 0, 0}, ErrMalformed, TypeControlGrant, "to", 2},
		{"request user past u16", []byte{8, 0x80, 0x80, 0x04, 0}, ErrLimit, TypeControlRequest, "user", 1},
		{"presence control 3", []byte{12, 3, 0, 0}, ErrMalformed, TypePresence, "control", 1},
		{"presence unsorted", []byte{12, 1, 0, 2, 5, 0, 1, 1, 0, 0, 0, 5, 0, 1, 1, 0, 0, 0}, ErrMalformed, TypePresence, "users[1].user", 11},
		{"presence bool 2", []byte{12, 1, 0, 1, 5, 0, 1, 1, 2, 0, 0}, ErrMalformed, TypePresence, "users[0].has_control", 8},
		{"presence mode auto", []byte{12, 1, 0, 1, 5, 0, 1, 0, 0, 0, 0}, ErrMalformed, TypePresence, "users[0].mode", 7},
		{"switch auto not pinned", []byte{13, 1, 0, 0}, ErrMalformed, TypeModeSwitch, "mode", 2},
		{"switch pin dual", []byte{13, 3, 2, 0}, ErrMalformed, TypeModeSwitch, "mode", 2},
		{"estimates window 0", []byte{14, 0, 0, 0, 0}, ErrMalformed, TypeEstimates, "window_millis", 3},
		{"frame width 0", []byte{15, 0, 0, 0, 0, 1, 0}, ErrMalformed, TypeDisplayFrame, "width", 4},
		{"frame too wide", []byte{15, 0, 0, 0, 0x81, 0x80, 0x01, 1, 0}, ErrLimit, TypeDisplayFrame, "width", 4},
		{"tile outside", []byte{15, 0, 0, 0, 10, 10, 1, 5, 0, 6, 1, 2, 4, 1, 2, 3, 4}, ErrMalformed, TypeDisplayFrame, "tiles[0].w", 9},
		{"tile raw size", []byte{15, 0, 0, 0, 10, 10, 1, 0, 0, 1, 1, 1, 3, 1, 2, 3}, ErrMalformed, TypeDisplayFrame, "tiles[0].data", 12},
		{"tile encoding 7", []byte{15, 0, 0, 0, 10, 10, 1, 0, 0, 1, 1, 7, 1, 0}, ErrMalformed, TypeDisplayFrame, "tiles[0].encoding", 11},
		{"tile empty", []byte{15, 0, 0, 0, 10, 10, 1, 0, 0, 1, 1, 5, 0}, ErrMalformed, TypeDisplayFrame, "tiles[0].data", 12},
		{"too many tiles", []byte{15, 0, 0, 0, 10, 10, 0x81, 0x20}, ErrLimit, TypeDisplayFrame, "tiles", 6},
		{"lag replay past received", []byte{18, 5, 4, 0}, ErrMalformed, TypeLag, "received_tick", 2},
		{"routed client 0", []byte{19, 0, 16, 0, 0}, ErrMalformed, TypeRouted, "client", 1},
		{"routed nothing", []byte{19, 1}, ErrMalformed, TypeRouted, "msg", 2},
		{"routed routed", []byte{19, 1, 19, 1, 16, 0, 0}, ErrMalformed, TypeRouted, "msg", 2},
		{"routed gone", []byte{19, 1, 20, 1, 0}, ErrMalformed, TypeRouted, "msg", 2},
		{"routed bad inner", []byte{19, 1, 16, 0x81, 0x00, 0}, ErrMalformed, TypeRouted, "msg", 3},
		{"gone client 0", []byte{20, 0, 0}, ErrMalformed, TypeGone, "client", 1},
		{"multicast to nobody", []byte{22, 0, 16, 0, 0}, ErrMalformed, TypeMulticast, "clients", 1},
		{"multicast client 0", []byte{22, 1, 0, 16, 0, 0}, ErrMalformed, TypeMulticast, "clients", 2},
		{"multicast repeated", []byte{22, 2, 5, 5, 16, 0, 0}, ErrMalformed, TypeMulticast, "clients", 3},
		{"multicast nothing", []byte{22, 1, 5}, ErrMalformed, TypeMulticast, "msg", 3},
		{"multicast routed", []byte{22, 1, 5, 19, 1, 16, 0, 0}, ErrMalformed, TypeMulticast, "msg", 3},
		{"multicast multicast", []byte{22, 1, 5, 22, 1, 6, 16, 0, 0}, ErrMalformed, TypeMulticast, "msg", 3},
		{"multicast too many", []byte{22, 0x81, 0x40}, ErrLimit, TypeMulticast, "clients", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode(% x) = %v, want a *DecodeError", c.b, err)
			}
			if !errors.Is(err, c.err) || de.Type != c.typ || de.Field != c.field || de.Offset != c.off {
				t.Fatalf("got %v (type %s field %q offset %d), want %v type %s field %q offset %d",
					err, de.Type, de.Field, de.Offset, c.err, c.typ, c.field, c.off)
			}
			if !strings.Contains(err.Error(), c.typ.String()) {
				t.Fatalf("message %q does not name the type", err)
			}
		})
	}
}

func TestMaxMessage(t *testing.T) {
	big := &LogBlock{Block: block(8 << 20)}
	b, err := Encode(big)
	if err != nil {
		t.Fatalf("largest log block: %v", err)
	}
	if _, err := Decode(b); err != nil {
		t.Fatal(err)
	}
	over := append(b, make([]byte, MaxMessage-len(b)+1)...)
	if _, err := Decode(over); !errors.Is(err, ErrLimit) {
		t.Fatalf("oversized message: %v", err)
	}
	if _, err := Encode(&LogBlock{Block: block(8<<20 + 1)}); !errors.Is(err, ErrLimit) {
		t.Fatalf("oversized block: %v", err)
	}
	frame := &DisplayFrame{Width: 1, Height: 1, Tiles: []Tile{{W: 1, H: 1, Encoding: EncPNG, Data: make([]byte, MaxMessage)}}}
	if _, err := Encode(frame); !errors.Is(err, ErrLimit) {
		t.Fatalf("oversized frame: %v", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		m    Message
		is   error // nil: only check that Encode fails
	}{
		{"other major", &Hello{Major: 2}, ErrVersion},
		{"welcome user 0", &Welcome{Major: Major, Role: RoleOwner, Mode: ModeDisplay, TickRate: 60}, ErrMalformed},
		{"stamped user", &Input{Events: []abi.Event{{Type: abi.EvKey, User: 3}}}, nil},
		{"stray field", &Input{Events: []abi.Event{{Type: abi.EvMove, Code: 4}}}, nil},
		{"text down", &Input{Events: []abi.Event{{Type: abi.EvText, Text: "a", Down: true}}}, nil},
		{"user event", &Input{Events: []abi.Event{{Type: abi.EvUser, Text: "a"}}}, ErrMalformed},
		{"long name", &Hello{Major: Major, Name: strings.Repeat("n", MaxName+1)}, ErrLimit},
		{"presence duplicate", &Presence{Control: ControlShared, Users: []PresenceUser{
			{User: 1, Role: RoleOwner, Mode: ModeDisplay}, {User: 1, Role: RoleOwner, Mode: ModeDisplay}}}, ErrMalformed},
		{"negative offset", &LogBlock{Pos: recordlog.Pos{Offset: -1}, Block: block(0)}, ErrLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Encode(c.m)
			if err == nil || (c.is != nil && !errors.Is(err, c.is)) {
				t.Fatalf("Encode = %v, want %v", err, c.is)
			}
		})
	}
	if _, err := Encode(nil); err == nil {
		t.Fatal("Encode(nil) succeeded")
	}
}

func TestTypeString(t *testing.T) {
	if TypeDisplayFrame.String() != "DisplayFrame" || Type(99).String() != "type(99)" {
		t.Fatal(TypeDisplayFrame.String(), Type(99).String())
	}
}

func TestVersionErrorText(t *testing.T) {
	_, err := Decode([]byte{1, 2, 0})
	const want = "wire: Hello.major at byte 1: peer speaks protocol version 2, this side speaks 1.1"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// Decoding allocates at most a small multiple of the message's size, however
// the counts in it are chosen: lists are bounded by the bytes left.
func TestBoundedAllocation(t *testing.T) {
	many := func(head []byte, n int, elem []byte) []byte {
		b := appendUvarint(head, uint64(n))
		for range n {
			b = append(b, elem...)
		}
		return b
	}
	for _, b := range [][]byte{
		many([]byte{6, 0, 0}, MaxEvents, []byte{1, 0, 0}),
		many([]byte{12, 1, 0}, MaxUsers, nil), // count with no elements: refused early
		many([]byte{15, 0, 0, 0, 1, 1}, MaxTiles, []byte{0, 0, 1, 1, 2, 4, 1, 2, 3, 4}),
		append([]byte{1, 1, 0, 0, 0, 0, 0, 64}, make([]byte, 64*32+1)...),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			Decode(b)
		}
		runtime.ReadMemStats(&after)
		allocs := int64(after.TotalAlloc-before.TotalAlloc) / 100
		if limit := int64(32*len(b) + 1024); allocs > limit {
			t.Errorf("type %d, %d bytes: %d bytes allocated, limit %d", b[0], len(b), allocs, limit)
		}
	}
}
