package web

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
)

// The screen is 300x200: with 64-pixel tiles, the right column and the bottom
// row are partial tiles.
const scrW, scrH = 300, 200

// desktop draws a synthetic screen: flat panels (solid tiles), two-, four-
// and sixteen-colour "text" (palette tiles at 1, 2 and 4 bits) and a noisy
// photo (zlib when lossless, JPEG when lossy). step varies it.
func desktop(step int) []byte {
	fb := make([]byte, scrW*scrH*4)
	rng := rand.New(rand.NewPCG(uint64(step), 7))
	set := func(x, y int, r, g, b byte) {
		o := (y*scrW + x) * 4
		fb[o], fb[o+1], fb[o+2], fb[o+3] = r, g, b, 255
	}
	for y := range scrH {
		for x := range scrW {
			switch {
			case y < 64: // title bar and panel
				set(x, y, 40, 60, byte(90+step*10))
			case x < 64 && y < 128: // 1-bit text
				if (x*7+y*3+step)%5 == 0 {
					set(x, y, 255, 255, 255)
				} else {
					set(x, y, 0, 0, 0)
				}
			case x < 128 && y < 128: // 2-bit text
				c := byte((x + y*2 + step) % 4 * 60)
				set(x, y, c, 255-c, 30)
			case x < 192 && y < 128: // 16 colours
				c := byte((x/3 + y + step) % 16 * 16)
				set(x, y, c, c/2, 200)
			case x >= 192: // photo: gradients and noise
				set(x, y, byte(x+step*13), byte(y*2), byte(128+rng.IntN(40)))
			default:
				set(x, y, 230, 230, byte(230-step))
			}
		}
	}
	return fb
}

func wireTiles(ts []display.Tile) []wire.Tile {
	out := make([]wire.Tile, len(ts))
	for i, t := range ts {
		out[i] = t.Wire()
	}
	return out
}

// mirror keeps the Go framebuffer that the page's canvas must equal, painted
// by shared/display's own decoder.
type mirror struct {
	t    *testing.T
	fb   []byte
	seq  uint64
	encs map[wire.Encoding]int
}

func newMirror(t *testing.T) *mirror {
	return &mirror{t: t, fb: make([]byte, scrW*scrH*4), encs: map[wire.Encoding]int{}}
}

// frame paints tiles into the mirror and returns the DisplayFrame to send.
func (m *mirror) frame(key bool, tiles []wire.Tile) *wire.DisplayFrame {
	m.t.Helper()
	ds := make([]display.Tile, len(tiles))
	for i, t := range tiles {
		ds[i] = display.FromWire(t)
		m.encs[t.Encoding]++
	}
	if err := display.Apply(ds, m.fb, scrW, scrH, scrW*4); err != nil {
		m.t.Fatalf("the Go decoder refuses the test's own tiles: %v", err)
	}
	m.seq++
	return &wire.DisplayFrame{Seq: m.seq, Tick: m.seq * 2, Key: key, Width: scrW, Height: scrH, Tiles: tiles}
}

