package session

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"replaydesk/server/internal/control"
	"replaydesk/shared/abi"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// target is one client: a relay and the relay's number for it.
type target struct {
	r *relay
	c uint32
}

// client is one admitted person.
type client struct {
	user  uint16
	name  string
	role  control.Role
	mode  wire.Mode
	caps  uint64
	x, y  int32
	input bucket
	tok   *tokenUse // shared by every connection with the same token
}

// tokenUse is what one token (one link) may still do, summed over all the
// connections that hold it: a link is shared with people, and an attacker
// holding one opens many connections, so per-connection limits alone let a
// link join without end or flood input from a thousand sockets.
type tokenUse struct {
	conns    int
	maxConns int
	joins    bucket
	input    bucket
}

// tokenLocked returns the limits of the token tok (verified by the
// caller). Only tokens this server signed get here, so the map holds at
// most the links it issued; an entry whose buckets are full again and that
// has no connection is forgotten.
func (s *Session) tokenLocked(tok string, role control.Role) *tokenUse {
	now := s.o.Now()
	if tu := s.tokens[tok]; tu != nil {
		return tu
	}
	if len(s.tokens) >= maxTokens {
		for k, tu := range s.tokens {
			if tu.conns == 0 && tu.joins.full(now) {
				delete(s.tokens, k)
			}
		}
	}
	maxConns := MaxConnsPerLink
	if role == control.RoleOwner || role == control.RoleController {
		maxConns = MaxConnsPerTypingLink
	}
	tu := &tokenUse{maxConns: maxConns, joins: newBucket(JoinRate, JoinBurst, now),
		input: newBucket(TokenInputRate, 2*TokenInputRate, now)}
	s.tokens[tok] = tu
	return tu
}

// freeUserLocked returns the lowest user number nobody present holds.
// Numbers are reused: a number names a person from their EvUser join event
// to their leave event in the log (the audit reads it that way), so joins
// can never use up the 16-bit space, however many come and go.
func (s *Session) freeUserLocked() (uint16, bool) {
	for u := uint16(1); u < wire.MaxUser; u++ {
		if s.users[u] == nil {
			return u, true
		}
	}
	return 0, false
}

// caps the server uses with a client: what it can decode of display mode
// and whether it may replay.
const serverCaps = wire.CapReplay | wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapDualStream

var roles = map[string]control.Role{
	token.RoleOwner: control.RoleOwner, token.RoleController: control.RoleController,
	token.RoleViewer: control.RoleViewer, token.RoleDisplay: control.RoleDisplayViewer,
}

// routed handles one message from a relay's client.
func (s *Session) routed(r *relay, c uint32, m wire.Message) {
	t := target{r, c}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := m.(*wire.Hello); ok {
		s.helloLocked(t, h)
		return
	}
	cl := s.clients[t]
	if cl == nil {
		s.refuseLocked(t, wire.CodeMalformed, "say Hello first: "+m.Type().String()+" from a client that is not in the session")
		return
	}
	switch m := m.(type) {
	case *wire.Input:
		s.inputLocked(t, cl, m)
	case *wire.ControlRequest, *wire.ControlGrant, *wire.ControlRevoke, *wire.ControlRelease:
		s.controlLocked(t, cl, m)
	case *wire.ModeSwitch:
		s.modeSwitchLocked(t, cl, m)
	case *wire.Ping:
		s.routeLocked(t, &wire.Pong{Seq: m.Seq, Echo: m.Sent, Sent: uint64(time.Now().UnixNano())})
	case *wire.Lag, *wire.Pong, *wire.Resume:
		// The relay's business (per-client cursors); nothing here.
	default:
		s.log.Debug().Str("type", m.Type().String()).Uint32("client", c).Msg("ignored a message a client should not send")
	}
}

// refuseLocked answers a client with an Error and asks its relay to drop it.
func (s *Session) refuseLocked(t target, code wire.ErrorCode, text string) {
	if len(text) > wire.MaxText {
		text = text[:wire.MaxText]
	}
	s.routeLocked(t, &wire.Error{Code: code, Text: text})
	if b, err := wire.Encode(&wire.Gone{Client: t.c, Reason: text}); err == nil {
		t.r.send(b)
	}
}

