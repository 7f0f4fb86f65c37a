package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
)

// wireSamples is one message of every type, with values at the edges:
// 64-bit fields past JavaScript's exact integers, negative coordinates,
// multi-byte UTF-8.
func wireSamples() []wire.Message {
	h := [32]byte{1, 2, 3, 31: 0xff}
	pos := recordlog.Pos{Segment: math.MaxUint32, Offset: 1<<62 - 1, Tick: math.MaxUint64, Step: 1 << 53}
	block := []byte{3, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 7, 8, 9}
	return []wire.Message{
		&wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay | wire.CapPNG, Token: "tok.sig", Want: wire.ModeDisplay, Name: "zoë 🙂", KnownSnapshots: [][32]byte{h}, CacheFilter: []byte{9, 9}},
		&wire.Welcome{Major: 1, Minor: 7, Caps: math.MaxUint64, SessionID: "s-1", User: 65535, Role: wire.RoleDisplayViewer, Mode: wire.ModeReplay, ModuleHash: h, Params: []byte("p"), TickRate: 10000, Tick: 1<<63 + 1},
		&wire.Error{Code: math.MaxUint32, Text: "nope ✗"},
		&wire.LogBlock{Pos: pos, Block: block},
		&wire.SnapshotAnnounce{Number: 3, ManifestHash: h, Tick: 100, Step: 200, Pos: pos},
		&wire.Input{Seq: 1 << 60, Epoch: 7, Events: []abi.Event{
			{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true, Repeat: true},
			{Type: abi.EvText, Text: "é😀"},
			{Type: abi.EvMove, X: math.MinInt32, Y: math.MaxInt32},
			{Type: abi.EvButton, Button: 2, Down: true},
			{Type: abi.EvWheel, X: -3, Y: 1},
		}},
		&wire.InputRefused{Seq: 5, Reason: wire.RefuseRateLimited, Text: "slow down"},
		&wire.ControlRequest{User: 4, Epoch: 300},
		&wire.ControlGrant{By: 0, To: 2, Epoch: 1},
		&wire.ControlRevoke{By: 1, From: 65535, Epoch: 2},
		&wire.ControlRelease{User: 3, Epoch: 128},
		&wire.Presence{Control: wire.ControlExclusive, Epoch: 9, Users: []wire.PresenceUser{
			{User: 1, Name: "a", Role: wire.RoleOwner, Mode: wire.ModeDisplay, HasControl: true, X: -5, Y: 70000},
			{User: 300, Name: "", Role: wire.RoleViewer, Mode: wire.ModeDual},
		}},
		&wire.ModeSwitch{Kind: wire.SwitchPinned, Mode: wire.ModeAuto, Reason: "unpin"},
		&wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: "too slow: 5 MiB queued"},
		&wire.Estimates{LogBytesPerSec: 1000, DisplayBytesPerSec: 1 << 40, WindowMillis: 1000, Tick: 60},
		&wire.DisplayFrame{Seq: 2, Tick: 3, Key: true, Width: 16384, Height: 2, Tiles: []wire.Tile{
			{X: 16383, Y: 1, W: 1, H: 1, Encoding: wire.EncRaw, Data: []byte{1, 2, 3, 4}},
			{X: 0, Y: 0, W: 100, H: 2, Encoding: wire.EncSolid, Data: []byte{5, 6, 7, 8}},
			{X: 3, Y: 0, W: 1, H: 1, Encoding: wire.EncPNG, Data: []byte{0x89}},
		}},
		&wire.DisplayFrame{Seq: 0, Width: 1, Height: 1},
		&wire.Ping{Seq: 1, Sent: 300},
		&wire.Pong{Seq: 2, Echo: math.MaxUint64, Sent: 1 << 53},
		&wire.Lag{ReplayTick: 10, ReceivedTick: 1 << 60, BufferBytes: 77},
		&wire.Routed{Client: 1 << 31, Msg: &wire.Input{Seq: 1, Epoch: 2, Events: []abi.Event{{Type: abi.EvKey, Code: 4, Down: true}}}},
		&wire.Gone{Client: 9, Reason: "left"},
		&wire.Resume{Pos: pos},
		&wire.Multicast{Clients: []uint32{1 << 31, 2}, Msg: &wire.Ping{Seq: 4}},
	}
}

type jsResult struct {
	OK       bool
	Field    string
	Offset   int
	Kind     string
	Err      string
	Reencode string // base64 of encode(decode(b)) for the types the page sends
	JSON     string // the decoded message, BigInts as strings
}

