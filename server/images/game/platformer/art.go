package platformer

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
)

// All art is drawn here, in code, once: tiles and sprites at 16×16 "art
// pixels" scaled 2× for a pixel-art look, background layers at full
// resolution. A fixed seed makes the pictures identical everywhere.

func rgb(v uint32) color.RGBA { return color.RGBA{byte(v >> 16), byte(v >> 8), byte(v), 0xff} }

// canvas is a small image drawn at art-pixel resolution.
type canvas struct{ *image.RGBA }

func newCanvas(w, h int) canvas { return canvas{image.NewRGBA(image.Rect(0, 0, w, h))} }

func (c canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.Rect) {
		c.SetRGBA(x, y, col)
	}
}

func (c canvas) rect(x0, y0, x1, y1 int, col color.RGBA) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			c.set(x, y, col)
		}
	}
}

// ellipse fills the ellipse centred on (cx, cy) with radii rx, ry (in
// half-pixel steps so that even sizes centre properly).
func (c canvas) ellipse(cx, cy, rx, ry float64, col color.RGBA) {
	for y := 0; y < c.Rect.Dy(); y++ {
		for x := 0; x < c.Rect.Dx(); x++ {
			dx, dy := (float64(x)+0.5-cx)/rx, (float64(y)+0.5-cy)/ry
			if dx*dx+dy*dy <= 1 {
				c.SetRGBA(x, y, col)
			}
		}
	}
}

// scaled returns c enlarged k× as a sprite.
func (c canvas) scaled(k int) *Sprite {
	b := c.Rect
	img := image.NewRGBA(image.Rect(0, 0, b.Dx()*k, b.Dy()*k))
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < img.Rect.Dx(); x++ {
			copy(img.Pix[img.PixOffset(x, y):][:4], c.Pix[c.PixOffset(x/k, y/k):])
		}
	}
	return newSprite(img)
}

// fromMap draws an ASCII pixel map: each character is a palette key, '.'
// transparent.
func fromMap(rows []string, pal map[byte]color.RGBA) canvas {
	c := newCanvas(len(rows[0]), len(rows))
	for y, r := range rows {
		for x := 0; x < len(r); x++ {
			if col, ok := pal[r[x]]; ok {
				c.SetRGBA(x, y, col)
			}
		}
	}
	return c
}

// Art holds every pre-rendered picture.
type Art struct {
	sky                      []byte // a whole frame
	mountains, clouds, hills *Sprite
	mountainsY, cloudsY      int
	hillsY                   int
	ground                   [8]*Sprite // index: top | left<<1 | right<<2 exposed
	brick, bonus, used       *Sprite
	stone, plank             *Sprite
	player                   [2][6]*Sprite // [facing left][idle, walk0..2, jump, dead]
	enemy                    [2][3]*Sprite // [facing left][walk0, walk1, flat]
	coin                     [8]*Sprite
	flag                     [2]*Sprite
	lifeIcon, coinIcon       *Sprite
}

// Player frame indices.
const (
	frIdle = 0
	frWalk = 1 // 1..3
	frJump = 4
	frDead = 5
)

var art *Art

func loadArt() *Art {
	if art != nil {
		return art
	}
	a := &Art{}
	a.drawSky()
	a.drawLayers()
	a.drawTiles()
	a.drawPlayer()
	a.drawEnemy()
	a.drawCoins()
	a.drawFlag()
	art = a
	loadFonts()
	return a
}

func lerp(a, b color.RGBA, t float64) color.RGBA {
	t = math.Max(0, math.Min(1, t))
	f := func(x, y byte) byte { return byte(float64(x) + (float64(y)-float64(x))*t + 0.5) }
	return color.RGBA{f(a.R, b.R), f(a.G, b.G), f(a.B, b.B), 0xff}
}

