// Package wm is the desk's window manager model: windows in stacking order,
// hit-testing of title bars, close buttons and client areas, raising,
// keyboard focus (one focused window shared by everyone) and dragging (one
// drag per user, so two people can move two windows at once).
//
// It deals only in rectangles: it knows nothing about what windows contain,
// how they are drawn, or where input comes from. Every change returns the
// screen areas it affects, so the desk can repaint only those.
package wm

import "image"

// Geometry of the frame every window has.
const (
	TitleH    = 30 // title bar height
	CloseSize = 14 // the close button's diameter
	Shadow    = 14 // how far a window's shadow reaches outside its frame (with its offset)
	minVis    = 60 // how much of a dragged window stays on screen
)

// Part is what a point on a window hits.
type Part int

// Parts.
const (
	None Part = iota
	Title
	Close
	Client
)

// Window is one window. Rect is its frame, title bar included.
type Window struct {
	ID    int
	Title string
	Rect  image.Rectangle
	// App is the window's content, opaque to the manager.
	App any
}

// Client is the area below the title bar.
func (w *Window) Client() image.Rectangle {
	r := w.Rect
	r.Min.Y += TitleH
	return r
}

// CloseRect is the close button, at the title bar's right.
func (w *Window) CloseRect() image.Rectangle {
	x := w.Rect.Max.X - 12 - CloseSize
	y := w.Rect.Min.Y + (TitleH-CloseSize)/2
	return image.Rect(x, y, x+CloseSize, y+CloseSize)
}

// Outer is everything the window paints, its shadow included.
func (w *Window) Outer() image.Rectangle { return w.Rect.Inset(-Shadow) }

type drag struct {
	win    *Window
	offset image.Point // from the pointer to the window's corner
}

// Manager keeps the windows of one screen.
type Manager struct {
	// Windows in stacking order, bottom first.
	Windows []*Window
	// Focus receives keyboard input; nil when no window has it.
	Focus *Window
	// Area is where windows may be dragged (the screen minus the taskbar).
	Area   image.Rectangle
	drags  map[uint16]drag
	nextID int
}

// New returns a manager for windows inside area.
func New(area image.Rectangle) *Manager {
	return &Manager{Area: area, drags: map[uint16]drag{}}
}

// Add opens a window on top, focused, and returns it with the damage.
func (m *Manager) Add(title string, r image.Rectangle, app any) (*Window, []image.Rectangle) {
	m.nextID++
	w := &Window{ID: m.nextID, Title: title, Rect: r, App: app}
	var damage []image.Rectangle
	if m.Focus != nil {
		damage = append(damage, m.Focus.Rect) // its title bar greys out
	}
	m.Windows = append(m.Windows, w)
	m.Focus = w
	return w, append(damage, w.Outer())
}

// Top returns the topmost window, or nil.
func (m *Manager) Top() *Window {
	if len(m.Windows) == 0 {
		return nil
	}
	return m.Windows[len(m.Windows)-1]
}

// HitTest finds the topmost window under pt and the part of it that pt hits.
func (m *Manager) HitTest(pt image.Point) (*Window, Part) {
	for i := len(m.Windows) - 1; i >= 0; i-- {
		w := m.Windows[i]
		if !pt.In(w.Rect) {
			continue
		}
		switch {
		case pt.In(w.CloseRect().Inset(-3)): // a little slack around a small target
			return w, Close
		case pt.Y < w.Rect.Min.Y+TitleH:
			return w, Title
		default:
			return w, Client
		}
	}
	return nil, None
}

// Raise puts w on top and focuses it.
func (m *Manager) Raise(w *Window) []image.Rectangle {
	var damage []image.Rectangle
	if m.Focus != w {
		if m.Focus != nil {
			damage = append(damage, m.Focus.Rect)
		}
		m.Focus = w
		damage = append(damage, w.Outer())
	}
	if m.Top() != w {
		for i, x := range m.Windows {
			if x == w {
				m.Windows = append(append(m.Windows[:i:i], m.Windows[i+1:]...), w)
				break
			}
		}
		damage = append(damage, w.Outer())
	}
	return damage
}

// Close removes w; focus passes to the new top window.
func (m *Manager) Close(w *Window) []image.Rectangle {
	for i, x := range m.Windows {
		if x == w {
			m.Windows = append(m.Windows[:i], m.Windows[i+1:]...)
			break
		}
	}
	for u, d := range m.drags {
		if d.win == w {
			delete(m.drags, u)
		}
	}
	damage := []image.Rectangle{w.Outer()}
	if m.Focus == w {
		m.Focus = m.Top()
		if m.Focus != nil {
			damage = append(damage, m.Focus.Rect)
		}
	}
	return damage
}

// Press handles a primary button press by user at pt: it raises and focuses
// the window hit, starts a drag on a title bar, and closes on the close
// button. It returns the window and part hit, and the damage.
func (m *Manager) Press(user uint16, pt image.Point) (*Window, Part, []image.Rectangle) {
	w, part := m.HitTest(pt)
	switch part {
	case None:
		return nil, None, nil
	case Close:
		return w, Close, m.Close(w)
	case Title:
		m.drags[user] = drag{win: w, offset: w.Rect.Min.Sub(pt)}
	}
	return w, part, m.Raise(w)
}

// Dragging returns the window user is dragging, or nil.
func (m *Manager) Dragging(user uint16) *Window { return m.drags[user].win }

// Move handles user's pointer moving to pt: it moves the window user drags.
func (m *Manager) Move(user uint16, pt image.Point) []image.Rectangle {
	d, ok := m.drags[user]
	if !ok {
		return nil
	}
	w := d.win
	to := pt.Add(d.offset)
	// Keep the title bar reachable.
	to.X = max(m.Area.Min.X-w.Rect.Dx()+minVis, min(m.Area.Max.X-minVis, to.X))
	to.Y = max(m.Area.Min.Y, min(m.Area.Max.Y-TitleH, to.Y))
	if to == w.Rect.Min {
		return nil
	}
	old := w.Outer()
	w.Rect = w.Rect.Add(to.Sub(w.Rect.Min))
	return []image.Rectangle{old, w.Outer()}
}

// Release ends user's drag.
func (m *Manager) Release(user uint16) { delete(m.drags, user) }

// Find returns the first window whose App satisfies f, or nil.
func (m *Manager) Find(f func(app any) bool) *Window {
	for _, w := range m.Windows {
		if f(w.App) {
			return w
		}
	}
	return nil
}
