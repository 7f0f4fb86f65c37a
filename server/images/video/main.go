//go:build wasip1

// Command video is a guest that plays an MPEG-1 file from its disk at the
// file's own frame rate, looping (see package player; the disk holds a
// player.Header in block 0 and the file after it). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./server/images/video
//
// or, to refresh the committed module, go run ./server/images/build video.
package main

import (
	"replaydesk/server/images/video/player"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

type host struct{ guest.Host }

type disk struct{}

func (disk) DiskInfo() (uint64, abi.DiskMode, error) { return guest.DiskInfo() }
func (disk) ReadBlock(n uint64, buf []byte) error    { return guest.ReadBlock(n, buf) }

func init() {
	p := player.New(host{}, player.NewDiskSource(disk{}))
	guest.Run(p.Step)
}

func main() {}