func (a *Art) drawSky() {
	img := image.NewRGBA(image.Rect(0, 0, Width, Height))
	top, mid, bottom := rgb(0x2a5cb8), rgb(0x5b9be0), rgb(0xbfe6f6)
	sunX, sunY := 500.0, 78.0
	for y := 0; y < Height; y++ {
		var c color.RGBA
		// Bands of 4 rows keep the gradient pixel-art-like.
		t := float64(y/4*4) / 270
		if t < 0.5 {
			c = lerp(top, mid, t*2)
		} else {
			c = lerp(mid, bottom, (t-0.5)*2)
		}
		for x := 0; x < Width; x++ {
			d := math.Hypot(float64(x)-sunX, float64(y)-sunY)
			px := c
			switch {
			case d < 26:
				px = rgb(0xfff6c8)
			case d < 30:
				px = rgb(0xffe890)
			case d < 46 && (x/2+y/2)%2 == 0:
				px = lerp(c, rgb(0xfff0b0), 0.35)
			}
			img.SetRGBA(x, y, px)
		}
	}
	a.sky = img.Pix
}

// layerW is the period of the parallax layers.
const layerW = 1280

// ridge is a periodic height profile: a sum of sines with whole numbers of
// periods across layerW.
func ridge(x int, terms [][3]float64) float64 {
	h := 0.0
	for _, t := range terms {
		h += t[1] * math.Sin(2*math.Pi*t[0]*float64(x)/layerW+t[2])
	}
	return h
}

func (a *Art) drawLayers() {
	r := rand.New(rand.NewPCG(7, 11))

	// Far mountains: lit and shaded faces by slope, snow above a line.
	a.mountainsY = 110
	m := newCanvas(layerW, Height-a.mountainsY)
	lit, dark, snow, snowDark := rgb(0x8fa3d0), rgb(0x6c7fb0), rgb(0xf0f4ff), rgb(0xc6d0ec)
	terms := [][3]float64{{3, 38, 0.3}, {7, 22, 1.1}, {13, 9, 2.0}, {29, 3, 0.5}}
	for x := 0; x < layerW; x++ {
		top := int(200 + ridge(x, terms) - 60)
		slope := ridge(x+1, terms) - ridge(x-1, terms)
		for y := max(top, a.mountainsY); y < Height; y++ {
			c := lit
			if slope > 0 {
				c = dark
			}
			if y < 140 && y < top+14 {
				c = snow
				if slope > 0 {
					c = snowDark
				}
			}
			m.SetRGBA(x, y-a.mountainsY, c)
		}
	}
	a.mountains = newSprite(m.RGBA)

	// Clouds: clusters of circles with a shaded underside.
	a.cloudsY = 16
	cl := newCanvas(layerW, 150)
	for i := 0; i < 9; i++ {
		cx := float64(i)*layerW/9 + r.Float64()*60
		cy := 40 + r.Float64()*70
		n := 3 + r.IntN(3)
		for j := 0; j < n; j++ {
			ox := (float64(j) - float64(n-1)/2) * 22
			rad := 16 + r.Float64()*12
			if j == 0 || j == n-1 {
				rad *= 0.7
			}
			for _, dx := range []float64{0, -layerW, layerW} {
				circle(cl, cx+ox+dx, cy-rad*0.3, rad, rgb(0xffffff), rgb(0xdde7f6), cy+4)
			}
		}
	}
	a.clouds = newSprite(cl.RGBA)

	// Hills with stripes of shade and a few round trees.
	a.hillsY = 190
	h := newCanvas(layerW, Height-a.hillsY)
	hterms := [][3]float64{{2, 22, 2.2}, {5, 14, 0.2}, {11, 5, 1.3}}
	hill, hillDark, tree, treeDark, trunk := rgb(0x63b45a), rgb(0x4f9c4c), rgb(0x3f8a45), rgb(0x2f6e38), rgb(0x6a4a30)
	tops := make([]int, layerW)
	for x := 0; x < layerW; x++ {
		tops[x] = int(265 + ridge(x, hterms))
		for y := tops[x]; y < Height; y++ {
			c := hill
			if ((y-tops[x])/10)%2 == 1 {
				c = hillDark
			}
			h.SetRGBA(x, y-a.hillsY, c)
		}
	}
	for i := 0; i < 14; i++ {
		tx := (i*layerW/14 + r.IntN(50)) % layerW
		ty := tops[tx] - a.hillsY
		for _, dx := range []int{0, -layerW, layerW} {
			h.rect(tx+dx-2, ty-12, tx+dx+2, ty+4, trunk)
			circleC(h, float64(tx+dx), float64(ty-22), 13, tree, treeDark)
		}
	}
	a.hills = newSprite(h.RGBA)
}

