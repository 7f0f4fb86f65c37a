package session

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// clock is a test clock that stands still unless a test moves it, starting
// at the package's start (tokens are signed with real expiries an hour on).
type clock struct{ ahead atomic.Int64 }

var clockBase = time.Now()

func (c *clock) now() time.Time      { return clockBase.Add(time.Duration(c.ahead.Load())) }
func (c *clock) add(d time.Duration) { c.ahead.Add(int64(d)) }

func withClock(c *clock) func(*Options) { return func(o *Options) { o.Now = c.now } }

func helloWith(tok, name string) *wire.Hello {
	return &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapDisplay | wire.CapJPEG | wire.CapZlib | wire.CapPalette, Token: tok, Name: name}
}

// Finding 1 of issue 9: every Hello used up a user number for good, and the
// last one was persisted, so ~64,000 joins with a display link locked even
// the owner out, also after a restart. Numbers are now reused once their
// holder has left.
func TestJoinsNeverUseUpUserNumbers(t *testing.T) {
	var clk clock
	dir := filepath.Join(t.TempDir(), "lockout")
	h := startWith(t, dir, -1, withClock(&clk))
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	display := sign(token.RoleDisplay, h.s.ID(), time.Hour)
	for i := range 300 {
		c := uint32(100 + i)
		clk.add(time.Second) // under the per-link join rate
		p.routed(c, helloWith(display, "stranger"))
		w := routedTo[*wire.Welcome](p, c)
		if w.User != 1 {
			t.Fatalf("join %d got user %d; the only one present each time, it should reuse number 1", i, w.User)
		}
		p.send(&wire.Gone{Client: c, Reason: "bye"})
	}
	h.stop()

	// The state a lockout attack leaves on today's main: the last number
	// given out persisted at the top of the space. The owner still gets in.
	if err := os.WriteFile(filepath.Join(dir, "live.json"), fmt.Appendf(nil, `{"next_user":%d}`, wire.MaxUser), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := startWith(t, dir, -1, withClock(&clk))
	q := h2.dialRelay(sign(token.RoleRelay, h2.s.ID(), time.Hour))
	q.expect("Welcome", is[*wire.Welcome])
	if w := q.join(1, token.RoleOwner, h2.s.ID()); w.User == 0 {
		t.Fatalf("owner after the restart: %+v", w)
	}
}

// Joins per link are limited in rate and in how many are open at once, and
// a link at its limit does not stop another link.
func TestLinkLimits(t *testing.T) {
	var clk clock
	h := startWith(t, filepath.Join(t.TempDir(), "limits"), -1, withClock(&clk))
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])

	display := sign(token.RoleDisplay, h.s.ID(), time.Hour)
	c := uint32(1)
	for range JoinBurst {
		p.routed(c, helloWith(display, "crowd"))
		routedTo[*wire.Welcome](p, c)
		c++
	}
	p.routed(c, helloWith(display, "one too many"))
	if e := routedTo[*wire.Error](p, c); e.Code != wire.CodeLimit {
		t.Fatalf("join %d within a second: %+v, want a limit", JoinBurst+1, e)
	}
	c++
	// Another link is not held back by this one's flood.
	if w := p.join(c, token.RoleOwner, h.s.ID()); w.User == 0 {
		t.Fatalf("owner: %+v", w)
	}
	c++
	clk.add(time.Second) // JoinRate more joins
	p.routed(c, helloWith(display, "later"))
	routedTo[*wire.Welcome](p, c)
	c++

	// A typing link is personal: at most MaxConnsPerTypingLink at once.
	ctl := sign(token.RoleController, h.s.ID(), time.Hour)
	first := c
	for range MaxConnsPerTypingLink {
		clk.add(time.Second)
		p.routed(c, helloWith(ctl, "me"))
		routedTo[*wire.Welcome](p, c)
		c++
	}
	clk.add(time.Second)
	p.routed(c, helloWith(ctl, "me again"))
	if e := routedTo[*wire.Error](p, c); e.Code != wire.CodeLimit {
		t.Fatalf("connection %d of one controller link: %+v, want a limit", MaxConnsPerTypingLink+1, e)
	}
	c++
	// One closes; another may open.
	p.send(&wire.Gone{Client: first, Reason: "closed a tab"})
	clk.add(time.Second)
	p.routed(c, helloWith(ctl, "me again"))
	routedTo[*wire.Welcome](p, c)
}

