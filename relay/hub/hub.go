// Package hub is the relay (DESIGN.md section 8, docs/live-sessions.md): it
// sits between an upstream (the server, or a parent relay) and many
// downstream clients and child relays. Per session it keeps one upstream
// WebSocket, the newest snapshot announcements and the log since them (for
// late joiners and Resume), and a bounded queue per client, so a slow client
// is moved to display mode instead of holding back anyone else. It also
// serves a pull-through cache of the page service.
//
// It checks every token itself (New refuses to run without the key), and
// limits what one token may do over all its connections (limits.go), so
// that a shared link cannot lock anyone out or slow an owner down.
//
// The server embeds a Hub; `go run ./relay` runs one on its own.
//
// It must not know about the VM, the record log's records, display tiles or
// how the server decides control and modes: blocks and frames are opaque
// bytes forwarded as they arrived, and the only mode logic here is which
// stream a client in a given mode receives.
package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/metrics"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// Options configure a Hub. Zero values take the documented defaults.
type Options struct {
	// Upstream is the base http:// URL of the server or parent relay
	// (WebSocket at /upstream/{session}, page service at /pages/… etc.).
	Upstream string
	// Key is the token key (required): clients' tokens are checked here,
	// and bad ones refused without bothering the upstream. A relay that
	// could not check would hand the log (every key typed) to anyone who
	// asks, so New refuses to make one without a key.
	Key []byte
	// UpstreamToken is the relay token sent in upstream Hellos and upstream
	// HTTP requests; if empty, the hub signs one per session with Key.
	UpstreamToken string
	// AllowOrigins are patterns (path.Match) of the origins whose browser
	// pages may connect: whole origins ("https://desk.example.com") or
	// hosts ("desk.example.com", "127.0.0.1:*"). The relay's own origin is
	// allowed when its Host is an IP or localhost (see originAllowed).
	AllowOrigins []string
	// MaxClients bounds downstream connections (default 5000).
	MaxClients int
	// Per token (by its claims: session, role and name), over all its
	// connections to this relay: ConnsPerToken connections open at once
	// (default 500), JoinsPerMinute Hellos a minute (default 600, and a
	// burst of as many), TokenMsgRate messages a second (default 4000).
	// A display link may be shared with hundreds of people.
	ConnsPerToken  int
	JoinsPerMinute int
	TokenMsgRate   int
	// QueueBytes bounds a client's queue (default 4 MiB); a child relay's
	// queue may hold 16 times as much.
	QueueBytes int
	// HistoryBytes bounds the log kept per session for late joiners and
	// Resume (default 64 MiB).
	HistoryBytes int
	// CacheDir, if set, keeps cached pages and manifests on disk too, at
	// most CacheDiskBytes (default 1 GiB) in at most CacheDiskEntries files
	// (default 262144); CacheMemBytes bounds the in-memory cache (default
	// 256 MiB, names and headers counted), CacheMemEntries its entries
	// (default 65536: a page is at most 4 KiB before compression).
	CacheDir         string
	CacheDiskBytes   int64
	CacheDiskEntries int
	CacheMemBytes    int64
	CacheMemEntries  int
	// Web, if set, serves /s/ and /web/ (the web app).
	Web http.Handler
	Log zerolog.Logger
	// Metrics receives the relay's figures (nil: a private registry).
	Metrics *metrics.Registry
}

// Variables for tests: a client's Hello must arrive within helloTimeout; a
// queue over its bound that long without draining closes the client, as
// does one write blocked for writeTimeout (a peer that reads nothing: its
// socket's buffers are full).
var (
	helloTimeout = 10 * time.Second
	fullTimeout  = 30 * time.Second
	writeTimeout = 10 * time.Second
)

// Protocol constants from docs/live-sessions.md.
const (
	welcomeTimeout = 15 * time.Second // the upstream's answer to a Hello
	// Admission control: at most this many Hellos of roles that cannot
	// type wait for the upstream's answer per session; more wait here, so
	// a flood of joins reaches the server at the pace it answers, and an
	// owner's or controller's Hello (never held) does not queue behind it.
	maxHellosInFlight = 16
	// Presence (who is in the session) goes downstream at most this often:
	// every join changes it, and a thousand joins would otherwise send a
	// thousand lists to each of a thousand clients.
	presenceEvery   = 250 * time.Millisecond
	snapshotFresh   = 10 * time.Second // a dual client gets the held snapshot if at most this old
	msgRate         = 400              // client messages per second, and the burst
	lagForwardEvery = time.Second      // Lag goes upstream at most this often per client
)

