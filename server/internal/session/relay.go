package session

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// relay is one relay's upstream connection. Everything sent to it goes
// through its queue, written by one goroutine, so the session never waits
// for a network.
type relay struct {
	conn      *wsconn.Conn
	name      string
	multicast bool // its Hello has CapMulticast (sendKeys)

	mu     sync.Mutex
	queue  [][]byte
	queued int
	wake   chan struct{}
	dead   bool
	ctx    context.Context
	cancel context.CancelFunc
	wrote  chan struct{} // closed when the writer returns
}

func newRelay(conn *wsconn.Conn, name string) *relay {
	ctx, cancel := context.WithCancel(context.Background())
	return &relay{conn: conn, name: name, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, wrote: make(chan struct{})}
}

// send queues an encoded message; false when the relay is dead or too far
// behind (the caller drops it).
func (r *relay) send(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return false
	}
	if r.queued+len(b) > relayQueueBytes {
		return false
	}
	r.queue = append(r.queue, b)
	r.queued += len(b)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// writer sends the queue until the relay dies.
func (r *relay) writer() {
	defer close(r.wrote)
	for {
		r.mu.Lock()
		q := r.queue
		r.queue, r.queued = nil, 0
		dead := r.dead
		r.mu.Unlock()
		for _, b := range q {
			if err := r.conn.SendBytes(r.ctx, b); err != nil {
				r.kill()
				return
			}
		}
		if dead {
			return
		}
		select {
		case <-r.wake:
		case <-r.ctx.Done():
			return
		}
	}
}

func (r *relay) kill() {
	r.mu.Lock()
	r.dead = true
	r.mu.Unlock()
	r.cancel()
}

// fail sends an Error after what is queued (waiting at most flushWait for
// the writer) and closes. A session shutting down thus delivers its last
// log blocks: cancelling first would cut the writer off mid-queue, and the
// WebSocket library closes a connection whose read or write context ends,
// so not even the Error went out.
func (r *relay) fail(code wire.ErrorCode, text string) {
	r.mu.Lock()
	r.dead = true // send queues nothing more; the writer ends after the queue
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.wrote:
	case <-time.After(flushWait):
	}
	r.conn.Fail(code, text)
	r.cancel() // after: the reader's Recv(r.ctx) ending would close the connection
}

// flushWait bounds how long fail waits for a relay to take its queue.
const flushWait = 2 * time.Second

// serveUpstream is GET /upstream/{session}: a relay's connection.
func (s *Session) serveUpstream(w http.ResponseWriter, req *http.Request) {
	if req.PathValue("session") != s.id {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	conn, err := wsconn.Accept(w, req, wsconn.AcceptOptions{})
	if err != nil {
		s.log.Debug().Err(err).Msg("upstream accept")
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), HelloTimeout)
	m, _, err := conn.Recv(ctx)
	cancel()
	if err != nil {
		conn.Fail(wire.CodeMalformed, "no Hello within "+HelloTimeout.String())
		return
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		conn.Fail(wire.CodeMalformed, "the first message must be a Hello, not "+m.Type().String())
		return
	}
	if hello.Caps&wire.CapRelay == 0 {
		conn.Fail(wire.CodeForbidden, "this endpoint is for relays (Hello without the relay capability)")
		return
	}
	claims, err := token.Verify(s.o.Key, hello.Token, s.o.Now())
	switch {
	case err != nil:
		conn.Fail(wire.CodeUnauthorized, err.Error())
		return
	case claims.Role != token.RoleRelay:
		conn.Fail(wire.CodeForbidden, "a "+claims.Role+" token cannot open a relay connection")
		return
	case claims.Session != s.id:
		conn.Fail(wire.CodeNoSession, "the token is for session "+claims.Session)
		return
	}
	r := newRelay(conn, hello.Name)
	r.multicast = hello.Caps&wire.CapMulticast != 0
	if !s.addRelay(r) {
		conn.Fail(wire.CodeShutdown, "the session is shutting down")
		return
	}
	log := s.log.With().Str("relay", conn.Remote()).Str("name", hello.Name).Logger()
	log.Info().Msg("relay connected")
	go r.writer()
	defer func() {
		s.removeRelay(r)
		r.kill()
		conn.CloseNow()
		log.Info().Msg("relay gone")
	}()
	for {
		m, _, err := conn.Recv(r.ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				log.Debug().Err(err).Msg("relay connection ended")
			}
			return
		}
		switch m := m.(type) {
		case *wire.Routed:
			s.routed(r, m.Client, m.Msg)
		case *wire.Gone:
			s.gone(target{r, m.Client}, m.Reason)
		case *wire.Ping:
			if b, err := wire.Encode(&wire.Pong{Seq: m.Seq, Echo: m.Sent}); err == nil {
				r.send(b)
			}
		case *wire.Error:
			log.Info().Str("error", m.Text).Msg("relay gave up")
			return
		default:
			// Pongs and anything else a relay says for itself: nothing to do.
		}
	}
}

