package display

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"

	"replaydesk/shared/wire"
)

// photo returns a photo-like RGBA image: smooth gradients, mild noise, hard edges.
func photo(w, h int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	fb := make([]byte, w*h*4)
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			rv := 128 + 100*math.Sin(fx*6+fy*2)
			gv := 128 + 90*math.Cos(fy*5-fx*3)
			bv := 60 + 150*fx*fy
			// edges: a disc and a bar of other colours
			if dx, dy := fx-0.6, fy-0.4; dx*dx+dy*dy < 0.04 {
				rv, gv, bv = 230, 200-80*fy, 40
			}
			if x%200 > 150 && y > h/3 && y < h*2/3 {
				rv, gv, bv = 30, 60, 180+40*fx
			}
			n := r.NormFloat64() * 3
			p := fb[(y*w+x)*4:]
			p[0], p[1], p[2], p[3] = clamp(rv+n), clamp(gv+n), clamp(bv+n), 255
		}
	}
	return fb
}

func clamp(v float64) byte { return byte(min(max(math.Round(v), 0), 255)) }

// desk returns desk-like content: flat background, windows, title bars, text strokes.
func desk(w, h int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	fb := make([]byte, w*h*4)
	fill := func(x0, y0, x1, y1 int, c [3]byte) {
		for y := max(y0, 0); y < min(y1, h); y++ {
			for x := max(x0, 0); x < min(x1, w); x++ {
				p := fb[(y*w+x)*4:]
				p[0], p[1], p[2], p[3] = c[0], c[1], c[2], 255
			}
		}
	}
	fill(0, 0, w, h, [3]byte{58, 110, 165})
	for win := range 4 {
		x0, y0 := 40+win*260+r.IntN(40), 40+win*90+r.IntN(40)
		x1, y1 := x0+520, y0+380
		fill(x0, y0, x1, y1, [3]byte{246, 246, 246})
		fill(x0, y0, x1, y0+24, [3]byte{40, 40, 48})
		fill(x0+6, y0+6, x0+18, y0+18, [3]byte{220, 60, 50})
		for line := y0 + 36; line+12 < y1; line += 16 {
			x := x0 + 10
			for x < x1-20 {
				word := 3 + r.IntN(8)
				for range word { // glyph: a few 1-2 px strokes in a 7x11 cell
					for range 3 {
						gx, gy := x+r.IntN(6), line+r.IntN(10)
						if r.IntN(2) == 0 {
							fill(gx, gy, gx+1, gy+1+r.IntN(4), [3]byte{20, 20, 20})
						} else {
							fill(gx, gy, gx+1+r.IntN(4), gy+1, [3]byte{20, 20, 20})
						}
					}
					x += 7
				}
				x += 7
			}
		}
	}
	return fb
}

func psnr(a, b []byte, ch int) float64 {
	var se float64
	n := 0
	for i := 0; i < len(a); i += 4 {
		for c := range 3 {
			if ch >= 0 && c != ch {
				continue
			}
			d := float64(a[i+c]) - float64(b[i+c])
			se += d * d
			n++
		}
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255*float64(n)/se)
}

func toRGBA(fb []byte, w, h int) *image.RGBA {
	return &image.RGBA{Pix: fb, Stride: w * 4, Rect: image.Rect(0, 0, w, h)}
}

func TestJPEGDecodesAndPSNR(t *testing.T) {
	w, h := 203, 117 // not multiples of 8
	src := photo(w, h, 1)
	data := appendJPEG(nil, src, w*4, w, h, newJPEGTables(79))
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ycc, ok := img.(*image.YCbCr)
	if !ok || ycc.SubsampleRatio != image.YCbCrSubsampleRatio444 {
		t.Fatalf("decoded %T, want 4:4:4 YCbCr", img)
	}
	got := make([]byte, w*h*4)
	if err := Apply([]Tile{{0, 0, w, h, wire.EncJPEG, data}}, got, w, h, w*4); err != nil {
		t.Fatal(err)
	}
	p := psnr(src, got, -1)
	t.Logf("photo %dx%d q79 4:4:4: %d bytes, PSNR %.2f dB", w, h, len(data), p)
	if p < 35 {
		t.Fatalf("PSNR %.2f < 35", p)
	}
	for _, q := range []int{1, 10, 50, 100} {
		if _, err := jpeg.Decode(bytes.NewReader(appendJPEG(nil, src, w*4, w, h, newJPEGTables(q)))); err != nil {
			t.Fatalf("q%d: %v", q, err)
		}
	}
}