// circle fills a disc, with colour shadow below the line shadowY.
func circle(c canvas, cx, cy, rad float64, col, shadow color.RGBA, shadowY float64) {
	for y := int(cy - rad); y <= int(cy+rad); y++ {
		for x := int(cx - rad); x <= int(cx+rad); x++ {
			if math.Hypot(float64(x)-cx, float64(y)-cy) <= rad {
				if float64(y) > shadowY {
					c.set(x, y, shadow)
				} else {
					c.set(x, y, col)
				}
			}
		}
	}
}

// circleC fills a disc lit from the upper left.
func circleC(c canvas, cx, cy, rad float64, col, darkCol color.RGBA) {
	for y := int(cy - rad); y <= int(cy+rad); y++ {
		for x := int(cx - rad); x <= int(cx+rad); x++ {
			if math.Hypot(float64(x)-cx, float64(y)-cy) <= rad {
				k := col
				if math.Hypot(float64(x)-cx+4, float64(y)-cy+4) > rad {
					k = darkCol
				}
				c.set(x, y, k)
			}
		}
	}
}

func (a *Art) drawTiles() {
	r := rand.New(rand.NewPCG(3, 5))
	dirt, dirtDark, dirtLight := rgb(0xa8683a), rgb(0x84502c), rgb(0xc48454)
	grass, grassLight, grassDark := rgb(0x5cc84a), rgb(0x8ee66a), rgb(0x3d9a3a)
	for v := range 8 {
		top, left, right := v&1 != 0, v&2 != 0, v&4 != 0
		c := newCanvas(16, 16)
		c.rect(0, 0, 16, 16, dirt)
		for i := 0; i < 10; i++ {
			x, y := r.IntN(15), r.IntN(15)
			c.set(x, y, dirtDark)
			c.set(x+1, y, dirtLight)
		}
		if left {
			c.rect(0, 0, 1, 16, dirtDark)
		}
		if right {
			c.rect(15, 0, 16, 16, dirtDark)
		}
		if top {
			c.rect(0, 0, 16, 4, grass)
			c.rect(0, 0, 16, 1, grassLight)
			for x := 0; x < 16; x++ {
				if (x*7)%5 < 3 {
					c.set(x, 4, grass)
				}
				if x%4 == 1 {
					c.set(x, 5, grassDark)
				}
			}
			if left {
				c.rect(0, 0, 1, 5, grassDark)
			}
			if right {
				c.rect(15, 0, 16, 5, grassDark)
			}
		}
		a.ground[v] = c.scaled(2)
	}

	brick, mortar, brickLight := rgb(0xc0603a), rgb(0x6e3420), rgb(0xe08a60)
	b := newCanvas(16, 16)
	b.rect(0, 0, 16, 16, brick)
	for row := 0; row < 4; row++ {
		y := row * 4
		b.rect(0, y+3, 16, y+4, mortar)
		b.rect(0, y, 16, y+1, brickLight)
		off := (row % 2) * 4
		for x := off; x < 16; x += 8 {
			b.rect(x, y, x+1, y+3, mortar)
		}
	}
	a.brick = b.scaled(2)

	bonus := func(face, edge, mark color.RGBA, q bool) *Sprite {
		c := newCanvas(16, 16)
		c.rect(0, 0, 16, 16, edge)
		c.rect(1, 1, 15, 15, face)
		c.rect(1, 1, 15, 2, lerp(face, rgb(0xffffff), 0.4))
		for _, p := range [][2]int{{2, 2}, {13, 2}, {2, 13}, {13, 13}} {
			c.set(p[0], p[1], edge)
		}
		if q {
			qm := []string{
				".xxxx.",
				"xx..xx",
				"....xx",
				"...xx.",
				"..xx..",
				"..xx..",
				"......",
				"..xx..",
			}
			for y, row := range qm {
				for x := range row {
					if row[x] == 'x' {
						c.set(5+x+1, 4+y+1, edge)
						c.set(5+x, 4+y, mark)
					}
				}
			}
		}
		return c.scaled(2)
	}
	a.bonus = bonus(rgb(0xf4bc30), rgb(0x9a5a10), rgb(0xffffff), true)
	a.used = bonus(rgb(0x9a7a5a), rgb(0x5a4030), rgb(0), false)

	s := newCanvas(16, 16)
	s.rect(0, 0, 16, 16, rgb(0x9a9aa8))
	s.rect(0, 0, 16, 2, rgb(0xcfcfdc))
	s.rect(0, 0, 2, 16, rgb(0xcfcfdc))
	s.rect(0, 14, 16, 16, rgb(0x5c5c6c))
	s.rect(14, 0, 16, 16, rgb(0x5c5c6c))
	s.set(5, 6, rgb(0x7a7a88))
	s.set(10, 9, rgb(0x7a7a88))
	a.stone = s.scaled(2)

	p := newCanvas(16, 16)
	p.rect(0, 0, 16, 7, rgb(0xb07840))
	p.rect(0, 0, 16, 1, rgb(0xd8a060))
	p.rect(0, 6, 16, 7, rgb(0x6a4020))
	p.rect(7, 0, 8, 7, rgb(0x6a4020))
	p.set(3, 3, rgb(0x6a4020))
	p.set(12, 3, rgb(0x6a4020))
	a.plank = p.scaled(2)
}

