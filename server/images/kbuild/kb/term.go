package kb

import (
	"image"
	"image/color"

	"replaydesk/server/images/internal/ui"
)

// Size of the frame.
const (
	Width  = 720
	Height = 450
)

var (
	colBG     = color.RGBA{0x1d, 0x1f, 0x21, 0xff}
	colTitle1 = color.RGBA{0x4a, 0x4d, 0x52, 0xff}
	colTitle2 = color.RGBA{0x33, 0x35, 0x39, 0xff}
	colStatBG = color.RGBA{0x2f, 0x5f, 0x9a, 0xff}
	colText   = color.RGBA{0xd0, 0xd4, 0xd8, 0xff}
	colDim    = color.RGBA{0x80, 0x86, 0x8c, 0xff}
	colVerb   = color.RGBA{0x8a, 0xc8, 0x6a, 0xff}
	colHash   = color.RGBA{0xd8, 0xb0, 0x5c, 0xff}
	colPrompt = color.RGBA{0x6c, 0xb4, 0xf0, 0xff}
	colOK     = color.RGBA{0x9c, 0xe0, 0x7c, 0xff}
	colErr    = color.RGBA{0xf0, 0x6c, 0x6c, 0xff}
	colStatus = color.RGBA{0xf4, 0xf6, 0xf8, 0xff}
)

// Places.
var (
	titleR  = image.Rect(0, 0, Width, 24)
	textR   = image.Rect(0, 24, Width, Height-20) // the log
	statusR = image.Rect(0, Height-20, Width, Height)
)

const (
	padX = 8
	padY = 4
	rows = (Height - 20 - 24 - 2*padY) / ui.LineH
)

// span is a run of text in one colour; a line is a few of them.
type span struct {
	s string
	c color.RGBA
}

type line []span

// terminal is the scrolling log: lines added since the last flush are drawn
// by flush, which scrolls the pixels up when the window is full.
type terminal struct {
	img     *image.RGBA
	shown   int    // lines on screen (at most rows)
	pending []line // added, not yet drawn
	status  line
	drawnSt string
}

func (t *terminal) init(img *image.RGBA) { t.img = img }

func (t *terminal) add(l line) { t.pending = append(t.pending, l) }

// drawChrome paints the window: title bar, empty log, status bar.
func (t *terminal) drawChrome() {
	ui.VGradient(t.img, titleR, colTitle1, colTitle2)
	for i, c := range []color.RGBA{{0xee, 0x5c, 0x54, 0xff}, {0xf4, 0xbc, 0x40, 0xff}, {0x5c, 0xc4, 0x4c, 0xff}} {
		ui.Fill(t.img, image.Rect(10+i*18, 7, 20+i*18, 17), c)
	}
	title := "build@replaydesk: ~/linux"
	ui.Text(t.img, (Width-ui.Width(title))/2, 16, title, colText)
	ui.Fill(t.img, textR, colBG)
	ui.Fill(t.img, statusR, colStatBG)
	t.shown, t.drawnSt = 0, ""
}

func rowRect(i int) image.Rectangle {
	y := textR.Min.Y + padY + i*ui.LineH
	return image.Rect(textR.Min.X, y, textR.Max.X, y+ui.LineH)
}

func (t *terminal) drawLine(i int, l line) {
	r := rowRect(i)
	ui.Fill(t.img, r, colBG)
	sub := t.img.SubImage(image.Rect(textR.Min.X+padX, r.Min.Y, textR.Max.X-padX, r.Max.Y)).(*image.RGBA)
	x := textR.Min.X + padX
	for _, s := range l {
		x = ui.Text(sub, x, r.Min.Y+ui.Ascent, s.s, s.c)
	}
}

// scroll moves the log's rows up by n lines.
func (t *terminal) scroll(n int) {
	top := rowRect(0).Min.Y
	bottom := rowRect(rows - 1).Max.Y
	dy := n * ui.LineH
	for y := top; y+dy < bottom; y++ {
		copy(t.img.Pix[t.img.PixOffset(textR.Min.X, y):t.img.PixOffset(textR.Max.X, y)],
			t.img.Pix[t.img.PixOffset(textR.Min.X, y+dy):t.img.PixOffset(textR.Max.X, y+dy)])
	}
	t.shown -= n
}

// flush draws pending lines and the status line and returns the damage.
func (t *terminal) flush() []image.Rectangle {
	var damage []image.Rectangle
	if len(t.pending) > rows {
		t.pending = t.pending[len(t.pending)-rows:]
	}
	if n := len(t.pending); n > 0 {
		scrolled := false
		if over := t.shown + n - rows; over > 0 {
			t.scroll(over)
			scrolled = true
		}
		first := t.shown
		for _, l := range t.pending {
			t.drawLine(t.shown, l)
			t.shown++
		}
		t.pending = t.pending[:0]
		if scrolled {
			damage = append(damage, image.Rect(textR.Min.X, rowRect(0).Min.Y, textR.Max.X, rowRect(rows-1).Max.Y))
		} else {
			damage = append(damage, rowRect(first).Union(rowRect(t.shown-1)))
		}
	}
	st := ""
	for _, s := range t.status {
		st += s.s
	}
	if st != t.drawnSt {
		t.drawnSt = st
		ui.Fill(t.img, statusR, colStatBG)
		x := statusR.Min.X + padX
		sub := t.img.SubImage(statusR).(*image.RGBA)
		for _, s := range t.status {
			x = ui.Text(sub, x, statusR.Min.Y+14, s.s, s.c)
		}
		damage = append(damage, statusR)
	}
	return damage
}
