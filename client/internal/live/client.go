// Package live is the native client of a live session: it connects to a
// relay (or the server's embedded one) with a session link, shows display
// frames, and — when its mode controller (shared/modes) decides or the user
// pinned replay — fetches a snapshot through the relay's page cache,
// restores it and replays the record log itself, switching display → dual →
// replay and back as docs/live-sessions.md describes. It reconnects with
// back-off and resumes its replay where its log ends.
//
// It must not know about HTTP pages for people (the local view is
// client/internal/localview, which reads the client through its exported
// methods), how a relay fans out, or the paper's thresholds (shared/modes
// owns them).
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/fetch"
	"replaydesk/shared/display"
	"replaydesk/shared/machine"
	"replaydesk/shared/modes"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Options configure a Client. Zero values take the documented defaults.
type Options struct {
	Link Link
	// Want is the mode asked for: wire.ModeAuto (the controller decides),
	// ModeDisplay or ModeReplay (pinned).
	Want       wire.Mode
	Name       string
	CacheDir   string // page cache and kept modules; default fetch.DefaultCacheDir
	CacheBytes int64  // page cache bound; default fetch.DefaultCacheBytes
	// EngineCacheDir keeps compiled guest code ("" the user cache
	// directory, "-" none).
	EngineCacheDir string
	// Headless: nobody looks at the screen, so the replay copies no frames
	// out of guest memory (benchmarks with many clients).
	Headless bool
	// Lazy restores snapshots lazily (memory filled on first touch) where
	// the host allows it.
	Lazy bool
	// Stats, if set, receives one JSON line per SampleEvery (Stats).
	Stats io.Writer
	// Rules are the mode controller's thresholds; zero fields are the
	// paper's (modes.DefaultRules).
	Rules modes.Rules
	// SampleEvery is how often the controller is fed, Lag sent and a stats
	// line written: 1 s (tests shorten it).
	SampleEvery time.Duration
	// MinBackoff and MaxBackoff bound the reconnection delay: 250 ms
	// doubling to 10 s.
	MinBackoff, MaxBackoff time.Duration
	Log                    zerolog.Logger
}

// Caps are what this client can do.
const Caps = wire.CapReplay | wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapPNG |
	wire.CapPageCache | wire.CapDualStream

// FatalError is a refusal reconnecting cannot cure (a bad token, a session
// that does not exist, another protocol version).
type FatalError struct{ Err wire.Error }

func (e *FatalError) Error() string {
	return fmt.Sprintf("the session refused this client: %s (code %d)", e.Err.Text, e.Err.Code)
}

// Client is one live client. Run drives it; the other methods are safe to
// call from any goroutine while it runs (the local view uses them).
type Client struct {
	o     Options
	fetch *fetch.Fetcher
	log   zerolog.Logger
	ctl   *modes.Controller

	// Owned by Run's goroutine.
	rep         *replay
	dfb         screen // decoded display frames
	dec         display.Decoder
	haveKey     bool
	sentMode    wire.Mode // what the relay was last told (or assumes)
	est         wire.Estimates
	lastLog     uint64 // byte counters at the last sample
	lastDisp    uint64
	lastAt      time.Time
	switches    []Switch // since the last stats line
	repErr      string   // the last replay failure
	lastSwitch  time.Time
	allSwitches atomic.Int64

	// Shared.
	mu         sync.Mutex
	conn       *wsconn.Conn
	welcome    wire.Welcome
	hasWelcome bool
	welcomeAt  time.Time
	newestTick uint64 // newest tick the server told of (block end, estimates)
	showReplay atomic.Bool
	version    atomic.Uint64 // bumped when the screen changes
	wake       chan struct{} // closed and replaced when the screen changes
	subs       map[int]chan wire.Message
	presence   *wire.Presence // the newest, for late subscribers
	nextSub    int
	bytesLog   atomic.Uint64
	bytesDisp  atomic.Uint64
	bytesOther atomic.Uint64
	failures   atomic.Int64
	eng        *machine.Engine
	engMu      sync.Mutex
	lastStats  atomic.Pointer[Stats]
	repPtr     atomic.Pointer[replay]
	pins       chan wire.Mode // SetMode's requests, for Run's goroutine
}

