// Package session hosts one live VM for people and relays
// (docs/live-sessions.md): it records the machine in real time into a
// session directory, snapshots it (periodically and when a viewer going to
// dual mode needs a fresh one) and publishes the snapshots to the page
// service, streams every log block, snapshot announcement, presence and
// estimate to the relays connected at GET /upstream/{session}, admits the
// relays' clients (their tokens, the input arbiter), puts accepted input
// into the machine stamped with its user, and encodes display mode once,
// only while someone watches it. A Session opened on an existing directory
// rebuilds its machine from the newest snapshot and its own log, and goes on
// recording into the same log.
//
// It must not know how relays fan out or how clients replay: it speaks the
// wire protocol to relays and leaves per-client queues, late joiners' logs
// and page caching to them. The recording loop is server/internal/recorder,
// display encoding server/internal/displaycast, traffic figures
// server/internal/estimate, the arbiter server/internal/control.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/server/internal/control"
	"replaydesk/server/internal/displaycast"
	"replaydesk/server/internal/estimate"
	"replaydesk/server/internal/recorder"
	"replaydesk/server/internal/sessionhttp"
	"replaydesk/shared/abi"
	"replaydesk/shared/display"
	"replaydesk/shared/machine"
	"replaydesk/shared/metrics"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// Defaults and limits (docs/live-sessions.md, Limits).
const (
	DefaultSnapshotEvery = 60 * time.Second
	// DualSnapshotAge: a viewer going to dual mode is served the newest
	// snapshot if it is at most this old (in ticks); otherwise a new one is
	// taken.
	DualSnapshotAge = 10 * time.Second
	// FlushEvery ends a log block every 100 ms while the guest is busy (and
	// at once after input), so replaying viewers stay close behind.
	FlushEvery = 6
	// InputRate and InputBurst limit each user's input events;
	// TokenInputRate all the connections of one link together.
	InputRate      = 200
	InputBurst     = 400
	TokenInputRate = 600
	// JoinRate and JoinBurst limit how fast one link joins (a room full of
	// people opening a shared display link gets in; a script is slowed).
	JoinRate  = 10
	JoinBurst = 100
	// MaxConnsPerLink bounds the connections open at once with one link;
	// links that type are personal, so theirs is smaller.
	MaxConnsPerLink       = 2000
	MaxConnsPerTypingLink = 64
	// maxTokens bounds the per-link table (only signed links enter it).
	maxTokens = 4096
	// HelloTimeout is how long a relay may take to say Hello.
	HelloTimeout = 10 * time.Second
	// PointerEvery is the fastest Presence goes out for pointer moves.
	PointerEvery = 100 * time.Millisecond
	// relayQueueBytes bounds what waits to be sent to one relay; a relay
	// that falls this far behind is dropped (it reconnects and resumes).
	relayQueueBytes = 256 << 20
	// backlogSnapshotBytes: more log than this since the newest snapshot
	// asks for a snapshot, so late joiners replay little.
	backlogSnapshotBytes = 32 << 20
)

// Options say what a Session runs and how.
type Options struct {
	Image images.Image
	// Dir is the session directory: created, or continued if it already
	// holds a session. Its base name is the session id.
	Dir string
	// Key checks tokens (shared/token); relays holding it check them too.
	Key []byte
	// Store holds published snapshot pages (shared by sessions).
	Store *pagestore.DirStore
	// Lossless display mode (zlib/palette tiles) instead of JPEG q79 4:4:4.
	Lossless bool
	// Exclusive starts the session in exclusive control (one holder at a
	// time, request and grant); default shared: every owner and controller
	// types at once, as pair-working wants.
	Exclusive bool
	// SnapshotEvery takes a snapshot each period (default 60 s; <0 none).
	SnapshotEvery time.Duration
	Metrics       *metrics.Registry
	Log           zerolog.Logger
	Console       io.Writer
	// Now is the clock tokens are checked against (default time.Now).
	Now func() time.Time
}

