package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// member is one downstream connection in a session: a client, or a child
// relay whose own clients are routed through it.
type member struct {
	d     *down
	relay bool
	name  string // metrics mode name

	// A child relay: its numbers for its clients → ours, whether it
	// still waits for the upstream's Welcome, and whether it takes
	// Multicast.
	children     map[uint32]uint32
	relayPending bool
	multicast    bool

	// A direct client.
	id         uint32
	tokRole    string    // the role its verified token grants (token.Role*)
	prio       bool      // its messages go upstream ahead of others' (owner, controller)
	use        *tokenUse // its token's shared limits
	refusals   *bucket   // InputRefused answered here
	helloB     []byte    // its routed Hello, until it goes upstream
	inFlight   bool      // its Hello went upstream and awaits the answer (counted in session.inFlight)
	forwarded  bool      // its Hello went upstream (so a Gone is due when it leaves)
	welcomed   bool
	role       wire.Role
	mode       wire.Mode
	hasKey     bool      // it got a key frame since it last lost display frames
	logging    bool      // it receives the log
	waitSnap   bool      // dual, waiting for the next SnapshotAnnounce
	needKey    bool      // its display frames were dropped: a key frame is due
	keyAsked   time.Time // when the relay last asked the upstream for one
	lagTicks   float64
	hasLag     bool
	lagForward time.Time
}

// route is where our client number leads: a direct client (child 0) or a
// child relay's client numbered child there.
type route struct {
	m     *member
	child uint32
}

type heldBlock struct {
	pos recordlog.Pos
	end int64 // pos.Offset + block length: where the next block starts in that segment
	b   []byte
}

type heldSnap struct {
	ann *wire.SnapshotAnnounce
	b   []byte
}

// session is one session's upstream connection, its held log and its
// downstream members. Everything is guarded by mu, held only for in-memory
// work: pushing to a member's queue never waits for its network.
type session struct {
	h   *Hub
	id  string
	log zerolog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	members   map[*down]*member
	routes    map[uint32]route
	ending    bool
	connected bool
	welcome   *wire.Welcome
	welcomeB  []byte
	upq       [][]byte
	upqHi     [][]byte // owners' and controllers' messages: sent first
	upWake    chan struct{}
	// Admission control (maxHellosInFlight): Hellos of roles that cannot
	// type that wait for the upstream's answer, and those waiting here.
	inFlight int
	waiting  []*member

	presenceAt  time.Time // when Presence last went downstream
	presenceDue bool      // a newer Presence waits for presenceEvery

	snaps     []heldSnap // at most 2, oldest first
	blocks    []heldBlock
	histBytes int
	tick      uint64 // the newest tick seen
	presence  []byte
	estimates []byte
}

func newSession(h *Hub, id string) *session {
	ctx, cancel := context.WithCancel(h.ctx)
	return &session{
		h: h, id: id, log: h.log.With().Str("session", id).Logger(),
		ctx: ctx, cancel: cancel,
		members: map[*down]*member{}, routes: map[uint32]route{},
		upWake: make(chan struct{}, 1),
	}
}

// add puts m in the session; false if the session is ending.
func (s *session) add(m *member) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending {
		return false
	}
	s.members[m.d] = m
	s.h.m.mode("", m.name)
	if !m.relay {
		s.routes[m.id] = route{m: m}
	}
	return true
}

func (s *session) stop() { s.cancel() }

// remove takes m out; the upstream hears Gone for every client it knew.
// The last member out ends the session.
func (s *session) remove(m *member, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[m.d] != m {
		return
	}
	delete(s.members, m.d)
	s.h.m.mode(m.name, "")
	if m.relay {
		for _, id := range m.children {
			delete(s.routes, id)
			s.upGone(id, reason)
		}
	} else {
		delete(s.routes, m.id)
		s.h.m.reg.Remove(lagName(m.id))
		if m.forwarded {
			s.upGoneM(m, reason)
		}
		s.answered(m)
	}
	if len(s.members) == 0 {
		s.ending = true
		s.cancel()
	}
}

