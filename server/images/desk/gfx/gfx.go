// Package gfx is the desk's drawing kit: a canvas that clips everything to
// the area being repainted, filled and rounded rectangles, anti-aliased
// circles and lines, soft shadows, and text in Go fonts through a glyph
// cache (each glyph is rasterized once, then blended from its mask).
//
// It knows nothing about windows, apps or the guest ABI; it draws into an
// *image.RGBA.
package gfx

import (
	"image"
	"image/color"
	"math"
)

// Canvas draws into Img, touching only pixels inside Clip.
type Canvas struct {
	Img  *image.RGBA
	Clip image.Rectangle
}

// RGB makes an opaque colour from 0xRRGGBB.
func RGB(v uint32) color.RGBA {
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 0xff}
}

// Mix blends a towards b by t in [0, 1].
func Mix(a, b color.RGBA, t float64) color.RGBA {
	f := func(x, y uint8) uint8 { return uint8(float64(x) + (float64(y)-float64(x))*t + 0.5) }
	return color.RGBA{f(a.R, b.R), f(a.G, b.G), f(a.B, b.B), 0xff}
}

// Fill paints r with c, opaque.
func (cv *Canvas) Fill(r image.Rectangle, c color.RGBA) {
	r = r.Intersect(cv.Clip)
	if r.Empty() {
		return
	}
	img := cv.Img
	row := img.PixOffset(r.Min.X, r.Min.Y)
	w := r.Dx() * 4
	// Fill the first row, then copy it: much faster than per-pixel Set.
	first := img.Pix[row : row+w]
	for i := 0; i < w; i += 4 {
		first[i], first[i+1], first[i+2], first[i+3] = c.R, c.G, c.B, 0xff
	}
	for y := r.Min.Y + 1; y < r.Max.Y; y++ {
		o := img.PixOffset(r.Min.X, y)
		copy(img.Pix[o:o+w], first)
	}
}

// blendPx blends c into the pixel at offset o with coverage a (0..255).
func blendPx(pix []uint8, o int, c color.RGBA, a uint32) {
	if a == 0 {
		return
	}
	if a >= 255 {
		pix[o], pix[o+1], pix[o+2] = c.R, c.G, c.B
		return
	}
	ia := 255 - a
	pix[o] = uint8((uint32(pix[o])*ia + uint32(c.R)*a + 127) / 255)
	pix[o+1] = uint8((uint32(pix[o+1])*ia + uint32(c.G)*a + 127) / 255)
	pix[o+2] = uint8((uint32(pix[o+2])*ia + uint32(c.B)*a + 127) / 255)
}

// Blend paints r with c at opacity a (0..255).
func (cv *Canvas) Blend(r image.Rectangle, c color.RGBA, a uint32) {
	r = r.Intersect(cv.Clip)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := cv.Img.PixOffset(r.Min.X, y)
		for x := r.Min.X; x < r.Max.X; x, o = x+1, o+4 {
			blendPx(cv.Img.Pix, o, c, a)
		}
	}
}

// Copy copies src's pixels in r (same coordinates) onto the canvas.
func (cv *Canvas) Copy(src *image.RGBA, r image.Rectangle) {
	r = r.Intersect(cv.Clip).Intersect(src.Rect)
	if r.Empty() {
		return
	}
	w := r.Dx() * 4
	for y := r.Min.Y; y < r.Max.Y; y++ {
		o := cv.Img.PixOffset(r.Min.X, y)
		s := src.PixOffset(r.Min.X, y)
		copy(cv.Img.Pix[o:o+w], src.Pix[s:s+w])
	}
}

// coverage turns a signed distance (negative inside) into 0..255.
func coverage(d float64) uint32 {
	switch {
	case d <= -0.5:
		return 255
	case d >= 0.5:
		return 0
	}
	return uint32((0.5 - d) * 255)
}

// shape paints c with the coverage of the signed distance function sdf over
// box (pixel centres are at +0.5), scaled by alpha.
func (cv *Canvas) shape(box image.Rectangle, c color.RGBA, alpha uint32, sdf func(x, y float64) float64) {
	box = box.Intersect(cv.Clip)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		o := cv.Img.PixOffset(box.Min.X, y)
		for x := box.Min.X; x < box.Max.X; x, o = x+1, o+4 {
			a := coverage(sdf(float64(x)+0.5, float64(y)+0.5))
			blendPx(cv.Img.Pix, o, c, a*alpha/255)
		}
	}
}