// Session is one live VM. Create it with Open.
type Session struct {
	o     Options
	id    string
	log   zerolog.Logger
	files *sessionhttp.Server
	est   *estimate.Estimator
	cast  *displaycast.Caster[target]
	met   *sessionMetrics

	input   chan abi.Event
	snapNow chan struct{}
	publish chan recorder.Snapshot

	cancel   context.CancelFunc
	done     chan struct{} // the recorder ended
	runErr   error
	res      *recorder.Result
	ready    recorder.Ready
	tick     atomic.Uint64
	ticking  atomic.Bool
	tickRate uint64

	mu        sync.Mutex
	relays    map[*relay]struct{}
	clients   map[target]*client
	users     map[uint16]*client   // present users by number
	tokens    map[string]*tokenUse // limits per link
	arb       *control.Arbiter
	nextUser  uint16                 // the highest user number given out (for live.json)
	announce  *wire.SnapshotAnnounce // the newest published snapshot
	backlog   []logEntry             // blocks since announce (encoded LogBlocks)
	backlogB  int
	waiters   map[target]bool // clients in dual waiting for a snapshot
	requested bool            // a snapshot was asked for and not yet announced
	pointer   bool            // a pointer moved since the last Presence
	closed    bool
	closeOnce sync.Once
	bg        sync.WaitGroup
}

type logEntry struct {
	pos recordlog.Pos
	msg []byte
}

// Open starts (or continues) the session and returns once its machine
// ticks. ctx bounds only the start; Close ends the session.
func Open(ctx context.Context, o Options) (*Session, error) {
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Key) == 0 || o.Store == nil {
		return nil, errors.New("session: Options need a Key and a Store")
	}
	id := filepath.Base(filepath.Clean(o.Dir))
	if !pageservice.ValidSessionID.MatchString(id) {
		return nil, fmt.Errorf("session: directory name %q is not a valid session id", id)
	}
	s := &Session{
		o: o, id: id, log: o.Log.With().Str("session", id).Logger(),
		files:   sessionhttp.New(o.Store, o.Log),
		est:     estimate.New(estimate.Options{}),
		met:     newSessionMetrics(o.Metrics),
		input:   make(chan abi.Event, 8192),
		snapNow: make(chan struct{}, 1),
		publish: make(chan recorder.Snapshot, 4),
		done:    make(chan struct{}),
		relays:  map[*relay]struct{}{},
		clients: map[target]*client{}, users: map[uint16]*client{}, tokens: map[string]*tokenUse{},
		waiters: map[target]bool{},
		arb:     control.New(control.Options{Mode: controlMode(o.Exclusive)}),
	}
	s.cast = displaycast.New(displaycast.Options[target]{
		Display: display.Options{Lossless: o.Lossless},
		Delta:   s.sendDelta,
		Key:     s.sendKeys,
	})
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan struct{})
	snapEvery := o.SnapshotEvery
	if snapEvery < 0 {
		snapEvery = 0
	}
	ro := recorder.Options{
		Image: o.Image, Out: o.Dir, Realtime: true, DiskMode: abi.DiskSnapshotted,
		SnapshotEvery: snapEvery, Inject: s.input, Metrics: o.Metrics, Console: o.Console, Log: s.log,
		FlushEvery: FlushEvery, FlushOnInput: true, Continue: true, LeaveOpen: true,
		OnBlock:     s.onBlock,
		SnapshotNow: s.snapNow,
		OnSnapshot:  func(sn recorder.Snapshot) { s.publish <- sn },
		OnFrame:     s.onFrame,
		WantFrame:   s.cast.WantsFrame,
		AfterTick:   func(t uint64) { s.tick.Store(t) },
		OnReady: func(r recorder.Ready) {
			s.ready = r
			s.tick.Store(r.Tick)
			s.tickRate = uint64(r.Params.TickHz)
			s.onReady(r)
			s.ticking.Store(true)
			close(ready)
		},
	}
	go func() {
		defer close(s.done)
		s.res, s.runErr = recorder.Run(runCtx, ro)
		if s.runErr != nil {
			s.log.Error().Err(s.runErr).Msg("session stopped")
		}
	}()
	select {
	case <-ready:
	case <-s.done:
		cancel()
		s.cast.Close()
		return nil, fmt.Errorf("session: %w", s.runErr)
	case <-ctx.Done():
		cancel()
		<-s.done
		s.cast.Close()
		return nil, ctx.Err()
	}
	s.bg.Add(3)
	go s.publisher()
	go s.everySecond(runCtx)
	go s.pointerPresence(runCtx)
	return s, nil
}