func (s *session) upGone(id uint32, reason string) {
	if b, err := wire.Encode(&wire.Gone{Client: id, Reason: cutText(reason)}); err == nil {
		s.upSend(b)
	}
}

// upGoneM is upGone for a direct client, in its lane.
func (s *session) upGoneM(m *member, reason string) {
	if b, err := wire.Encode(&wire.Gone{Client: m.id, Reason: cutText(reason)}); err == nil {
		s.upTo(m, b)
	}
}

// upSend queues b for the upstream (sent once connected).
func (s *session) upSend(b []byte) {
	s.upq = append(s.upq, b)
	s.upPoke()
}

// upTo queues b from or about direct client m: in the first lane for an
// owner or controller, so nothing a flood sends delays them here.
func (s *session) upTo(m *member, b []byte) {
	if m.helloB != nil {
		return // its Hello is held here: the upstream does not know it yet
	}
	if !m.prio {
		s.upSend(b)
		return
	}
	s.upqHi = append(s.upqHi, b)
	s.upPoke()
}

func (s *session) upPoke() {
	select {
	case s.upWake <- struct{}{}:
	default:
	}
}

// admitHello sends m's routed Hello upstream now, or holds it while
// maxHellosInFlight Hellos of roles that cannot type await their answer
// (owners and controllers are never held).
func (s *session) admitHello(m *member, b []byte) {
	if !m.prio && s.inFlight >= maxHellosInFlight {
		m.helloB = b
		s.waiting = append(s.waiting, m)
		return
	}
	s.forwardHello(m, b)
}

func (s *session) forwardHello(m *member, b []byte) {
	m.forwarded = true
	if !m.prio {
		m.inFlight = true
		s.inFlight++
	}
	s.upTo(m, b)
}

// answered notes that m's Hello needs no more waiting for (answered, or m
// left) and lets the next held one go.
func (s *session) answered(m *member) {
	if !m.inFlight {
		return
	}
	m.inFlight = false
	s.inFlight--
	for s.inFlight < maxHellosInFlight && len(s.waiting) > 0 {
		w := s.waiting[0]
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		if s.members[w.d] != w {
			continue // it left while held
		}
		b := w.helloB
		w.helloB = nil // before forwardHello: upTo drops a held client's messages
		s.forwardHello(w, b)
	}
}

