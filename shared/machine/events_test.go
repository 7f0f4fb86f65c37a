package machine

import (
	"reflect"
	"testing"

	"replaydesk/shared/abi"
)

func TestEventLogEncodingRoundTrip(t *testing.T) {
	evs := []abi.Event{
		{Type: abi.EvUser, Down: true, User: 3, Text: "alice"},
		{Type: abi.EvKey, Down: true, Repeat: true, User: 3, Code: abi.CodeKeyQ},
		{Type: abi.EvText, User: 3, Text: "héllo"},
		{Type: abi.EvMove, User: 65535, X: 639, Y: -1},
		{Type: abi.EvButton, Down: true, Button: 2},
		{Type: abi.EvWheel, X: -10000, Y: 3},
	}
	b := encodeEvents(evs)
	if len(b) > 48 { // vs 192 in the guest's layout
		t.Errorf("%d bytes for %d events: the log encoding is not compact", len(b), len(evs))
	}
	got, err := decodeEvents(b)
	if err != nil || !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, evs)
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(encodeEvents([]abi.Event{{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true, User: 1}, {Type: abi.EvText, Text: "x"}}))
	f.Add([]byte{2, 0, 1, 30})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive the guest's 32-byte layout unchanged.
		var raw [abi.EventSize]byte
		for _, e := range evs {
			e.Put(raw[:])
			back, err := abi.DecodeEvent(raw[:])
			if err != nil || back != e {
				t.Fatalf("event %+v does not survive the ABI layout: %+v %v", e, back, err)
			}
		}
	})
}
