package shell

import (
	"strings"
	"testing"

	"replaydesk/server/images/desk/deskfs"
)

func newShell(t *testing.T) *Shell {
	t.Helper()
	dev := deskfs.NewMemDevice(512)
	if err := deskfs.Format(dev); err != nil {
		t.Fatal(err)
	}
	fs, err := deskfs.Mount(dev)
	if err != nil {
		t.Fatal(err)
	}
	return New(fs)
}

func TestCommands(t *testing.T) {
	sh := newShell(t)
	var edited string
	sh.Edit = func(p string) error { edited = p; return nil }
	steps := []struct{ in, want string }{
		{"ls", ""},
		{"echo hi > a.txt", ""},
		{"cat a.txt", "hi\n"},
		{"echo 'two  words' >> a.txt", ""},
		{"cat a.txt", "hi\ntwo  words\n"},
		{"mkdir d", ""},
		{"cp a.txt d/", ""},
		{"ls", "a.txt  d/\n"},
		{"ls d", "a.txt\n"},
		{"cd d", ""},
		{"pwd", "/d\n"},
		{"grep two a.txt", "two  words\n"},
		{"grep -x HI ../a.txt", "grep: unknown option -x\n"},
		{"grep -i -n HI ../a.txt", "1:hi\n"},
		{"wc a.txt", "    2     3     14 a.txt\n"},
		{"mv a.txt b.txt", ""},
		{"ls", "b.txt\n"},
		{"cat nope", "cat: /d/nope: no such file or directory\n"},
		{"cd ..", ""},
		{"rm d", "rm: d: is a directory (use rm -r)\n"},
		{"rm -r d", ""},
		{"ls", "a.txt\n"},
		{"edit notes.txt", ""},
		{"frobnicate", "sh: frobnicate: command not found (try help)\n"},
		{"echo a > ", "sh: bad redirection\n"},
		{`echo "unterminated`, "sh: unterminated quote\n"},
		{"mkdir -p x/y/z", ""},
		{"ls x/y", "z/\n"},
	}
	for _, s := range steps {
		if got := sh.Run(s.in); got != s.want {
			t.Errorf("%q: got %q, want %q", s.in, got, s.want)
		}
	}
	if edited != "/notes.txt" {
		t.Errorf("edit opened %q", edited)
	}
	if h := sh.Run("help"); !strings.Contains(h, "grep") || !strings.Contains(h, "edit FILE") {
		t.Errorf("help: %q", h)
	}
}

func TestTermHistoryAndLineEditing(t *testing.T) {
	term := NewTerm(newShell(t), "hello")
	term.Type("echo one")
	term.Key(KeyEnter, false)
	term.Type("echo tow")
	term.Key(KeyLeft, false)
	term.Key(KeyBackspace, false)
	term.Key(KeyEnd, false)
	term.Type("o")
	if string(term.Input) != "echo two" {
		t.Fatalf("input %q", string(term.Input))
	}
	term.Key(KeyEnter, false)
	want := []Line{{Text: "hello"}, {Prompt: "desk:/$ ", Text: "echo one"}, {Text: "one"}, {Prompt: "desk:/$ ", Text: "echo two"}, {Text: "two"}}
	if len(term.Lines) != len(want) {
		t.Fatalf("lines %q", term.Lines)
	}
	for i := range want {
		if term.Lines[i] != want[i] {
			t.Fatalf("line %d = %q, want %q", i, term.Lines[i], want[i])
		}
	}
	term.Type("partial")
	term.Key(KeyUp, false)
	if string(term.Input) != "echo two" {
		t.Fatalf("up: %q", string(term.Input))
	}
	term.Key(KeyUp, false)
	term.Key(KeyUp, false) // stays at the oldest
	if string(term.Input) != "echo one" {
		t.Fatalf("up up: %q", string(term.Input))
	}
	term.Key(KeyDown, false)
	term.Key(KeyDown, false)
	if string(term.Input) != "partial" {
		t.Fatalf("down back to the typed line: %q", string(term.Input))
	}
	term.Key(KeyPageUp, false)
	if term.Scroll != 5 {
		t.Fatalf("scroll %d", term.Scroll)
	}
	term.Type("x") // typing returns to the bottom
	if term.Scroll != 0 {
		t.Fatalf("scroll after typing %d", term.Scroll)
	}
	term.Input, term.Cursor = []rune("clear"), 5
	term.Key(KeyEnter, false)
	if len(term.Lines) != 0 {
		t.Fatalf("clear left %q", term.Lines)
	}
}