// run keeps the upstream connection while the session has members.
func (s *session) run() {
	defer s.h.wg.Done()
	defer s.h.ended(s)
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		established, err := s.serveUpstream()
		if s.ctx.Err() != nil {
			break
		}
		code, text := wire.CodeShutdown, "upstream lost"
		var we *wire.Error
		if errors.As(err, &we) {
			code, text = we.Code, we.Text // the upstream refused us: clients get its reason
		}
		if established || we != nil {
			s.log.Warn().Err(err).Msg("upstream connection ended: closing clients")
			s.failAll(code, text)
			backoff = 100 * time.Millisecond
		} else {
			s.log.Debug().Err(err).Msg("upstream unreachable")
		}
		s.mu.Lock()
		if len(s.members) == 0 {
			s.ending = true
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	s.mu.Lock()
	s.ending = true
	s.mu.Unlock()
	s.failAll(wire.CodeShutdown, "relay shutting down")
}

// failAll closes every member with an Error and forgets them.
func (s *session) failAll(code wire.ErrorCode, text string) {
	s.mu.Lock()
	ms := s.members
	s.members = map[*down]*member{}
	s.routes = map[uint32]route{}
	s.upq, s.upqHi = nil, nil
	s.inFlight, s.waiting = 0, nil
	for _, m := range ms {
		s.h.m.mode(m.name, "")
		if !m.relay {
			s.h.m.reg.Remove(lagName(m.id))
		}
	}
	s.mu.Unlock()
	for d := range ms {
		d.finish(code, text)
	}
}

// serveUpstream connects, says Hello, and forwards until the connection
// ends. established says it got as far as a Welcome.
func (s *session) serveUpstream() (established bool, err error) {
	u := s.h.upstream.JoinPath("upstream", s.id)
	dctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	ws, err := wsconn.Dial(dctx, u.String())
	cancel()
	if err != nil {
		// The upstream answers an unknown session with a plain 404 before
		// any WebSocket: waiting clients hear it instead of timing out.
		if strings.Contains(err.Error(), "HTTP 404") {
			return false, &wire.Error{Code: wire.CodeNoSession, Text: fmt.Sprintf("no session %q upstream", s.id)}
		}
		return false, err
	}
	ctx, stop := context.WithCancel(s.ctx)
	defer func() {
		stop()
		ws.Close("relay leaving the session")
		s.mu.Lock()
		s.connected = false
		s.mu.Unlock()
	}()
	caps := wire.CapRelay | wire.CapReplay | wire.CapDisplay | wire.CapZlib | wire.CapPalette |
		wire.CapJPEG | wire.CapPNG | wire.CapPageCache | wire.CapDualStream | wire.CapMulticast
	if err := ws.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: caps, Token: s.h.upstreamToken(s.id), Want: wire.ModeReplay, Name: "relay"}); err != nil {
		return false, err
	}
	wctx, wcancel := context.WithTimeout(ctx, helloTimeout)
	msg, b, err := ws.Recv(wctx)
	wcancel()
	if err != nil {
		return false, err
	}
	s.h.m.upIn.Add(float64(len(b)))
	switch w := msg.(type) {
	case *wire.Welcome:
		s.connected0(w, b)
	case *wire.Error:
		return false, w
	default:
		ws.Fail(wire.CodeMalformed, fmt.Sprintf("expected Welcome, got %s", msg.Type()))
		return false, fmt.Errorf("upstream answered Hello with %s", msg.Type())
	}
	s.log.Info().Str("upstream", u.String()).Uint64("tick", s.welcome.Tick).Msg("upstream connected")
	go s.upWriter(ctx, ws, stop)
	for {
		msg, b, err := ws.Recv(ctx)
		if err != nil {
			return true, err
		}
		s.h.m.upIn.Add(float64(len(b)))
		if e, ok := msg.(*wire.Error); ok {
			return true, e // the upstream gave up (e.g. the session ended): clients hear why
		}
		if p, ok := msg.(*wire.Ping); ok {
			if pb, err := wire.Encode(&wire.Pong{Seq: p.Seq, Echo: p.Sent, Sent: uint64(time.Now().UnixNano())}); err == nil {
				s.mu.Lock()
				s.upSend(pb)
				s.mu.Unlock()
			}
			continue
		}
		s.fromUpstream(msg, b)
	}
}

// connected0 takes the upstream's Welcome: history starts afresh (the
// upstream sends its newest snapshot and the log since), and child relays
// waiting for it are welcomed.
func (s *session) connected0(w *wire.Welcome, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connected = true
	s.welcome, s.welcomeB = w, b
	s.snaps, s.blocks, s.histBytes = nil, nil, 0
	s.tick = w.Tick
	s.presence, s.estimates = nil, nil
	for _, m := range s.members {
		if m.relay && m.relayPending {
			s.welcomeRelay(m)
		}
	}
}

// upWriter drains the upward queues onto ws, one message at a time so that
// an owner's or controller's message overtakes whatever else waits.
func (s *session) upWriter(ctx context.Context, ws *wsconn.Conn, stop context.CancelFunc) {
	for {
		s.mu.Lock()
		var b []byte
		switch {
		case len(s.upqHi) > 0:
			b = s.upqHi[0]
			s.upqHi[0] = nil
			s.upqHi = s.upqHi[1:]
		case len(s.upq) > 0:
			b = s.upq[0]
			s.upq[0] = nil
			s.upq = s.upq[1:]
		}
		s.mu.Unlock()
		if b != nil {
			if err := ws.SendBytes(ctx, b); err != nil {
				stop()
				return
			}
			s.h.m.upOut.Add(float64(len(b)))
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.upWake:
		}
	}
}