// roundSDF is the signed distance to a rectangle with corners of radius rad.
func roundSDF(r image.Rectangle, rad float64) func(x, y float64) float64 {
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	hx, hy := float64(r.Dx())/2-rad, float64(r.Dy())/2-rad
	return func(x, y float64) float64 {
		dx, dy := math.Abs(x-cx)-hx, math.Abs(y-cy)-hy
		out := math.Hypot(max(dx, 0), max(dy, 0))
		return out + min(max(dx, dy), 0) - rad
	}
}

// RoundRect fills r with corners of radius rad, anti-aliased. Only the
// corners are computed per pixel; the rest is plain fills.
func (cv *Canvas) RoundRect(r image.Rectangle, rad int, c color.RGBA) {
	if rad <= 0 {
		cv.Fill(r, c)
		return
	}
	rad = min(rad, r.Dx()/2, r.Dy()/2)
	cv.Fill(image.Rect(r.Min.X, r.Min.Y+rad, r.Max.X, r.Max.Y-rad), c)
	cv.Fill(image.Rect(r.Min.X+rad, r.Min.Y, r.Max.X-rad, r.Min.Y+rad), c)
	cv.Fill(image.Rect(r.Min.X+rad, r.Max.Y-rad, r.Max.X-rad, r.Max.Y), c)
	sdf := roundSDF(r, float64(rad))
	for _, corner := range []image.Rectangle{
		image.Rect(r.Min.X, r.Min.Y, r.Min.X+rad, r.Min.Y+rad),
		image.Rect(r.Max.X-rad, r.Min.Y, r.Max.X, r.Min.Y+rad),
		image.Rect(r.Min.X, r.Max.Y-rad, r.Min.X+rad, r.Max.Y),
		image.Rect(r.Max.X-rad, r.Max.Y-rad, r.Max.X, r.Max.Y),
	} {
		cv.shape(corner, c, 255, sdf)
	}
}

// RoundRectTop fills r with only its top corners rounded (title bars).
func (cv *Canvas) RoundRectTop(r image.Rectangle, rad int, c color.RGBA) {
	cv.Fill(image.Rect(r.Min.X, r.Min.Y+rad, r.Max.X, r.Max.Y), c)
	cv.Fill(image.Rect(r.Min.X+rad, r.Min.Y, r.Max.X-rad, r.Min.Y+rad), c)
	sdf := roundSDF(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+4*rad), float64(rad))
	cv.shape(image.Rect(r.Min.X, r.Min.Y, r.Min.X+rad, r.Min.Y+rad), c, 255, sdf)
	cv.shape(image.Rect(r.Max.X-rad, r.Min.Y, r.Max.X, r.Min.Y+rad), c, 255, sdf)
}

// Shadow paints a soft shadow around r, spreading by spread pixels and
// offset down by dy. Only the ring outside r is painted: r itself is
// about to be covered by the window. Along the straight edges the distance
// is one subtraction; only the corners need a square root.
func (cv *Canvas) Shadow(r image.Rectangle, spread, dy int, strength float64) {
	const rad = 6
	in := r.Add(image.Pt(0, dy))
	box := in.Inset(-spread)
	var lut [64]uint32 // coverage by distance outside the rounded rect, in 1/2 px
	for i := range lut {
		t := 1 - float64(i)/2/float64(spread)
		if t > 0 {
			lut[i] = uint32(strength * t * t * 255)
		}
	}
	black := color.RGBA{0, 0, 0, 255}
	x0, x1 := in.Min.X+rad, in.Max.X-rad
	y0, y1 := in.Min.Y+rad, in.Max.Y-rad
	strips := []image.Rectangle{
		image.Rect(box.Min.X, box.Min.Y, box.Max.X, r.Min.Y),
		image.Rect(box.Min.X, r.Max.Y, box.Max.X, box.Max.Y),
		image.Rect(box.Min.X, r.Min.Y, r.Min.X, r.Max.Y),
		image.Rect(r.Max.X, r.Min.Y, box.Max.X, r.Max.Y),
	}
	for _, st := range strips {
		st = st.Intersect(cv.Clip)
		for y := st.Min.Y; y < st.Max.Y; y++ {
			o := cv.Img.PixOffset(st.Min.X, y)
			ddy := 0
			if y < y0 {
				ddy = y0 - y
			} else if y >= y1 {
				ddy = y - y1 + 1
			}
			for x := st.Min.X; x < st.Max.X; x, o = x+1, o+4 {
				ddx := 0
				if x < x0 {
					ddx = x0 - x
				} else if x >= x1 {
					ddx = x - x1 + 1
				}
				var d int // twice the distance outside, in pixels
				switch {
				case ddx == 0:
					d = 2 * (ddy - rad)
				case ddy == 0:
					d = 2 * (ddx - rad)
				default:
					d = int(2 * (math.Sqrt(float64(ddx*ddx+ddy*ddy)) - rad))
				}
				d = max(d, 0)
				if d < len(lut) {
					blendPx(cv.Img.Pix, o, black, lut[d])
				}
			}
		}
	}
}