// New makes a client; nothing connects until Run.
func New(o Options) (*Client, error) {
	if o.SampleEvery == 0 {
		o.SampleEvery = time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	f, err := fetch.Open(o.Link.Base, o.Link.Session, o.Link.Token, o.CacheDir, o.CacheBytes)
	if err != nil {
		return nil, err
	}
	c := &Client{o: o, fetch: f, log: o.Log, ctl: modes.New(o.Rules), wake: make(chan struct{}),
		subs: map[int]chan wire.Message{}, sentMode: wire.ModeDisplay, pins: make(chan wire.Mode, 1)}
	c.lastSwitch = time.Now()
	return c, nil
}

// Run connects and keeps the session until ctx ends (nil then) or the
// session refuses the client (a *FatalError). A dropped connection is
// reconnected with back-off.
func (c *Client) Run(ctx context.Context) error {
	defer func() {
		if c.rep != nil {
			c.rep.stop()
			c.setRep(nil)
		}
		c.engMu.Lock()
		if c.eng != nil {
			c.eng.Close(context.Background())
		}
		c.engMu.Unlock()
	}()
	backoff := c.o.MinBackoff
	for {
		welcomed, err := c.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
		if welcomed {
			backoff = c.o.MinBackoff
		}
		// Jitter: the clients of a restarted relay do not all come back
		// in the same millisecond.
		wait := backoff/2 + rand.N(backoff)
		c.log.Warn().Err(err).Dur("retry_in", wait).Msg("connection lost; reconnecting")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.o.MaxBackoff)
	}
}

type received struct {
	msg wire.Message
	n   int
	err error
}