func posLess(a, b recordlog.Pos) bool {
	if a.Segment != b.Segment {
		return a.Segment < b.Segment
	}
	return a.Offset < b.Offset
}

func posEq(a, b recordlog.Pos) bool { return a.Segment == b.Segment && a.Offset == b.Offset }

// fromUpstream forwards one upstream message (called by the reader only).
func (s *session) fromUpstream(msg wire.Message, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := msg.(type) {
	case *wire.Routed:
		_, inner, err := routedInner(b)
		if err == nil {
			s.routedDown(v.Client, v.Msg, inner)
		}
	case *wire.Multicast:
		s.multicastDown(v, b)
	case *wire.Gone:
		s.goneDown(v)
	case *wire.LogBlock:
		s.hold(v, b)
		for _, m := range s.members {
			if m.relay || m.logging {
				s.push(m, b, catLog)
			}
		}
	case *wire.SnapshotAnnounce:
		s.holdSnap(v, b)
		for _, m := range s.members {
			switch {
			case m.relay:
				s.push(m, b, catLog)
			case m.waitSnap:
				m.waitSnap = false
				s.sendFrom(m, len(s.snaps)-1)
			case m.logging && m.mode == wire.ModeDual:
				s.push(m, b, catLog)
			}
		}
	case *wire.DisplayFrame:
		for _, m := range s.members {
			switch {
			case m.relay:
				s.push(m, b, catDisplay)
			case m.mode != wire.ModeDisplay && m.mode != wire.ModeDual:
			case v.Key:
				m.hasKey, m.needKey = true, false
				s.push(m, b, catDisplay)
			case m.hasKey:
				s.push(m, b, catDisplay)
			}
		}
	case *wire.Presence:
		s.presence = b
		if time.Since(s.presenceAt) >= presenceEvery {
			s.sendPresence()
		} else if !s.presenceDue {
			s.presenceDue = true
			time.AfterFunc(presenceEvery-time.Since(s.presenceAt), func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.presenceDue {
					s.sendPresence()
				}
			})
		}
	case *wire.Estimates, *wire.ControlGrant, *wire.ControlRevoke, *wire.ControlRelease:
		// Session state for everyone; control changes are broadcast too.
		if x, ok := v.(*wire.Estimates); ok {
			s.tick = max(s.tick, x.Tick)
			s.estimates = b
		}
		for _, m := range s.members {
			if (m.relay && !m.relayPending) || m.welcomed {
				s.push(m, b, catControl)
			}
		}
	default:
		s.log.Warn().Stringer("type", msg.Type()).Msg("upstream sent an unrouted message the relay does not forward")
	}
}

// sendPresence sends the newest Presence to everyone welcomed. A Presence
// still queued for a client is replaced, not added to: only the newest
// list matters, so a client that reads slowly holds one.
func (s *session) sendPresence() {
	s.presenceDue, s.presenceAt = false, time.Now()
	if s.presence == nil {
		return
	}
	for _, m := range s.members {
		if (m.relay && !m.relayPending) || m.welcomed {
			s.push(m, s.presence, catPresence)
		}
	}
}

// hold keeps a block for late joiners and Resume.
func (s *session) hold(v *wire.LogBlock, b []byte) {
	s.tick = max(s.tick, v.Pos.Tick)
	s.blocks = append(s.blocks, heldBlock{pos: v.Pos, end: v.Pos.Offset + int64(len(v.Block)), b: b})
	s.histBytes += len(b)
	n := 0
	for s.histBytes > s.h.opts.HistoryBytes && n < len(s.blocks)-1 {
		s.histBytes -= len(s.blocks[n].b)
		n++
	}
	s.dropBlocks(n)
}

