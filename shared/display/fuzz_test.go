package display

import (
	"testing"

	"replaydesk/shared/wire"
)

// FuzzApply: arbitrary tile bytes never panic, and the decoder only ever
// allocates for the tile's area (which must lie inside the framebuffer).
func FuzzApply(f *testing.F) {
	w, h := 64, 48
	fb := desk(w, h, 1)
	for _, tl := range NewEncoder(Options{TileSize: 16}).Encode(fb, w, h, w*4, nil) {
		f.Add(uint8(tl.Encoding), uint8(tl.X), uint8(tl.Y), uint8(tl.W), uint8(tl.H), tl.Data)
	}
	for _, tl := range NewEncoder(Options{Lossless: true}).Encode(photo(w, h, 2), w, h, w*4, nil) {
		f.Add(uint8(tl.Encoding), uint8(tl.X), uint8(tl.Y), uint8(tl.W), uint8(tl.H), tl.Data)
	}
	f.Add(uint8(wire.EncJPEG), uint8(0), uint8(0), uint8(16), uint8(16), appendJPEG(nil, photo(16, 16, 3), 64, 16, 16, newJPEGTables(79)))
	f.Fuzz(func(t *testing.T, enc, x, y, tw, th uint8, data []byte) {
		view := make([]byte, w*h*4)
		var d Decoder
		_ = d.Apply([]Tile{{X: int(x), Y: int(y), W: int(tw), H: int(th), Encoding: wire.Encoding(enc), Data: data}}, view, w, h, w*4)
		if cap(d.buf) > w*h*4 {
			t.Fatalf("decoder buffer %d bytes for a %dx%d framebuffer", cap(d.buf), w, h)
		}
	})
}
