package platformer

import (
	"image"
	"image/color"
)

// run is a horizontal span [x0, x1) of opaque pixels in one sprite row.
type run struct{ x0, x1 int16 }

// Sprite is a pre-rendered RGBA picture with 1-bit transparency, stored with
// the opaque spans of each row so that drawing it is one copy per span: the
// hot path never looks at single pixels.
type Sprite struct {
	W, H int
	Pix  []byte // W*H*4 bytes, RGBA
	rows [][]run
}

// newSprite makes a sprite from img; pixels with alpha below 128 are
// transparent.
func newSprite(img *image.RGBA) *Sprite {
	b := img.Bounds()
	s := &Sprite{W: b.Dx(), H: b.Dy(), Pix: make([]byte, b.Dx()*b.Dy()*4), rows: make([][]run, b.Dy())}
	for y := 0; y < s.H; y++ {
		src := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
		copy(s.Pix[y*s.W*4:(y+1)*s.W*4], src[:s.W*4])
		x := 0
		for x < s.W {
			for x < s.W && src[x*4+3] < 128 {
				x++
			}
			start := x
			for x < s.W && src[x*4+3] >= 128 {
				s.Pix[(y*s.W+x)*4+3] = 0xff
				x++
			}
			if x > start {
				s.rows[y] = append(s.rows[y], run{int16(start), int16(x)})
			}
		}
	}
	return s
}

// flipped returns the sprite mirrored left to right.
func (s *Sprite) flipped() *Sprite {
	img := image.NewRGBA(image.Rect(0, 0, s.W, s.H))
	for y := 0; y < s.H; y++ {
		for x := 0; x < s.W; x++ {
			if sx := s.W - 1 - x; s.opaque(sx, y) {
				o := (y*s.W + x) * 4
				copy(img.Pix[o:o+4], s.Pix[(y*s.W+sx)*4:])
				img.Pix[o+3] = 0xff
			}
		}
	}
	return newSprite(img)
}

func (s *Sprite) opaque(x, y int) bool {
	for _, r := range s.rows[y] {
		if x >= int(r.x0) && x < int(r.x1) {
			return true
		}
	}
	return false
}

// blit draws s with its top left corner at (x, y), clipped to dst, and
// returns the rectangle it may have touched (empty if none).
func blit(dst *image.RGBA, s *Sprite, x, y int) image.Rectangle {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	r := image.Rect(x, y, x+s.W, y+s.H).Intersect(image.Rect(0, 0, w, h))
	if r.Empty() {
		return image.Rectangle{}
	}
	for sy := r.Min.Y - y; sy < r.Max.Y-y; sy++ {
		drow := dst.Pix[(y+sy)*dst.Stride:]
		srow := s.Pix[sy*s.W*4:]
		for _, rn := range s.rows[sy] {
			a, b := x+int(rn.x0), x+int(rn.x1)
			a, b = max(a, 0), min(b, w)
			if a < b {
				copy(drow[a*4:b*4], srow[(a-x)*4:(b-x)*4])
			}
		}
	}
	return r
}

// fillRect paints r (clipped) with c.
func fillRect(dst *image.RGBA, r image.Rectangle, c color.RGBA) image.Rectangle {
	r = r.Intersect(dst.Rect)
	if r.Empty() {
		return r
	}
	row := dst.Pix[dst.PixOffset(r.Min.X, r.Min.Y):]
	for x := 0; x < r.Dx(); x++ {
		row[x*4], row[x*4+1], row[x*4+2], row[x*4+3] = c.R, c.G, c.B, 0xff
	}
	first := row[:r.Dx()*4]
	for y := r.Min.Y + 1; y < r.Max.Y; y++ {
		copy(dst.Pix[dst.PixOffset(r.Min.X, y):], first)
	}
	return r
}

// shade darkens r (clipped) to num/8 of its brightness: a translucent panel
// behind overlay text.
func shade(dst *image.RGBA, r image.Rectangle, num uint32) image.Rectangle {
	r = r.Intersect(dst.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := dst.Pix[dst.PixOffset(r.Min.X, y):dst.PixOffset(r.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			row[i] = byte(uint32(row[i]) * num >> 3)
			row[i+1] = byte(uint32(row[i+1]) * num >> 3)
			row[i+2] = byte(uint32(row[i+2]) * num >> 3)
		}
	}
	return r
}