func (s *session) dropBlocks(n int) {
	if n == 0 {
		return
	}
	clear(s.blocks[:n])
	s.blocks = s.blocks[n:]
}

// holdSnap keeps the newest two announcements and the log since the older.
func (s *session) holdSnap(v *wire.SnapshotAnnounce, b []byte) {
	s.tick = max(s.tick, v.Tick)
	s.snaps = append(s.snaps, heldSnap{ann: v, b: b})
	if len(s.snaps) > 2 {
		s.snaps = s.snaps[len(s.snaps)-2:]
	}
	n := 0
	for n < len(s.blocks) && posLess(s.blocks[n].pos, s.snaps[0].ann.Pos) {
		s.histBytes -= len(s.blocks[n].b)
		n++
	}
	s.dropBlocks(n)
}

// servable says whether the log since snapshot i is all held.
func (s *session) servable(i int) bool {
	return len(s.blocks) == 0 || !posLess(s.snaps[i].ann.Pos, s.blocks[0].pos)
}

// sendFrom starts m's log at snapshot i: the announcement, then every held
// block from its position.
func (s *session) sendFrom(m *member, i int) {
	m.logging = true
	s.push(m, s.snaps[i].b, catLog)
	for _, hb := range s.blocks {
		if !m.logging {
			return // forced to display while catching up
		}
		if !posLess(hb.pos, s.snaps[i].ann.Pos) {
			s.push(m, hb.b, catLog)
		}
	}
}

// startLog begins a dual client's log: at once from the newest snapshot if
// it is fresh (at most 10 s of ticks old), else at the next announcement.
func (s *session) startLog(m *member) {
	if m.logging || m.waitSnap {
		return
	}
	if i := len(s.snaps) - 1; i >= 0 && s.servable(i) {
		rate := uint64(60)
		if s.welcome != nil && s.welcome.TickRate > 0 {
			rate = uint64(s.welcome.TickRate)
		}
		if s.tick-min(s.tick, s.snaps[i].ann.Tick) <= rate*uint64(snapshotFresh/time.Second) {
			s.sendFrom(m, i)
			return
		}
	}
	m.waitSnap = true
}

// resume continues a reconnecting replay client's log at pos if held,
// else from the newest snapshot.
func (s *session) resume(m *member, pos recordlog.Pos) {
	if m.logging || m.waitSnap {
		return // a Resume once the log flows changes nothing
	}
	if m.mode == wire.ModeReplay {
		m.hasKey = false
	}
	s.markMode(m, wire.ModeDual)
	for i, hb := range s.blocks {
		if posEq(hb.pos, pos) {
			m.logging = true
			for _, hb := range s.blocks[i:] {
				if !m.logging {
					return
				}
				s.push(m, hb.b, catLog)
			}
			return
		}
	}
	if n := len(s.blocks); n > 0 && s.blocks[n-1].pos.Segment == pos.Segment && s.blocks[n-1].end == pos.Offset {
		m.logging = true // caught up already: the next block is its next
		return
	}
	if i := len(s.snaps) - 1; i >= 0 && s.servable(i) {
		s.sendFrom(m, i)
		return
	}
	m.waitSnap = true
}

var modeName = map[wire.Mode]string{wire.ModeDisplay: "display", wire.ModeDual: "dual", wire.ModeReplay: "replay"}

// setMode moves a direct client to mode and adjusts its streams; a display
// viewer (role 4) never gets the log.
func (s *session) setMode(m *member, mode wire.Mode) {
	if mode == wire.ModeAuto || (m.role == wire.RoleDisplayViewer && mode != wire.ModeDisplay) {
		return
	}
	old := m.mode
	s.markMode(m, mode)
	switch mode {
	case wire.ModeDisplay:
		if old == wire.ModeReplay {
			m.hasKey = false // its frames stopped: the server sends a key frame
		}
		if m.logging || m.waitSnap {
			m.logging, m.waitSnap = false, false
			m.d.drop(catLog)
		}
	case wire.ModeDual:
		s.startLog(m)
	case wire.ModeReplay:
		if old == wire.ModeDisplay {
			s.startLog(m) // straight to replay still needs a snapshot first
		}
		m.hasKey = false
		m.d.drop(catDisplay)
	}
}

