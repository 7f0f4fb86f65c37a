package app

import (
	"image"
	"image/color"
	"math"
	"sort"

	"replaydesk/server/images/desk/gfx"
	"replaydesk/server/images/desk/wm"
)

type colorT = color.RGBA

// The palette: a dark desktop with light windows and one blue accent.
var (
	colDeskTop    = gfx.RGB(0x1b2636)
	colDeskBottom = gfx.RGB(0x34506e)
	colTaskbar    = gfx.RGB(0x11161d)
	colTaskLine   = gfx.RGB(0x2a3340)
	colTaskBtn    = gfx.RGB(0x1c232d)
	colTaskBtnOn  = gfx.RGB(0x2b3646)
	colTaskFg     = gfx.RGB(0xd3d9e2)
	colTaskDim    = gfx.RGB(0x8b95a3)
	colTitleOn    = gfx.RGB(0xeef1f5)
	colTitleOff   = gfx.RGB(0xdadfe6)
	colTitleFgOn  = gfx.RGB(0x1f2430)
	colTitleFgOff = gfx.RGB(0x7a8392)
	colBorder     = gfx.RGB(0xc3c9d2)
	colFrameOff   = gfx.RGB(0xa9b0bb)
	colClose      = gfx.RGB(0xff5f57)
	colCloseX     = gfx.RGB(0x8c1a14)
	colCloseOff   = gfx.RGB(0xc4c9d1)
	colTermBg     = gfx.RGB(0x1d2129)
	colTermFg     = gfx.RGB(0xd8dee9)
	colTermCursor = gfx.RGB(0x9ecbff)
	colPromptHost = gfx.RGB(0x7ee787)
	colPromptPath = gfx.RGB(0x79c0ff)
	colEditBg     = gfx.RGB(0xffffff)
	colGutter     = gfx.RGB(0xf3f5f8)
	colLineNo     = gfx.RGB(0x9aa3ae)
	colText       = gfx.RGB(0x24292f)
	colCurLine    = gfx.RGB(0xf3f7fd)
	colSelection  = gfx.RGB(0xcde1ff)
	colAccent     = gfx.RGB(0x2f81f7)
	colDirty      = gfx.RGB(0xe5534b)
	colStatusBg   = gfx.RGB(0xf6f8fa)
	colStatusFg   = gfx.RGB(0x57606a)
	colWhite      = gfx.RGB(0xffffff)
	colInk        = gfx.RGB(0x0d1117)
)

// paintBackground draws the desktop once: a diagonal gradient with a soft
// glow and the product's name; repaints copy from it.
func paintBackground(bold *gfx.Face) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, Width, Height))
	for y := range Height {
		for x := range Width {
			t := (float64(y)/Height*0.75 + float64(x)/Width*0.25)
			c := gfx.Mix(colDeskTop, colDeskBottom, t)
			// A faint glow towards the upper right.
			dx, dy := float64(x-1000)/900, float64(y-120)/700
			g := math.Max(0, 1-math.Sqrt(dx*dx+dy*dy))
			c = gfx.Mix(c, gfx.RGB(0x5f7fa6), g*0.35)
			o := img.PixOffset(x, y)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = c.R, c.G, c.B, 0xff
		}
	}
	cv := &gfx.Canvas{Img: img, Clip: img.Rect}
	mark := "replaydesk"
	cv.Text(bold, Width-28-bold.Advance(mark), Height-TaskbarH-22, mark, gfx.Mix(colDeskBottom, colWhite, 0.25))
	return img
}

// repaint redraws everything inside r from the models.
func (d *Desk) repaint(r image.Rectangle) {
	cv := &gfx.Canvas{Img: d.fb, Clip: r}
	cv.Copy(d.bg, r)
	for _, w := range d.wm.Windows {
		if w.Outer().Overlaps(r) {
			d.drawWindow(cv, w)
		}
	}
	if r.Overlaps(d.taskbarRect()) {
		d.drawTaskbar(cv)
	}
	for _, id := range d.order {
		if u := d.users[id]; u.seen && d.pointerRect(u).Overlaps(r) {
			d.drawPointer(cv, u)
		}
	}
}

