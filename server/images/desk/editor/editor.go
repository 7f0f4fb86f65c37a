// Package editor is the desk's text editor model: a buffer of lines, a
// cursor and a selection anchor, editing, scrolling and saving through a
// callback.
//
// It knows nothing about pixels, windows, key codes or the file system: the
// desk maps keys and clicks to its methods and gives it a save function.
package editor

import (
	"strings"
	"unicode/utf8"
)

// Pos is a position in the buffer: a line and a rune column.
type Pos struct{ Line, Col int }

// Less orders positions.
func (p Pos) Less(q Pos) bool { return p.Line < q.Line || p.Line == q.Line && p.Col < q.Col }

// Editor is one open file.
type Editor struct {
	Path   string
	Lines  [][]rune
	Cursor Pos
	// Anchor is the other end of the selection; the selection is empty when
	// Anchor == Cursor.
	Anchor Pos
	Top    int // first visible line
	Dirty  bool
	// Status is a short message for the status bar ("saved", an error).
	Status string
	// Save writes the buffer's text; the editor marks itself clean on success.
	Save func(path string, text []byte) error
	// Gen changes whenever anything visible changes.
	Gen  int
	want int // the column vertical moves aim for
}

// New returns an editor showing text.
func New(path string, text []byte) *Editor {
	e := &Editor{Path: path}
	for _, l := range strings.Split(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n") {
		e.Lines = append(e.Lines, []rune(strings.ReplaceAll(l, "\t", "    ")))
	}
	if len(e.Lines) > 1 && len(e.Lines[len(e.Lines)-1]) == 0 {
		// A final newline is the usual end of a text file, not an extra line.
		e.Lines = e.Lines[:len(e.Lines)-1]
	}
	return e
}

