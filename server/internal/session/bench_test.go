package session

import (
	"path/filepath"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// BenchmarkKeystrokeToLogBlock measures how long a keystroke takes from a
// relay's routed Input to the LogBlock carrying it coming back: the latency
// a replaying viewer adds to typing (the session flushes right after a tick
// that took input, so about one tick at most plus the work).
func BenchmarkKeystrokeToLogBlock(b *testing.B) {
	h := start(b, filepath.Join(b.TempDir(), "bench"), -1)
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	owner := p.join(1, token.RoleOwner, h.s.ID())
	g := p.expect("control", func(m wire.Message) bool { g, ok := m.(*wire.ControlGrant); return ok && g.To == owner.User }).(*wire.ControlGrant)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for len(p.msgs) > 0 {
			<-p.msgs
		}
		t0 := time.Now()
		p.routed(1, &wire.Input{Seq: uint64(i + 1), Epoch: g.Epoch, Events: []abi.Event{{Type: abi.EvKey, Code: 4, Down: i%2 == 0}}})
		p.expect("the block", is[*wire.LogBlock])
		total += time.Since(t0)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/keystroke")
}
