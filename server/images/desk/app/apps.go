package app

import (
	"image"
	"math"
	"unicode/utf8"

	"replaydesk/server/images/desk/editor"
	"replaydesk/server/images/desk/gfx"
	"replaydesk/server/images/desk/shell"
	"replaydesk/server/images/desk/wm"
)

// Layout of the text apps.
const (
	pad       = 8  // terminal padding
	gutterW   = 48 // editor line numbers
	statusH   = 24 // editor status bar
	editTop   = 6  // editor space above the first line
	lineExtra = 2  // extra leading for monospaced text
)

type termApp struct{ t *shell.Term }

type editApp struct{ e *editor.Editor }

type clockApp struct {
	face *image.RGBA // the dial without hands, drawn once
}

// appState is what decides how much of a window a change repaints.
type appState struct {
	gen, lines, top int
	a, b            int // term: input rows; editor: cursor and anchor lines
	sel             bool
	cwd             string
}

func (d *Desk) appState(w *wm.Window) appState {
	switch a := w.App.(type) {
	case *termApp:
		_, _, inRows := a.layout(d, w)
		return appState{gen: a.t.Gen, lines: len(a.t.Lines), top: a.t.Scroll, a: inRows, cwd: a.t.Sh.Cwd}
	case *editApp:
		e := a.e
		return appState{gen: e.Gen, lines: len(e.Lines), top: e.Top, a: e.Cursor.Line, b: e.Anchor.Line, sel: e.HasSelection()}
	}
	return appState{}
}

// smallChange finds the few rows a change touched when the layout held
// still: typing in a terminal's input line, or on one editor line.
func (d *Desk) smallChange(w *wm.Window, was, is appState) ([]image.Rectangle, bool) {
	if was.lines != is.lines || was.top != is.top || was.cwd != is.cwd {
		return nil, false
	}
	c := w.Client()
	lh := d.mono.Height + lineExtra
	switch a := w.App.(type) {
	case *termApp:
		if was.a != is.a {
			return nil, false
		}
		y := a.inputY(d, w)
		return []image.Rectangle{image.Rect(c.Min.X, y, c.Max.X, min(c.Max.Y, y+is.a*lh))}, true
	case *editApp:
		if was.sel || is.sel {
			return nil, false
		}
		row := func(line int) image.Rectangle {
			y := c.Min.Y + editTop + (line-a.e.Top)*lh
			return image.Rect(c.Min.X, y, c.Max.X, y+lh)
		}
		status := image.Rect(c.Min.X, c.Max.Y-statusH, c.Max.X, c.Max.Y)
		return []image.Rectangle{row(was.a), row(is.a), status}, true
	}
	return nil, false
}

// termRow is one row on a terminal's screen.
type termRow struct {
	prompt, text string
	cursor       int // rune column of the cursor on this row, or -1
}

// layout wraps the terminal's lines and input into rows that fit the
// window, and returns the rows, how many fit, and how many the input takes.
func (a *termApp) layout(d *Desk, w *wm.Window) (rows []termRow, fit, inputRows int) {
	c := w.Client()
	cw := d.mono.Advance("m")
	cols := max(10, (c.Dx()-2*pad)/cw)
	fit = max(1, (c.Dy()-2*pad)/(d.mono.Height+lineExtra))
	wrap := func(prompt, text string, cursor int) {
		all := []rune(prompt + text)
		pr := len([]rune(prompt))
		n := max(1, (len(all)+cols-1)/cols)
		if cursor >= 0 && pr+cursor == n*cols {
			n++ // the cursor sits after a full last row
		}
		for k := range n {
			s, e := min(len(all), k*cols), min(len(all), (k+1)*cols)
			row := termRow{cursor: -1}
			// The prompt keeps its colour across a wrap.
			if s < pr {
				row.prompt = string(all[s:min(e, pr)])
			}
			if e > pr {
				row.text = string(all[max(s, pr):e])
			}
			if c := pr + cursor; cursor >= 0 && c >= k*cols && c < (k+1)*cols {
				row.cursor = c - k*cols
			}
			rows = append(rows, row)
		}
		inputRows = n
	}
	// Only the tail that can be on screen is wrapped: scrollback is long.
	need := fit + a.t.Scroll + 1
	from := len(a.t.Lines)
	for n := 0; from > 0 && n < need; {
		from--
		l := a.t.Lines[from]
		n += max(1, (utf8.RuneCountInString(l.Prompt)+utf8.RuneCountInString(l.Text)+cols-1)/cols)
	}
	for _, l := range a.t.Lines[from:] {
		wrap(l.Prompt, l.Text, -1)
	}
	wrap(a.t.Prompt(), string(a.t.Input), a.t.Cursor)
	return rows, fit, inputRows
}

