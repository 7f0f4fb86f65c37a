package images

import (
	_ "embed"

	"replaydesk/server/images/game/platformer"
	"replaydesk/shared/abi"
)

//go:embed game/game.wasm
var gameWasm string

// GameBlocks is the size of the game's disk in blocks; block 0 holds the
// high-score table.
const GameBlocks = 16

func init() {
	register("game", entry{
		wasm:  &gameWasm,
		disk:  func() []byte { return make([]byte, GameBlocks*abi.BlockSize) },
		w:     platformer.Width,
		h:     platformer.Height,
		about: "a side-scrolling platformer that plays itself until someone presses an arrow key",
	})
}