// minKey is the shortest token key accepted (the relay command's rule too).
const minKey = 16

// Hub is a relay. Use Handler to serve it.
type Hub struct {
	opts     Options
	log      zerolog.Logger
	upstream *url.URL
	m        *hubMetrics
	cache    *pageCache

	mu       sync.Mutex
	sessions map[string]*session
	conns    map[*down]struct{}
	tokens   map[string]*tokenUse // by identity (limits.go)
	nextID   atomic.Uint32
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes a Hub.
func New(o Options) (*Hub, error) {
	u, err := url.Parse(o.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub: upstream %q: want an http:// or https:// base URL", o.Upstream)
	}
	if len(o.Key) < minKey {
		return nil, errors.New("hub: no token key (or shorter than 16 bytes): a relay must check every token, or it would serve the log to anyone")
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 5000
	}
	if o.ConnsPerToken <= 0 {
		o.ConnsPerToken = defaultConnsPerToken
	}
	if o.JoinsPerMinute <= 0 {
		o.JoinsPerMinute = defaultJoinsPerMinute
	}
	if o.TokenMsgRate <= 0 {
		o.TokenMsgRate = defaultTokenMsgRate
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	if o.HistoryBytes <= 0 {
		o.HistoryBytes = 64 << 20
	}
	if o.CacheDiskBytes <= 0 {
		o.CacheDiskBytes = 1 << 30
	}
	if o.CacheMemBytes <= 0 {
		o.CacheMemBytes = 256 << 20
	}
	if o.CacheDiskEntries <= 0 {
		o.CacheDiskEntries = 1 << 18
	}
	if o.CacheMemEntries <= 0 {
		o.CacheMemEntries = 1 << 16
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewRegistry()
	}
	h := &Hub{
		opts:     o,
		log:      o.Log.With().Str("part", "relay").Logger(),
		upstream: u,
		m:        newHubMetrics(o.Metrics),
		sessions: map[string]*session{},
		conns:    map[*down]struct{}{},
		tokens:   map[string]*tokenUse{},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.cache, err = newPageCache(h, u)
	if err != nil {
		return nil, err
	}
	h.wg.Add(1)
	go h.watchdog()
	return h, nil
}

// Handler serves the relay's routes: /ws/{session} (clients),
// /upstream/{session} (child relays), the page-service cache, and the web
// app if Options.Web is set. /metrics is the embedder's.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{session}", h.serveClient)
	mux.HandleFunc("GET /upstream/{session}", h.serveChild)
	mux.Handle("/pages/", h.pagesOnly(h.cache))
	mux.Handle("/pages", h.pagesOnly(h.cache))
	mux.Handle("/manifests/", h.pagesOnly(h.cache))
	mux.Handle("/sessions/", h.replayOnly(h.cache))
	if h.opts.Web != nil {
		mux.Handle("/s/", h.opts.Web)
		mux.Handle("/web/", h.opts.Web)
	}
	return mux
}

// Drain waits until no session is connected upstream any more and every
// client's queue is empty, or d passes: an embedding server that stops its
// sessions calls it before Close, so the sessions' last log blocks and
// their shutdown Errors reach everyone.
func (h *Hub) Drain(d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !h.busy() {
			return
		}
	}
}

// busy reports whether an upstream is still connected or a queue holds
// something.
func (h *Hub) busy() bool {
	h.mu.Lock()
	ss := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	conns := make([]*down, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		up := s.connected
		s.mu.Unlock()
		if up {
			return true
		}
	}
	for _, c := range conns {
		if c.queued() > 0 {
			return true
		}
	}
	return false
}

// Close drops every connection and stops the sessions.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	ss := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	conns := make([]*down, 0, len(h.conns))
	for d := range h.conns {
		conns = append(conns, d)
	}
	h.mu.Unlock()
	h.cancel()
	for _, s := range ss {
		s.stop()
	}
	for _, d := range conns {
		d.fail(wire.CodeShutdown, "relay shutting down")
	}
	h.wg.Wait()
}

