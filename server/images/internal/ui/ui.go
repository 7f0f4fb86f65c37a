// Package ui is the small drawing kit the shipped guest images share: text in
// the 7×13 bitmap font of golang.org/x/image/font/basicfont (also drawn at 2×
// for headings), filled and framed rectangles and gradients, all drawn into an
// *image.RGBA, plus number formatting for people.
//
// It is plain Go so that image logic stays testable natively. It must not
// know about the guest SDK, the host or any particular image: it only draws
// pixels.
package ui

import (
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Metrics of the font, in pixels at 1×.
const (
	CharW  = 7  // advance of every glyph
	LineH  = 13 // line height
	Ascent = 11 // baseline below a line's top
)

var face = basicfont.Face7x13

// Text draws s with its baseline's left end at (x, y) and returns the x where
// it ended.
func Text(dst *image.RGBA, x, y int, s string, c color.Color) int {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
	return d.Dot.X.Round()
}

// TextRight draws s so that it ends at x on baseline y.
func TextRight(dst *image.RGBA, x, y int, s string, c color.Color) {
	Text(dst, x-Width(s), y, s, c)
}

// Width is the advance of s in pixels at 1×.
func Width(s string) int { return CharW * len([]rune(s)) }

// BigText draws s at scale× (each font pixel a scale×scale square) with its
// baseline's left end at (x, y), and returns the x where it ended.
func BigText(dst *image.RGBA, x, y, scale int, s string, c color.RGBA) int {
	w := Width(s)
	if w == 0 {
		return x
	}
	tmp := image.NewAlpha(image.Rect(0, 0, w, LineH))
	d := font.Drawer{Dst: tmp, Src: image.Opaque, Face: face, Dot: fixed.P(0, Ascent)}
	d.DrawString(s)
	top := y - Ascent*scale
	for ty := 0; ty < LineH; ty++ {
		for tx := 0; tx < w; tx++ {
			a := tmp.AlphaAt(tx, ty).A
			if a == 0 {
				continue
			}
			r := image.Rect(x+tx*scale, top+ty*scale, x+(tx+1)*scale, top+(ty+1)*scale)
			draw.DrawMask(dst, r, image.NewUniform(c), image.Point{}, image.NewUniform(color.Alpha{a}), image.Point{}, draw.Over)
		}
	}
	return x + w*scale
}

// Fill paints r with c.
func Fill(dst *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(dst, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// Frame draws a one-pixel border just inside r.
func Frame(dst *image.RGBA, r image.Rectangle, c color.Color) {
	Fill(dst, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), c)
	Fill(dst, image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), c)
	Fill(dst, image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), c)
	Fill(dst, image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), c)
}

// VGradient fills r with a vertical gradient from top to bottom.
func VGradient(dst *image.RGBA, r image.Rectangle, top, bottom color.RGBA) {
	h := r.Dy()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		t := 0
		if h > 1 {
			t = (y - r.Min.Y) * 256 / (h - 1)
		}
		Fill(dst, image.Rect(r.Min.X, y, r.Max.X, y+1), Mix(top, bottom, t))
	}
}

// Mix blends a and b: t = 0 gives a, t = 256 gives b.
func Mix(a, b color.RGBA, t int) color.RGBA {
	m := func(x, y uint8) uint8 { return uint8((int(x)*(256-t) + int(y)*t) / 256) }
	return color.RGBA{m(a.R, b.R), m(a.G, b.G), m(a.B, b.B), 0xff}
}

// Size formats a byte count for people: "812 B", "4.1 KB", "12.0 MB"
// (powers of 1024).
func Size(n int64) string {
	switch {
	case n < 1024:
		return itoa(n) + " B"
	case n < 1024*1024:
		return fixed1(n*10/1024) + " KB"
	default:
		return fixed1(n*10/(1024*1024)) + " MB"
	}
}

// fixed1 formats tenths as "12.3".
func fixed1(tenths int64) string { return itoa(tenths/10) + "." + itoa(tenths%10) }

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