// TestWireJS runs wire.js in the browser against shared/wire: every sample
// and thousands of mutations of them are accepted by one exactly when the
// other accepts them, refusals name the same field and byte offset, the
// messages the page sends re-encode byte for byte, and decoded values match.
func TestWireJS(t *testing.T) {
	s := newServer(t)
	var corpus [][]byte
	var sampleAt []int // corpus index of each sample
	for _, m := range wireSamples() {
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		sampleAt = append(sampleAt, len(corpus))
		corpus = append(corpus, b, append(append([]byte(nil), b...), 0))
		for k := range len(b) {
			corpus = append(corpus, b[:k])
		}
		for i := range b {
			for _, v := range []byte{b[i] ^ 1, b[i] ^ 0x80, 0, 0xff, b[i] + 1, b[i] - 1} {
				c := append([]byte(nil), b...)
				c[i] = v
				corpus = append(corpus, c)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		c := make([]byte, 1+rng.IntN(12))
		for i := range c {
			c[i] = byte(rng.IntN(256))
			if rng.IntN(3) == 0 {
				c[i] = byte(rng.IntN(4))
			}
		}
		c[0] = byte(rng.IntN(23))
		corpus = append(corpus, c)
	}
	enc := make([]string, len(corpus))
	for i, c := range corpus {
		enc[i] = base64.StdEncoding.EncodeToString(c)
	}
	arg, _ := json.Marshal(enc)

	run(t, chromedp.Navigate(s.URL+"/blank"))
	results := eval[[]jsResult](t, `(async () => {
		const w = await import("/web/wire.js");
		const unb64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
		const b64 = b => btoa(String.fromCharCode(...b));
		const show = (k, v) => typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? b64(v) : v;
		return `+string(arg)+`.map(s => {
			const b = unb64(s);
			let m;
			try { m = w.decode(b); } catch (e) {
				if (!(e instanceof w.WireError)) return {OK: false, Err: "not a WireError: " + e};
				return {OK: false, Field: e.field, Offset: e.offset, Kind: e.kind, Err: e.message};
			}
			let re = "";
			try { re = b64(w.encode(m)); } catch (e) { if (!e.message.includes("does not send")) re = "encode failed: " + e.message; }
			return {OK: true, Reencode: re, JSON: JSON.stringify(m, show)};
		});
	})()`)
	if len(results) != len(corpus) {
		t.Fatalf("%d results for %d inputs", len(results), len(corpus))
	}
	accepted := 0
	for i, c := range corpus {
		r := results[i]
		gm, gerr := wire.Decode(c)
		if (gerr == nil) != r.OK {
			t.Errorf("% x: Go says %v, wire.js says ok=%v %s", c, gerr, r.OK, r.Err)
			continue
		}
		if gerr != nil {
			var de *wire.DecodeError
			if !errors.As(gerr, &de) {
				t.Fatalf("Go error %v is not a DecodeError", gerr)
			}
			if de.Field != r.Field || de.Offset != r.Offset || errKind(de) != r.Kind {
				t.Errorf("% x: Go refuses %q at %d (%v, %s), wire.js %q at %d (%s, %s)", c, de.Field, de.Offset, gerr, errKind(de), r.Field, r.Offset, r.Err, r.Kind)
			}
			continue
		}
		accepted++
		if r.Reencode != "" && r.Reencode != base64.StdEncoding.EncodeToString(c) {
			t.Errorf("%T % x: wire.js re-encodes as %s", gm, c, r.Reencode)
		}
	}
	t.Logf("%d inputs, %d accepted by both", len(corpus), accepted)

	// Decoded values of the samples, field by field where they are not
	// checked by re-encoding.
	want := map[int]string{
		1:  `"caps":"18446744073709551615","sessionID":"s-1","user":65535,"role":4,"mode":3`,
		11: `"users":[{"user":1,"name":"a","role":1,"mode":1,"hasControl":true,"x":-5,"y":70000},{"user":300,"name":"","role":3,"mode":2,"hasControl":false,"x":0,"y":0}]`,
		14: `"logBytesPerSec":1000,"displayBytesPerSec":1099511627776,"windowMillis":1000,"tick":60`,
		15: `"width":16384,"height":2,"tiles":[{"x":16383,"y":1,"w":1,"h":1,"encoding":1,"data":"AQIDBA=="}`,
		20: `"client":2147483648,"msg":{"seq":1,"epoch":2,"events":[{"type":1,"down":true,"repeat":false,"code":4}],"type":6,"typeName":"Input"}`,
		3:  `"pos":{"segment":4294967295,"offset":"4611686018427387903","tick":"18446744073709551615","step":"9007199254740992"}`,
	}
	for i, idx := range sampleAt {
		if w, ok := want[i]; ok && !strings.Contains(results[idx].JSON, w) {
			t.Errorf("sample %d (%T) decodes in wire.js as\n%s\nwant it to contain\n%s", i, wireSamples()[i], results[idx].JSON, w)
		}
	}
}

// errKind names a DecodeError's kind as wire.js's WireError.kind does.
func errKind(de *wire.DecodeError) string {
	switch {
	case errors.Is(de, wire.ErrLimit):
		return "limit"
	case errors.Is(de, wire.ErrVersion):
		return "version"
	case errors.Is(de, wire.ErrUnknownType):
		return "unknown type"
	}
	return "malformed"
}