func TestChroma444BeatsGo420(t *testing.T) {
	w, h := 128, 64
	src := make([]byte, w*h*4)
	for y := range h {
		for x := range w {
			p := src[(y*w+x)*4:]
			if (x/2+y/3)%2 == 0 { // 2 px wide red/blue stripes
				p[0], p[1], p[2] = 220, 20, 30
			} else {
				p[0], p[1], p[2] = 30, 40, 210
			}
			p[3] = 255
		}
	}
	ours := appendJPEG(nil, src, w*4, w, h, newJPEGTables(79))
	var goBuf bytes.Buffer
	if err := jpeg.Encode(&goBuf, toRGBA(src, w, h), &jpeg.Options{Quality: 79}); err != nil {
		t.Fatal(err)
	}
	dec := func(b []byte) []byte {
		fb := make([]byte, w*h*4)
		if err := Apply([]Tile{{0, 0, w, h, wire.EncJPEG, b}}, fb, w, h, w*4); err != nil {
			t.Fatal(err)
		}
		return fb
	}
	a, b := dec(ours), dec(goBuf.Bytes())
	for c, name := range []string{"R", "G", "B"} {
		t.Logf("%s PSNR: 4:4:4 %.2f dB (%d B), Go 4:2:0 %.2f dB (%d B)", name, psnr(src, a, c), len(ours), psnr(src, b, c), goBuf.Len())
	}
	if pa, pb := psnr(src, a, 0), psnr(src, b, 0); pa < pb+3 {
		t.Fatalf("red: 4:4:4 %.2f not clearly better than 4:2:0 %.2f", pa, pb)
	}
	if pa, pb := psnr(src, a, 2), psnr(src, b, 2); pa < pb+3 {
		t.Fatalf("blue: 4:4:4 %.2f not clearly better than 4:2:0 %.2f", pa, pb)
	}
}

func randRect(r *rand.Rand, w, h int) image.Rectangle {
	x0, y0 := r.IntN(w), r.IntN(h)
	return image.Rect(x0, y0, x0+1+r.IntN(w/3), y0+1+r.IntN(h/3))
}

// mutate changes pixels inside rect to new content (desk-like or noisy).
func mutate(r *rand.Rand, fb []byte, w, h int, rect image.Rectangle) {
	rect = rect.Intersect(image.Rect(0, 0, w, h))
	kind := r.IntN(3)
	c := [4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		for x := rect.Min.X; x < rect.Max.X; x++ {
			p := fb[(y*w+x)*4:]
			switch kind {
			case 0:
				copy(p[:4], c[:])
			case 1:
				if (x+y)%3 == 0 {
					p[0], p[1], p[2], p[3] = byte(x), byte(y), byte(x^y), 255
				}
			default:
				p[0], p[1], p[2], p[3] = byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())
			}
		}
	}
}

func TestLosslessRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, ts := range []int{16, 64} {
		w, h := 301, 203
		fb := desk(w, h, 3)
		copy(fb[w*4*100:], photo(w, 50, 4))
		enc := NewEncoder(Options{Lossless: true, TileSize: ts})
		view := make([]byte, w*h*4)
		var dec Decoder
		for step := range 60 {
			var damage []image.Rectangle
			for range 1 + r.IntN(4) {
				rect := randRect(r, w, h)
				if r.IntN(4) != 0 {
					mutate(r, fb, w, h, rect)
				}
				// over-report sometimes; under-report never
				damage = append(damage, rect.Inset(-r.IntN(20)))
			}
			tiles := enc.Encode(fb, w, h, w*4, damage)
			for _, tl := range tiles {
				if tl.Encoding == wire.EncJPEG {
					t.Fatal("JPEG in lossless mode")
				}
			}
			if err := dec.Apply(tiles, view, w, h, w*4); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(view, fb) {
				t.Fatalf("tile %d step %d: framebuffers differ", ts, step)
			}
		}
	}
}

