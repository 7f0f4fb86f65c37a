package card

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"replaydesk/shared/abi"
)

// Font metrics of basicfont.Face7x13.
const (
	charW  = 7
	lineH  = 13
	ascent = 11
)

var (
	white  = color.RGBA{0xff, 0xff, 0xff, 0xff}
	grey   = color.RGBA{0x90, 0x90, 0x98, 0xff}
	dim    = color.RGBA{0x50, 0x50, 0x60, 0xff}
	yellow = color.RGBA{0xff, 0xd8, 0x40, 0xff}
	red    = color.RGBA{0xff, 0x50, 0x50, 0xff}
	green  = color.RGBA{0x60, 0xe0, 0x60, 0xff}
	orange = color.RGBA{0xff, 0x90, 0x20, 0xff}
)

var panelBG = [numPanels]color.RGBA{
	pHeader:  {0x18, 0x24, 0x50, 0xff},
	pNoise:   {0x08, 0x08, 0x08, 0xff},
	pDisk:    {0x18, 0x2c, 0x1c, 0xff},
	pNet:     {0x2c, 0x1c, 0x1c, 0xff},
	pPointer: {0x10, 0x10, 0x18, 0xff},
	pWheel:   {0x14, 0x14, 0x14, 0xff},
	pUsers:   {0x1a, 0x1a, 0x26, 0xff},
	pAnim:    {0x12, 0x22, 0x2e, 0xff},
	pKeys:    {0x26, 0x20, 0x14, 0xff},
}

// userColors are the pointer colours, by user number modulo their count.
var userColors = []color.RGBA{
	{0xff, 0xff, 0xff, 0xff},
	{0xff, 0x60, 0x60, 0xff},
	{0x60, 0xff, 0x60, 0xff},
	{0x60, 0xa0, 0xff, 0xff},
	{0xff, 0xe0, 0x40, 0xff},
	{0xff, 0x60, 0xff, 0xff},
	{0x40, 0xff, 0xff, 0xff},
	{0xff, 0xa0, 0x40, 0xff},
}

func userColor(id uint16) color.RGBA { return userColors[int(id)%len(userColors)] }

func darken(c color.RGBA) color.RGBA {
	return color.RGBA{c.R / 2, c.G / 2, c.B / 2, 0xff}
}

// canvas draws into one panel; everything is clipped to it, so a panel's
// drawing never changes pixels outside its rectangle.
type canvas struct {
	dst *image.RGBA
	r   image.Rectangle
}

func (c *Card) canvas(p panel) canvas {
	r := panelRects[p]
	return canvas{c.img.SubImage(r).(*image.RGBA), r}
}

func (cv canvas) fill(r image.Rectangle, col color.RGBA) {
	draw.Draw(cv.dst, r, &image.Uniform{col}, image.Point{}, draw.Src)
}

func (cv canvas) set(x, y int, col color.RGBA) {
	if (image.Point{x, y}).In(cv.r) {
		cv.dst.SetRGBA(x, y, col)
	}
}

// text draws s with its top left corner at (x, y) and returns the x after it.
func (cv canvas) text(x, y int, s string, col color.RGBA) int {
	d := font.Drawer{
		Dst:  cv.dst,
		Src:  &image.Uniform{col},
		Face: basicfont.Face7x13,
		Dot:  fixed.P(x, y+ascent),
	}
	d.DrawString(s)
	return d.Dot.X.Round()
}

// line returns the top of text line i of the panel.
func (cv canvas) line(i int) int { return cv.r.Min.Y + 3 + lineH*i }