// visible returns the rows on screen and the index of the first.
func (a *termApp) visible(rows []termRow, fit, scroll int) ([]termRow, int) {
	start := max(0, len(rows)-fit-scroll)
	return rows[start:min(len(rows), start+fit)], start
}

// inputY is where the input line starts on screen.
func (a *termApp) inputY(d *Desk, w *wm.Window) int {
	rows, fit, in := a.layout(d, w)
	_, start := a.visible(rows, fit, a.t.Scroll)
	return w.Client().Min.Y + pad + (len(rows)-in-start)*(d.mono.Height+lineExtra)
}

func (d *Desk) drawTerm(cv *gfx.Canvas, w *wm.Window, a *termApp) {
	c := w.Client()
	cv.Fill(c, colTermBg)
	rows, fit, _ := a.layout(d, w)
	vis, _ := a.visible(rows, fit, a.t.Scroll)
	lh := d.mono.Height + lineExtra
	cw := d.mono.Advance("m")
	focused := d.wm.Focus == w
	for i, r := range vis {
		y := c.Min.Y + pad + i*lh
		x := c.Min.X + pad
		if r.cursor >= 0 && a.t.Scroll == 0 {
			cx := x + r.cursor*cw
			if focused {
				cv.Fill(image.Rect(cx, y+1, cx+cw, y+lh-1), colTermCursor)
			} else {
				cv.Outline(image.Rect(cx, y+1, cx+cw, y+lh-1), colTermCursor, 255)
			}
		}
		if r.prompt != "" {
			x = d.drawPrompt(cv, x, y+d.mono.Ascent+1, r.prompt)
		}
		text := r.text
		if r.cursor >= 0 && focused && a.t.Scroll == 0 {
			// The character under the block cursor is drawn inverted.
			rs := []rune(r.prompt + r.text)
			pr := len([]rune(r.prompt))
			if r.cursor < len(rs) && r.cursor >= pr {
				k := r.cursor - pr
				tr := []rune(text)
				x2 := d.drawTextRun(cv, x, y, string(tr[:k]), colTermFg)
				x2 = d.drawTextRun(cv, x2, y, string(tr[k]), colTermBg)
				d.drawTextRun(cv, x2, y, string(tr[k+1:]), colTermFg)
				continue
			}
		}
		d.drawTextRun(cv, x, y, text, colTermFg)
	}
	if a.t.Scroll > 0 {
		msg := "scrolled back " + itoa(a.t.Scroll) + " lines"
		wd := d.ui.Advance(msg) + 16
		r := image.Rect(c.Max.X-wd-10, c.Min.Y+8, c.Max.X-10, c.Min.Y+30)
		cv.RoundRect(r, 6, colAccent)
		cv.Text(d.ui, r.Min.X+8, r.Min.Y+16, msg, colWhite)
	}
}

func (d *Desk) drawTextRun(cv *gfx.Canvas, x, y int, s string, col colorT) int {
	return cv.Text(d.mono, x, y+d.mono.Ascent+1, s, col)
}

// drawPrompt draws "desk:/path$ " with the host and path in their colours.
func (d *Desk) drawPrompt(cv *gfx.Canvas, x, y int, p string) int {
	i := 0
	for i < len(p) && p[i] != ':' {
		i++
	}
	x = cv.Text(d.mono, x, y, p[:i], colPromptHost)
	rest := p[i:]
	j := len(rest)
	for j > 0 && (rest[j-1] == ' ' || rest[j-1] == '$') {
		j--
	}
	x = cv.Text(d.mono, x, y, rest[:j], colPromptPath)
	return cv.Text(d.mono, x, y, rest[j:], colTermFg)
}