func (d *Desk) drawWindow(cv *gfx.Canvas, w *wm.Window) {
	r := w.Rect
	on := d.wm.Focus == w
	strength := 0.22
	if on {
		strength = 0.38
	}
	cv.Shadow(r, 11, 3, strength)
	frame, title, titleFg := colFrameOff, colTitleOff, colTitleFgOff
	if on {
		frame, title, titleFg = colBorder, colTitleOn, colTitleFgOn
	}
	cv.RoundRectTop(r, 8, frame)
	inner := image.Rect(r.Min.X+1, r.Min.Y+1, r.Max.X-1, r.Min.Y+wm.TitleH)
	cv.RoundRectTop(inner, 7, title)
	cv.Fill(image.Rect(r.Min.X+1, r.Min.Y+wm.TitleH-1, r.Max.X-1, r.Min.Y+wm.TitleH), frame)
	// Title: an icon dot in the app's colour, then the text.
	ic := d.appColor(w)
	if !on {
		ic = colCloseOff
	}
	cv.Circle(float64(r.Min.X)+16, float64(r.Min.Y)+15, 5, ic)
	cr := w.CloseRect()
	t := d.bold.Fit(w.Title, cr.Min.X-r.Min.X-40)
	cv.Text(d.bold, r.Min.X+30, r.Min.Y+20, t, titleFg)
	// The close button: red when focused, grey otherwise; always an x.
	ccx, ccy := float64(cr.Min.X+cr.Max.X)/2, float64(cr.Min.Y+cr.Max.Y)/2
	cc, xc := colClose, colCloseX
	if !on {
		cc, xc = colCloseOff, colTitleFgOff
	}
	cv.Circle(ccx, ccy, wm.CloseSize/2, cc)
	cv.Line(ccx-3, ccy-3, ccx+3, ccy+3, 1.5, xc)
	cv.Line(ccx-3, ccy+3, ccx+3, ccy-3, 1.5, xc)
	// The client, clipped to itself, inside a 1-pixel frame.
	c := w.Client()
	cv.Fill(image.Rect(r.Min.X, c.Min.Y, r.Min.X+1, r.Max.Y), frame)
	cv.Fill(image.Rect(r.Max.X-1, c.Min.Y, r.Max.X, r.Max.Y), frame)
	cv.Fill(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), frame)
	inset := image.Rect(c.Min.X+1, c.Min.Y, c.Max.X-1, c.Max.Y-1)
	sub := &gfx.Canvas{Img: cv.Img, Clip: cv.Clip.Intersect(inset)}
	if sub.Clip.Empty() {
		return
	}
	switch a := w.App.(type) {
	case *termApp:
		d.drawTerm(sub, w, a)
	case *editApp:
		d.drawEditor(sub, w, a)
	case *clockApp:
		d.drawClock(sub, w, a)
	}
}

func (d *Desk) appColor(w *wm.Window) colorT {
	switch w.App.(type) {
	case *termApp:
		return gfx.RGB(0x3fb950)
	case *editApp:
		return colAccent
	}
	return gfx.RGB(0xd29922)
}

func (d *Desk) taskbarRect() image.Rectangle {
	return image.Rect(0, Height-TaskbarH, Width, Height)
}

func (d *Desk) clockRect() image.Rectangle {
	return image.Rect(Width-130, Height-TaskbarH, Width, Height)
}

// taskItem is a button on the taskbar.
type taskItem struct {
	r      image.Rectangle
	label  string
	launch string     // "terminal", "editor", "clock" for launchers
	win    *wm.Window // for a window's button
	color  colorT
}

// taskItems lays out the taskbar: launchers, then one button per window.
func (d *Desk) taskItems() []taskItem {
	y0 := Height - TaskbarH + 6
	x := 10
	var items []taskItem
	for _, l := range []struct {
		name, label string
		col         colorT
	}{{"terminal", "Terminal", gfx.RGB(0x3fb950)}, {"editor", "Editor", colAccent}, {"clock", "Clock", gfx.RGB(0xd29922)}} {
		w := 34 + d.ui.Advance(l.label)
		items = append(items, taskItem{r: image.Rect(x, y0, x+w, y0+28), label: l.label, launch: l.name, color: l.col})
		x += w + 6
	}
	x += 14
	wins := append([]*wm.Window(nil), d.wm.Windows...)
	sort.Slice(wins, func(i, j int) bool { return wins[i].ID < wins[j].ID }) // stable order, not stacking order
	limit := Width - 140 - d.usersWidth()
	bw := 190
	if n := len(wins); n > 0 && (limit-x)/n < bw+6 {
		bw = max(60, (limit-x)/n-6)
	}
	for _, w := range wins {
		if x+bw > limit {
			break
		}
		items = append(items, taskItem{r: image.Rect(x, y0, x+bw, y0+28), label: w.Title, win: w, color: d.appColor(w)})
		x += bw + 6
	}
	return items
}

func (d *Desk) usersWidth() int {
	w := 0
	for _, id := range d.order {
		w += 22 + d.ui.Advance(d.users[id].name)
	}
	return w
}

