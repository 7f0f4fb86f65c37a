//go:build wasip1

// Command kbuild is the CPU-heavy guest image: it "compiles" the tree of
// pseudo-C sources on its disk like a kernel build, with a scrolling log (see
// package kb). It is a reactor: refresh the committed module with
// go run ./server/images/build kbuild. (The image is not called "build":
// server/images/build is the tool that builds the images.)
package main

import (
	"image"
	"time"

	"replaydesk/server/images/kbuild/kb"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// host connects the app to the real host through package guest.
type host struct{}

func (host) Now() time.Time                          { return time.Now() }
func (host) PollInput(dst []abi.Event) []abi.Event   { return guest.PollInput(dst) }
func (host) DiskInfo() (uint64, abi.DiskMode, error) { return guest.DiskInfo() }
func (host) ReadBlock(n uint64, buf []byte) error    { return guest.ReadBlock(n, buf) }
func (host) WriteBlock(n uint64, buf []byte) error   { return guest.WriteBlock(n, buf) }
func (host) Present(img *image.RGBA, damage []image.Rectangle) {
	guest.PresentRGBA(img, damage...)
}

func init() { guest.Run(kb.New(host{}).Step) }

func main() {}
