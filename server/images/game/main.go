//go:build wasip1

// Command game is a side-scrolling platformer guest (see package
// platformer): the paper's supertux-like workload, busy every tick. It is a
// reactor: build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./server/images/game
//
// or, to refresh the committed module, go run ./server/images/build game.
package main

import (
	"crypto/rand"
	"replaydesk/server/images/game/platformer"
	"replaydesk/shared/guest"
)

// host connects the game to the real host through package guest.
type host struct{ guest.Host }

func (host) Random(b []byte) { rand.Read(b) } // never fails (Go 1.24+)

func init() {
	g := platformer.New(host{})
	guest.Run(g.Step)
}

func main() {}