func (a *Art) drawPlayer() {
	pal := map[byte]color.RGBA{
		'k': rgb(0x1c1c2a), 'g': rgb(0x3a3a58), 'w': rgb(0xf6f6ee), 'y': rgb(0xffa020),
		'p': rgb(0x101018), 'r': rgb(0xe03a3a), 'R': rgb(0xa02020), 'x': rgb(0xffffff),
	}
	body := []string{
		"................",
		".....kkkkk......",
		"....kgkkkkk.....",
		"....gkkkkxxk....",
		"....kkkkkxpk....",
		"....kkkkkkyyy...",
		"....kkkkkyyy....",
		"...rrrrrrrrR....",
		"...kkwwwwwkR....",
		"..kkwwwwwwwk....",
		"..kkwwwwwwwk....",
		"..kkwwwwwwwk....",
		"...kwwwwwwk.....",
		"...kkwwwwkk.....",
		"....kkkkkk......",
	}
	feet := []string{
		"...yyy..yyy.....",
		"....yyyyyy......",
		"..yyy....yyy....",
		".....yyyy.......",
	}
	frame := func(bob int, foot string, arm bool, dead bool) *Sprite {
		rows := make([]string, 16)
		for i := range rows {
			rows[i] = "................"
		}
		for i, r := range body {
			if y := i - bob; y >= 0 {
				rows[y] = r
			}
		}
		rows[15] = foot
		if bob > 0 {
			rows[14] = foot
			rows[15] = "................"
		}
		c := fromMap(rows, pal)
		if arm { // flipper raised for jumping
			for _, p := range [][2]int{{1, 6}, {1, 7}, {2, 7}, {2, 8}, {0, 5}} {
				c.SetRGBA(p[0], p[1], pal['k'])
			}
		}
		if dead { // crossed-out eye
			for _, p := range [][2]int{{9, 3}, {10, 4}} {
				c.SetRGBA(p[0], p[1], pal['p'])
			}
			c.SetRGBA(10, 3, pal['x'])
			c.SetRGBA(9, 4, pal['x'])
		}
		return c.scaled(2)
	}
	right := [6]*Sprite{
		frIdle:     frame(0, feet[0], false, false),
		frWalk:     frame(0, feet[2], false, false),
		frWalk + 1: frame(1, feet[1], false, false),
		frWalk + 2: frame(0, feet[0], false, false),
		frJump:     frame(1, feet[3], true, false),
		frDead:     frame(0, feet[3], true, true),
	}
	a.player[0] = right
	for i, s := range right {
		a.player[1][i] = s.flipped()
	}
	a.lifeIcon = frame(0, feet[0], false, false)
}

