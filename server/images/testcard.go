package images

import (
	_ "embed"
	"math/rand/v2"

	"replaydesk/server/images/testcard/card"
	"replaydesk/shared/abi"
)

//go:embed testcard/testcard.wasm
var testcardWasm string

func init() {
	register("testcard", entry{
		wasm:      &testcardWasm,
		disk:      TestcardDisk,
		endpoints: []string{"echo"},
		w:         card.Width,
		h:         card.Height,
		about:     "a test card that exercises every device of the guest ABI",
	})
}

// TestcardBlocks is the size of the testcard's disk in blocks.
const TestcardBlocks = 256

// TestcardDisk returns the testcard's initial disk: block 0 holds the
// click/Enter counter (a little-endian u64, initially 0, the rest zero), and
// blocks 1..255 are bytes from a ChaCha8 generator with a fixed seed, whose
// checksum the testcard shows.
func TestcardDisk() []byte {
	d := make([]byte, TestcardBlocks*abi.BlockSize)
	var seed [32]byte
	copy(seed[:], "replaydesk testcard disk v1")
	rand.NewChaCha8(seed).Read(d[abi.BlockSize:])
	return d
}