// upstreamToken is the relay token for session id's upstream Hello.
func (h *Hub) upstreamToken(id string) string {
	if h.opts.UpstreamToken != "" {
		return h.opts.UpstreamToken
	}
	return token.Sign(h.opts.Key, token.Claims{Session: id, Role: token.RoleRelay, Name: "relay", Expiry: time.Now().Add(24 * time.Hour)})
}

// checkToken verifies a downstream Hello's token. relay says the
// connection is a child relay's own.
func (h *Hub) checkToken(tok, session string, relay bool) (token.Claims, wire.ErrorCode, error) {
	c, err := token.Verify(h.opts.Key, tok, time.Now())
	if err != nil {
		return c, wire.CodeUnauthorized, err
	}
	if c.Session != session {
		return c, wire.CodeUnauthorized, fmt.Errorf("token is for session %q, not %q", c.Session, session)
	}
	if relay != (c.Role == token.RoleRelay) {
		if relay {
			return c, wire.CodeForbidden, errors.New("a relay connection needs a relay token")
		}
		return c, wire.CodeForbidden, errors.New("a relay token does not admit a person: connect a relay to /upstream/")
	}
	return c, 0, nil
}

// register counts a new downstream connection; false if the hub is full or
// closed.
func (h *Hub) register(d *down) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.conns) >= h.opts.MaxClients {
		return false
	}
	h.conns[d] = struct{}{}
	return true
}

func (h *Hub) unregister(d *down) {
	h.mu.Lock()
	delete(h.conns, d)
	h.mu.Unlock()
}

// newClientID numbers a downstream client (hub-wide, so one upstream
// connection per session never sees two clients with one number).
// Lock-free: sessions call it holding their own lock.
func (h *Hub) newClientID() uint32 {
	for {
		if id := h.nextID.Add(1); id != 0 {
			return id
		}
	}
}

// join finds or starts session id and adds c to it.
func (h *Hub) join(id string, c *member) (*session, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	for {
		s := h.sessions[id]
		if s == nil {
			s = newSession(h, id)
			h.sessions[id] = s
			h.wg.Add(1)
			go s.run()
		}
		if s.add(c) {
			return s, true
		}
		// It is ending (its last client just left): start a new one.
		delete(h.sessions, id)
	}
}

// ended forgets s once it has stopped.
func (h *Hub) ended(s *session) {
	h.mu.Lock()
	if h.sessions[s.id] == s {
		delete(h.sessions, s.id)
	}
	h.mu.Unlock()
}

// watchdog closes clients whose queue stayed full too long.
func (h *Hub) watchdog() {
	defer h.wg.Done()
	t := time.NewTicker(min(time.Second, fullTimeout/4))
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			h.mu.Lock()
			var slow []*down
			for d := range h.conns {
				d.mu.Lock()
				if !d.fullSince.IsZero() && now.Sub(d.fullSince) > fullTimeout && !d.closing {
					slow = append(slow, d)
				}
				d.mu.Unlock()
			}
			ss := make([]*session, 0, len(h.sessions))
			for _, s := range h.sessions {
				ss = append(ss, s)
			}
			h.mu.Unlock()
			for _, d := range slow {
				h.m.dropped.Add(1)
				h.log.Warn().Str("peer", d.ws.Remote()).Stringer("for", fullTimeout).Msg("client's queue stayed full: closing it")
				d.fail(wire.CodeTooSlow, fmt.Sprintf("too slow: the relay's queue for this connection stayed full for %s", fullTimeout))
			}
			h.mu.Lock()
			h.pruneTokens(now)
			h.mu.Unlock()
			h.m.updateLag(ss)
			for _, s := range ss {
				s.retryKeys()
			}
		}
	}
}

// hubMetrics are the relay's figures.
type hubMetrics struct {
	reg                               *metrics.Registry
	clients                           map[string]*metrics.Value // by mode
	sentLog, sentDisplay, sentControl *metrics.Value
	sentPages                         *metrics.Value
	upIn, upOut                       *metrics.Value
	lagP50, lagP99                    *metrics.Value
	forced, dropped                   *metrics.Value
	hits, misses                      *metrics.Value
	cacheMemBytes, cacheMemEntries    *metrics.Value
	cacheDiskBytes, cacheDiskEntries  *metrics.Value
	refusals                          map[string]*metrics.Value // refusals by reason
	regMu                             sync.Mutex
}

