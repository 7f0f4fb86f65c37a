// Package app is the desk itself: a 1280x720 desktop for pair-working with
// windows (terminals, editors, a clock), a taskbar, and every participant's
// named pointer. It turns input events into changes of its models (wm,
// shell, editor), repaints only the areas that changed, and tells its caller
// how long it may sleep.
//
// It talks to the outside world only through Host, so it runs natively in
// tests; it must not know about the guest ABI's imports, WebAssembly or the
// record log (package main adapts it to the SDK).
package app

import (
	"image"
	"image/color"
	"io"
	"path"
	"time"

	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"

	"replaydesk/server/images/desk/deskfs"
	"replaydesk/server/images/desk/editor"
	"replaydesk/server/images/desk/gfx"
	"replaydesk/server/images/desk/shell"
	"replaydesk/server/images/desk/wm"
	"replaydesk/shared/abi"
)

// Screen size.
const (
	Width    = 1280
	Height   = 720
	TaskbarH = 40
)

// Host is what the desk needs from its machine.
type Host interface {
	Now() time.Time
	PollInput(dst []abi.Event) []abi.Event
	Present(img *image.RGBA, damage []image.Rectangle)
	// Disk returns the machine's disk, or an error when it has none.
	Disk() (deskfs.BlockDevice, error)
	Console() io.Writer
}

// user is one participant.
type user struct {
	id        uint16
	name      string
	pos       image.Point
	seen      bool // has moved: the pointer is drawn
	color     color.RGBA
	shift     bool
	ctrl      bool
	selecting *wm.Window // an editor this user is selecting in with the mouse
}

// Desk is the running desktop.
type Desk struct {
	host    Host
	fb, bg  *image.RGBA
	ui      *gfx.Face
	bold    *gfx.Face
	mono    *gfx.Face
	wm      *wm.Manager
	fs      *deskfs.FS
	fsNote  string // why the disk is not in use, if it is not
	users   map[uint16]*user
	order   []uint16 // users in joining order, for the taskbar
	events  []abi.Event
	damage  []image.Rectangle
	now     time.Time
	shown   int64 // the Unix second the clocks show
	started bool
	opened  int // windows opened so far, for cascading
}

// New makes a desk; nothing is drawn or read until the first Step.
func New(h Host) *Desk {
	must := func(f *gfx.Face, err error) *gfx.Face {
		if err != nil {
			panic(err) // embedded fonts: cannot fail
		}
		return f
	}
	d := &Desk{
		host:  h,
		fb:    image.NewRGBA(image.Rect(0, 0, Width, Height)),
		ui:    must(gfx.NewFace(goregular.TTF, 14)),
		bold:  must(gfx.NewFace(gobold.TTF, 13)),
		mono:  must(gfx.NewFace(gomono.TTF, 14)),
		wm:    wm.New(image.Rect(0, 0, Width, Height-TaskbarH)),
		users: map[uint16]*user{},
	}
	monoLineH = d.mono.Height + lineExtra
	d.bg = paintBackground(d.bold)
	return d
}

// start mounts the disk and opens the first windows (from the first step:
// the disk may only be touched from a step).
func (d *Desk) start() {
	d.started = true
	dev, err := d.host.Disk()
	if err == nil {
		d.fs, err = deskfs.Mount(dev)
	}
	if err != nil {
		// Still a working desk: files live in memory for this session.
		d.fsNote = "The disk is not usable (" + err.Error() + "); files are kept in memory."
		mem := deskfs.NewMemDevice(512)
		deskfs.Format(mem)
		d.fs, _ = deskfs.Mount(mem)
	}
	d.fs.Now = func() int64 { return d.now.Unix() }
	d.openTerminal()
	d.openClock()
	d.wm.Raise(d.wm.Windows[0]) // the terminal has the keyboard at first
	d.damage = append(d.damage[:0], d.fb.Rect)
}

