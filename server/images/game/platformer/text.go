package platformer

import (
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// typeface is a glyph cache: basicfont's 7×13 characters rasterised once,
// enlarged scale× into 1-bit masks (chunky, like the rest of the art).
// Drawing text copies colour where the mask is set; nothing is rasterised
// per frame.
type typeface struct {
	scale  int
	adv    int // advance per character
	height int
	masks  [128][]bool // adv × height each
}

var smallFont, hudFont, bigFont *typeface

func loadFonts() {
	if smallFont != nil {
		return
	}
	smallFont, hudFont, bigFont = newTypeface(1), newTypeface(2), newTypeface(4)
}

func newTypeface(scale int) *typeface {
	face := basicfont.Face7x13
	t := &typeface{scale: scale, adv: face.Advance * scale, height: face.Height * scale}
	img := image.NewAlpha(image.Rect(0, 0, face.Advance, face.Height))
	for ch := 32; ch < 127; ch++ {
		draw.Draw(img, img.Rect, image.Transparent, image.Point{}, draw.Src)
		d := font.Drawer{Dst: img, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
		d.DrawString(string(rune(ch)))
		m := make([]bool, t.adv*t.height)
		for y := 0; y < t.height; y++ {
			for x := 0; x < t.adv; x++ {
				m[y*t.adv+x] = img.AlphaAt(x/scale, y/scale).A >= 128
			}
		}
		t.masks[ch] = m
	}
	return t
}

// width is the width of s in pixels.
func (t *typeface) width(s string) int { return len(s) * t.adv }

// draw writes s with its top left at (x, y) in colour c over a dark drop
// shadow and returns the rectangle touched.
func (t *typeface) draw(dst *image.RGBA, s string, x, y int, c color.RGBA) image.Rectangle {
	if s == "" {
		return image.Rectangle{}
	}
	sh := t.scale
	t.drawRaw(dst, s, x+sh, y+sh, color.RGBA{0x14, 0x18, 0x38, 0xff})
	t.drawRaw(dst, s, x, y, c)
	return image.Rect(x, y, x+t.width(s)+sh, y+t.height+sh).Intersect(dst.Rect)
}

// drawCentered draws s centred on cx.
func (t *typeface) drawCentered(dst *image.RGBA, s string, cx, y int, c color.RGBA) image.Rectangle {
	return t.draw(dst, s, cx-t.width(s)/2, y, c)
}

func (t *typeface) drawRaw(dst *image.RGBA, s string, x, y int, c color.RGBA) {
	W, H := dst.Rect.Dx(), dst.Rect.Dy()
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 128 || t.masks[ch] == nil {
			x += t.adv
			continue
		}
		m := t.masks[ch]
		for yy := 0; yy < t.height; yy++ {
			py := y + yy
			if py < 0 || py >= H {
				continue
			}
			row := dst.Pix[py*dst.Stride:]
			for xx, on := range m[yy*t.adv : (yy+1)*t.adv] {
				if px := x + xx; on && px >= 0 && px < W {
					row[px*4], row[px*4+1], row[px*4+2] = c.R, c.G, c.B
				}
			}
		}
		x += t.adv
	}
}
