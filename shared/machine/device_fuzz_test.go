package machine

import (
	"bytes"
	"testing"

	"replaydesk/shared/abi"
)

// FuzzDecodeDevice: a snapshot's device state comes from a file or the
// network. Nothing may panic, and whatever decodes must re-encode to bytes
// that decode and re-encode unchanged (so a snapshot of a restored machine
// equals the one it came from).
func FuzzDecodeDevice(f *testing.F) {
	block := bytes.Repeat([]byte{7}, abi.BlockSize)
	for _, ds := range []deviceState{
		{Tick: 3, Steps: 2},
		{Tick: 9, OverlayBlocks: []uint64{5, 1}, Handles: []string{"echo", ""}, Queue: []abi.Event{{Type: abi.EvText, Text: "x"}}},
	} {
		ov := map[uint64][]byte{}
		for _, b := range ds.OverlayBlocks {
			ov[b] = block
		}
		enc, err := encodeDevice(ds, ov)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, ov, err := decodeDevice(b)
		if err != nil {
			return
		}
		if len(ov) != len(ds.OverlayBlocks) {
			t.Fatalf("%d blocks for %d listed", len(ov), len(ds.OverlayBlocks))
		}
		again, err := encodeDevice(ds, ov)
		if err != nil {
			t.Fatal(err)
		}
		ds2, ov2, err := decodeDevice(again)
		if err != nil {
			t.Fatalf("re-encoded device state does not decode: %v", err)
		}
		again2, _ := encodeDevice(ds2, ov2)
		if !bytes.Equal(again, again2) {
			t.Fatal("encoding is not stable")
		}
	})
}