// Step runs one tick: it reads the clock and input, updates the screen, and
// returns how long the desk may sleep (it wakes early for input).
func (d *Desk) Step() time.Duration {
	d.now = d.host.Now()
	if !d.started {
		d.start()
	}
	d.events = d.host.PollInput(d.events[:0])
	for _, ev := range d.events {
		d.handle(ev)
	}
	if s := d.now.Unix(); s != d.shown {
		d.shown = s
		d.damage = append(d.damage, d.clockRect())
		for _, w := range d.wm.Windows {
			if _, ok := w.App.(*clockApp); ok {
				d.damage = append(d.damage, w.Client())
			}
		}
	}
	d.flush()
	// Nothing animates: sleep until the clocks next change.
	next := d.now.Truncate(time.Second).Add(time.Second)
	return next.Sub(d.now)
}

// flush repaints the damaged areas and presents them.
func (d *Desk) flush() {
	if len(d.damage) == 0 {
		return
	}
	rects := mergeRects(d.damage, d.fb.Rect)
	d.damage = d.damage[:0]
	for _, r := range rects {
		d.repaint(r)
	}
	if len(rects) > 0 {
		d.host.Present(d.fb, rects)
	}
}

// mergeRects clips rects to bounds and merges overlapping ones, so that no
// pixel is repainted twice; many small rects collapse into their union.
func mergeRects(in []image.Rectangle, bounds image.Rectangle) []image.Rectangle {
	var out []image.Rectangle
	for _, r := range in {
		r = r.Intersect(bounds)
		if r.Empty() {
			continue
		}
		out = append(out, r)
	}
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(out) && !merged; i++ {
			for j := i + 1; j < len(out); j++ {
				if out[i].Overlaps(out[j]) {
					out[i] = out[i].Union(out[j])
					out = append(out[:j], out[j+1:]...)
					merged = true
					break
				}
			}
		}
	}
	if len(out) > 24 {
		u := out[0]
		for _, r := range out[1:] {
			u = u.Union(r)
		}
		out = []image.Rectangle{u}
	}
	return out
}

var userColors = []uint32{0xff6b6b, 0x4dabf7, 0x51cf66, 0xfcc419, 0xcc5de8, 0xff922b, 0x22b8cf, 0xf06595}