func (a *Art) drawEnemy() {
	outline, body, shadeC := rgb(0x4a5a98), rgb(0xeef4ff), rgb(0xb6c6ea)
	eye, brow, feetC := rgb(0x141420), rgb(0x203060), rgb(0x3a3a60)
	walk := func(step int) *Sprite {
		c := newCanvas(16, 16)
		c.ellipse(8, 8, 7.5, 7, outline)
		c.ellipse(8, 8, 6.5, 6, body)
		c.ellipse(9.5, 9.5, 4.5, 3.8, body)
		for y := 9; y < 15; y++ { // shade the lower right
			for x := 9; x < 15; x++ {
				if c.RGBAAt(x, y) == body && (x+y) > 21 {
					c.SetRGBA(x, y, shadeC)
				}
			}
		}
		// Angry eyes looking left (the sprite faces left; flipped for right).
		c.rect(4, 6, 6, 9, eye)
		c.rect(8, 6, 10, 9, eye)
		c.set(4, 6, body)
		c.set(8, 6, body)
		c.rect(3, 4, 6, 5, brow)
		c.rect(8, 4, 11, 5, brow)
		c.set(6, 5, brow)
		c.set(7, 5, brow)
		if step == 0 {
			c.rect(3, 14, 7, 16, feetC)
			c.rect(10, 14, 13, 16, feetC)
		} else {
			c.rect(4, 14, 8, 16, feetC)
			c.rect(9, 14, 12, 16, feetC)
		}
		return c.scaled(2)
	}
	flat := newCanvas(16, 16)
	flat.ellipse(8, 13, 8, 3, outline)
	flat.ellipse(8, 13, 7, 2.2, body)
	flat.rect(4, 12, 7, 13, eye)
	flat.rect(9, 12, 12, 13, eye)
	left := [3]*Sprite{walk(0), walk(1), flat.scaled(2)}
	a.enemy[1] = left
	for i, s := range left {
		a.enemy[0][i] = s.flipped()
	}
}

func (a *Art) drawCoins() {
	gold, edge, shine, dark := rgb(0xffd040), rgb(0xb07808), rgb(0xfff4b0), rgb(0xe0a020)
	for i := range a.coin {
		w := 5.5 * math.Abs(math.Cos(float64(i)*math.Pi/8))
		w = math.Max(w, 0.9)
		c := newCanvas(12, 12)
		c.ellipse(6, 6, w+0.5, 6, edge)
		if w > 1.5 {
			c.ellipse(6, 6, w-0.5, 5, gold)
			c.ellipse(6.4, 6.4, math.Max(w-2, 0.6), 3, dark)
			c.ellipse(5.2, 4.5, math.Max(w*0.35, 0.5), 1.6, shine)
		}
		a.coin[i] = c.scaled(2)
	}
	a.coinIcon = a.coin[0]
}

func (a *Art) drawFlag() {
	pole, ball, cloth, clothDark := rgb(0xd8d8e0), rgb(0xffd040), rgb(0x40c060), rgb(0x2a8a40)
	for f := range a.flag {
		c := newCanvas(16, 48)
		c.rect(2, 2, 4, 48, pole)
		c.rect(3, 2, 4, 48, rgb(0x9090a0))
		c.ellipse(3, 2, 2, 2, ball)
		for x := 4; x < 15; x++ {
			off := int(math.Round(1.5 * math.Sin(float64(x)/2.2+float64(f)*math.Pi)))
			for y := 5 + off; y < 14+off-(x-4)/3; y++ {
				col := cloth
				if (x+y)%5 == 0 {
					col = clothDark
				}
				c.set(x, y, col)
			}
		}
		// A white star on the cloth.
		c.rect(7, 8, 10, 9, rgb(0xffffff))
		c.rect(8, 7, 9, 10, rgb(0xffffff))
		c.rect(0, 46, 6, 48, rgb(0x707080)) // base
		a.flag[f] = c.scaled(2)
	}
}