// ID is the session's id (its directory's base name).
func (s *Session) ID() string { return s.id }

// Tick is the machine's current tick.
func (s *Session) Tick() uint64 { return s.tick.Load() }

// Ready describes how the recording started (a Continue's replay).
func (s *Session) Ready() recorder.Ready { return s.ready }

// Done is closed when the machine stopped (Close, or a failure: Close
// returns it).
func (s *Session) Done() <-chan struct{} { return s.done }

// Close stops the machine (the log stays unsealed, so the directory can be
// continued), tells relays the session is shutting down and waits for the
// session's goroutines. It returns the recording's result.
func (s *Session) Close() (*recorder.Result, error) {
	s.closeOnce.Do(func() {
		// Closed first: clients that go now are still present when the
		// session continues (live.json), which records their leaving then.
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		<-s.done
		close(s.publish)
		s.mu.Lock()
		rs := make([]*relay, 0, len(s.relays))
		for r := range s.relays {
			rs = append(rs, r)
		}
		s.mu.Unlock()
		for _, r := range rs {
			r.fail(wire.CodeShutdown, "the session is shutting down")
		}
		s.cast.Close()
		s.bg.Wait()
	})
	return s.res, s.runErr
}

// Handler serves GET /upstream/{session} (relays' WebSocket) and the
// session's files and pages (sessionhttp: /sessions/{id}/…, /pages/…,
// /manifests/…).
func (s *Session) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /upstream/{session}", s.serveUpstream)
	mux.Handle("/", s.needToken(s.files.Handler()))
	return mux
}