// markMode records m's mode (and counts it).
func (s *session) markMode(m *member, mode wire.Mode) {
	m.mode = mode
	if n := modeName[mode]; n != m.name && m.name != "" {
		s.h.m.mode(m.name, n)
		m.name = n
	}
}

// push queues b for m and handles a queue over its bound (docs/live-
// sessions.md, slow clients): nobody else waits.
func (s *session) push(m *member, b []byte, c cat) {
	n := m.d.push(b, c)
	limit := s.h.opts.QueueBytes
	if m.relay {
		limit *= 16
	}
	if n <= limit || n == len(b) {
		return // under the bound, or one big message alone (a block may exceed it)
	}
	// Over: the clock for closing it starts now and stops only when its
	// writer brings the queue back under the bound, not when we shed.
	m.d.mu.Lock()
	if m.d.fullSince.IsZero() {
		m.d.fullSince = time.Now()
	}
	m.d.mu.Unlock()
	if m.relay {
		s.h.m.dropped.Add(1)
		s.log.Warn().Str("peer", m.d.ws.Remote()).Int("queued", n).Msg("child relay too slow: closing it")
		m.d.fail(wire.CodeTooSlow, fmt.Sprintf("too slow: more than %d bytes queued for this relay", limit))
		return
	}
	switch {
	case m.logging || m.waitSnap:
		reason := fmt.Sprintf("too slow: more than %d bytes queued at the relay", limit)
		s.h.m.forced.Add(1)
		s.log.Info().Uint32("client", m.id).Int("queued", n).Msg("client too slow for the log: forcing it to display")
		s.setMode(m, wire.ModeDisplay)
		m.hasKey, m.needKey, m.keyAsked = false, true, time.Now()
		m.d.drop(catDisplay)
		s.pushMsg(m, &wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: reason}, catControl)
		// The server learns the mode and sends a key frame.
		s.upRouted(m, &wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: reason})
	case m.hasKey:
		// A display client behind on deltas: drop them and start again
		// from a fresh key frame.
		m.hasKey, m.needKey = false, true
		m.d.drop(catDisplay)
		s.askKey(m)
	}
}

// askKey asks the upstream for a key frame for m, at most once a second
// and only once its queue has drained to half its bound: a client that
// reads nothing must not make the server encode key frames in a loop.
// The watchdog retries.
func (s *session) askKey(m *member) {
	if !m.needKey || m.mode == wire.ModeReplay || time.Since(m.keyAsked) < time.Second || m.d.queued() > s.h.opts.QueueBytes/2 {
		return
	}
	m.keyAsked = time.Now()
	s.upRouted(m, &wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: "too slow: key frame needed"})
}

// retryKeys asks again for the key frames still due.
func (s *session) retryKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m.needKey {
			s.askKey(m)
		}
	}
}

func (s *session) pushMsg(m *member, msg wire.Message, c cat) {
	if b, err := wire.Encode(msg); err == nil {
		s.push(m, b, c)
	}
}

func (s *session) upRouted(m *member, msg wire.Message) {
	if b, err := wire.Encode(msg); err == nil {
		s.upTo(m, routedBytes(m.id, b))
	}
}

func catOf(t wire.Type) cat {
	switch t {
	case wire.TypeLogBlock, wire.TypeSnapshotAnnounce:
		return catLog
	case wire.TypeDisplayFrame:
		return catDisplay
	}
	return catControl
}

