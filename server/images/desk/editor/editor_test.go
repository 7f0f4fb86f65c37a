package editor

import (
	"errors"
	"testing"
)

func TestEditingAndSave(t *testing.T) {
	e := New("/t.txt", []byte("hello\nworld\n"))
	if len(e.Lines) != 2 {
		t.Fatalf("lines %q", e.Lines)
	}
	var saved string
	e.Save = func(p string, b []byte) error { saved = p + ":" + string(b); return nil }
	e.End(false)
	e.Insert(" there")
	e.Enter()
	e.Insert("new line")
	e.Up(1, false) // to "hello there", col 8 (the aimed column)
	if e.Cursor != (Pos{0, 8}) {
		t.Fatalf("cursor after up %v", e.Cursor)
	}
	e.Up(-2, false)
	e.End(false)
	e.Backspace() // "worl"
	e.Home(false)
	e.Delete() // "orl"
	if !e.Dirty {
		t.Fatal("not dirty after edits")
	}
	if got := string(e.Text()); got != "hello there\nnew line\norl\n" {
		t.Fatalf("text %q", got)
	}
	if err := e.DoSave(); err != nil || e.Dirty || saved != "/t.txt:hello there\nnew line\norl\n" {
		t.Fatalf("save: %v dirty=%v saved=%q", err, e.Dirty, saved)
	}
	// Backspace at a line start joins lines; Delete at the end too.
	e.Home(false)
	e.Backspace()
	if string(e.Lines[1]) != "new lineorl" || e.Cursor != (Pos{1, 8}) {
		t.Fatalf("join: %q %v", e.Lines, e.Cursor)
	}
	e.Save = func(string, []byte) error { return errors.New("disk full") }
	if e.DoSave() == nil || !e.Dirty || e.Status != "save failed: disk full" {
		t.Fatalf("failed save: dirty=%v status=%q", e.Dirty, e.Status)
	}
}

func TestSelection(t *testing.T) {
	e := New("/t", []byte("abcdef\nghijkl\nmnopqr"))
	e.Click(Pos{0, 2}, false)
	e.Right(true)
	e.Up(-1, true) // shift+down
	if got := e.SelectedText(); got != "cdef\nghi" {
		t.Fatalf("selected %q", got)
	}
	e.Insert("X")
	if got := string(e.Text()); got != "abXjkl\nmnopqr\n" {
		t.Fatalf("after replacing the selection %q", got)
	}
	// A mouse drag selects backwards too.
	e.Click(Pos{1, 4}, false)
	e.Drag(Pos{0, 1})
	from, to := e.Selection()
	if from != (Pos{0, 1}) || to != (Pos{1, 4}) {
		t.Fatalf("drag selection %v..%v", from, to)
	}
	e.Backspace()
	if got := string(e.Text()); got != "aqr\n" {
		t.Fatalf("after deleting the selection %q", got)
	}
	// Left without shift collapses a selection to its start.
	e.SelectAll()
	e.Left(false)
	if e.HasSelection() || e.Cursor != (Pos{0, 0}) {
		t.Fatalf("collapse: %v %v", e.Anchor, e.Cursor)
	}
	// Positions past the end are clamped.
	e.Click(Pos{9, 99}, false)
	if e.Cursor != (Pos{0, 3}) {
		t.Fatalf("clamped click %v", e.Cursor)
	}
}

func TestPagingAndFollow(t *testing.T) {
	var text []byte
	for range 100 {
		text = append(text, "line\n"...)
	}
	e := New("/t", text)
	e.Up(-30, false) // PageDown by 30
	e.Follow(20)
	if e.Cursor.Line != 30 || e.Top != 11 {
		t.Fatalf("cursor %v top %d", e.Cursor, e.Top)
	}
	e.Up(50, false)
	e.Follow(20)
	if e.Cursor.Line != 0 || e.Top != 0 {
		t.Fatalf("cursor %v top %d", e.Cursor, e.Top)
	}
}