func (a *editApp) rows(w *wm.Window) int {
	return max(1, (w.Client().Dy()-statusH-editTop)/(monoLineH))
}

// monoLineH is the editor's line height; set when the fonts load.
var monoLineH = 19

// posAt maps a point in the window to a buffer position.
func (a *editApp) posAt(d *Desk, w *wm.Window, pt image.Point) editor.Pos {
	c := w.Client()
	lh := d.mono.Height + lineExtra
	cw := d.mono.Advance("m")
	x0 := c.Min.X + gutterW + 8
	line := a.e.Top + int(math.Floor(float64(pt.Y-c.Min.Y-editTop)/float64(lh)))
	col := int(math.Round(float64(pt.X-x0) / float64(cw)))
	return editor.Pos{Line: max(0, line), Col: max(0, col)}
}

func (a *editApp) key(k shell.Key, u *user, rows int) {
	e, sh := a.e, u.shift
	switch k {
	case shell.KeyLeft:
		e.Left(sh)
	case shell.KeyRight:
		e.Right(sh)
	case shell.KeyUp:
		e.Up(1, sh)
	case shell.KeyDown:
		e.Up(-1, sh)
	case shell.KeyHome:
		e.Home(sh)
	case shell.KeyEnd:
		e.End(sh)
	case shell.KeyPageUp:
		e.Up(rows, sh)
		e.ScrollBy(-rows, rows)
	case shell.KeyPageDown:
		e.Up(-rows, sh)
		e.ScrollBy(rows, rows)
	case shell.KeyEnter:
		e.Enter()
	case shell.KeyBackspace:
		e.Backspace()
	case shell.KeyDelete:
		e.Delete()
	case shell.KeyTab:
		e.Insert("    ")
	case shell.KeyEscape:
		e.Click(e.Cursor, false)
	case shell.KeyS:
		if u.ctrl {
			e.DoSave()
		}
	case shell.KeyA:
		if u.ctrl {
			e.SelectAll()
		}
	}
	e.Follow(rows)
}

func (d *Desk) drawEditor(cv *gfx.Canvas, w *wm.Window, a *editApp) {
	e := a.e
	c := w.Client()
	lh := d.mono.Height + lineExtra
	cw := d.mono.Advance("m")
	text := image.Rect(c.Min.X, c.Min.Y, c.Max.X, c.Max.Y-statusH)
	cv.Fill(image.Rect(c.Min.X, c.Min.Y, c.Min.X+gutterW, text.Max.Y), colGutter)
	cv.Fill(image.Rect(c.Min.X+gutterW, c.Min.Y, c.Max.X, text.Max.Y), colEditBg)
	inner := *cv
	inner.Clip = cv.Clip.Intersect(text)
	from, to := e.Selection()
	x0 := c.Min.X + gutterW + 8
	focused := d.wm.Focus == w
	for i := 0; i < a.rows(w)+1; i++ {
		ln := e.Top + i
		if ln >= len(e.Lines) {
			break
		}
		y := c.Min.Y + editTop + i*lh
		if y >= text.Max.Y {
			break
		}
		if ln == e.Cursor.Line && !e.HasSelection() {
			inner.Fill(image.Rect(c.Min.X+gutterW, y, c.Max.X, y+lh), colCurLine)
		}
		if e.HasSelection() && ln >= from.Line && ln <= to.Line {
			s, t := 0, len(e.Lines[ln])+1 // the +1 shows the selected newline
			if ln == from.Line {
				s = from.Col
			}
			if ln == to.Line {
				t = to.Col
			}
			inner.Fill(image.Rect(x0+s*cw, y, x0+t*cw, y+lh), colSelection)
		}
		num := itoa(ln + 1)
		numCol := colLineNo
		if ln == e.Cursor.Line {
			numCol = colText
		}
		inner.Text(d.mono, c.Min.X+gutterW-8-d.mono.Advance(num), y+d.mono.Ascent+1, num, numCol)
		inner.Text(d.mono, x0, y+d.mono.Ascent+1, string(e.Lines[ln]), colText)
		if ln == e.Cursor.Line {
			cx := x0 + e.Cursor.Col*cw
			cc := colAccent
			if !focused {
				cc = colLineNo
			}
			inner.Fill(image.Rect(cx-1, y+1, cx+1, y+lh-1), cc)
		}
	}
	// Status bar.
	sb := image.Rect(c.Min.X, c.Max.Y-statusH, c.Max.X, c.Max.Y)
	cv.Fill(sb, colStatusBg)
	cv.Fill(image.Rect(sb.Min.X, sb.Min.Y, sb.Max.X, sb.Min.Y+1), colBorder)
	by := sb.Min.Y + 17
	x := sb.Min.X + 10
	switch {
	case e.Dirty:
		cv.Circle(float64(x)+4, float64(sb.Min.Y)+12, 4, colDirty)
		x = cv.Text(d.ui, x+14, by, "modified", colStatusFg)
	case e.Status != "":
		x = cv.Text(d.ui, x, by, e.Status, colStatusFg)
	default:
		x = cv.Text(d.ui, x, by, "unchanged", colStatusFg)
	}
	pos := "Ln " + itoa(e.Cursor.Line+1) + ", Col " + itoa(e.Cursor.Col+1)
	if e.HasSelection() {
		pos += " (" + itoa(len([]rune(e.SelectedText()))) + " selected)"
	}
	hint := "Ctrl+S save"
	hx := sb.Max.X - 10 - d.ui.Advance(hint)
	cv.Text(d.ui, hx, by, hint, colLineNo)
	cv.Text(d.ui, hx-24-d.ui.Advance(pos), by, pos, colStatusFg)
	_ = x
}