func pngTile(t *testing.T, fb []byte, x, y, w, h int) wire.Tile {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for j := range h {
		copy(img.Pix[j*img.Stride:], fb[((y+j)*scrW+x)*4:][:w*4])
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return wire.Tile{X: uint32(x), Y: uint32(y), W: uint32(w), H: uint32(h), Encoding: wire.EncPNG, Data: b.Bytes()}
}

func rawTile(fb []byte, x, y, w, h int) wire.Tile {
	data := make([]byte, 0, w*h*4)
	for j := range h {
		data = append(data, fb[((y+j)*scrW+x)*4:][:w*4]...)
	}
	return wire.Tile{X: uint32(x), Y: uint32(y), W: uint32(w), H: uint32(h), Encoding: wire.EncRaw, Data: data}
}

func firstDiff(a, b []byte) string {
	for i := range a {
		if a[i] != b[i] {
			p := i / 4 * 4
			return fmt.Sprintf("pixel (%d,%d): page %v, Go %v", p/4%scrW, p/4/scrW, a[p:p+4], b[p:p+4])
		}
	}
	return "none"
}

// TestDisplayLossless: a key frame and deltas from the real encoder (solid,
// palette at 1/2/4 bits, zlib) plus raw and PNG tiles paint the canvas to
// exactly the Go decoder's pixels; a delta before the first key frame is
// ignored, as a late joiner must.
func TestDisplayLossless(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=tok-123&name=alice")
	h := p.hello
	if h.Major != 1 || h.Minor != 1 || h.Token != "tok-123" || h.Name != "alice" || h.Want != wire.ModeDisplay {
		t.Fatalf("Hello = %+v", h)
	}
	if want := wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapPNG; h.Caps != want {
		t.Fatalf("Hello caps %#x, want %#x (display, zlib, palette, jpeg, png; no dual-stream)", h.Caps, want)
	}
	p.welcome(2, wire.RoleOwner)
	m := newMirror(t)

	// A delta before any key frame: the page has no screen to apply it to.
	p.send(&wire.DisplayFrame{Seq: 99, Width: scrW, Height: scrH, Tiles: []wire.Tile{{X: 0, Y: 0, W: scrW, H: scrH, Encoding: wire.EncSolid, Data: []byte{255, 0, 0, 255}}}})

	enc := display.NewEncoder(display.Options{Lossless: true})
	fb0 := desktop(0)
	p.send(m.frame(true, wireTiles(enc.Key(fb0, scrW, scrH, scrW*4))))
	fb1 := desktop(1)
	p.send(m.frame(false, wireTiles(enc.Encode(fb1, scrW, scrH, scrW*4, []image.Rectangle{image.Rect(0, 0, scrW, scrH)}))))
	// Raw and PNG, which the encoder never makes, and a solid tile painted
	// over part of the PNG within the same frame: order within a frame holds.
	fb2 := desktop(2)
	p.send(m.frame(false, []wire.Tile{
		rawTile(fb2, 10, 70, 50, 40),
		pngTile(t, fb2, 200, 100, 100, 100),
		{X: 250, Y: 150, W: 20, H: 20, Encoding: wire.EncSolid, Data: []byte{1, 2, 3, 255}},
	}))
	waitJS(t, `window.replaydesk && window.replaydesk.screen.frames === 3`)

	for _, e := range []wire.Encoding{wire.EncSolid, wire.EncPalette, wire.EncZlib, wire.EncRaw, wire.EncPNG} {
		if m.encs[e] == 0 {
			t.Errorf("no tile of encoding %d was exercised (%v)", e, m.encs)
		}
	}
	w, h2, pix := canvasPixels(t)
	if w != scrW || h2 != scrH {
		t.Fatalf("canvas is %dx%d, frames are %dx%d", w, h2, scrW, scrH)
	}
	if !bytes.Equal(pix, m.fb) {
		t.Fatalf("canvas differs from the Go decoder's framebuffer; first difference at %s", firstDiff(pix, m.fb))
	}
	if got := eval[string](t, `window.replaydesk.lastError`); got != "" {
		t.Fatalf("page reports an error: %s", got)
	}
}

// TestDisplayJPEG: lossy frames (JPEG q79 4:4:4 from the real encoder) come
// within a PSNR bound of the Go decoder's pixels, and frames apply in order:
// a solid tile sent right after a large JPEG over the same place wins
// although the JPEG decodes asynchronously.
func TestDisplayJPEG(t *testing.T) {
	s := newServer(t)
	p := s.open(t, "t=x")
	p.welcome(1, wire.RoleViewer)
	m := newMirror(t)
	enc := display.NewEncoder(display.Options{})
	p.send(m.frame(true, wireTiles(enc.Key(desktop(3), scrW, scrH, scrW*4))))
	p.send(m.frame(false, []wire.Tile{{X: 200, Y: 70, W: 60, H: 50, Encoding: wire.EncSolid, Data: []byte{9, 200, 9, 255}}}))
	if m.encs[wire.EncJPEG] == 0 {
		t.Fatalf("the lossy encoder made no JPEG tile: %v", m.encs)
	}
	waitJS(t, `window.replaydesk && window.replaydesk.screen.frames === 2`)
	_, _, pix := canvasPixels(t)

	var se float64
	for i := range pix {
		d := float64(pix[i]) - float64(m.fb[i])
		se += d * d
	}
	psnr := 10 * math.Log10(255*255/(se/float64(len(pix))))
	t.Logf("PSNR canvas vs Go decoder: %.1f dB", psnr)
	if psnr < 40 {
		t.Fatalf("PSNR %.1f dB < 40 dB: the browser's JPEG decode is not the encoder's image", psnr)
	}
	for y := 70; y < 120; y++ {
		for x := 200; x < 260; x++ {
			o := (y*scrW + x) * 4
			if !bytes.Equal(pix[o:o+4], []byte{9, 200, 9, 255}) {
				t.Fatalf("pixel (%d,%d) = %v: the later solid tile did not win over the JPEG", x, y, pix[o:o+4])
			}
		}
	}
}

// TestBehindSkipsToKeyFrame: frames queued before a key frame are not
// painted at all; the key frame repaints everything.
func TestBehindSkipsToKeyFrame(t *testing.T) {
	modulesPage(t)
	type res struct {
		Frames int
		Pixel  []int
	}
	r := eval[res](t, `(async () => {
		const s = new __display.Screen(document.createElement("canvas"));
		const solid = (key, c) => ({key, width: 4, height: 2, tiles: [{x: 0, y: 0, w: 4, h: 2, encoding: 2, data: new Uint8Array([c, c, c, 255])}]});
		s.push(solid(true, 1)); s.push(solid(false, 2)); s.push(solid(false, 3));
		await s.push(solid(true, 4));
		return {Frames: s.frames, Pixel: [...s.pixels().subarray(0, 4)]};
	})()`)
	if r.Frames != 1 || !slices.Equal(r.Pixel, []int{4, 4, 4, 255}) {
		t.Fatalf("painted %d frames, pixel %v; want only the last key frame painted", r.Frames, r.Pixel)
	}
}