// connection runs one WebSocket connection: the handshake, then messages,
// samples and replay outcomes until something ends it.
func (c *Client) connection(ctx context.Context) (welcomed bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := wsconn.Dial(dctx, c.o.Link.WebSocket())
	cancel()
	if err != nil {
		return false, err
	}
	defer conn.CloseNow()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hello := &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: Caps, Token: c.o.Link.Token, Want: c.o.Want, Name: c.o.Name}
	if c.rep != nil {
		hello.KnownSnapshots = [][32]byte{c.rep.announce.ManifestHash}
	}
	if err := conn.Send(cctx, hello); err != nil {
		return false, err
	}
	hctx, hcancel := context.WithTimeout(cctx, 30*time.Second)
	m, b, err := conn.Recv(hctx)
	hcancel()
	if err != nil {
		return false, fmt.Errorf("waiting for the Welcome: %w", err)
	}
	c.bytesOther.Add(uint64(len(b)))
	switch m := m.(type) {
	case *wire.Welcome:
		if err := c.onWelcome(cctx, conn, m); err != nil {
			return true, err
		}
	case *wire.Error:
		return false, refusal(m)
	default:
		return false, fmt.Errorf("the session answered the Hello with %s", m.Type())
	}
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
	}()

	msgs := make(chan received, 64)
	go func() {
		for {
			m, b, err := conn.Recv(cctx)
			select {
			case msgs <- received{m, len(b), err}:
			case <-cctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(c.o.SampleEvery)
	defer tick.Stop()
	for {
		var repDone chan struct{}
		if c.rep != nil {
			repDone = c.rep.done
		}
		select {
		case <-ctx.Done():
			conn.Close("client closing")
			return true, ctx.Err()
		case r := <-msgs:
			if r.err != nil {
				return true, r.err
			}
			if err := c.handle(cctx, conn, r.msg, r.n); err != nil {
				return true, err
			}
		case <-tick.C:
			if err := c.sample(cctx, conn, time.Now()); err != nil {
				return true, err
			}
		case m := <-c.pins:
			if err := c.setMode(cctx, conn, m); err != nil {
				return true, err
			}
		case <-repDone:
			err := c.rep.err
			c.log.Error().Err(err).Msg("replay failed; back to display mode")
			if err := c.replayFailed(cctx, conn, err); err != nil {
				return true, err
			}
		}
	}
}

func refusal(e *wire.Error) error {
	switch e.Code {
	case wire.CodeVersion, wire.CodeUnauthorized, wire.CodeNoSession, wire.CodeForbidden, wire.CodeMalformed:
		return &FatalError{Err: *e}
	}
	return fmt.Errorf("the session closed the connection: %s (code %d)", e.Text, e.Code)
}

func (c *Client) onWelcome(ctx context.Context, conn *wsconn.Conn, w *wire.Welcome) error {
	if _, err := machine.DecodeParams(w.Params); err != nil {
		return &FatalError{Err: wire.Error{Code: wire.CodeMalformed, Text: "the Welcome's params: " + err.Error()}}
	}
	c.mu.Lock()
	prev, had := c.welcome, c.hasWelcome
	c.welcome, c.hasWelcome, c.welcomeAt, c.conn = *w, true, time.Now(), conn
	c.newestTick = max(c.newestTick, w.Tick)
	c.mu.Unlock()
	c.log.Info().Str("session", w.SessionID).Uint16("user", w.User).Uint8("role", uint8(w.Role)).
		Uint32("tick_rate", w.TickRate).Uint64("tick", w.Tick).Msg("welcomed")
	c.haveKey = false // a key frame follows
	c.sentMode = wire.ModeDisplay
	if had && prev.ModuleHash != w.ModuleHash && c.rep != nil {
		c.log.Warn().Msg("the session runs another module now: dropping the replay")
		c.rep.stop()
		c.setRep(nil)
	}
	now := time.Now()
	pin := modes.PinAuto
	switch {
	case w.Role == wire.RoleDisplayViewer:
		pin = modes.PinDisplay
	case c.o.Want == wire.ModeDisplay:
		pin = modes.PinDisplay
	case c.o.Want == wire.ModeReplay:
		pin = modes.PinReplay
	}
	if c.rep != nil && c.rep.err == nil && !isDone(c.rep.done) && pin != modes.PinDisplay {
		// Reconnected while replaying: continue the log where it ends.
		pos := c.rep.stream.End()
		c.log.Info().Uint64("tick", pos.Tick).Uint32("segment", pos.Segment).Int64("offset", pos.Offset).Msg("resuming the replay")
		if err := c.send(ctx, conn, &wire.Resume{Pos: pos}); err != nil {
			return err
		}
		c.sentMode = wire.ModeDual
		if c.ctl.Pin() != pin {
			c.ctl.SetPin(now, pin)
		}
		return nil
	}
	if c.rep != nil {
		c.rep.stop()
		c.setRep(nil)
	}
	if tr, ok := c.ctl.Force(now, "reconnected"); ok {
		c.record(tr)
	}
	if tr, ok := c.ctl.SetPin(now, pin); ok {
		return c.act(ctx, conn, tr, false)
	}
	if c.ctl.State() == modes.AwaitSnapshot {
		return c.act(ctx, conn, modes.Transition{At: now, From: modes.Display, To: modes.AwaitSnapshot, Reason: modes.ReasonPinned}, false)
	}
	return nil
}

// SetMode changes the mode asked for while the client runs, as Options.Want
// does at the start: wire.ModeAuto unpins, ModeDisplay leaves dual or replay
// at once, ModeReplay starts a switch at once. A request made while the
// client reconnects takes effect at the next Welcome.
func (c *Client) SetMode(m wire.Mode) {
	for {
		select {
		case c.pins <- m:
			return
		default:
		}
		select { // replace a request not yet taken: the newest wins
		case <-c.pins:
		default:
		}
	}
}

func (c *Client) setMode(ctx context.Context, conn *wsconn.Conn, m wire.Mode) error {
	c.o.Want = m // for the Hello and Welcome of a reconnection
	c.mu.Lock()
	role := c.welcome.Role
	c.mu.Unlock()
	pin := modes.PinAuto
	switch {
	case role == wire.RoleDisplayViewer || m == wire.ModeDisplay:
		pin = modes.PinDisplay
	case m == wire.ModeReplay:
		pin = modes.PinReplay
	}
	c.log.Info().Stringer("pin", pin).Msg("mode asked for")
	if tr, ok := c.ctl.SetPin(time.Now(), pin); ok {
		return c.act(ctx, conn, tr, false)
	}
	return nil
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Client) send(ctx context.Context, conn *wsconn.Conn, m wire.Message) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Send(sctx, m)
}

// handle acts on one message from the relay.
func (c *Client) handle(ctx context.Context, conn *wsconn.Conn, m wire.Message, n int) error {
	switch m := m.(type) {
	case *wire.DisplayFrame:
		c.bytesDisp.Add(uint64(n))
		c.onFrame(m)
	case *wire.LogBlock:
		c.bytesLog.Add(uint64(n))
		return c.onBlock(ctx, conn, m)
	case *wire.SnapshotAnnounce:
		c.bytesLog.Add(uint64(n))
		return c.onAnnounce(ctx, conn, m)
	case *wire.Estimates:
		c.bytesOther.Add(uint64(n))
		c.est = *m
		c.noteTick(m.Tick)
	case *wire.ModeSwitch:
		c.bytesOther.Add(uint64(n))
		return c.onModeSwitch(ctx, conn, m)
	case *wire.Ping:
		c.bytesOther.Add(uint64(n))
		return c.send(ctx, conn, &wire.Pong{Seq: m.Seq, Echo: m.Sent, Sent: uint64(time.Now().UnixNano())})
	case *wire.Error:
		c.bytesOther.Add(uint64(n))
		return refusal(m)
	case *wire.InputRefused:
		c.bytesOther.Add(uint64(n))
		c.log.Info().Uint64("seq", m.Seq).Str("reason", m.Text).Msg("input refused")
		c.publish(m)
	case *wire.Presence, *wire.ControlRequest, *wire.ControlGrant, *wire.ControlRevoke, *wire.ControlRelease:
		c.bytesOther.Add(uint64(n))
		c.publish(m)
	default:
		c.bytesOther.Add(uint64(n))
		c.log.Debug().Stringer("type", m.Type()).Msg("ignoring a message")
	}
	return nil
}

func (c *Client) noteTick(t uint64) {
	c.mu.Lock()
	c.newestTick = max(c.newestTick, t)
	c.mu.Unlock()
}

func (c *Client) onFrame(f *wire.DisplayFrame) {
	if f.Key {
		c.haveKey = true
	} else if !c.haveKey || int(f.Width) != c.dfb.w || int(f.Height) != c.dfb.h {
		return // a delta needs the key frame it builds on
	}
	tiles := make([]display.Tile, len(f.Tiles))
	for i, t := range f.Tiles {
		tiles[i] = display.FromWire(t)
	}
	c.mu.Lock()
	c.dfb.resize(int(f.Width), int(f.Height))
	err := c.dec.Apply(tiles, c.dfb.pix, c.dfb.w, c.dfb.h, c.dfb.w*4)
	c.dfb.tick = f.Tick
	c.mu.Unlock()
	if err != nil {
		// The tiles before the bad one are painted; the next key frame
		// repairs the rest.
		c.log.Error().Err(err).Uint64("seq", f.Seq).Msg("a display frame did not decode")
		c.haveKey = false
	}
	c.noteTick(f.Tick)
	if !c.showReplay.Load() {
		c.changed()
	}
}

func (c *Client) onAnnounce(ctx context.Context, conn *wsconn.Conn, a *wire.SnapshotAnnounce) error {
	if c.rep != nil {
		end := c.rep.stream.End()
		if a.Pos.Tick <= end.Tick {
			return nil // the log we hold already covers it
		}
		// The relay lacked the log from our position (a resume after a
		// long break): start again from its snapshot.
		c.log.Info().Uint64("snapshot", a.Number).Uint64("tick", a.Pos.Tick).Uint64("held_until", end.Tick).Msg("restarting the replay from a newer snapshot")
		c.rep.stop()
		c.setRep(nil)
	}
	st := c.ctl.State()
	if st == modes.Display {
		return nil // not asked for
	}
	c.startReplay(ctx, *a)
	if st == modes.AwaitSnapshot {
		return c.sample(ctx, conn, time.Now()) // the controller moves to dual now
	}
	return nil
}

func (c *Client) startReplay(ctx context.Context, a wire.SnapshotAnnounce) {
	c.mu.Lock()
	w := c.welcome
	c.mu.Unlock()
	p, _ := machine.DecodeParams(w.Params) // checked at the Welcome
	c.log.Info().Uint64("snapshot", a.Number).Uint64("tick", a.Tick).Msg("snapshot announced: fetching it")
	c.setRep(startReplay(context.WithoutCancel(ctx), a, replayDeps{
		fetch: c.fetch, engine: c.engine, params: p, module: w.ModuleHash, lazy: c.o.Lazy, headless: c.o.Headless,
		log: c.log, onScreen: func() {
			if c.showReplay.Load() {
				c.changed()
			}
		},
	}))
}

// keepReplayFrame copies the replay's frame into the display framebuffer.
func (c *Client) keepReplayFrame() {
	r := c.currentReplay()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frame.w == 0 || r.frame.h == 0 {
		return
	}
	c.mu.Lock()
	c.dfb.resize(r.frame.w, r.frame.h)
	copy(c.dfb.pix, r.frame.pix)
	c.dfb.tick = r.frame.tick
	c.mu.Unlock()
}

func (c *Client) setRep(r *replay) {
	c.rep = r
	c.repPtr.Store(r)
}

// engine compiles the session's module once and keeps it across replays.
func (c *Client) engine(ctx context.Context) (*machine.Engine, error) {
	c.mu.Lock()
	want := c.welcome.ModuleHash
	c.mu.Unlock()
	c.engMu.Lock()
	defer c.engMu.Unlock()
	if c.eng != nil && c.eng.Hash() == want {
		return c.eng, nil
	}
	mod, err := c.fetch.Module(ctx, want)
	if err != nil {
		return nil, err
	}
	e, err := machine.NewEngine(ctx, mod, machine.EngineOptions{CacheDir: c.o.EngineCacheDir})
	if err != nil {
		return nil, err
	}
	if c.eng != nil {
		c.eng.Close(context.Background()) // replays of the old module have ended
	}
	c.eng = e
	return e, nil
}

func (c *Client) onBlock(ctx context.Context, conn *wsconn.Conn, b *wire.LogBlock) error {
	c.noteTick(b.Pos.Tick)
	if c.rep == nil {
		return nil // left replay; blocks still in flight
	}
	end := c.rep.stream.End()
	if b.Pos.Segment < end.Segment || (b.Pos.Segment == end.Segment && end.Offset > 0 && b.Pos.Offset < end.Offset) {
		return nil // held already (a resume that overlaps)
	}
	if err := c.rep.stream.Push(b.Pos, b.Block); err != nil {
		err = fmt.Errorf("a log block from the relay was refused: %w", err)
		c.log.Error().Err(err).Msg("back to display mode")
		return c.replayFailed(ctx, conn, err)
	}
	c.noteTick(c.rep.stream.End().Tick)
	return nil
}

func (c *Client) replayFailed(ctx context.Context, conn *wsconn.Conn, err error) error {
	c.repErr = err.Error()
	c.failures.Add(1)
	tr, ok := c.ctl.Force(time.Now(), "replay failed: "+err.Error())
	if !ok {
		if c.rep != nil {
			c.rep.stop()
			c.setRep(nil)
		}
		return nil
	}
	return c.act(ctx, conn, tr, false)
}

func (c *Client) onModeSwitch(ctx context.Context, conn *wsconn.Conn, m *wire.ModeSwitch) error {
	c.log.Info().Uint8("kind", uint8(m.Kind)).Uint8("mode", uint8(m.Mode)).Str("reason", m.Reason).Msg("mode switch from the session")
	if m.Kind != wire.SwitchForced {
		return nil
	}
	switch m.Mode {
	case wire.ModeDisplay:
		c.sentMode = wire.ModeDisplay // the relay has switched us already
		if tr, ok := c.ctl.Force(time.Now(), "forced: "+m.Reason); ok {
			return c.act(ctx, conn, tr, true)
		}
	default:
		c.log.Warn().Uint8("mode", uint8(m.Mode)).Msg("a forced switch to a mode other than display: ignored (this client switches to replay itself)")
	}
	return nil
}

// act does what a controller transition asks: tell the relay, start or drop
// the replay, change what the user sees. forced: the relay switched already.
func (c *Client) act(ctx context.Context, conn *wsconn.Conn, tr modes.Transition, forced bool) error {
	c.record(tr)
	c.log.Info().Stringer("from", tr.From).Stringer("to", tr.To).Stringer("reason", tr.Reason).Str("detail", tr.Detail).Msg("mode")
	reason := tr.Reason.String()
	if tr.Detail != "" {
		reason += ": " + tr.Detail
	}
	if len(reason) > wire.MaxText {
		reason = reason[:wire.MaxText]
	}
	switch tr.To {
	case modes.Display:
		if c.rep != nil {
			// Until the key frame comes, the replay's last frame is the
			// current screen: keep showing it (no stale pixels, no stall).
			// Not after a forced switch, which may be a failed replay.
			if c.showReplay.Load() && tr.Reason != modes.ReasonForced {
				c.keepReplayFrame()
			}
			c.rep.stop()
			c.setRep(nil)
		}
		c.showReplay.Store(false)
		c.changed()
		if !forced && c.sentMode != wire.ModeDisplay {
			c.sentMode = wire.ModeDisplay
			c.haveKey = false
			return c.send(ctx, conn, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDisplay, Reason: reason})
		}
		c.haveKey = false
	case modes.AwaitSnapshot, modes.Dual:
		if c.sentMode != wire.ModeDual {
			c.sentMode = wire.ModeDual
			return c.send(ctx, conn, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: reason})
		}
	case modes.Replay:
		c.showReplay.Store(true)
		c.changed()
		c.sentMode = wire.ModeReplay
		return c.send(ctx, conn, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay, Reason: reason})
	}
	return nil
}

