package session

import (
	"path/filepath"
	"testing"
	"time"

	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// A snapshot is taken on demand only for someone who may replay: a display
// viewer asking for dual mode again and again is sent back to display and
// asks for nothing (a snapshot holds the memory, every key typed included).
func TestDisplayViewerCannotAskForSnapshots(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "s"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	p.join(1, token.RoleDisplay, h.s.ID())
	for range 20 {
		p.routed(1, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual})
		if ms := routedTo[*wire.ModeSwitch](p, 1); ms.Kind != wire.SwitchForced || ms.Mode != wire.ModeDisplay {
			t.Fatalf("a display viewer's dual request answered with %+v", ms)
		}
	}
	h.s.mu.Lock()
	requested, waiting := h.s.requested, len(h.s.waiters)
	h.s.mu.Unlock()
	if requested || waiting != 0 || len(h.s.snapNow) != 0 {
		t.Errorf("after a display viewer's dual requests: requested %v, %d waiting, %d queued", requested, waiting, len(h.s.snapNow))
	}
}