// outline draws a 1-pixel rectangle border.
func (cv canvas) outline(r image.Rectangle, col color.RGBA) {
	cv.fill(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), col)
	cv.fill(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), col)
	cv.fill(image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), col)
	cv.fill(image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// segment draws a line from p to q (Bresenham).
func (cv canvas) segment(p, q image.Point, col color.RGBA) {
	dx, dy := abs(q.X-p.X), -abs(q.Y-p.Y)
	sx, sy := sign(q.X-p.X), sign(q.Y-p.Y)
	e := dx + dy
	for {
		cv.set(p.X, p.Y, col)
		if p == q {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			p.X += sx
		}
		if e2 <= dx {
			e += dx
			p.Y += sy
		}
	}
}

func (cv canvas) disc(c image.Point, r int, col color.RGBA) {
	for y := -r; y <= r; y++ {
		for x := -r; x <= r; x++ {
			if x*x+y*y <= r*r {
				cv.set(c.X+x, c.Y+y, col)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// redraw draws every dirty panel from the card's state.
func (c *Card) redraw() {
	for p := range numPanels {
		if !c.dirty[p] {
			continue
		}
		c.dirty[p] = false
		cv := c.canvas(p)
		cv.fill(cv.r, panelBG[p])
		switch p {
		case pHeader:
			c.drawHeader(cv)
		case pNoise:
			c.drawNoise(cv)
		case pDisk:
			c.drawDisk(cv)
		case pNet:
			c.drawNet(cv)
		case pPointer:
			c.drawPointer(cv)
		case pWheel:
			c.drawWheel(cv)
		case pUsers:
			c.drawUsers(cv)
		case pAnim:
			c.drawAnim(cv)
		case pKeys:
			c.drawKeys(cv)
		}
		if p != pHeader {
			cv.outline(cv.r, dim)
		}
	}
}

func (c *Card) drawHeader(cv canvas) {
	y := cv.r.Min.Y + 4
	cv.text(4, y, "replaydesk testcard", white)
	mode := "idle"
	if c.anim {
		mode = "busy"
	}
	cv.text(196, y, fmt.Sprintf("step %d  %s", c.steps, mode), grey)
	clock := c.now.UTC().Format("2006-01-02 15:04:05.000")
	cv.text(cv.r.Max.X-4-charW*len(clock), y, clock, yellow)
}

func (c *Card) drawNoise(cv canvas) {
	cv.text(4, cv.line(0), fmt.Sprintf("random %x", c.seed[:8]), white)
	rng := rand.New(rand.NewChaCha8(c.seed))
	const cell = 8
	top := cv.line(1) + 4
	for y := top; y+cell <= cv.r.Max.Y-2; y += cell {
		for x := cv.r.Min.X + 4; x+cell <= cv.r.Max.X-4; x += cell {
			v := rng.Uint32()
			cv.fill(image.Rect(x, y, x+cell, y+cell), color.RGBA{uint8(v), uint8(v >> 8), uint8(v >> 16), 0xff})
		}
	}
}

func (c *Card) drawDisk(cv canvas) {
	x := cv.r.Min.X + 4
	if c.diskBlocks == 0 && c.diskErr != nil {
		cv.text(x, cv.line(0), "disk: none", white)
		cv.text(x, cv.line(1), errText(c.diskErr), red)
	} else {
		cv.text(x, cv.line(0), fmt.Sprintf("disk %s %d blk", c.diskMode, c.diskBlocks), white)
		cv.text(x, cv.line(1), fmt.Sprintf("fnv64a blk 1..%d", c.scanned), grey)
		cv.text(x, cv.line(2), fmt.Sprintf(" %016x", c.checksum), green)
		if c.diskErr != nil {
			cv.text(x, cv.line(5), errText(c.diskErr), red)
		}
	}
	cv.text(x, cv.line(3), fmt.Sprintf("counter %d", c.counter), yellow)
	w := fmt.Sprintf("writes %d", c.diskWrites)
	col := grey
	if c.writeErr != nil {
		w += " " + errText(c.writeErr)
		col = red
	}
	cv.text(x, cv.line(4), w, col)
}

func (c *Card) drawNet(cv canvas) {
	x := cv.r.Min.X + 4
	state, col := "open", green
	switch {
	case c.netErr != nil:
		state, col = errText(c.netErr), red
	case c.netEOF:
		state, col = "closed by peer", orange
	case c.conn == nil:
		state, col = "not open", grey
	}
	x2 := cv.text(x, cv.line(0), "net "+echoName+": ", white)
	cv.text(x2, cv.line(0), state, col)
	cv.text(x, cv.line(1), fmt.Sprintf("sent %d B, %d msgs", c.sent, c.msgs), grey)
	cv.text(x, cv.line(2), fmt.Sprintf("recv %d B", c.recvd), grey)
	if len(c.pending) > 0 {
		cv.text(x, cv.line(3), fmt.Sprintf("pending %d B", len(c.pending)), orange)
	}
	cv.text(x, cv.line(4), "last received:", white)
	cv.text(x, cv.line(5), clip(c.lastLine, 27), yellow)
}

// toMap converts framebuffer coordinates to the pointer panel's half-scale map.
func toMap(p image.Point) image.Point {
	r := panelRects[pPointer]
	return image.Pt(r.Min.X+p.X/2, r.Min.Y+p.Y/2)
}

func (c *Card) drawPointer(cv canvas) {
	grid := color.RGBA{0x1c, 0x1c, 0x2a, 0xff}
	for x := 0; x < Width; x += 40 {
		cv.fill(image.Rect(toMap(image.Pt(x, 0)).X, cv.r.Min.Y, toMap(image.Pt(x, 0)).X+1, cv.r.Max.Y), grid)
	}
	for y := 0; y < Height; y += 40 {
		cv.fill(image.Rect(cv.r.Min.X, toMap(image.Pt(0, y)).Y, cv.r.Max.X, toMap(image.Pt(0, y)).Y+1), grid)
	}
	for _, r := range panelRects {
		cv.outline(image.Rectangle{toMap(r.Min), toMap(r.Max)}, dim)
	}
	cv.text(cv.r.Min.X+4, cv.line(0), "pointers 1:2", grey)
	for _, k := range c.clicks {
		p := toMap(k.p)
		cv.fill(image.Rect(p.X-1, p.Y-1, p.X+2, p.Y+2), userColor(k.user))
	}
	for _, u := range c.users {
		if !u.present || !u.moved {
			continue
		}
		col := userColor(u.id)
		for i := 1; i < len(u.trail); i++ {
			cv.segment(toMap(u.trail[i-1]), toMap(u.trail[i]), darken(col))
		}
		p := toMap(image.Pt(u.x, u.y))
		// An arrow-ish pointer: a filled triangle pointing up-left.
		for dy := 0; dy < 9; dy++ {
			for dx := 0; dx <= dy/2+1 && dx < 6; dx++ {
				cv.set(p.X+dx, p.Y+dy, col)
			}
		}
		if u.buttons != 0 {
			cv.outline(image.Rect(p.X-3, p.Y-3, p.X+4, p.Y+4), white)
		}
		cv.text(p.X+7, p.Y, u.name, col)
	}
}

func (c *Card) drawWheel(cv canvas) {
	x := cv.r.Min.X + 6
	cv.text(x, cv.line(0), fmt.Sprintf("wheel %d", c.wheels), white)
	cv.text(x, cv.line(1), fmt.Sprintf("dx %d", c.wheelX), grey)
	cv.text(x, cv.line(2), fmt.Sprintf("dy %d", c.wheelY), grey)
	bar := image.Rect(cv.r.Min.X+10, cv.line(3)+4, cv.r.Max.X-10, cv.r.Max.Y-6)
	const stripe = 6
	stripes := []color.RGBA{{0xc0, 0x30, 0x30, 0xff}, {0xe0, 0xe0, 0xe0, 0xff}, {0x30, 0x60, 0xc0, 0xff}, {0x20, 0x20, 0x20, 0xff}}
	for y := bar.Min.Y; y < bar.Max.Y; y++ {
		i := floorDiv(y-bar.Min.Y+c.wheelY, stripe)
		cv.fill(image.Rect(bar.Min.X, y, bar.Max.X, y+1), stripes[mod(i, len(stripes))])
	}
	mx := bar.Min.X + mod(c.wheelX, bar.Dx()-2)
	cv.fill(image.Rect(mx, bar.Min.Y, mx+2, bar.Max.Y), yellow)
	cv.outline(bar, white)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func mod(a, b int) int {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (c *Card) drawUsers(cv canvas) {
	x := cv.r.Min.X + 4
	cv.text(x, cv.line(0), fmt.Sprintf("users %d", len(c.users)), white)
	for i, u := range c.users {
		if i >= 5 {
			break
		}
		y := cv.line(i + 1)
		col := userColor(u.id)
		cv.fill(image.Rect(x, y+3, x+7, y+10), col)
		btn := []byte("---")
		for b, ch := range "LMR" {
			if u.buttons&(1<<b) != 0 {
				btn[b] = byte(ch)
			}
		}
		var s string
		if u.present {
			s = fmt.Sprintf("#%d %-8.8s %3d,%3d %s %d", u.id, u.name, u.x, u.y, btn, u.clicks)
		} else {
			s = fmt.Sprintf("#%d %-8.8s left", u.id, u.name)
			col = grey
		}
		cv.text(x+10, y, s, col)
	}
}

func (c *Card) drawAnim(cv canvas) {
	x := cv.r.Min.X + 4
	if !c.anim {
		cv.text(x, cv.line(0), "anim off (Space)", grey)
		return
	}
	cv.text(x, cv.line(0), fmt.Sprintf("anim on  t+%d ms", c.now.Sub(c.animStart).Milliseconds()), white)
	cv.disc(c.ball, ballR, orange)
}

var modifiers = []struct {
	name        string
	left, right abi.KeyCode
}{
	{"Shift", abi.CodeShiftLeft, abi.CodeShiftRight},
	{"Ctrl", abi.CodeControlLeft, abi.CodeControlRight},
	{"Alt", abi.CodeAltLeft, abi.CodeAltRight},
	{"Meta", abi.CodeMetaLeft, abi.CodeMetaRight},
}

func (c *Card) drawKeys(cv canvas) {
	x := cv.r.Min.X + 4
	x2 := cv.text(x, cv.line(0), "text> ", white)
	x2 = cv.text(x2, cv.line(0), textOf(c.text), yellow)
	cv.fill(image.Rect(x2, cv.line(0)+1, x2+2, cv.line(0)+lineH), yellow)
	cv.text(x, cv.line(1), fmt.Sprintf("typed %d  fnv %08x  key events %d", c.typed, c.textHash, c.keyEvents), grey)

	last := "last key: none"
	if c.haveKey {
		last = fmt.Sprintf("last key: %s %s user %d", c.lastKey.Code, upDown(c.lastKey.Down), c.lastKey.User)
		if c.lastKey.Repeat {
			last += " repeat"
		}
	}
	cv.text(x, cv.line(2), last, white)

	// Modifier indicators, lit while any user holds either key.
	mx := cv.r.Max.X - 4 - 4*(6*charW+6)
	for _, m := range modifiers {
		on := false
		for _, k := range c.held {
			on = on || k.code == m.left || k.code == m.right
		}
		box := image.Rect(mx, cv.line(2), mx+6*charW, cv.line(2)+lineH)
		if on {
			cv.fill(box, green)
			cv.text(mx+(6-len(m.name))*charW/2, cv.line(2), m.name, color.RGBA{0, 0, 0, 0xff})
		} else {
			cv.outline(box, dim)
			cv.text(mx+(6-len(m.name))*charW/2, cv.line(2), m.name, dim)
		}
		mx += 6*charW + 6
	}

	// Held keys, as boxes.
	hx := cv.text(x, cv.line(3)+2, "held", white) + 6
	hy := cv.line(3) + 1
	for _, k := range c.held {
		name := k.code.String()
		if k.user != 0 {
			name += fmt.Sprintf("/%d", k.user)
		}
		w := len(name)*charW + 6
		if hx+w > cv.r.Max.X-4 {
			hx, hy = x+4*charW+6, hy+lineH+4
			if hy+lineH+2 > cv.r.Max.Y {
				break
			}
		}
		cv.fill(image.Rect(hx, hy, hx+w, hy+lineH+2), userColor(k.user))
		cv.text(hx+3, hy+1, name, color.RGBA{0, 0, 0, 0xff})
		hx += w + 4
	}
}

func errText(err error) string { return clip(err.Error(), 27) }

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