// Finding 5 of issue 9: limits were per connection only. Several
// connections with one link share one input budget.
func TestInputBudgetIsPerLink(t *testing.T) {
	var clk clock
	h := startWith(t, filepath.Join(t.TempDir(), "flood"), -1, func(o *Options) {
		o.Now = clk.now
		o.Exclusive = false // shared control: every controller types
	})
	p := h.dialRelay(sign(token.RoleRelay, h.s.ID(), time.Hour))
	p.expect("Welcome", is[*wire.Welcome])
	ctl := sign(token.RoleController, h.s.ID(), time.Hour)
	const conns = 8
	var epoch uint64
	for c := uint32(1); c <= conns; c++ {
		p.routed(c, helloWith(ctl, fmt.Sprint("tab ", c)))
		routedTo[*wire.Welcome](p, c)
	}
	h.s.mu.Lock()
	epoch = h.s.arb.Epoch()
	h.s.mu.Unlock()
	// Each connection sends InputBurst/2 events: within its own budget,
	// but together 4 times more than the link's 2*TokenInputRate burst.
	accepted, refused := 0, 0
	seq := uint64(0)
	for c := uint32(1); c <= conns; c++ {
		for range 2 {
			seq++
			evs := make([]abi.Event, InputBurst/4)
			for i := range evs {
				evs[i] = abi.Event{Type: abi.EvMove, X: int32(i), Y: int32(c)}
			}
			p.routed(c, &wire.Input{Seq: seq, Epoch: epoch, Events: evs})
		}
	}
	// The session answers refusals only; an accepted Input is silent. So
	// count refusals, then check the log took no more than the budget via
	// the metric of refused messages.
	deadline := time.After(10 * time.Second)
	want := conns*2 - (2*TokenInputRate)/(InputBurst/4)
	for refused < want {
		select {
		case m := <-p.msgs:
			if r, ok := m.(*wire.Routed); ok {
				if ir, ok := r.Msg.(*wire.InputRefused); ok {
					if ir.Reason != wire.RefuseRateLimited {
						t.Fatalf("refused for %v: %s", ir.Reason, ir.Text)
					}
					refused++
				}
			}
		case <-deadline:
			t.Fatalf("%d of %d Inputs refused, want %d: the link's budget was not enforced", refused, conns*2, want)
		}
	}
	accepted = conns*2 - refused
	if accepted*(InputBurst/4) > 2*TokenInputRate {
		t.Fatalf("%d events accepted from one link within its burst of %d", accepted*(InputBurst/4), 2*TokenInputRate)
	}
}

// Finding 8 of issue 9: the session endpoint (loopback) served the log,
// files and pages to anyone who could connect. Every path needs a token of
// a relay or a role that may replay, for this session.
func TestSessionEndpointNeedsAToken(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "closed"), -1)
	id := h.s.ID()
	other := token.Sign([]byte("another key, another server....."), token.Claims{Session: id, Role: token.RoleRelay, Expiry: time.Now().Add(time.Hour)})
	paths := []string{"/sessions/" + id + "/files/session.json", "/sessions/" + id + "/log/", "/sessions/" + id + "/snapshots",
		"/pages/" + strings.Repeat("0", 64), "/manifests/" + strings.Repeat("0", 64)}
	cases := []struct {
		name string
		tok  string
		want int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"another server's token", other, http.StatusUnauthorized},
		{"a display link", sign(token.RoleDisplay, id, time.Hour), http.StatusForbidden},
		{"expired", sign(token.RoleRelay, id, -time.Minute), http.StatusUnauthorized},
	}
	for _, path := range paths {
		for _, tc := range cases {
			r, err := h.get(path, tc.tok)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode != tc.want || len(body) == 0 {
				t.Errorf("%s with %s: %s %q, want %d with a reason", path, tc.name, r.Status, body, tc.want)
			}
		}
	}
	// Another session's token does not open this session's files.
	if r, _ := h.get("/sessions/"+id+"/log/", sign(token.RoleRelay, "elsewhere", time.Hour)); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %s", r.Status)
	}
	for _, role := range []string{token.RoleRelay, token.RoleViewer, token.RoleOwner} {
		r, err := h.get("/sessions/"+id+"/files/session.json", sign(role, id, time.Hour))
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s token: %v %v", role, err, r.Status)
		}
		r.Body.Close()
	}
}
