package hub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// refusal is a reason to close a client with an Error.
type refusal struct {
	code wire.ErrorCode
	text string
}

func (r *refusal) Error() string { return r.text }

var errPeerGaveUp = errors.New("the peer sent an Error")

// accept upgrades, registers and reads the Hello of a downstream
// connection.
func (h *Hub) accept(w http.ResponseWriter, r *http.Request) (*down, *wire.Hello, []byte, string) {
	id := r.PathValue("session")
	if id == "" || len(id) > wire.MaxSessionID {
		http.Error(w, "bad session id", http.StatusBadRequest)
		return nil, nil, nil, ""
	}
	if ok, why := h.originAllowed(r); !ok {
		h.m.refused("origin")
		h.log.Info().Str("peer", r.RemoteAddr).Str("origin", r.Header.Get("Origin")).Str("host", r.Host).Msg("WebSocket from a foreign page refused")
		http.Error(w, why, http.StatusForbidden)
		return nil, nil, nil, ""
	}
	// Checked above, more strictly than the library (which trusts Host).
	ws, err := wsconn.Accept(w, r, wsconn.AcceptOptions{OriginPatterns: []string{"*"}})
	if err != nil {
		h.log.Info().Err(err).Msg("WebSocket refused")
		return nil, nil, nil, ""
	}
	d := newDown(h, ws)
	if !h.register(d) {
		d.cancel()
		ws.Fail(wire.CodeLimit, fmt.Sprintf("this relay is full (at most %d connections): try again later", h.opts.MaxClients))
		return nil, nil, nil, ""
	}
	// A timer rather than a deadline on Recv: the library closes the
	// connection when a read's context ends, and the Error must go out first.
	t := time.AfterFunc(helloTimeout, func() {
		ws.Fail(wire.CodeMalformed, fmt.Sprintf("no Hello within %s", helloTimeout))
	})
	msg, b, err := ws.Recv(context.Background())
	stopped := t.Stop()
	if err != nil || !stopped {
		h.drop(d)
		return nil, nil, nil, ""
	}
	hello, ok := msg.(*wire.Hello)
	if !ok {
		ws.Fail(wire.CodeMalformed, fmt.Sprintf("the first message must be Hello, not %s", msg.Type()))
		h.drop(d)
		return nil, nil, nil, ""
	}
	return d, hello, b, id
}

// drop ends a downstream connection for good.
func (h *Hub) drop(d *down) {
	d.cancel()
	h.unregister(d)
	// A final Error may still be on its way: close for sure a little later.
	time.AfterFunc(6*time.Second, d.ws.CloseNow)
}

// serveClient is GET /ws/{session}: one client.
func (h *Hub) serveClient(w http.ResponseWriter, r *http.Request) {
	d, hello, hb, id := h.accept(w, r)
	if d == nil {
		return
	}
	defer h.drop(d)
	if hello.Caps&wire.CapRelay != 0 {
		d.ws.Fail(wire.CodeMalformed, "a relay connects to /upstream/{session}, not /ws/")
		return
	}
	claims, code, err := h.checkToken(hello.Token, id, false)
	if err != nil {
		h.m.refused("token")
		h.log.Info().Str("peer", d.ws.Remote()).Err(err).Msg("client refused")
		d.ws.Fail(code, err.Error())
		return
	}
	use, release, code, why := h.admit(claims)
	if use == nil {
		h.log.Info().Str("peer", d.ws.Remote()).Str("session", id).Str("role", claims.Role).Str("why", why).Msg("client refused: limit of its token")
		d.ws.Fail(code, why)
		return
	}
	defer release()
	m := &member{d: d, id: h.newClientID(), name: "pending", tokRole: claims.Role, prio: priority(claims.Role), use: use,
		refusals: newBucket(refusalRate, refusalRate)}
	s, ok := h.join(id, m)
	if !ok {
		d.ws.Fail(wire.CodeShutdown, "relay shutting down")
		return
	}
	s.mu.Lock()
	s.admitHello(m, routedBytes(m.id, hb))
	s.mu.Unlock()
	t := time.AfterFunc(welcomeTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !m.welcomed && s.members[d] == m {
			d.finish(wire.CodeShutdown, "the upstream did not answer within 15 s: try again later")
		}
	})
	defer t.Stop()
	h.log.Debug().Str("session", id).Uint32("client", m.id).Str("name", hello.Name).Msg("client joined")

	s.readLoop(m, newBucket(msgRate, msgRate), "left", s.fromClient)
}

