//go:build wasip1

// Command kbuild is the CPU-heavy guest image: it "compiles" the tree of
// pseudo-C sources on its disk like a kernel build, with a scrolling log (see
// package kb). It is a reactor: refresh the committed module with
// go run ./server/images/build kbuild. (The image is not called "build":
// server/images/build is the tool that builds the images.)
package main

import (
	"replaydesk/server/images/kbuild/kb"
	"replaydesk/shared/guest"
)

// host connects the app to the real host through package guest.
type host struct{ guest.Host }

func init() { guest.Run(kb.New(host{}).Step) }

func main() {}
