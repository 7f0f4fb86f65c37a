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
	"replaydesk/server/images/testcard/card"
	"replaydesk/shared/guest"
)

// host connects the card to the real host through package guest.
type host struct{ guest.Host }

func (host) Random(b []byte) { rand.Read(b) } // never fails (Go 1.24+)

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