// multicastDown delivers a message the upstream sent to several clients:
// to each direct one as if routed, and to each child relay once (one
// Multicast with its numbers, or one Routed each if it did not ask for
// Multicast).
func (s *session) multicastDown(v *wire.Multicast, b []byte) {
	inner, err := multicastInner(b)
	if err != nil {
		return
	}
	var children map[*member][]uint32
	for _, id := range v.Clients {
		r, ok := s.routes[id]
		switch {
		case !ok:
		case r.child == 0:
			s.routedDown(id, v.Msg, inner)
		case !r.m.multicast:
			s.push(r.m, routedBytes(r.child, inner), catOf(v.Msg.Type()))
		default:
			if children == nil {
				children = map[*member][]uint32{}
			}
			children[r.m] = append(children[r.m], r.child)
		}
	}
	for m, ids := range children {
		s.push(m, multicastBytes(ids, inner), catOf(v.Msg.Type()))
	}
}

// routedDown delivers a message the upstream sent to client id; inner is
// msg's encoding.
func (s *session) routedDown(id uint32, msg wire.Message, inner []byte) {
	r, ok := s.routes[id]
	if !ok {
		return // it left; the upstream hears Gone
	}
	m := r.m
	if r.child != 0 {
		s.push(m, routedBytes(r.child, inner), catOf(msg.Type()))
		return
	}
	switch x := msg.(type) {
	case *wire.Welcome:
		if m.welcomed {
			return // one Welcome per client: a second one is the upstream's bug
		}
		m.welcomed = true
		s.answered(m)
		m.role = x.Role
		m.mode = wire.ModeDisplay
		s.push(m, inner, catControl)
		// The state it would otherwise wait for (the server's next ones
		// follow).
		if s.presence != nil {
			s.push(m, s.presence, catPresence)
		}
		if s.estimates != nil {
			s.push(m, s.estimates, catControl)
		}
		s.h.m.mode(m.name, "display")
		m.name = "display"
		s.setMode(m, x.Mode)
		return
	case *wire.Error:
		s.answered(m)
		m.d.finishBytes(inner)
		return
	case *wire.DisplayFrame:
		if x.Key {
			m.hasKey, m.needKey = true, false
		}
	case *wire.ModeSwitch:
		s.push(m, inner, catControl)
		if x.Kind == wire.SwitchForced {
			s.setMode(m, x.Mode)
		}
		return
	}
	s.push(m, inner, catOf(msg.Type()))
}

// goneDown drops a client at the upstream's request, after what was routed
// to it before.
func (s *session) goneDown(v *wire.Gone) {
	r, ok := s.routes[v.Client]
	if !ok {
		return
	}
	delete(s.routes, v.Client)
	if r.child != 0 {
		delete(r.m.children, r.child)
		s.pushMsg(r.m, &wire.Gone{Client: r.child, Reason: v.Reason}, catControl)
		return
	}
	r.m.forwarded = false // the upstream knows
	s.answered(r.m)
	r.m.d.finish(wire.CodeForbidden, v.Reason)
}

// welcomeRelay answers a child relay's Hello with the upstream's Welcome and
// the session's state: the newest snapshot and the log since, presence and
// estimates.
func (s *session) welcomeRelay(m *member) {
	m.relayPending = false
	s.push(m, s.welcomeB, catControl)
	from := recordlog.Pos{}
	if i := len(s.snaps) - 1; i >= 0 && s.servable(i) {
		s.push(m, s.snaps[i].b, catLog)
		from = s.snaps[i].ann.Pos
	}
	for _, hb := range s.blocks {
		if !posLess(hb.pos, from) {
			s.push(m, hb.b, catLog)
		}
	}
	if s.presence != nil {
		s.push(m, s.presence, catPresence)
	}
	if s.estimates != nil {
		s.push(m, s.estimates, catControl)
	}
}

// lags appends each replaying client's last lag in seconds.
func (s *session) lags(out []float64) []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := 60.0
	if s.welcome != nil && s.welcome.TickRate > 0 {
		rate = float64(s.welcome.TickRate)
	}
	for _, m := range s.members {
		if m.hasLag && m.logging {
			out = append(out, m.lagTicks/rate)
		}
	}
	return out
}
