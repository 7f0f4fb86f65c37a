//go:build wasip1

// Command desk is the default replaydesk image: a desktop for pair-working
// (see package app). This file only adapts the app to the guest SDK. Build
// it with go run ./server/images/build desk.
package main

import (
	"replaydesk/server/images/desk/app"
	"replaydesk/server/images/desk/deskfs"
	"replaydesk/shared/guest"
)

type host struct{ guest.Host }

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