func (d *Desk) drawClock(cv *gfx.Canvas, w *wm.Window, a *clockApp) {
	c := w.Client()
	if a.face == nil || a.face.Rect.Size() != c.Size() {
		a.face = d.clockFace(c.Size())
	}
	cv.CopyAt(a.face, c.Min)
	t := d.now.UTC()
	cx, cy := float64(c.Min.X+c.Dx()/2), float64(c.Min.Y+110)
	sec := float64(t.Second())
	minute := float64(t.Minute()) + sec/60
	hour := float64(t.Hour()%12) + minute/60
	hand := func(frac, length, width float64, col colorT) {
		ang := frac*2*math.Pi - math.Pi/2
		cv.Line(cx-math.Cos(ang)*length*0.15, cy-math.Sin(ang)*length*0.15,
			cx+math.Cos(ang)*length, cy+math.Sin(ang)*length, width, col)
	}
	hand(hour/12, 50, 6, colText)
	hand(minute/60, 74, 4, colText)
	hand(sec/60, 80, 1.6, colDirty)
	cv.Circle(cx, cy, 4.5, colDirty)
	digital := t.Format("15:04:05")
	cv.Text(d.bold, c.Min.X+(c.Dx()-d.bold.Advance(digital))/2, c.Min.Y+228, digital, colText)
	date := t.Format("Monday, 2 January 2006")
	cv.Text(d.ui, c.Min.X+(c.Dx()-d.ui.Advance(date))/2, c.Min.Y+250, date, colLineNo)
}

// clockFace draws the dial once; each second only the hands are new.
func (d *Desk) clockFace(size image.Point) *image.RGBA {
	img := image.NewRGBA(image.Rectangle{Max: size})
	cv := &gfx.Canvas{Img: img, Clip: img.Rect}
	cv.Fill(img.Rect, colEditBg)
	cx, cy := float64(size.X/2), 110.0
	cv.Circle(cx, cy, 96, colGutter)
	cv.Ring(cx, cy, 96, 2, colBorder)
	for i := range 60 {
		ang := float64(i) / 60 * 2 * math.Pi
		r0, wd := 88.0, 1.2
		if i%5 == 0 {
			r0, wd = 80, 3
		}
		cv.Line(cx+math.Cos(ang)*r0, cy+math.Sin(ang)*r0, cx+math.Cos(ang)*91, cy+math.Sin(ang)*91, wd, colStatusFg)
	}
	for i, n := range []string{"12", "3", "6", "9"} {
		ang := float64(i)*math.Pi/2 - math.Pi/2
		x := cx + math.Cos(ang)*64 - float64(d.ui.Advance(n))/2
		y := cy + math.Sin(ang)*64 + 5
		cv.Text(d.ui, int(x), int(y), n, colLineNo)
	}
	return img
}
