package images

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"replaydesk/server/images/video/player"
	"replaydesk/shared/abi"
)

func TestVideoImages(t *testing.T) {
	img, err := Lookup("video")
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != player.Width || img.Height != player.Height || len(img.Disk)%abi.BlockSize != 0 {
		t.Fatalf("video: %dx%d, disk of %d bytes", img.Width, img.Height, len(img.Disk))
	}
	h, err := player.ParseHeader(img.Disk)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != VideoFile || h.Length != uint64(len(videoMedia)) || h.Pictures != 600 {
		t.Fatalf("header %+v", h)
	}
	if !bytes.Equal(img.Disk[player.HeaderSize:player.HeaderSize+len(videoMedia)], videoMedia) {
		t.Fatal("the file does not follow the header")
	}
	if !bytes.Equal(VideoDisk(), img.Disk) {
		t.Fatal("the video disk is not deterministic")
	}

	st, err := Lookup("stream")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Endpoints, []string{VideoEndpoint}) || st.Sources[VideoEndpoint] == nil || st.Disk != nil {
		t.Fatalf("stream: %+v", st.Endpoints)
	}
	s, err := st.Sources[VideoEndpoint]()
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 1<<16)
	for {
		n, err := s.Recv(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, img.Disk[:player.HeaderSize+len(videoMedia)]) {
		t.Fatal("the stream does not serve what the disk holds")
	}
}