func TestUnchangedTilesNotSent(t *testing.T) {
	w, h := 256, 192
	fb := desk(w, h, 5)
	enc := NewEncoder(Options{})
	if n := len(enc.Encode(fb, w, h, w*4, nil)); n == 0 {
		t.Fatal("first frame sent nothing")
	}
	if tiles := enc.Encode(fb, w, h, w*4, []image.Rectangle{image.Rect(0, 0, w, h)}); len(tiles) != 0 {
		t.Fatalf("unchanged frame sent %d tiles", len(tiles))
	}
	fb[(100*w+100)*4] ^= 0xff
	tiles := enc.Encode(fb, w, h, w*4, []image.Rectangle{image.Rect(0, 0, w, h)})
	if len(tiles) != 1 || tiles[0].X != 64 || tiles[0].Y != 64 || tiles[0].W != 64 || tiles[0].H != 64 {
		t.Fatalf("one changed pixel gave %+v", tiles)
	}
	if len(enc.Key(fb, w, h, w*4)) == 0 {
		t.Fatal("key frame empty")
	}
}

func TestLossyRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	w, h := 320, 240
	fb := photo(w, h, 11)
	enc := NewEncoder(Options{})
	view := make([]byte, w*h*4)
	for step := range 20 {
		rect := randRect(r, w, h)
		next := photo(w, h, uint64(100+step))
		for y := max(rect.Min.Y, 0); y < min(rect.Max.Y, h); y++ {
			for x := max(rect.Min.X, 0); x < min(rect.Max.X, w); x++ {
				copy(fb[(y*w+x)*4:][:4], next[(y*w+x)*4:])
			}
		}
		if err := Apply(enc.Encode(fb, w, h, w*4, []image.Rectangle{rect}), view, w, h, w*4); err != nil {
			t.Fatal(err)
		}
		if p := psnr(fb, view, -1); p < 35 {
			t.Fatalf("step %d: PSNR %.2f < 35", step, p)
		}
	}
}

func TestWireConversion(t *testing.T) {
	w, h := 130, 70
	fb := desk(w, h, 1)
	tiles := NewEncoder(Options{}).Encode(fb, w, h, w*4, nil)
	m := &wire.DisplayFrame{Seq: 1, Key: true, Width: uint32(w), Height: uint32(h)}
	for _, tl := range tiles {
		m.Tiles = append(m.Tiles, tl.Wire())
	}
	back := make([]Tile, len(m.Tiles))
	for i, wt := range m.Tiles {
		back[i] = FromWire(wt)
	}
	view := make([]byte, w*h*4)
	if err := Apply(back, view, w, h, w*4); err != nil {
		t.Fatal(err)
	}
}

func TestApplyRejects(t *testing.T) {
	fb := make([]byte, 16*16*4)
	for _, tl := range []Tile{
		{X: 10, Y: 0, W: 8, H: 8, Encoding: wire.EncSolid, Data: []byte{1, 2, 3, 4}},
		{X: 0, Y: 0, W: 8, H: 8, Encoding: wire.EncSolid, Data: []byte{1, 2, 3}},
		{X: 0, Y: 0, W: 8, H: 8, Encoding: wire.EncZlib, Data: []byte{0x78, 0x9c}},
		{X: 0, Y: 0, W: 8, H: 8, Encoding: 99, Data: []byte{1}},
		{X: 0, Y: 0, W: 8, H: 8, Encoding: wire.EncJPEG, Data: appendJPEG(nil, make([]byte, 16*16*4), 64, 16, 16, newJPEGTables(79))},
	} {
		if err := Apply([]Tile{tl}, fb, 16, 16, 64); err == nil {
			t.Errorf("%+v accepted", tl)
		}
	}
}