func (d *Desk) user(id uint16) *user {
	u := d.users[id]
	if u == nil {
		u = &user{id: id, name: "user " + itoa(int(id)), color: gfx.RGB(userColors[int(id)%len(userColors)])}
		if id == 0 {
			u.name = "host"
		}
		d.users[id] = u
		d.order = append(d.order, id)
		d.damage = append(d.damage, d.taskbarRect())
	}
	return u
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func (d *Desk) handle(ev abi.Event) {
	switch ev.Type {
	case abi.EvUser:
		if !ev.Down {
			if u := d.users[ev.User]; u != nil {
				d.damage = append(d.damage, d.pointerRect(u), d.taskbarRect())
				d.wm.Release(ev.User)
				delete(d.users, ev.User)
				for i, id := range d.order {
					if id == ev.User {
						d.order = append(d.order[:i], d.order[i+1:]...)
						break
					}
				}
			}
			return
		}
		u := d.user(ev.User)
		if u.seen {
			d.damage = append(d.damage, d.pointerRect(u))
		}
		u.name = ev.Text
		d.damage = append(d.damage, d.pointerRect(u), d.taskbarRect())
	case abi.EvMove:
		d.pointerMoved(d.user(ev.User), image.Pt(int(ev.X), int(ev.Y)))
	case abi.EvButton:
		u := d.user(ev.User)
		if ev.Button != 0 {
			return
		}
		if ev.Down {
			d.press(u)
		} else {
			d.wm.Release(u.id)
			u.selecting = nil
		}
	case abi.EvWheel:
		d.wheel(d.user(ev.User), int(ev.Y))
	case abi.EvKey:
		d.key(d.user(ev.User), ev)
	case abi.EvText:
		u := d.user(ev.User)
		if u.ctrl {
			return // Ctrl+letter is a command, not typing
		}
		if w := d.wm.Focus; w != nil {
			d.onApp(w, func() {
				switch a := w.App.(type) {
				case *termApp:
					a.t.Sh.User = u.name
					a.t.Type(ev.Text)
				case *editApp:
					a.e.Insert(ev.Text)
					a.e.Follow(a.rows(w))
				}
			})
		}
	}
}

func (d *Desk) pointerMoved(u *user, pt image.Point) {
	if u.seen {
		d.damage = append(d.damage, d.pointerRect(u))
	}
	u.pos, u.seen = pt, true
	d.damage = append(d.damage, d.pointerRect(u))
	if dmg := d.wm.Move(u.id, pt); dmg != nil {
		d.damage = append(d.damage, dmg...)
	}
	if w := u.selecting; w != nil {
		if a, ok := w.App.(*editApp); ok {
			d.onApp(w, func() {
				a.e.Drag(a.posAt(d, w, pt))
				a.e.Follow(a.rows(w))
			})
		}
	}
}

func (d *Desk) press(u *user) {
	if u.pos.Y >= Height-TaskbarH {
		d.taskbarClick(u.pos)
		return
	}
	before := d.wm.Focus
	w, part, dmg := d.wm.Press(u.id, u.pos)
	d.damage = append(d.damage, dmg...)
	if part != wm.None {
		d.damage = append(d.damage, d.taskbarRect())
	}
	if part == wm.Client {
		if a, ok := w.App.(*editApp); ok {
			d.onApp(w, func() { a.e.Click(a.posAt(d, w, u.pos), u.shift) })
			u.selecting = w
		}
	}
	if part == wm.Close {
		d.closed(w)
	}
	if before != d.wm.Focus && d.wm.Focus != nil {
		d.damage = append(d.damage, d.wm.Focus.Outer())
	}
}

// closed forgets a window's ties to users.
func (d *Desk) closed(w *wm.Window) {
	for _, u := range d.users {
		if u.selecting == w {
			u.selecting = nil
		}
	}
	d.damage = append(d.damage, d.taskbarRect())
}

func (d *Desk) wheel(u *user, dy int) {
	w, part := d.wm.HitTest(u.pos)
	if part != wm.Client {
		return
	}
	d.onApp(w, func() {
		switch a := w.App.(type) {
		case *termApp:
			a.t.ScrollBy(-3 * dy)
		case *editApp:
			a.e.ScrollBy(3*dy, a.rows(w))
		}
	})
}

// keyOf maps the ABI's key codes to the models' keys.
var keyOf = map[abi.KeyCode]shell.Key{
	abi.CodeEnter: shell.KeyEnter, abi.CodeNumpadEnter: shell.KeyEnter,
	abi.CodeBackspace: shell.KeyBackspace, abi.CodeDelete: shell.KeyDelete,
	abi.CodeArrowLeft: shell.KeyLeft, abi.CodeArrowRight: shell.KeyRight,
	abi.CodeArrowUp: shell.KeyUp, abi.CodeArrowDown: shell.KeyDown,
	abi.CodeHome: shell.KeyHome, abi.CodeEnd: shell.KeyEnd,
	abi.CodePageUp: shell.KeyPageUp, abi.CodePageDown: shell.KeyPageDown,
	abi.CodeTab: shell.KeyTab, abi.CodeEscape: shell.KeyEscape,
	abi.CodeKeyA: shell.KeyA, abi.CodeKeyC: shell.KeyC, abi.CodeKeyL: shell.KeyL, abi.CodeKeyS: shell.KeyS,
}

func (d *Desk) key(u *user, ev abi.Event) {
	switch ev.Code {
	case abi.CodeShiftLeft, abi.CodeShiftRight:
		u.shift = ev.Down
		return
	case abi.CodeControlLeft, abi.CodeControlRight, abi.CodeMetaLeft, abi.CodeMetaRight:
		u.ctrl = ev.Down
		return
	}
	if !ev.Down {
		return
	}
	k := keyOf[ev.Code]
	w := d.wm.Focus
	if k == shell.KeyNone || w == nil {
		return
	}
	d.onApp(w, func() {
		switch a := w.App.(type) {
		case *termApp:
			a.t.Sh.User = u.name
			a.t.Key(k, u.ctrl)
		case *editApp:
			a.key(k, u, a.rows(w))
		}
	})
}

// onApp runs f, which changes w's app, and damages what changed: the whole
// window when its layout moved, or only the line being typed on.
func (d *Desk) onApp(w *wm.Window, f func()) {
	before := d.appState(w)
	title := w.Title
	f()
	after := d.appState(w)
	if t := d.titleOf(w); t != title {
		w.Title = t
		d.damage = append(d.damage, image.Rect(w.Rect.Min.X, w.Rect.Min.Y, w.Rect.Max.X, w.Rect.Min.Y+wm.TitleH), d.taskbarRect())
	}
	if before == after {
		return
	}
	if r, ok := d.smallChange(w, before, after); ok {
		d.damage = append(d.damage, r...)
		return
	}
	d.damage = append(d.damage, w.Client())
}

// Open opens path in a new editor window (the shell's edit command).
func (d *Desk) Open(p string) error {
	text, err := d.fs.ReadFile(p)
	if err != nil {
		if st, serr := d.fs.Stat(path.Dir(p)); serr != nil || !st.Dir {
			return err
		}
		text = nil // a new file: created on save
	}
	e := editor.New(p, text)
	e.Save = func(p string, b []byte) error { return d.fs.WriteFile(p, b) }
	if text == nil {
		e.Status = "new file"
	}
	a := &editApp{e: e}
	d.openWindow(a, 760, 500)
	return nil
}

func (d *Desk) openWindow(app any, w, h int) *wm.Window {
	k := d.opened % 8
	d.opened++
	x := 80 + 36*k + (d.opened/8%3)*200
	y := 40 + 28*k
	r := image.Rect(x, y, x+w, y+h)
	win, dmg := d.wm.Add("", r, app)
	win.Title = d.titleOf(win)
	d.damage = append(d.damage, dmg...)
	d.damage = append(d.damage, d.taskbarRect())
	return win
}

func (d *Desk) openTerminal() {
	sh := shell.New(d.fs)
	sh.Now = func() time.Time { return d.now }
	sh.Edit = d.Open
	greet := "replaydesk shell. Type help for the commands."
	if d.fsNote != "" {
		greet += "\n" + d.fsNote
	}
	d.openWindow(&termApp{t: shell.NewTerm(sh, greet)}, 720, 450)
}

func (d *Desk) openClock() {
	if w := d.wm.Find(func(a any) bool { _, ok := a.(*clockApp); return ok }); w != nil {
		d.damage = append(d.damage, d.wm.Raise(w)...)
		d.damage = append(d.damage, d.taskbarRect())
		return
	}
	win := d.openWindow(&clockApp{}, 260, 300)
	// The clock lives at the top right, out of the way.
	old := win.Outer()
	win.Rect = win.Rect.Add(image.Pt(Width-40-win.Rect.Max.X, 40-win.Rect.Min.Y))
	d.damage = append(d.damage, old, win.Outer())
}

func (d *Desk) titleOf(w *wm.Window) string {
	switch a := w.App.(type) {
	case *termApp:
		return "Terminal — " + a.t.Sh.Cwd
	case *editApp:
		t := "Editor — " + a.e.Path
		if a.e.Dirty {
			t += " •"
		}
		return t
	case *clockApp:
		return "Clock"
	}
	return ""
}
