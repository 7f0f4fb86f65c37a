package hub

import (
	"fmt"
	"sync"
	"time"

	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// Per-token limits (issue 9, findings 4 and 5): a link is shared, so limits
// per connection alone let one link open thousands of connections, each
// just under them. The relay knows each client's verified token; all
// connections of one identity (the token's session, role and name: a
// re-signed token of the same person counts as the same) share these.
// Defaults are set so that a display link shared with hundreds of people
// is not hurt; Options change them.
const (
	defaultConnsPerToken  = 500  // connections open at once
	defaultJoinsPerMinute = 600  // Hellos per minute (a burst of as many)
	defaultTokenMsgRate   = 4000 // messages per second over all its connections (and the burst)
	// Input from a role that cannot type is answered here; the answers
	// themselves are bounded per connection.
	refusalRate = 4 // InputRefused per second (and the burst)
)

// bucket is a token bucket: rate a second, bursts of burst.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst}
}

func (l *bucket) allow(now time.Time) bool {
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// full says the bucket has refilled (nothing to remember about it).
func (l *bucket) full(now time.Time) bool {
	return l.tokens+now.Sub(l.last).Seconds()*l.rate >= l.burst
}

// identity is what the per-token limits count by.
func identity(c token.Claims) string {
	return c.Session + "\x00" + c.Role + "\x00" + c.Name
}

// tokenUse is one identity's share: conns and joins guarded by Hub.mu,
// msgs by its own mu.
type tokenUse struct {
	conns int
	joins *bucket

	mu   sync.Mutex
	msgs *bucket
}

// allowMsg counts one message against the identity's rate.
func (u *tokenUse) allowMsg(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.msgs.allow(now)
}

// admit counts a verified Hello against its identity's limits. done
// releases the connection; nil when refused, with the reason.
func (h *Hub) admit(c token.Claims) (u *tokenUse, done func(), code wire.ErrorCode, why string) {
	id := identity(c)
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	u = h.tokens[id]
	if u == nil {
		u = &tokenUse{
			joins: newBucket(float64(h.opts.JoinsPerMinute)/60, float64(h.opts.JoinsPerMinute)),
			msgs:  newBucket(float64(h.opts.TokenMsgRate), float64(h.opts.TokenMsgRate)),
		}
		h.tokens[id] = u
	}
	// Every Hello counts as a join, refused or not: a flood of refused
	// Hellos is still a flood.
	if !u.joins.allow(now) {
		h.m.refused("token_joins")
		return nil, nil, wire.CodeLimit, fmt.Sprintf("this link joined more than %d times in a minute at this relay: try again in a minute", h.opts.JoinsPerMinute)
	}
	if u.conns >= h.opts.ConnsPerToken {
		h.m.refused("token_connections")
		return nil, nil, wire.CodeLimit, fmt.Sprintf("this link already has %d connections open at this relay, the most it may", h.opts.ConnsPerToken)
	}
	u.conns++
	released := false
	return u, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !released {
			released = true
			u.conns--
		}
	}, 0, ""
}

// pruneTokens forgets identities with no connection and a full join
// bucket (holding Hub.mu), so the map is bounded by what is in use.
func (h *Hub) pruneTokens(now time.Time) {
	for id, u := range h.tokens {
		if u.conns == 0 && u.joins.full(now) {
			delete(h.tokens, id)
		}
	}
}

// mayType says whether a token's role may send Input at all; the server
// decides the rest (control, epochs).
func mayType(role string) bool {
	return role == token.RoleOwner || role == token.RoleController
}

// priority says whether a role's Hellos and messages go upstream ahead of
// everyone else's (admission control: an owner or controller is never
// queued behind a flood of viewers).
func priority(role string) bool { return mayType(role) }