// fromClient handles one message of a direct client.
func (s *session) fromClient(m *member, msg wire.Message, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := msg.(type) {
	case *wire.Ping:
		s.pushMsg(m, &wire.Pong{Seq: v.Seq, Echo: v.Sent, Sent: uint64(time.Now().UnixNano())}, catControl)
	case *wire.Pong:
	case *wire.Lag:
		m.hasLag = true
		m.lagTicks = float64(s.tick - min(s.tick, v.ReplayTick))
		s.h.m.reg.Gauge(lagName(m.id), "A client's replay lag behind the newest tick, in ticks (from its Lag).").Set(m.lagTicks)
		if now := time.Now(); now.Sub(m.lagForward) >= lagForwardEvery {
			m.lagForward = now
			s.upTo(m, routedBytes(m.id, b))
		}
	case *wire.ModeSwitch:
		if m.welcomed && v.Kind != wire.SwitchForced {
			s.setMode(m, v.Mode)
		}
		s.upTo(m, routedBytes(m.id, b))
	case *wire.Resume:
		if !m.welcomed {
			return &refusal{wire.CodeMalformed, "Resume comes after the Welcome"}
		}
		if m.role == wire.RoleDisplayViewer {
			return &refusal{wire.CodeForbidden, "a display viewer receives no log"}
		}
		s.resume(m, v.Pos)
		s.upRouted(m, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: "resume"})
	case *wire.Input, *wire.ControlRequest, *wire.ControlGrant, *wire.ControlRevoke, *wire.ControlRelease:
		s.upTo(m, routedBytes(m.id, b))
	case *wire.Error:
		return errPeerGaveUp
	case *wire.Hello:
		return &refusal{wire.CodeMalformed, "Hello twice"}
	case *wire.Routed, *wire.Gone:
		return &refusal{wire.CodeMalformed, fmt.Sprintf("%s is for relays: they connect to /upstream/{session}", msg.Type())}
	default:
		return &refusal{wire.CodeMalformed, fmt.Sprintf("%s is sent by servers, not clients", msg.Type())}
	}
	return nil
}

// serveChild is GET /upstream/{session}: a child relay, speaking to us as
// we speak to our upstream.
func (h *Hub) serveChild(w http.ResponseWriter, r *http.Request) {
	d, hello, _, id := h.accept(w, r)
	if d == nil {
		return
	}
	defer h.drop(d)
	if hello.Caps&wire.CapRelay == 0 {
		d.ws.Fail(wire.CodeMalformed, "/upstream/ is for relays (Hello with the relay capability): clients connect to /ws/{session}")
		return
	}
	if _, code, err := h.checkToken(hello.Token, id, true); err != nil {
		h.log.Info().Str("peer", d.ws.Remote()).Err(err).Msg("child relay refused")
		d.ws.Fail(code, err.Error())
		return
	}
	m := &member{d: d, relay: true, name: "relay", children: map[uint32]uint32{}, relayPending: true,
		multicast: hello.Caps&wire.CapMulticast != 0}
	s, ok := h.join(id, m)
	if !ok {
		d.ws.Fail(wire.CodeShutdown, "relay shutting down")
		return
	}
	s.mu.Lock()
	if s.connected {
		s.welcomeRelay(m)
	}
	s.mu.Unlock()
	t := time.AfterFunc(welcomeTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m.relayPending && s.members[d] == m {
			d.finish(wire.CodeShutdown, "the upstream did not answer within 15 s: try again later")
		}
	})
	defer t.Stop()
	h.log.Info().Str("session", id).Str("peer", d.ws.Remote()).Msg("child relay joined")
	s.readLoop(m, nil, "child relay left", s.fromChild)
}