// CopyAt copies all of src onto the canvas with its top left corner at at.
func (cv *Canvas) CopyAt(src *image.RGBA, at image.Point) {
	dst := src.Rect.Sub(src.Rect.Min).Add(at).Intersect(cv.Clip)
	if dst.Empty() {
		return
	}
	w := dst.Dx() * 4
	for y := dst.Min.Y; y < dst.Max.Y; y++ {
		o := cv.Img.PixOffset(dst.Min.X, y)
		sp := src.PixOffset(src.Rect.Min.X+dst.Min.X-at.X, src.Rect.Min.Y+y-at.Y)
		copy(cv.Img.Pix[o:o+w], src.Pix[sp:sp+w])
	}
}

// Circle fills a disc of radius rad centred at (cx, cy).
func (cv *Canvas) Circle(cx, cy, rad float64, c color.RGBA) {
	box := image.Rect(int(cx-rad-1), int(cy-rad-1), int(cx+rad+2), int(cy+rad+2))
	cv.shape(box, c, 255, func(x, y float64) float64 { return math.Hypot(x-cx, y-cy) - rad })
}

// Ring strokes a circle of radius rad with the given width.
func (cv *Canvas) Ring(cx, cy, rad, width float64, c color.RGBA) {
	box := image.Rect(int(cx-rad-width), int(cy-rad-width), int(cx+rad+width+1), int(cy+rad+width+1))
	cv.shape(box, c, 255, func(x, y float64) float64 { return math.Abs(math.Hypot(x-cx, y-cy)-rad) - width/2 })
}

// Line strokes a segment with round caps.
func (cv *Canvas) Line(x0, y0, x1, y1, width float64, c color.RGBA) {
	h := width/2 + 1
	box := image.Rect(int(min(x0, x1)-h), int(min(y0, y1)-h), int(max(x0, x1)+h+1), int(max(y0, y1)+h+1))
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	cv.shape(box, c, 255, func(x, y float64) float64 {
		t := 0.0
		if l2 > 0 {
			t = max(0, min(1, ((x-x0)*dx+(y-y0)*dy)/l2))
		}
		return math.Hypot(x-x0-t*dx, y-y0-t*dy) - width/2
	})
}

// Outline strokes the 1-pixel border of r.
func (cv *Canvas) Outline(r image.Rectangle, c color.RGBA, a uint32) {
	cv.Blend(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), c, a)
	cv.Blend(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), c, a)
	cv.Blend(image.Rect(r.Min.X, r.Min.Y+1, r.Min.X+1, r.Max.Y-1), c, a)
	cv.Blend(image.Rect(r.Max.X-1, r.Min.Y+1, r.Max.X, r.Max.Y-1), c, a)
}

// Bitmap paints a small picture given as rows of characters: each
// character maps to a colour in pal; others are transparent.
func (cv *Canvas) Bitmap(x, y int, rows []string, pal map[byte]color.RGBA) {
	for j, row := range rows {
		for i := 0; i < len(row); i++ {
			c, ok := pal[row[i]]
			if !ok || !image.Pt(x+i, y+j).In(cv.Clip) {
				continue
			}
			o := cv.Img.PixOffset(x+i, y+j)
			blendPx(cv.Img.Pix, o, c, uint32(c.A))
		}
	}
}