func (s *Session) helloLocked(t target, h *wire.Hello) {
	if s.clients[t] != nil {
		s.refuseLocked(t, wire.CodeMalformed, "a second Hello on one connection")
		return
	}
	claims, err := token.Verify(s.o.Key, h.Token, s.o.Now())
	if err != nil {
		s.refuseLocked(t, wire.CodeUnauthorized, err.Error())
		return
	}
	if claims.Session != s.id {
		s.refuseLocked(t, wire.CodeNoSession, fmt.Sprintf("this link is for session %q, not %q", claims.Session, s.id))
		return
	}
	role, ok := roles[claims.Role]
	if !ok {
		s.refuseLocked(t, wire.CodeForbidden, "a "+claims.Role+" token does not admit a person")
		return
	}
	tk := s.tokenLocked(h.Token, role)
	if tk.conns >= tk.maxConns {
		s.met.joinRefused.Add(1)
		s.refuseLocked(t, wire.CodeLimit, fmt.Sprintf("this link is already open %d times, its limit; close one first", tk.maxConns))
		return
	}
	if !tk.joins.take(1, s.o.Now()) {
		s.met.joinRefused.Add(1)
		s.refuseLocked(t, wire.CodeLimit, fmt.Sprintf("this link joined more than %d times a second; wait and try again", JoinRate))
		return
	}
	u, ok := s.freeUserLocked()
	if !ok {
		s.met.joinRefused.Add(1)
		s.refuseLocked(t, wire.CodeLimit, fmt.Sprintf("the session is full (%d people)", len(s.clients)))
		return
	}
	name := h.Name
	if name == "" {
		name = claims.Name
	}
	if name == "" {
		name = fmt.Sprintf("%s %d", claims.Role, u)
	}
	name = truncate(name, wire.MaxName) // the guest sees its first abi.MaxText bytes
	if err := s.arb.Join(u, name, role); err != nil {
		s.refuseLocked(t, wire.CodeInternal, err.Error())
		return
	}
	cl := &client{user: u, name: name, role: role, mode: wire.ModeDisplay, caps: h.Caps, tok: tk,
		input: newBucket(InputRate, InputBurst, s.o.Now())}
	s.clients[t] = cl
	s.users[u] = cl
	tk.conns++
	s.nextUser = max(s.nextUser, u)
	s.saveUsersLocked()
	// The log names who joins: the record log is the session's audit.
	s.inject(abi.Event{Type: abi.EvUser, Down: true, User: u, Text: name})
	s.routeLocked(t, s.welcome(u, wire.Role(role), h.Caps&serverCaps))
	s.log.Info().Uint16("user", u).Str("name", name).Str("role", role.String()).Msg("joined")
	holderBefore, _ := s.arb.Holder()
	if role == control.RoleOwner && holderBefore == 0 && s.arb.Mode() == control.Exclusive {
		// An owner arriving at a session nobody controls can type at once.
		if granted, err := s.arb.Request(u); err == nil && granted {
			s.broadcastMsgLocked(&wire.ControlGrant{By: 0, To: u, Epoch: s.arb.Epoch()})
		}
	}
	s.cast.RequestKey(t) // everyone starts in display mode
	s.modesChangedLocked()
}

