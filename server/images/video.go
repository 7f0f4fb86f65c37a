package images

import (
	"bytes"
	_ "embed"
	"sync"

	"replaydesk/server/images/video/player"
	"replaydesk/shared/abi"
	"replaydesk/shared/mpeg1"
)

//go:embed video/video.wasm
var videoWasm string

// VideoFile is the file the video and stream images play, from
// video/media (see its README).
const VideoFile = "photos-360p.mpg"

//go:embed video/media/photos-360p.mpg
var videoMedia []byte

func init() {
	register("video", entry{
		wasm:  &videoWasm,
		disk:  VideoDisk,
		w:     player.Width,
		h:     player.Height,
		about: "an MPEG-1 video player playing " + VideoFile + " from its disk, looping",
	})
}

// videoStream is the header and the file, as the stream image receives
// them and as the video image's disk holds them.
var videoStream = sync.OnceValue(func() []byte {
	_, pictures, err := mpeg1.Probe(bytes.NewReader(videoMedia))
	if err != nil {
		panic("images: " + VideoFile + ": " + err.Error())
	}
	h := player.Header{Length: uint64(len(videoMedia)), Pictures: uint32(pictures), Name: VideoFile}
	return append(h.Encode(), videoMedia...)
})

// VideoDisk returns the video image's disk: a player.Header in block 0 and
// the file from block 1, zero-padded to whole blocks.
func VideoDisk() []byte {
	s := videoStream()
	d := make([]byte, (len(s)+abi.BlockSize-1)/abi.BlockSize*abi.BlockSize)
	copy(d, s)
	return d
}