// addRelay sends the relay its Welcome and the session's state, and from
// then on everything broadcast: both under the session's lock, so no block
// is missed or sent twice.
func (s *Session) addRelay(r *relay) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	welcome := s.welcome(1, wire.RoleViewer, wire.CapRelay)
	b, _ := wire.Encode(welcome)
	r.send(b)
	if s.announce != nil {
		b, _ := wire.Encode(s.announce)
		r.send(b)
	}
	for _, e := range s.backlog {
		r.send(e.msg)
	}
	if b, err := wire.Encode(s.presence()); err == nil {
		r.send(b)
	}
	if b, err := wire.Encode(s.estimates()); err == nil {
		r.send(b)
	}
	s.relays[r] = struct{}{}
	s.met.relays.Set(float64(len(s.relays)))
	return true
}

func (s *Session) welcome(user uint16, role wire.Role, caps uint64) *wire.Welcome {
	return &wire.Welcome{Major: wire.Major, Minor: wire.Minor, Caps: caps, SessionID: s.id,
		User: user, Role: role, Mode: wire.ModeDisplay, ModuleHash: s.ready.Header.ModuleHash,
		Params: s.ready.Header.Params, TickRate: uint32(s.tickRate), Tick: s.tick.Load()}
}

// removeRelay forgets a relay and every client it carried.
func (s *Session) removeRelay(r *relay) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.relays, r)
	s.met.relays.Set(float64(len(s.relays)))
	changed := false
	for t := range s.clients {
		if t.r == r {
			s.leaveLocked(t, "relay gone")
			changed = true
		}
	}
	if changed {
		s.modesChangedLocked()
	}
}

// broadcastLocked sends an encoded message to every relay; one that cannot
// keep up is dropped (it reconnects and resumes).
func (s *Session) broadcastLocked(b []byte) {
	for r := range s.relays {
		if !r.send(b) {
			s.log.Warn().Str("relay", r.conn.Remote()).Msg("relay too far behind; dropping it")
			delete(s.relays, r)
			go r.fail(wire.CodeTooSlow, "too far behind the session")
		}
	}
}

func (s *Session) broadcastMsgLocked(m wire.Message) {
	b, err := wire.Encode(m)
	if err != nil {
		s.log.Error().Err(err).Str("type", m.Type().String()).Msg("encoding a broadcast")
		return
	}
	s.broadcastLocked(b)
}

// routeLocked sends m to one client of one relay.
func (s *Session) routeLocked(t target, m wire.Message) {
	b, err := wire.Encode(&wire.Routed{Client: t.c, Msg: m})
	if err != nil {
		s.log.Error().Err(err).Str("type", m.Type().String()).Msg("encoding a routed message")
		return
	}
	t.r.send(b)
}

// sendDelta broadcasts a display delta (on the encoder's goroutine).
func (s *Session) sendDelta(f *wire.DisplayFrame, n int, px int64) {
	s.est.Encoded(n, px)
	b, err := wire.Encode(f)
	if err != nil {
		s.log.Error().Err(err).Msg("encoding a display frame")
		return
	}
	s.mu.Lock()
	s.broadcastLocked(b)
	s.mu.Unlock()
}

// sendKeys routes a key frame to the clients that asked (on the encoder's
// goroutine): once per relay that takes Multicast, for all its clients
// that asked, not once per client. A burst of display joins otherwise
// pushed one key frame per joiner through the relay's one connection, and
// everyone behind them waited (issue 9, finding 4).
func (s *Session) sendKeys(f *wire.DisplayFrame, targets []target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byRelay := map[*relay][]uint32{}
	var order []*relay
	for _, t := range targets {
		if s.clients[t] == nil {
			continue
		}
		if !t.r.multicast {
			s.routeLocked(t, f)
			continue
		}
		if byRelay[t.r] == nil {
			order = append(order, t.r)
		}
		byRelay[t.r] = append(byRelay[t.r], t.c)
	}
	for _, r := range order {
		ids := slices.Compact(slices.Sorted(slices.Values(byRelay[r])))
		for len(ids) > 0 {
			n := min(len(ids), wire.MaxMulticast)
			var m wire.Message = &wire.Multicast{Clients: ids[:n], Msg: f}
			if n == 1 {
				m = &wire.Routed{Client: ids[0], Msg: f}
			}
			b, err := wire.Encode(m)
			if err != nil {
				s.log.Error().Err(err).Msg("encoding a key frame")
				return
			}
			r.send(b)
			ids = ids[n:]
		}
	}
}