// readLoop hands every message m's connection receives to handle until the
// connection ends or handle refuses one (a *refusal is told to the peer),
// then removes m. lim, if not nil, rate-limits the peer (and its token's
// connections together, for a client); left is the reason given when the
// peer just goes.
func (s *session) readLoop(m *member, lim *bucket, left string, handle func(*member, wire.Message, []byte) error) {
	d := m.d
	reason := left
	for {
		b, err := d.ws.RecvBytes(context.Background())
		if err != nil {
			reason = err.Error()
			break
		}
		now := time.Now()
		if lim != nil && !lim.allow(now) {
			reason = "rate limit"
			s.h.m.refused("rate")
			d.fail(wire.CodeLimit, fmt.Sprintf("more than %d messages a second", msgRate))
			break
		}
		if m.use != nil && !m.use.allowMsg(now) {
			reason = "token rate limit"
			s.h.m.refused("token_rate")
			d.fail(wire.CodeLimit, fmt.Sprintf("this link's connections together send more than %d messages a second", s.h.opts.TokenMsgRate))
			break
		}
		if !m.relay && wire.Type(b[0]) == wire.TypeInput && !mayType(m.tokRole) {
			s.refuseInput(m, b) // not decoded, not forwarded (issue 9, finding 5)
			continue
		}
		msg, err := d.ws.Decode(b)
		if err != nil {
			reason = err.Error()
			break
		}
		if err := handle(m, msg, b); err != nil {
			reason = err.Error()
			var rf *refusal
			if errors.As(err, &rf) {
				d.fail(rf.code, rf.text)
			}
			break
		}
	}
	s.remove(m, reason)
}

// refuseInput answers Input from a role that cannot type without asking
// the upstream: the role is in the token the relay checked, so the
// server's answer is known. Only the sequence number is read (it comes
// first); the answers are rate-limited, the rest dropped.
func (s *session) refuseInput(m *member, b []byte) {
	s.h.m.refused("input_role")
	seq, n := binary.Uvarint(b[1:])
	if n <= 0 {
		seq = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !m.refusals.allow(time.Now()) {
		return
	}
	s.pushMsg(m, &wire.InputRefused{Seq: seq, Reason: wire.RefuseViewerOnly,
		Text: "a " + m.tokRole + " link cannot type: ask the owner for a controller link"}, catControl)
}

// fromChild handles one message of a child relay: its clients' messages are
// renumbered into ours.
func (s *session) fromChild(m *member, msg wire.Message, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := msg.(type) {
	case *wire.Routed:
		_, inner, err := routedInner(b)
		if err != nil {
			return &refusal{wire.CodeMalformed, err.Error()}
		}
		if hello, ok := v.Msg.(*wire.Hello); ok {
			if old, ok := m.children[v.Client]; ok {
				delete(s.routes, old)
				s.upGone(old, "replaced")
			}
			if _, code, err := s.h.checkToken(hello.Token, s.id, false); err != nil {
				s.pushMsg(m, &wire.Routed{Client: v.Client, Msg: &wire.Error{Code: code, Text: cutText(err.Error())}}, catControl)
				s.pushMsg(m, &wire.Gone{Client: v.Client, Reason: "refused"}, catControl)
				return nil
			}
			id := s.h.newClientID()
			m.children[v.Client] = id
			s.routes[id] = route{m: m, child: v.Client}
			s.upSend(routedBytes(id, inner))
			return nil
		}
		id, ok := m.children[v.Client]
		if !ok {
			s.log.Debug().Uint32("child", v.Client).Stringer("type", v.Msg.Type()).Msg("message for an unknown client of a child relay dropped")
			return nil
		}
		s.upSend(routedBytes(id, inner))
	case *wire.Gone:
		if id, ok := m.children[v.Client]; ok {
			delete(m.children, v.Client)
			delete(s.routes, id)
			s.upGone(id, v.Reason)
		}
	case *wire.Ping:
		s.pushMsg(m, &wire.Pong{Seq: v.Seq, Echo: v.Sent, Sent: uint64(time.Now().UnixNano())}, catControl)
	case *wire.Pong:
	case *wire.Error:
		return errPeerGaveUp
	default:
		return &refusal{wire.CodeMalformed, fmt.Sprintf("a relay sends only Routed, Gone, Ping and Pong upstream, not %s", msg.Type())}
	}
	return nil
}