func truncate(s string, n int) string {
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// inject puts an event into the machine's input; false when the queue is
// full (the machine is far behind).
func (s *Session) inject(ev abi.Event) bool {
	select {
	case s.input <- ev:
		return true
	default:
		return false
	}
}

var refusals = map[*control.Refusal]wire.RefuseReason{
	control.ErrNotController: wire.RefuseNotController,
	control.ErrViewerOnly:    wire.RefuseViewerOnly,
	control.ErrStaleEpoch:    wire.RefuseStaleEpoch,
	control.ErrNoSuchUser:    wire.RefuseNoSuchUser,
	control.ErrBadEvent:      wire.RefuseBadEvent,
}

func (s *Session) inputLocked(t target, cl *client, m *wire.Input) {
	refuse := func(reason wire.RefuseReason, text string) {
		s.met.refused.Add(1)
		s.routeLocked(t, &wire.InputRefused{Seq: m.Seq, Reason: reason, Text: text})
	}
	evs, err := s.arb.Accept(cl.user, m.Events, m.Epoch)
	if err != nil {
		var r *control.Refusal
		reason := wire.RefuseNotController
		if errors.As(err, &r) {
			if v, ok := refusals[r]; ok {
				reason = v
			}
		}
		refuse(reason, err.Error())
		return
	}
	now := s.o.Now()
	if !cl.input.take(len(evs), now) {
		refuse(wire.RefuseRateLimited, fmt.Sprintf("more than %d input events a second; slow down", InputRate))
		return
	}
	if !cl.tok.input.take(len(evs), now) {
		refuse(wire.RefuseRateLimited, fmt.Sprintf("everyone on this link together sent more than %d input events a second; slow down", TokenInputRate))
		return
	}
	if len(s.input)+len(evs) > cap(s.input) {
		refuse(wire.RefuseRateLimited, "the machine is behind on input; try again")
		return
	}
	for _, ev := range evs {
		s.inject(ev)
		if ev.Type == abi.EvMove {
			cl.x, cl.y = ev.X, ev.Y
			s.pointer = true
		}
	}
}

// controlLocked applies a control message to the arbiter and tells
// everyone what changed.
func (s *Session) controlLocked(t target, cl *client, m wire.Message) {
	holder, _ := s.arb.Holder()
	epoch := s.arb.Epoch()
	var err error
	var announce wire.Message
	u := cl.user
	switch m := m.(type) {
	case *wire.ControlRequest:
		if cl.role == control.RoleOwner {
			// The owner can always take control back.
			if err = s.arb.ForceTake(u); errors.Is(err, control.ErrSharedMode) {
				err = nil
			}
			announce = &wire.ControlGrant{By: u, To: u}
			break
		}
		var granted bool
		if granted, err = s.arb.Request(u); err == nil && !granted {
			// Queued: the owners and the holder decide.
			req := &wire.ControlRequest{User: u, Epoch: s.arb.Epoch()}
			for ot, oc := range s.clients {
				if oc.role == control.RoleOwner || oc.user == holder {
					s.routeLocked(ot, req)
				}
			}
		}
		if granted {
			announce = &wire.ControlGrant{By: 0, To: u}
		}
	case *wire.ControlGrant:
		err = s.arb.Grant(u, m.To)
		announce = &wire.ControlGrant{By: u, To: m.To}
	case *wire.ControlRevoke:
		err = s.arb.Revoke(u)
		announce = &wire.ControlRevoke{By: u, From: holder}
	case *wire.ControlRelease:
		err = s.arb.Release(u)
		announce = &wire.ControlRelease{User: u}
	}
	if err != nil {
		s.met.refused.Add(1)
		reason := wire.RefuseNotController
		var r *control.Refusal
		if errors.As(err, &r) {
			if v, ok := refusals[r]; ok {
				reason = v
			}
		}
		s.routeLocked(t, &wire.InputRefused{Seq: 0, Reason: reason, Text: err.Error()})
		return
	}
	s.controlChangedLocked(epoch, announce)
}

// controlChangedLocked broadcasts a control change with the epoch after it
// (nothing when the epoch did not move: a request queued, a grant to the
// holder) and, when control then passed on to someone else by itself (the
// queue advancing), that grant too.
func (s *Session) controlChangedLocked(epochBefore uint64, announce wire.Message) {
	epoch := s.arb.Epoch()
	if epoch != epochBefore && announce != nil {
		switch a := announce.(type) {
		case *wire.ControlGrant:
			a.Epoch = epoch
		case *wire.ControlRevoke:
			a.Epoch = epoch
		case *wire.ControlRelease:
			a.Epoch = epoch
		}
		s.broadcastMsgLocked(announce)
		g, isGrant := announce.(*wire.ControlGrant)
		if holder, ok := s.arb.Holder(); ok && !(isGrant && g.To == holder) {
			s.broadcastMsgLocked(&wire.ControlGrant{By: 0, To: holder, Epoch: epoch})
		}
	}
	s.presenceLocked()
}

func (s *Session) modeSwitchLocked(t target, cl *client, m *wire.ModeSwitch) {
	mode := m.Mode
	if mode == wire.ModeAuto {
		return // an unpin: the client's controller decides from now on
	}
	if cl.role == control.RoleDisplayViewer && mode != wire.ModeDisplay {
		s.routeLocked(t, &wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay,
			Reason: "you joined as a display viewer: pixels only"})
		return
	}
	prev := cl.mode
	cl.mode = mode
	switch mode {
	case wire.ModeDisplay:
		delete(s.waiters, t)
		if prev != wire.ModeDual || m.Kind == wire.SwitchForced {
			// From replay (or a relay that dropped its deltas): a fresh
			// screen to start from.
			s.cast.RequestKey(t)
		}
	case wire.ModeDual:
		stale := s.announce == nil || s.tick.Load()-min(s.tick.Load(), s.announce.Tick) > uint64(DualSnapshotAge.Seconds())*s.tickRate
		if stale {
			s.waiters[t] = true
			if !s.requested {
				s.requested = true
				s.requestSnapshot()
			}
		}
	case wire.ModeReplay:
		delete(s.waiters, t)
	}
	if prev != mode {
		s.modesChangedLocked()
	}
}

