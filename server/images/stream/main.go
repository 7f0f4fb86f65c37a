//go:build wasip1

// Command stream is the video player of the video image reading its file
// from a net stream instead of a disk: it dials the "lan-video" endpoint,
// which serves a player.Header and then the file's bytes, reads only what
// its decoder needs, and dials again to loop. Every byte it receives is in
// the record log: the video-stream workload. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./server/images/stream
//
// or, to refresh the committed module, go run ./server/images/build stream.
package main

import (
	"replaydesk/server/images/video/player"
	"replaydesk/shared/guest"
)

// Endpoint is the host endpoint that serves the video.
const Endpoint = "lan-video"

type host struct{ guest.Host }

func dial() (player.Conn, error) {
	c, err := guest.Dial(Endpoint)
	if err != nil {
		return nil, err // a nil *guest.Conn must not become a non-nil player.Conn
	}
	return c, nil
}

func init() {
	p := player.New(host{}, player.NewStreamSource(dial))
	guest.Run(p.Step)
}

func main() {}
