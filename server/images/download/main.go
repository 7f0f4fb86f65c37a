//go:build wasip1

// Command download is the network-heavy guest image: it fetches a 12 MiB
// file from the host's "files" endpoint, hashes and stores it, and shows a
// download dialog (see package dl). It is a reactor: refresh the committed
// module with go run ./server/images/build download.
package main

import (
	"image"
	"time"

	"replaydesk/server/images/download/dl"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// host connects the app to the real host through package guest.
type host struct{}

func (host) Now() time.Time                          { return time.Now() }
func (host) PollInput(dst []abi.Event) []abi.Event   { return guest.PollInput(dst) }
func (host) DiskInfo() (uint64, abi.DiskMode, error) { return guest.DiskInfo() }
func (host) WriteBlock(n uint64, buf []byte) error   { return guest.WriteBlock(n, buf) }
func (host) Present(img *image.RGBA, damage []image.Rectangle) {
	guest.PresentRGBA(img, damage...)
}

func (host) Dial(name string) (dl.Conn, error) {
	c, err := guest.Dial(name)
	if err != nil {
		return nil, err // a nil *guest.Conn must not become a non-nil dl.Conn
	}
	return c, nil
}

func init() { guest.Run(dl.New(host{}).Step) }

func main() {}