// gone removes a client its relay lost.
func (s *Session) gone(t target, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[t] == nil {
		return
	}
	s.leaveLocked(t, reason)
	s.modesChangedLocked()
}

func (s *Session) leaveLocked(t target, reason string) {
	cl := s.clients[t]
	delete(s.clients, t)
	delete(s.users, cl.user) // free for the next joiner, after the leave event below
	delete(s.waiters, t)
	cl.tok.conns--
	holder, _ := s.arb.Holder()
	if err := s.arb.Leave(cl.user); err == nil && holder == cl.user {
		if next, ok := s.arb.Holder(); ok {
			s.broadcastMsgLocked(&wire.ControlGrant{By: 0, To: next, Epoch: s.arb.Epoch()})
		} else {
			s.broadcastMsgLocked(&wire.ControlRelease{User: cl.user, Epoch: s.arb.Epoch()})
		}
	}
	if !s.closed { // else live.json keeps them for a continued session
		s.inject(abi.Event{Type: abi.EvUser, Down: false, User: cl.user, Text: cl.name})
		s.saveUsersLocked()
	}
	s.log.Info().Uint16("user", cl.user).Str("reason", reason).Msg("left")
}

// modesChangedLocked recounts modes (display encoding runs only while
// someone is in display or dual mode) and broadcasts Presence.
func (s *Session) modesChangedLocked() {
	var n [4]int
	for _, c := range s.clients {
		n[c.mode]++
	}
	s.met.display.Set(float64(n[wire.ModeDisplay]))
	s.met.dual.Set(float64(n[wire.ModeDual]))
	s.met.replay.Set(float64(n[wire.ModeReplay]))
	s.cast.SetActive(n[wire.ModeDisplay]+n[wire.ModeDual] > 0)
	s.presenceLocked()
}

func (s *Session) presenceLocked() {
	s.pointer = false
	s.broadcastMsgLocked(s.presence())
}

// presence is everyone, from the arbiter and the clients' modes.
func (s *Session) presence() *wire.Presence {
	ap := s.arb.Presence()
	p := &wire.Presence{Control: wire.ControlExclusive, Epoch: ap.Epoch}
	if ap.Mode == control.Shared {
		p.Control = wire.ControlShared
	}
	byUser := make(map[uint16]*client, len(s.clients))
	for _, c := range s.clients {
		byUser[c.user] = c
	}
	for _, u := range ap.Users {
		c := byUser[u.User]
		if c == nil {
			continue
		}
		p.Users = append(p.Users, wire.PresenceUser{User: u.User, Name: u.Name, Role: wire.Role(u.Role),
			Mode: c.mode, HasControl: u.HasControl, X: c.x, Y: c.y})
	}
	if len(p.Users) > wire.MaxUsers {
		p.Users = p.Users[:wire.MaxUsers]
	}
	return p
}

// bucket is a token bucket of input events.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(rate, burst float64, now time.Time) bucket {
	return bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// full reports whether the bucket has refilled to its burst.
func (b *bucket) full(now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
}

func (b *bucket) take(n int, now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}