func (d *Desk) taskbarClick(pt image.Point) {
	for _, it := range d.taskItems() {
		if !pt.In(it.r) {
			continue
		}
		switch it.launch {
		case "terminal":
			d.openTerminal()
		case "editor":
			d.Open("/notes/scratch.txt")
		case "clock":
			d.openClock()
		default:
			d.damage = append(d.damage, d.wm.Raise(it.win)...)
			d.damage = append(d.damage, d.taskbarRect())
		}
		return
	}
}

func (d *Desk) drawTaskbar(cv *gfx.Canvas) {
	tb := d.taskbarRect()
	cv.Fill(tb, colTaskbar)
	cv.Fill(image.Rect(0, tb.Min.Y, Width, tb.Min.Y+1), colTaskLine)
	items := d.taskItems()
	for i, it := range items {
		on := it.win != nil && it.win == d.wm.Focus
		bg := colTaskBtn
		if on {
			bg = colTaskBtnOn
		}
		cv.RoundRect(it.r, 6, bg)
		if it.launch != "" {
			// A small tile with the app's colour.
			ic := image.Rect(it.r.Min.X+7, it.r.Min.Y+6, it.r.Min.X+23, it.r.Min.Y+22)
			cv.RoundRect(ic, 4, it.color)
			cv.Text(d.bold, ic.Min.X+4, ic.Min.Y+12, string(it.label[0]), colWhite)
			cv.Text(d.ui, it.r.Min.X+30, it.r.Min.Y+19, it.label, colTaskFg)
		} else {
			cv.Circle(float64(it.r.Min.X)+13, float64(it.r.Min.Y)+14, 4, it.color)
			fg := colTaskDim
			if on {
				fg = colTaskFg
				cv.Fill(image.Rect(it.r.Min.X+8, it.r.Max.Y-2, it.r.Max.X-8, it.r.Max.Y), colAccent)
			}
			cv.Text(d.ui, it.r.Min.X+24, it.r.Min.Y+19, d.ui.Fit(it.label, it.r.Dx()-32), fg)
		}
		if i+1 < len(items) && it.launch != "" && items[i+1].launch == "" {
			x := it.r.Max.X + 12
			cv.Fill(image.Rect(x, tb.Min.Y+10, x+1, tb.Max.Y-10), colTaskLine)
		}
	}
	// Who is here, then the time.
	x := Width - 140 - d.usersWidth()
	for _, id := range d.order {
		u := d.users[id]
		cv.Circle(float64(x)+6, float64(tb.Min.Y)+20, 5, u.color)
		x = cv.Text(d.ui, x+16, tb.Min.Y+25, u.name, colTaskFg) + 6
	}
	t := d.now.UTC()
	clock := t.Format("15:04:05")
	cr := d.clockRect()
	cv.Text(d.bold, cr.Max.X-14-d.bold.Advance(clock), tb.Min.Y+18, clock, colTaskFg)
	date := t.Format("Mon 2 Jan")
	cv.Text(d.ui, cr.Max.X-14-d.ui.Advance(date), tb.Min.Y+34, date, colTaskDim)
}

// arrow is the pointer: X outline, . fill in the user's colour.
var arrow = []string{
	"X",
	"XX",
	"X.X",
	"X..X",
	"X...X",
	"X....X",
	"X.....X",
	"X......X",
	"X.......X",
	"X........X",
	"X.........X",
	"X......XXXXX",
	"X...X..X",
	"X..XX..X",
	"X.X  X..X",
	"XX   X..X",
	"X     X..X",
	"      X..X",
	"       XX",
}

func (d *Desk) pointerRect(u *user) image.Rectangle {
	return image.Rect(u.pos.X-1, u.pos.Y-1, u.pos.X+26+d.ui.Advance(u.name), u.pos.Y+42)
}

func (d *Desk) drawPointer(cv *gfx.Canvas, u *user) {
	cv.Bitmap(u.pos.X, u.pos.Y, arrow, map[byte]colorT{'X': colInk, '.': u.color})
	lw := d.ui.Advance(u.name) + 12
	r := image.Rect(u.pos.X+12, u.pos.Y+19, u.pos.X+12+lw, u.pos.Y+39)
	cv.RoundRect(r, 6, u.color)
	fg := colWhite
	if l := 0.299*float64(u.color.R) + 0.587*float64(u.color.G) + 0.114*float64(u.color.B); l > 160 {
		fg = colInk // dark text on light colours stays readable
	}
	cv.Text(d.ui, r.Min.X+6, r.Min.Y+15, u.name, fg)
}