// refused counts a connection or message refused for reason.
func (m *hubMetrics) refused(reason string) {
	m.regMu.Lock()
	v := m.refusals[reason]
	if v == nil {
		v = m.reg.Counter(`replaydesk_relay_refused_total{reason="`+reason+`"}`, "Connections, Hellos and messages the relay refused, by reason.")
		m.refusals[reason] = v
	}
	m.regMu.Unlock()
	v.Add(1)
}

var modeNames = []string{"pending", "display", "dual", "replay", "relay"}

func newHubMetrics(r *metrics.Registry) *hubMetrics {
	m := &hubMetrics{reg: r, clients: map[string]*metrics.Value{}, refusals: map[string]*metrics.Value{}}
	for _, n := range modeNames {
		m.clients[n] = r.Gauge(`replaydesk_relay_clients{mode="`+n+`"}`, "Downstream connections by mode (pending: no Welcome yet; relay: child relays).")
	}
	sent := func(c string) *metrics.Value {
		return r.Counter(`replaydesk_relay_sent_bytes_total{category="`+c+`"}`, "Bytes sent downstream, by category.")
	}
	m.sentLog, m.sentDisplay, m.sentControl, m.sentPages = sent("log"), sent("display"), sent("control"), sent("pages")
	m.upIn = r.Counter(`replaydesk_relay_upstream_bytes_total{dir="in"}`, "Bytes on upstream WebSockets.")
	m.upOut = r.Counter(`replaydesk_relay_upstream_bytes_total{dir="out"}`, "Bytes on upstream WebSockets.")
	m.lagP50 = r.Gauge(`replaydesk_relay_lag_seconds{quantile="0.5"}`, "Replaying clients' lag behind the newest tick (from their Lag messages).")
	m.lagP99 = r.Gauge(`replaydesk_relay_lag_seconds{quantile="0.99"}`, "Replaying clients' lag behind the newest tick (from their Lag messages).")
	m.forced = r.Counter("replaydesk_relay_forced_switches_total", "Clients forced to display mode for being too slow.")
	m.dropped = r.Counter("replaydesk_relay_dropped_clients_total", "Clients closed for being too slow.")
	m.hits = r.Counter("replaydesk_relay_cache_hits_total", "Page-service requests answered from the relay's cache.")
	m.misses = r.Counter("replaydesk_relay_cache_misses_total", "Cacheable page-service requests fetched upstream.")
	m.cacheMemBytes = r.Gauge(`replaydesk_relay_cache_bytes{tier="memory"}`, "Bytes the page cache holds (bodies, names and headers), by tier.")
	m.cacheDiskBytes = r.Gauge(`replaydesk_relay_cache_bytes{tier="disk"}`, "Bytes the page cache holds (bodies, names and headers), by tier.")
	m.cacheMemEntries = r.Gauge(`replaydesk_relay_cache_entries{tier="memory"}`, "Entries the page cache holds, by tier.")
	m.cacheDiskEntries = r.Gauge(`replaydesk_relay_cache_entries{tier="disk"}`, "Entries the page cache holds, by tier.")
	return m
}

func (m *hubMetrics) sent(c cat, n int) {
	switch c {
	case catLog:
		m.sentLog.Add(float64(n))
	case catDisplay:
		m.sentDisplay.Add(float64(n))
	default:
		m.sentControl.Add(float64(n))
	}
}

func (m *hubMetrics) mode(from, to string) {
	if from != "" {
		m.clients[from].Add(-1)
	}
	if to != "" {
		m.clients[to].Add(1)
	}
}

func lagName(id uint32) string {
	return `replaydesk_relay_client_lag_ticks{client="` + strconv.FormatUint(uint64(id), 10) + `"}`
}

// updateLag recomputes the lag quantiles from every client's last Lag.
func (m *hubMetrics) updateLag(ss []*session) {
	var lags []float64
	for _, s := range ss {
		lags = s.lags(lags)
	}
	if len(lags) == 0 {
		m.lagP50.Set(0)
		m.lagP99.Set(0)
		return
	}
	slices.Sort(lags)
	q := func(p float64) float64 { return lags[int(p*float64(len(lags)-1)+0.5)] }
	m.lagP50.Set(q(0.5))
	m.lagP99.Set(q(0.99))
}
