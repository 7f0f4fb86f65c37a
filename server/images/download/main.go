//go:build wasip1

// Command download is the network-heavy guest image: it fetches a 12 MiB
// file from the host's "files" endpoint, hashes and stores it, and shows a
// download dialog (see package dl). It is a reactor: refresh the committed
// module with go run ./server/images/build download.
package main

import (
	"replaydesk/server/images/download/dl"
	"replaydesk/shared/guest"
)

// host connects the app to the real host through package guest.
type host struct{ guest.Host }

func (host) Dial(name string) (dl.Conn, error) {
	c, err := guest.Dial(name)
	if err != nil {
		return nil, err // a nil *guest.Conn must not become a non-nil dl.Conn
	}
	return c, nil
}

func init() { guest.Run(dl.New(host{}).Step) }

func main() {}