// Switch is one mode change, for the stats file.
type Switch struct {
	From, To string
	Reason   string
	Detail   string  `json:",omitempty"`
	InFromMs float64 // how long the client was in From: for dual → replay, the switch's duration
}

func (c *Client) record(tr modes.Transition) {
	s := Switch{From: tr.From.String(), To: tr.To.String(), Reason: tr.Reason.String(), Detail: tr.Detail}
	s.InFromMs = float64(tr.At.Sub(c.lastSwitch).Microseconds()) / 1000
	c.lastSwitch = tr.At
	c.switches = append(c.switches, s)
	c.allSwitches.Add(1)
}

// sample feeds the controller what was measured since the last sample,
// acts on its decision, sends Lag and writes a stats line.
func (c *Client) sample(ctx context.Context, conn *wsconn.Conn, now time.Time) error {
	dt := now.Sub(c.lastAt)
	if c.lastAt.IsZero() {
		dt = c.o.SampleEvery
	}
	c.lastAt = now
	lb, db := c.bytesLog.Load(), c.bytesDisp.Load()
	dLog, dDisp := lb-c.lastLog, db-c.lastDisp
	c.lastLog, c.lastDisp = lb, db
	st := c.ctl.State()
	est := func(perSec uint64) uint64 { return uint64(float64(perSec) * dt.Seconds()) }
	s := modes.Sample{DisplayBytes: dDisp, ReplayBytes: dLog}
	switch st {
	case modes.Display, modes.AwaitSnapshot:
		s.ReplayBytes = est(c.est.LogBytesPerSec)
	case modes.Replay:
		s.DisplayBytes = est(c.est.DisplayBytesPerSec)
	}
	c.mu.Lock()
	rate := c.welcome.TickRate
	newest := c.newestTick
	c.mu.Unlock()
	var lagTicks, replayTick, received uint64
	if r := c.rep; r != nil {
		received = r.stream.End().Tick
		s.BufferBytes = uint64(r.stream.Buffered())
		s.SnapshotAvailable = st == modes.AwaitSnapshot
		if r.ready.Load() {
			replayTick = r.ticks.Load()
			// Lag is measured against the log received: idle ticks reach
			// the log only with the next block, so an extrapolated server
			// tick would make an idle session look late.
			if received > replayTick {
				lagTicks = received - replayTick
			}
			s.CaughtUp = r.caughtUp()
		} else {
			lagTicks = received - r.announce.Pos.Tick
		}
		s.Lag = modes.LagOf(lagTicks, rate)
	}
	obs := s
	if c.sentMode == wire.ModeDual {
		// Resumed: the relay takes us for dual, where any lag is allowed,
		// until we have caught up with the log it sends from our position.
		obs.Lag = 0
	}
	if tr, ok := c.ctl.Observe(now, obs); ok {
		if err := c.act(ctx, conn, tr, false); err != nil {
			return err
		}
	}
	st = c.ctl.State()
	// A resumed replay: the relay takes us for dual until we say replay.
	if st == modes.Replay && c.sentMode == wire.ModeDual && c.rep != nil && c.rep.caughtUp() {
		c.sentMode = wire.ModeReplay
		c.log.Info().Uint64("tick", replayTick).Msg("caught up after resuming: replay")
		if err := c.send(ctx, conn, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay, Reason: "caught up after resuming"}); err != nil {
			return err
		}
	}
	if c.rep != nil && (st == modes.Dual || st == modes.Replay) {
		if replayTick > received {
			replayTick = received
		}
		if err := c.send(ctx, conn, &wire.Lag{ReplayTick: replayTick, ReceivedTick: received, BufferBytes: s.BufferBytes}); err != nil {
			return err
		}
	}
	stats := c.snapshotStats(now, lagTicks, s.Lag, s.BufferBytes, rate, newest)
	c.lastStats.Store(stats)
	if c.o.Stats != nil {
		b, _ := json.Marshal(stats)
		if _, err := c.o.Stats.Write(append(b, '\n')); err != nil {
			c.log.Error().Err(err).Msg("writing the stats file")
		}
	}
	return nil
}