// Text returns the buffer's content, each line ending in a newline.
func (e *Editor) Text() []byte {
	var b strings.Builder
	for _, l := range e.Lines {
		b.WriteString(string(l))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// HasSelection reports whether some text is selected.
func (e *Editor) HasSelection() bool { return e.Anchor != e.Cursor }

// Selection returns the selection's ends in order.
func (e *Editor) Selection() (from, to Pos) {
	if e.Cursor.Less(e.Anchor) {
		return e.Cursor, e.Anchor
	}
	return e.Anchor, e.Cursor
}

// SelectedText returns the selected text.
func (e *Editor) SelectedText() string {
	from, to := e.Selection()
	if from.Line == to.Line {
		return string(e.Lines[from.Line][from.Col:to.Col])
	}
	var b strings.Builder
	b.WriteString(string(e.Lines[from.Line][from.Col:]))
	for l := from.Line + 1; l < to.Line; l++ {
		b.WriteString("\n" + string(e.Lines[l]))
	}
	b.WriteString("\n" + string(e.Lines[to.Line][:to.Col]))
	return b.String()
}

func (e *Editor) clamp(p Pos) Pos {
	p.Line = max(0, min(len(e.Lines)-1, p.Line))
	p.Col = max(0, min(len(e.Lines[p.Line]), p.Col))
	return p
}

func (e *Editor) changed() { e.Gen++ }

func (e *Editor) edited() {
	e.Dirty = true
	e.Status = ""
	e.changed()
}

// deleteSelection removes the selected text; it reports whether there was any.
func (e *Editor) deleteSelection() bool {
	if !e.HasSelection() {
		return false
	}
	from, to := e.Selection()
	tail := e.Lines[to.Line][to.Col:]
	e.Lines[from.Line] = append(e.Lines[from.Line][:from.Col:from.Col], tail...)
	e.Lines = append(e.Lines[:from.Line+1], e.Lines[to.Line+1:]...)
	e.Cursor, e.Anchor = from, from
	e.want = from.Col
	return true
}

// Insert types s at the cursor, replacing the selection.
func (e *Editor) Insert(s string) {
	e.deleteSelection()
	for _, r := range s {
		if r == '\n' {
			e.newline()
			continue
		}
		if r == '\t' {
			e.Insert("    ")
			continue
		}
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			continue
		}
		l := e.Lines[e.Cursor.Line]
		l = append(l[:e.Cursor.Col], append([]rune{r}, l[e.Cursor.Col:]...)...)
		e.Lines[e.Cursor.Line] = l
		e.Cursor.Col++
	}
	e.Anchor = e.Cursor
	e.want = e.Cursor.Col
	e.edited()
}

func (e *Editor) newline() {
	l := e.Lines[e.Cursor.Line]
	rest := append([]rune(nil), l[e.Cursor.Col:]...)
	e.Lines[e.Cursor.Line] = l[:e.Cursor.Col:e.Cursor.Col]
	e.Lines = append(e.Lines[:e.Cursor.Line+1], append([][]rune{rest}, e.Lines[e.Cursor.Line+1:]...)...)
	e.Cursor = Pos{e.Cursor.Line + 1, 0}
	e.Anchor = e.Cursor
}

// Enter splits the line at the cursor.
func (e *Editor) Enter() { e.Insert("\n") }

// Backspace deletes the selection or the rune before the cursor.
func (e *Editor) Backspace() {
	if !e.deleteSelection() {
		c := e.Cursor
		switch {
		case c.Col > 0:
			l := e.Lines[c.Line]
			e.Lines[c.Line] = append(l[:c.Col-1], l[c.Col:]...)
			e.Cursor.Col--
		case c.Line > 0:
			prev := e.Lines[c.Line-1]
			e.Cursor = Pos{c.Line - 1, len(prev)}
			e.Lines[c.Line-1] = append(prev, e.Lines[c.Line]...)
			e.Lines = append(e.Lines[:c.Line], e.Lines[c.Line+1:]...)
		default:
			return
		}
		e.Anchor = e.Cursor
		e.want = e.Cursor.Col
	}
	e.edited()
}

// Delete deletes the selection or the rune after the cursor.
func (e *Editor) Delete() {
	if !e.deleteSelection() {
		c := e.Cursor
		l := e.Lines[c.Line]
		switch {
		case c.Col < len(l):
			e.Lines[c.Line] = append(l[:c.Col], l[c.Col+1:]...)
		case c.Line+1 < len(e.Lines):
			e.Lines[c.Line] = append(l, e.Lines[c.Line+1]...)
			e.Lines = append(e.Lines[:c.Line+1], e.Lines[c.Line+2:]...)
		default:
			return
		}
	}
	e.edited()
}

// moveTo puts the cursor at p; with extend the anchor stays (selecting).
func (e *Editor) moveTo(p Pos, extend, keepWant bool) {
	e.Cursor = e.clamp(p)
	if !extend {
		e.Anchor = e.Cursor
	}
	if !keepWant {
		e.want = e.Cursor.Col
	}
	e.changed()
}

// Left moves one rune left (to the previous line's end at a line start).
// Without extend an existing selection collapses to its start.
func (e *Editor) Left(extend bool) {
	if !extend && e.HasSelection() {
		from, _ := e.Selection()
		e.moveTo(from, false, false)
		return
	}
	c := e.Cursor
	if c.Col > 0 {
		c.Col--
	} else if c.Line > 0 {
		c = Pos{c.Line - 1, len(e.Lines[c.Line-1])}
	}
	e.moveTo(c, extend, false)
}

// Right moves one rune right.
func (e *Editor) Right(extend bool) {
	if !extend && e.HasSelection() {
		_, to := e.Selection()
		e.moveTo(to, false, false)
		return
	}
	c := e.Cursor
	if c.Col < len(e.Lines[c.Line]) {
		c.Col++
	} else if c.Line+1 < len(e.Lines) {
		c = Pos{c.Line + 1, 0}
	}
	e.moveTo(c, extend, false)
}

// Up moves n lines up (down when negative), keeping the column aimed for.
func (e *Editor) Up(n int, extend bool) {
	e.moveTo(Pos{e.Cursor.Line - n, e.want}, extend, true)
}

// Home moves to the start of the line.
func (e *Editor) Home(extend bool) { e.moveTo(Pos{e.Cursor.Line, 0}, extend, false) }

// End moves to the end of the line.
func (e *Editor) End(extend bool) {
	e.moveTo(Pos{e.Cursor.Line, len(e.Lines[e.Cursor.Line])}, extend, false)
}

// SelectAll selects the whole buffer.
func (e *Editor) SelectAll() {
	e.Anchor = Pos{}
	e.moveTo(Pos{len(e.Lines) - 1, len(e.Lines[len(e.Lines)-1])}, true, false)
}

// Click puts the cursor at p (a mouse press); Drag extends the selection to p.
func (e *Editor) Click(p Pos, extend bool) { e.moveTo(p, extend, false) }

// Drag extends the selection to p (the mouse moved with the button down).
func (e *Editor) Drag(p Pos) { e.moveTo(p, true, false) }

// ScrollBy scrolls the view n lines down (up when negative).
func (e *Editor) ScrollBy(n, rows int) {
	e.Top = max(0, min(len(e.Lines)-1, e.Top+n))
	e.changed()
}

// Follow scrolls so that the cursor is inside a view of rows lines.
func (e *Editor) Follow(rows int) {
	rows = max(1, rows)
	if e.Cursor.Line < e.Top {
		e.Top = e.Cursor.Line
	}
	if e.Cursor.Line >= e.Top+rows {
		e.Top = e.Cursor.Line - rows + 1
	}
}

// DoSave saves through Save and records the outcome in Status.
func (e *Editor) DoSave() error {
	if e.Save == nil {
		e.Status = "cannot save"
		e.changed()
		return nil
	}
	err := e.Save(e.Path, e.Text())
	if err != nil {
		e.Status = "save failed: " + err.Error()
	} else {
		e.Dirty = false
		e.Status = "saved"
	}
	e.changed()
	return err
}