// needToken guards the session's files, log, snapshot list and pages on
// the session endpoint. It listens on loopback only, but every local user
// could otherwise read every keystroke from the log: a request needs
// "Authorization: Bearer" with a token this server signed, of a relay or a
// role that may replay, and for a session's own paths, of that session.
// Pages and manifests are shared by the sessions of one store (and named
// by their hashes), so any of this server's sessions' tokens will do there.
func (s *Session) needToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "the session endpoint needs a token (Authorization: Bearer TOKEN): a relay's, or one that may replay", http.StatusUnauthorized)
			return
		}
		c, err := token.Verify(s.o.Key, tok, s.o.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if c.Role == token.RoleDisplay {
			http.Error(w, "display viewers receive pixels only: a session's log and snapshots need a role that may replay", http.StatusForbidden)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/sessions/"); ok {
			if id, _, _ := strings.Cut(rest, "/"); id != c.Session {
				http.Error(w, "the token is for session "+c.Session+", not "+id, http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// onReady runs on the recorder's goroutine before the first tick: the
// directory exists now, so its files and snapshots can be served, and a
// continued session's newest snapshot becomes the first announcement (the
// blocks replayed since it are already in the backlog).
func (s *Session) onReady(r recorder.Ready) {
	s.restoreUsers()
	if _, err := s.files.Add(s.o.Dir); err != nil {
		s.log.Error().Err(err).Msg("serving the session directory")
		return
	}
	list := s.files.Snapshots(s.id)
	if len(list) == 0 {
		return
	}
	e := list[len(list)-1]
	h, err := pagestore.ParseHash(e.Manifest)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.announce = &wire.SnapshotAnnounce{Number: uint64(e.N), ManifestHash: h, Tick: e.Tick, Step: e.Step, Pos: e.LogPos}
	s.trimBacklog(e.LogPos)
	s.mu.Unlock()
}

// onBlock runs on the recorder's goroutine for every block written (and a
// continued session's replayed blocks): kept for relays that connect later,
// sent to those connected.
func (s *Session) onBlock(pos recordlog.Pos, block []byte) {
	b, err := wire.Encode(&wire.LogBlock{Pos: pos, Block: block})
	if err != nil {
		s.log.Error().Err(err).Msg("encoding a log block")
		return
	}
	if s.ticking.Load() { // not the blocks a continued session replays
		s.est.LogBytes(len(block))
	}
	// At debug level, when each block left the recorder (Unix ns): the
	// fan-out benchmark measures delivery lag from it (e2e/fanout_bench_test.go).
	s.log.Debug().Uint32("seg", pos.Segment).Int64("off", pos.Offset).Uint64("tick", pos.Tick).Int64("wall_ns", time.Now().UnixNano()).Msg("block written")
	s.mu.Lock()
	s.backlog = append(s.backlog, logEntry{pos, b})
	s.backlogB += len(b)
	big := s.backlogB > backlogSnapshotBytes && !s.requested
	if big {
		s.requested = true
	}
	s.broadcastLocked(b)
	s.mu.Unlock()
	if big {
		s.requestSnapshot()
	}
}

// trimBacklog drops blocks before pos (a new snapshot's position).
func (s *Session) trimBacklog(pos recordlog.Pos) {
	i := 0
	for i < len(s.backlog) && before(s.backlog[i].pos, pos) {
		s.backlogB -= len(s.backlog[i].msg)
		i++
	}
	s.backlog = append([]logEntry(nil), s.backlog[i:]...)
}

func before(a, b recordlog.Pos) bool {
	return a.Segment < b.Segment || (a.Segment == b.Segment && a.Offset < b.Offset)
}

func (s *Session) requestSnapshot() {
	select {
	case s.snapNow <- struct{}{}:
	default: // one request is enough
	}
}

// onFrame runs on the recorder's goroutine after each present (and when a
// key frame wants the screen).
func (s *Session) onFrame(f machine.Frame, px []byte, damage []machine.Rect) {
	w, h := int(f.Width), int(f.Height)
	var rects []image.Rectangle
	var area int64
	if damage != nil {
		rects = make([]image.Rectangle, 0, len(damage))
		for _, d := range damage {
			r := image.Rect(int(d.X), int(d.Y), int(d.X+d.W), int(d.Y+d.H)).Intersect(image.Rect(0, 0, w, h))
			if !r.Empty() {
				rects = append(rects, r)
				area += int64(r.Dx()) * int64(r.Dy())
			}
		}
		if len(rects) == 0 {
			return
		}
	}
	if !s.cast.Needed() {
		s.est.Damage(area)
		s.cast.Skip()
		return
	}
	s.cast.Submit(px, w, h, int(f.Stride), rects, s.tick.Load())
}

// publisher publishes snapshots one at a time, off the machine's goroutine,
// and announces them.
func (s *Session) publisher() {
	defer s.bg.Done()
	for sn := range s.publish {
		if sn.Err != nil {
			s.snapshotFailed(fmt.Sprintf("the snapshot failed: %v", sn.Err))
			continue
		}
		e, err := s.files.Publish(s.id, sn.Info.N, sn.Snapshot, sn.Info.WorkingSet)
		if err != nil {
			s.log.Error().Err(err).Msg("publishing a snapshot")
			s.snapshotFailed("the snapshot could not be published")
			continue
		}
		h, _ := pagestore.ParseHash(e.Manifest)
		a := &wire.SnapshotAnnounce{Number: uint64(e.N), ManifestHash: h, Tick: e.Tick, Step: e.Step, Pos: e.LogPos}
		b, _ := wire.Encode(a)
		s.mu.Lock()
		s.announce = a
		s.trimBacklog(a.Pos)
		s.requested = false
		clear(s.waiters) // the relays serve them the announcement
		s.broadcastLocked(b)
		s.mu.Unlock()
		s.log.Info().Int("snapshot", e.N).Uint64("tick", e.Tick).Int("pages", e.Pages).Msg("snapshot announced")
	}
}

// snapshotFailed sends the clients waiting for a snapshot back to display
// mode.
func (s *Session) snapshotFailed(reason string) {
	s.met.snapFailures.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requested = false
	for t := range s.waiters {
		if c := s.clients[t]; c != nil {
			c.mode = wire.ModeDisplay
			s.routeLocked(t, &wire.ModeSwitch{Kind: wire.SwitchForced, Mode: wire.ModeDisplay, Reason: reason})
		}
	}
	clear(s.waiters)
	s.modesChangedLocked()
}

// everySecond broadcasts Estimates and refreshes metrics.
func (s *Session) everySecond(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, _ := wire.Encode(s.estimates())
		st := s.cast.Stats()
		s.met.encodes.Set(float64(st.Encodes))
		s.met.displayBytes.Set(float64(st.Bytes))
		s.mu.Lock()
		s.broadcastLocked(b)
		s.mu.Unlock()
	}
}

func (s *Session) estimates() *wire.Estimates {
	l, d, w := s.est.Rates()
	return &wire.Estimates{LogBytesPerSec: l, DisplayBytesPerSec: d, WindowMillis: uint32(w.Milliseconds()), Tick: s.tick.Load()}
}

// pointerPresence sends a Presence at most every PointerEvery when only
// pointers moved.
func (s *Session) pointerPresence(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(PointerEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.pointer {
			s.presenceLocked()
		}
		s.mu.Unlock()
	}
}

// Stats are figures tests and operators read.
type Stats struct {
	Relays, Clients int
	Encodes         uint64 // display encoder calls
	DisplayFrames   uint64
	Snapshot        *wire.SnapshotAnnounce // newest
}

// Stats returns the session's current figures.
func (s *Session) Stats() Stats {
	cs := s.cast.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Relays: len(s.relays), Clients: len(s.clients), Encodes: cs.Encodes, DisplayFrames: cs.Frames}
	if s.announce != nil {
		a := *s.announce
		st.Snapshot = &a
	}
	return st
}

// sessionMetrics are the live session's figures (the recorder adds ticks,
// steps, log bytes, input events, snapshots and stall).
type sessionMetrics struct {
	relays, display, dual, replay                *metrics.Value
	encodes, displayBytes, refused, snapFailures *metrics.Value
	joinRefused                                  *metrics.Value
}

func newSessionMetrics(r *metrics.Registry) *sessionMetrics {
	if r == nil {
		r = metrics.NewRegistry() // nobody scrapes it; keeps the code free of nil checks
	}
	return &sessionMetrics{
		relays:       r.Gauge("replaydesk_relays", "Relays connected upstream to the session."),
		display:      r.Gauge("replaydesk_clients_display", "Clients in display mode."),
		dual:         r.Gauge("replaydesk_clients_dual", "Clients in dual mode."),
		replay:       r.Gauge("replaydesk_clients_replay", "Clients in replay mode."),
		encodes:      r.Counter("replaydesk_display_encodes_total", "Display encoder runs (deltas and key frames)."),
		displayBytes: r.Counter("replaydesk_display_bytes_total", "Display tile bytes encoded."),
		refused:      r.Counter("replaydesk_input_refused_total", "Input messages refused."),
		snapFailures: r.Counter("replaydesk_snapshot_failures_total", "Snapshots that failed or could not be published."),
		joinRefused:  r.Counter("replaydesk_joins_refused_total", "Hellos refused for a limit (per link, or a full session)."),
	}
}

// users is DIR/live.json: who was in the session, so that a continued
// session numbers newcomers after everyone the log already names, and
// records that the people present when it stopped left.
type users struct {
	NextUser uint16        `json:"next_user"` // the last user number given out
	Present  []presentUser `json:"present,omitempty"`
}

type presentUser struct {
	User uint16 `json:"user"`
	Name string `json:"name"`
}

func (s *Session) usersPath() string { return filepath.Join(s.o.Dir, "live.json") }

// restoreUsers runs before the first tick of a (continued) session.
func (s *Session) restoreUsers() {
	b, err := os.ReadFile(s.usersPath())
	if err != nil {
		return // a new session, or one from before this file
	}
	var u users
	if err := json.Unmarshal(b, &u); err != nil {
		s.log.Warn().Err(err).Msg("live.json unreadable; user numbers start again")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUser = u.NextUser
	for _, p := range u.Present {
		s.inject(abi.Event{Type: abi.EvUser, Down: false, User: p.User, Text: p.Name})
	}
	s.saveUsersLocked()
}

// saveUsersLocked rewrites live.json (atomically) after a join or leave.
func (s *Session) saveUsersLocked() {
	u := users{NextUser: s.nextUser}
	for _, c := range s.clients {
		u.Present = append(u.Present, presentUser{c.user, c.name})
	}
	b, _ := json.Marshal(u)
	tmp := s.usersPath() + ".tmp"
	err := os.WriteFile(tmp, b, 0o644)
	if err == nil {
		err = os.Rename(tmp, s.usersPath())
	}
	if err != nil {
		s.log.Warn().Err(err).Msg("saving live.json")
	}
}

func controlMode(exclusive bool) control.Mode {
	if exclusive {
		return control.Exclusive
	}
	return control.Shared
}
