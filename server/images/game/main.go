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
	"image"
	"io"
	"time"

	"replaydesk/server/images/game/platformer"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// host connects the game to the real host through package guest.
type host struct{}

func (host) Now() time.Time  { return time.Now() }
func (host) Random(b []byte) { rand.Read(b) } // never fails (Go 1.24+)
func (host) PollInput(dst []abi.Event) []abi.Event {
	return guest.PollInput(dst)
}
func (host) DiskInfo() (uint64, abi.DiskMode, error) { return guest.DiskInfo() }
func (host) ReadBlock(n uint64, buf []byte) error    { return guest.ReadBlock(n, buf) }
func (host) WriteBlock(n uint64, buf []byte) error   { return guest.WriteBlock(n, buf) }
func (host) Console() io.Writer                      { return guest.Console }
func (host) Present(img *image.RGBA, damage []image.Rectangle) {
	guest.PresentRGBA(img, damage...)
}

func init() {
	g := platformer.New(host{})
	guest.Run(g.Step)
}

func main() {}
