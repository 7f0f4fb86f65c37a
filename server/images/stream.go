package images

import (
	_ "embed"

	"replaydesk/server/images/video/player"
	"replaydesk/shared/endpoints"
)

//go:embed stream/stream.wasm
var streamWasm string

// VideoEndpoint is the endpoint the stream image reads its video from: a
// LAN video source serving the same bytes as the video image's disk (a
// player.Header, then the file).
const VideoEndpoint = "lan-video"

func init() {
	register("stream", entry{
		wasm:      &streamWasm,
		endpoints: []string{VideoEndpoint},
		sources:   map[string]endpoints.Factory{VideoEndpoint: endpoints.BytesFactory(videoStream())},
		w:         player.Width,
		h:         player.Height,
		about:     "the video player reading " + VideoFile + " from a LAN video source over a net stream",
	})
}
