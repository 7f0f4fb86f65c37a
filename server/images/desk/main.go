//go:build wasip1

// Command desk is the default replaydesk image: a desktop for pair-working
// (see package app). This file only adapts the app to the guest SDK. Build
// it with go run ./server/images/build desk.
package main

import (
	"image"
	"io"
	"time"

	"replaydesk/server/images/desk/app"
	"replaydesk/server/images/desk/deskfs"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

type host struct{}

func (host) Now() time.Time                        { return time.Now() }
func (host) PollInput(dst []abi.Event) []abi.Event { return guest.PollInput(dst) }
func (host) Console() io.Writer                    { return guest.Console }
func (host) Present(img *image.RGBA, damage []image.Rectangle) {
	guest.PresentRGBA(img, damage...)
}

func (host) Disk() (deskfs.BlockDevice, error) {
	n, _, err := guest.DiskInfo()
	if err != nil {
		return nil, err
	}
	return disk(n), nil
}

// disk is the VM's disk as a deskfs device; the disk mode (snapshotted or
// replayed) is the host's business and invisible here.
type disk uint64

func (d disk) Blocks() uint64                      { return uint64(d) }
func (disk) ReadBlock(n uint64, buf []byte) error  { return guest.ReadBlock(n, buf) }
func (disk) WriteBlock(n uint64, buf []byte) error { return guest.WriteBlock(n, buf) }

func init() {
	d := app.New(host{})
	guest.Run(func() int32 { return guest.SleepFor(d.Step()) })
}

func main() {}
