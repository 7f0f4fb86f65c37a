package gfx

import (
	"image"
	"image/color"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// glyph is a rasterized glyph: its coverage mask, where it sits relative to
// the pen (on the baseline), and how far it moves the pen.
type glyph struct {
	mask    []uint8
	w, h    int
	dx, dy  int
	advance int
}

// Face is a font at one size with a cache of rasterized glyphs. Advances
// are whole pixels so that layout is simple integer arithmetic.
type Face struct {
	face   font.Face
	cache  map[rune]*glyph
	Ascent int // baseline below the line's top
	Height int // line height
}

// NewFace parses an OpenType font and sizes it (in pixels).
func NewFace(ttf []byte, size float64) (*Face, error) {
	f, err := opentype.Parse(ttf)
	if err != nil {
		return nil, err
	}
	ff, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, err
	}
	m := ff.Metrics()
	return &Face{
		face:   ff,
		cache:  map[rune]*glyph{},
		Ascent: m.Ascent.Ceil(),
		Height: (m.Ascent + m.Descent).Ceil() + 2,
	}, nil
}

// glyph returns r's cached glyph, rasterizing it the first time.
func (f *Face) glyph(r rune) *glyph {
	if g, ok := f.cache[r]; ok {
		return g
	}
	g := &glyph{}
	dr, mask, mp, adv, ok := f.face.Glyph(fixed.P(0, 0), r)
	if !ok && r != '?' {
		g = f.glyph('?')
		f.cache[r] = g
		return g
	}
	g.advance = adv.Round()
	g.dx, g.dy, g.w, g.h = dr.Min.X, dr.Min.Y, dr.Dx(), dr.Dy()
	g.mask = make([]uint8, g.w*g.h)
	for y := 0; y < g.h; y++ {
		for x := 0; x < g.w; x++ {
			_, _, _, a := mask.At(mp.X+x, mp.Y+y).RGBA()
			g.mask[y*g.w+x] = uint8(a >> 8)
		}
	}
	f.cache[r] = g
	return g
}

// Advance is the width of s in pixels.
func (f *Face) Advance(s string) int {
	w := 0
	for _, r := range s {
		w += f.glyph(r).advance
	}
	return w
}

// Text draws s with its baseline at y, starting at x, and returns the x
// where it ends.
func (cv *Canvas) Text(f *Face, x, y int, s string, c color.RGBA) int {
	clip := cv.Clip
	if y-f.Ascent-4 >= clip.Max.Y || y+f.Height <= clip.Min.Y {
		return x + f.Advance(s) // the line is outside the repaint: skip the pixels
	}
	for _, r := range s {
		g := f.glyph(r)
		gr := image.Rect(x+g.dx, y+g.dy, x+g.dx+g.w, y+g.dy+g.h)
		if x >= clip.Max.X {
			x += g.advance // past the clip: only measure
			continue
		}
		if vis := gr.Intersect(clip); !vis.Empty() {
			for py := vis.Min.Y; py < vis.Max.Y; py++ {
				m := g.mask[(py-gr.Min.Y)*g.w:]
				o := cv.Img.PixOffset(vis.Min.X, py)
				for px := vis.Min.X; px < vis.Max.X; px, o = px+1, o+4 {
					blendPx(cv.Img.Pix, o, c, uint32(m[px-gr.Min.X]))
				}
			}
		}
		x += g.advance
	}
	return x
}

// Fit shortens s with an ellipsis so that it is at most w pixels wide.
func (f *Face) Fit(s string, w int) string {
	if f.Advance(s) <= w {
		return s
	}
	rs := []rune(s)
	for len(rs) > 0 && f.Advance(string(rs)+"…") > w {
		rs = rs[:len(rs)-1]
	}
	return string(rs) + "…"
}
