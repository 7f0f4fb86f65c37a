package gfx

import (
	"image"
	"testing"

	"golang.org/x/image/font/gofont/gomono"
)

func TestTextAndClipping(t *testing.T) {
	f, err := NewFace(gomono.TTF, 14)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := f.Advance("iii"), f.Advance("mmm"); a != b || a == 0 {
		t.Fatalf("monospace advances %d and %d", a, b)
	}
	img := image.NewRGBA(image.Rect(0, 0, 100, 40))
	cv := &Canvas{Img: img, Clip: image.Rect(0, 0, 50, 40)}
	cv.Fill(img.Rect, RGB(0x000000))
	end := cv.Text(f, 2, 20, "WWWWWWWWWWWW", RGB(0xffffff))
	if end != 2+12*f.Advance("W") {
		t.Fatalf("text ends at %d", end)
	}
	lit := func(r image.Rectangle) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if img.RGBAAt(x, y).R > 0 {
					n++
				}
			}
		}
		return n
	}
	if lit(image.Rect(0, 0, 50, 40)) == 0 {
		t.Fatal("no text drawn inside the clip")
	}
	if n := lit(image.Rect(50, 0, 100, 40)); n != 0 {
		t.Fatalf("%d pixels drawn outside the clip", n)
	}
	if len(f.cache) != 3 {
		t.Fatalf("glyph cache holds %d glyphs, want 3: i, m and W, each rasterized once", len(f.cache))
	}
	if s := f.Fit("a long title here", 5*f.Advance("a")); f.Advance(s) > 5*f.Advance("a") {
		t.Fatalf("Fit gave %q", s)
	}
}
