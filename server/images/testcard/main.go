//go:build wasip1

// Command testcard is a guest that exercises every device of guest ABI v1
// and draws a picture that depends on all of them (see package card). It is a
// reactor: build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./server/images/testcard
//
// or, to refresh the committed module, go run ./server/images/build testcard.
package main

import (
	"crypto/rand"
	"image"
	"io"
	"time"

	"replaydesk/server/images/testcard/card"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// host connects the card to the real host through package guest.
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

func (host) Dial(name string) (card.Conn, error) {
	c, err := guest.Dial(name)
	if err != nil {
		return nil, err // a nil *guest.Conn must not become a non-nil card.Conn
	}
	return c, nil
}

func init() {
	c := card.New(host{})
	guest.Run(c.Step)
}

func main() {}
