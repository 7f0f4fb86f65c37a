package shell

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxScrollback is how many lines a terminal keeps.
const MaxScrollback = 1000

// Line is one line of the terminal: an optional prompt (drawn in its own
// colour) and text.
type Line struct {
	Prompt, Text string
}

// Term is a terminal's state: what it shows and the line being typed.
type Term struct {
	Sh      *Shell
	Lines   []Line
	Input   []rune
	Cursor  int // in Input
	History []string
	hpos    int    // index into History while browsing; len(History) when not
	saved   []rune // the line being typed before browsing history
	// Scroll is how many lines the view is scrolled back from the bottom.
	Scroll int
	// Gen changes whenever anything visible changes, so a renderer can tell.
	Gen int
}

// NewTerm returns a terminal running sh with a greeting.
func NewTerm(sh *Shell, greeting string) *Term {
	t := &Term{Sh: sh}
	if greeting != "" {
		t.print(greeting)
	}
	return t
}

// Prompt is the prompt for the input line.
func (t *Term) Prompt() string { return "desk:" + t.Sh.Cwd + "$ " }

func (t *Term) print(s string) {
	s = strings.TrimSuffix(s, "\n")
	for _, l := range strings.Split(s, "\n") {
		t.Lines = append(t.Lines, Line{Text: strings.ReplaceAll(l, "\t", "    ")})
	}
	t.trim()
}

func (t *Term) trim() {
	if n := len(t.Lines) - MaxScrollback; n > 0 {
		t.Lines = append(t.Lines[:0], t.Lines[n:]...)
	}
}

// Type inserts text at the cursor (control characters are dropped).
func (t *Term) Type(s string) {
	for _, r := range s {
		if r < ' ' || r == utf8.RuneError || r == 0x7f {
			continue
		}
		t.Input = append(t.Input[:t.Cursor], append([]rune{r}, t.Input[t.Cursor:]...)...)
		t.Cursor++
	}
	t.Scroll = 0
	t.Gen++
}

// Key handles a key that edits or submits the line; it reports whether the
// key meant anything to the terminal. ctrl is whether Control is held.
func (t *Term) Key(k Key, ctrl bool) bool {
	switch k {
	case KeyEnter:
		t.Submit()
	case KeyBackspace:
		if t.Cursor > 0 {
			t.Input = append(t.Input[:t.Cursor-1], t.Input[t.Cursor:]...)
			t.Cursor--
		}
	case KeyDelete:
		if t.Cursor < len(t.Input) {
			t.Input = append(t.Input[:t.Cursor], t.Input[t.Cursor+1:]...)
		}
	case KeyLeft:
		t.Cursor = max(0, t.Cursor-1)
	case KeyRight:
		t.Cursor = min(len(t.Input), t.Cursor+1)
	case KeyHome:
		t.Cursor = 0
	case KeyEnd:
		t.Cursor = len(t.Input)
	case KeyUp:
		if t.hpos > 0 {
			if t.hpos == len(t.History) {
				t.saved = append([]rune(nil), t.Input...)
			}
			t.hpos--
			t.setInput([]rune(t.History[t.hpos]))
		}
	case KeyDown:
		if t.hpos < len(t.History) {
			t.hpos++
			if t.hpos == len(t.History) {
				t.setInput(t.saved)
			} else {
				t.setInput([]rune(t.History[t.hpos]))
			}
		}
	case KeyPageUp:
		t.ScrollBy(10)
		return true
	case KeyPageDown:
		t.ScrollBy(-10)
		return true
	case KeyC:
		if !ctrl {
			return false
		}
		t.Lines = append(t.Lines, Line{Prompt: t.Prompt(), Text: string(t.Input) + "^C"})
		t.setInput(nil)
		t.hpos = len(t.History)
	case KeyL:
		if !ctrl {
			return false
		}
		t.Lines = t.Lines[:0]
	default:
		return false
	}
	t.Scroll = 0
	t.Gen++
	return true
}

// ScrollBy scrolls the view back by n lines (forward when negative).
func (t *Term) ScrollBy(n int) {
	t.Scroll = max(0, min(len(t.Lines), t.Scroll+n))
	t.Gen++
}

func (t *Term) setInput(r []rune) {
	t.Input = append([]rune(nil), r...)
	t.Cursor = len(t.Input)
}

// Submit runs the input line.
func (t *Term) Submit() {
	line := string(t.Input)
	t.Lines = append(t.Lines, Line{Prompt: t.Prompt(), Text: line})
	t.setInput(nil)
	t.Scroll = 0
	t.Gen++
	cmd := strings.TrimSpace(line)
	if cmd != "" && (len(t.History) == 0 || t.History[len(t.History)-1] != cmd) {
		t.History = append(t.History, cmd)
	}
	t.hpos = len(t.History)
	switch cmd {
	case "":
	case "clear":
		t.Lines = t.Lines[:0]
	case "history":
		for i, h := range t.History {
			t.print(fmt.Sprintf("%4d  %s", i+1, h))
		}
	default:
		if out := t.Sh.Run(cmd); out != "" {
			t.print(out)
		}
	}
	t.trim()
}

// Key is a key the terminal and editor understand, independent of the
// ABI's key codes (the desk maps them).
type Key int

// Keys.
const (
	KeyNone Key = iota
	KeyEnter
	KeyBackspace
	KeyDelete
	KeyLeft
	KeyRight
	KeyUp
	KeyDown
	KeyHome
	KeyEnd
	KeyPageUp
	KeyPageDown
	KeyTab
	KeyEscape
	KeyA
	KeyC
	KeyL
	KeyS
)
