package wm

import (
	"image"
	"testing"
)

func TestHitRaiseDragClose(t *testing.T) {
	m := New(image.Rect(0, 0, 1280, 684))
	a, _ := m.Add("a", image.Rect(100, 100, 500, 400), "A")
	b, _ := m.Add("b", image.Rect(300, 200, 700, 500), "B")
	if m.Focus != b || m.Top() != b {
		t.Fatal("a new window is not on top and focused")
	}
	// Overlap goes to the top window; a's own area to a.
	if w, p := m.HitTest(image.Pt(350, 250)); w != b || p != Client {
		t.Fatalf("overlap hit %v %v", w, p)
	}
	if w, p := m.HitTest(image.Pt(150, 110)); w != a || p != Title {
		t.Fatalf("a's title hit %v %v", w, p)
	}
	if w, p := m.HitTest(a.CloseRect().Min.Add(image.Pt(7, 7))); w != a || p != Close {
		t.Fatalf("a's close hit %v %v", w, p)
	}
	if w, p := m.HitTest(image.Pt(50, 50)); w != nil || p != None {
		t.Fatalf("desktop hit %v %v", w, p)
	}
	// Clicking a's client raises and focuses it, with damage covering it.
	w, part, dmg := m.Press(1, image.Pt(150, 300))
	if w != a || part != Client || m.Top() != a || m.Focus != a || len(dmg) == 0 {
		t.Fatalf("press: %v %v top=%v focus=%v dmg=%v", w, part, m.Top(), m.Focus, dmg)
	}
	m.Release(1)
	// User 2 drags b by its title bar while user 1 only moves.
	m.Press(2, image.Pt(600, 210))
	if m.Top() != b || m.Dragging(2) != b {
		t.Fatal("title press did not raise and start a drag")
	}
	if d := m.Move(1, image.Pt(10, 10)); d != nil {
		t.Fatal("another user's move dragged")
	}
	dmg = m.Move(2, image.Pt(650, 260))
	if b.Rect != image.Rect(350, 250, 750, 550) {
		t.Fatalf("dragged to %v", b.Rect)
	}
	if len(dmg) != 2 || !image.Rect(300, 200, 700, 500).In(dmg[0]) || !b.Rect.In(dmg[1]) {
		t.Fatalf("drag damage %v", dmg)
	}
	// Dragging far off screen keeps the title bar reachable.
	m.Move(2, image.Pt(5000, -300))
	if b.Rect.Min.Y != 0 || b.Rect.Min.X != 1280-minVis {
		t.Fatalf("clamped to %v", b.Rect)
	}
	m.Release(2)
	if d := m.Move(2, image.Pt(0, 0)); d != nil {
		t.Fatal("moved after release")
	}
	// Closing b hands focus to a.
	w, part, _ = m.Press(1, b.CloseRect().Min.Add(image.Pt(7, 7)))
	if w != b || part != Close || len(m.Windows) != 1 || m.Focus != a {
		t.Fatalf("close: %v %v windows=%d focus=%v", w, part, len(m.Windows), m.Focus)
	}
	m.Close(a)
	if m.Focus != nil || m.Top() != nil {
		t.Fatal("focus survives the last window")
	}
}
