package live

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/server/images"
	"replaydesk/shared/abi"
	"replaydesk/shared/display"
	"replaydesk/shared/endpoints"
	"replaydesk/shared/machine"
	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// session is a testcard session recorded for the tests: its log blocks as
// the recorder's writer emitted them, one published snapshot, display
// frames of its screen, and what a replay must reproduce.
type session struct {
	module     []byte
	moduleHash recordlog.ModuleHash
	params     []byte
	blocks     []wire.LogBlock // every block, in order
	snapIdx    int             // blocks[snapIdx] is the first after the snapshot
	snap       wire.SnapshotAnnounce
	badSnap    wire.SnapshotAnnounce // the same snapshot with one byte of free memory flipped
	store      *pagestore.MemStore
	index      *pageservice.SessionIndex
	endTick    uint64
	endFB      uint64 // the recorder's framebuffer hash at endTick
	endPix     []byte // its screen, tightly packed
	w, h       int
	frames     []*wire.DisplayFrame // a key frame and deltas, lossless
}

const testSession = "s1"

var (
	recOnce sync.Once
	rec     *session
	recErr  error
	// engineCache keeps compiled guest code across the package's tests.
	engineCache string
)

func TestMain(m *testing.M) {
	machine.RunPageServerIfChild()
	dir, err := os.MkdirTemp("", "live-test")
	if err != nil {
		panic(err)
	}
	engineCache = filepath.Join(dir, "engine")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func recording(t *testing.T) *session {
	t.Helper()
	recOnce.Do(func() { rec, recErr = record() })
	if recErr != nil {
		t.Fatal(recErr)
	}
	return rec
}

// record runs the testcard for 240 ticks, a block every 6 busy ticks,
// a snapshot at tick 60.
func record() (*session, error) {
	img, err := images.Lookup("testcard")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	s := &session{module: img.Wasm, store: pagestore.NewMemStore(), index: pageservice.NewSessionIndex()}
	p := machine.Params{VirtualClock: true, RealtimeBase: 1_700_000_000e9, CheckpointEvery: 10, MemCheckEvery: 3,
		DiskMode: abi.DiskReplayed, DiskBlocks: uint64(len(img.Disk) / abi.BlockSize), Endpoints: img.Endpoints}.WithDefaults()
	s.params = p.Encode()
	eng, err := machine.NewEngine(ctx, img.Wasm, machine.EngineOptions{CacheDir: engineCache})
	if err != nil {
		return nil, err
	}
	defer eng.Close(ctx)
	s.moduleHash = eng.Hash()
	dir, err := os.MkdirTemp("", "live-rec")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	w, err := recordlog.Create(dir, recordlog.Header{ModuleHash: s.moduleHash, Params: s.params}, recordlog.WriterOptions{
		OnBlock: func(pos recordlog.Pos, b []byte) {
			s.blocks = append(s.blocks, wire.LogBlock{Pos: pos, Block: append([]byte(nil), b...)})
		}})
	if err != nil {
		return nil, err
	}
	net := endpoints.NewHost()
	for name, f := range img.Sources {
		net.Add(name, f)
	}
	m, err := machine.New(ctx, eng, machine.Config{Mode: machine.Record, Params: p, Sink: w, Disk: img.Disk, Net: net})
	if err != nil {
		return nil, err
	}
	defer m.Close(ctx)
	enc := display.NewEncoder(display.Options{Lossless: true})
	var seq uint64
	for t := 1; t <= 240; t++ {
		if t%50 == 0 {
			m.Input(abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, Down: true, User: 1}, abi.Event{Type: abi.EvKey, Code: abi.CodeKeyA, User: 1})
		}
		fseq := m.Frame().Seq
		if _, err := m.Advance(ctx); err != nil {
			return nil, err
		}
		if f := m.Frame(); f.Seq != fseq && t%20 == 0 {
			pix := tight(f, m.Pixels())
			var tiles []display.Tile
			key := len(s.frames) == 0
			if key {
				tiles = enc.Key(pix, int(f.Width), int(f.Height), int(f.Width)*4)
			} else {
				tiles = enc.Encode(pix, int(f.Width), int(f.Height), int(f.Width)*4, []image.Rectangle{image.Rect(0, 0, int(f.Width), int(f.Height))})
			}
			df := &wire.DisplayFrame{Seq: seq, Tick: m.Ticks(), Key: key, Width: f.Width, Height: f.Height}
			for _, t := range tiles {
				df.Tiles = append(df.Tiles, t.Wire())
			}
			seq++
			s.frames = append(s.frames, df)
		}
		if t%6 == 0 {
			if err := m.Sync(); err != nil {
				return nil, err
			}
			if err := w.Flush(); err != nil {
				return nil, err
			}
		}
		if t == 60 {
			snap, err := m.Snapshot()
			if err != nil {
				return nil, err
			}
			snap.LogPos = w.Pos()
			man, h, err := pageservice.Publish(s.store, snap, nil)
			if err != nil {
				return nil, err
			}
			s.index.Add(testSession, pageservice.EntryFor(1, man, h))
			bad := *snap
			bad.Memory = append([]byte(nil), snap.Memory...)
			bad.Memory[len(bad.Memory)-1] ^= 1 // the heap's far end: unused, so only a memory checkpoint sees it
			_, bh, err := pageservice.Publish(s.store, &bad, nil)
			if err != nil {
				return nil, err
			}
			s.badSnap = wire.SnapshotAnnounce{Number: 1, ManifestHash: bh, Tick: snap.LogPos.Tick, Step: snap.LogPos.Step, Pos: snap.LogPos}
			s.snapIdx = len(s.blocks)
			s.snap = wire.SnapshotAnnounce{Number: 1, ManifestHash: h, Tick: snap.LogPos.Tick, Step: snap.LogPos.Step, Pos: snap.LogPos}
		}
	}
	if err := m.Sync(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil { // flushes and seals
		return nil, err
	}
	f := m.Frame()
	s.endTick, s.endFB, s.endPix, s.w, s.h = m.Ticks(), m.FramebufferHash(), tight(f, m.Pixels()), int(f.Width), int(f.Height)
	// The display stream's last frame: the end screen.
	tiles := enc.Encode(s.endPix, s.w, s.h, s.w*4, []image.Rectangle{image.Rect(0, 0, s.w, s.h)})
	df := &wire.DisplayFrame{Seq: seq, Tick: s.endTick, Width: f.Width, Height: f.Height}
	for _, t := range tiles {
		df.Tiles = append(df.Tiles, t.Wire())
	}
	s.frames = append(s.frames, df)
	if s.snapIdx == 0 || s.snapIdx >= len(s.blocks)-2 {
		return nil, fmt.Errorf("snapshot at block %d of %d", s.snapIdx, len(s.blocks))
	}
	return s, nil
}

func tight(f machine.Frame, px []byte) []byte {
	w, h := int(f.Width), int(f.Height)
	out := make([]byte, w*h*4)
	for y := 0; y < h; y++ {
		copy(out[y*w*4:(y+1)*w*4], px[y*int(f.Stride):])
	}
	return out
}

// upstream speaks the relay's downstream side of docs/live-sessions.md for
// one recorded session: Welcome, display frames, and on a dual request the
// snapshot and the log after it; pages, manifests and the module over HTTP.
type upstream struct {
	t     *testing.T
	s     *session
	token string
	srv   *httptest.Server
	// holdFrom: on dual, send the log only up to this block (0: all).
	holdFrom int
	// dualOnce: answer only the first dual request.
	dualOnce bool
	// badSnapshot: announce the tampered snapshot.
	badSnapshot bool

	mu      sync.Mutex
	conn    *wsconn.Conn
	conns   int
	duals   int
	got     chan wire.Message // what clients sent (Lag left out)
	lags    chan *wire.Lag
	nextIdx int // the next block the client gets
}

func newUpstream(t *testing.T, s *session) *upstream {
	u := &upstream{t: t, s: s, token: "tok-ok", got: make(chan wire.Message, 256), lags: make(chan *wire.Lag, 1024)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{session}", u.serveWS)
	mux.HandleFunc("GET /sessions/{id}/files/module.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Write(s.module)
	})
	mux.Handle("/", pageservice.NewServer(s.store, s.index))
	u.srv = httptest.NewServer(mux)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) link() Link {
	return Link{Base: u.srv.URL, Session: testSession, Token: u.token}
}

func (u *upstream) send(m wire.Message) {
	u.mu.Lock()
	c := u.conn
	u.mu.Unlock()
	if c == nil {
		u.t.Error("upstream: no client connected")
		return
	}
	if err := c.Send(context.Background(), m); err != nil {
		u.t.Errorf("upstream: send %s: %v", m.Type(), err)
	}
}

// sendBlocks sends blocks [from, to) and remembers where it stopped.
func (u *upstream) sendBlocks(ctx context.Context, c *wsconn.Conn, from, to int) error {
	for i := from; i < to; i++ {
		if err := c.Send(ctx, &u.s.blocks[i]); err != nil {
			return err
		}
	}
	u.mu.Lock()
	u.nextIdx = to
	u.mu.Unlock()
	return nil
}

// drop ends the current connection abruptly (a relay restarting).
func (u *upstream) drop() {
	u.mu.Lock()
	c := u.conn
	u.conn = nil
	u.mu.Unlock()
	c.CloseNow()
}

func (u *upstream) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
	if err != nil {
		u.t.Errorf("upstream: accept: %v", err)
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	m, _, err := c.Recv(ctx)
	if err != nil {
		return
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		u.t.Errorf("upstream: first message %s", m.Type())
		return
	}
	u.got <- h
	if h.Token != u.token {
		c.Fail(wire.CodeUnauthorized, "bad token")
		return
	}
	u.mu.Lock()
	u.conn = c
	u.conns++
	u.mu.Unlock()
	s := u.s
	c.Send(ctx, &wire.Welcome{Major: wire.Major, Minor: wire.Minor, Caps: h.Caps, SessionID: testSession, User: 7,
		Role: wire.RoleViewer, Mode: wire.ModeDisplay, ModuleHash: s.moduleHash, Params: s.params, TickRate: 60, Tick: s.endTick})
	for _, f := range s.frames {
		c.Send(ctx, f)
	}
	c.Send(ctx, &wire.Estimates{LogBytesPerSec: 1000, DisplayBytesPerSec: 50000, WindowMillis: 1000, Tick: s.endTick})
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			return
		}
		if l, ok := m.(*wire.Lag); ok {
			select {
			case u.lags <- l:
			default:
			}
			continue
		}
		u.got <- m
		switch m := m.(type) {
		case *wire.ModeSwitch:
			switch m.Mode {
			case wire.ModeDual:
				u.mu.Lock()
				u.duals++
				answer := !u.dualOnce || u.duals == 1
				u.mu.Unlock()
				if !answer {
					continue
				}
				if u.badSnapshot {
					c.Send(ctx, &s.badSnap)
				} else {
					c.Send(ctx, &s.snap)
				}
				to := len(s.blocks)
				if u.holdFrom > 0 {
					to = u.holdFrom
				}
				if err := u.sendBlocks(ctx, c, s.snapIdx, to); err != nil {
					return
				}
			case wire.ModeDisplay:
				c.Send(ctx, s.frames[0]) // a key frame (of an older screen: enough here)
			}
		case *wire.Resume:
			idx := -1
			for i, b := range s.blocks {
				if b.Pos == m.Pos {
					idx = i
				}
			}
			if idx < 0 {
				u.t.Errorf("upstream: Resume at %+v, which is no block's start", m.Pos)
				return
			}
			if err := u.sendBlocks(ctx, c, idx, len(s.blocks)); err != nil {
				return
			}
		}
	}
}

// next returns the next message a client sent (Lag aside), failing the test
// after a generous deadline.
func (u *upstream) next(t *testing.T) wire.Message {
	t.Helper()
	select {
	case m := <-u.got:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("the client sent nothing for 30 s")
		return nil
	}
}

// expectSwitch skips to the client's next ModeSwitch and checks it.
func (u *upstream) expectSwitch(t *testing.T, kind wire.SwitchKind, mode wire.Mode) *wire.ModeSwitch {
	t.Helper()
	for {
		m := u.next(t)
		if ms, ok := m.(*wire.ModeSwitch); ok {
			if ms.Kind != kind || ms.Mode != mode {
				t.Fatalf("ModeSwitch kind %d mode %d (%q), want kind %d mode %d", ms.Kind, ms.Mode, ms.Reason, kind, mode)
			}
			return ms
		}
	}
}

// runClient starts a client against u; the returned stop cancels it and
// waits for Run.
func runClient(t *testing.T, u *upstream, o Options) (*Client, func() error) {
	t.Helper()
	o.Link = u.link()
	o.CacheDir = t.TempDir()
	o.EngineCacheDir = engineCache
	if o.SampleEvery == 0 {
		o.SampleEvery = 50 * time.Millisecond
	}
	o.MinBackoff = 20 * time.Millisecond
	o.Log = zerolog.New(zerolog.NewConsoleWriter(zerolog.ConsoleTestWriter(t))).With().Timestamp().Logger()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return c, stop
}

// waitStats waits for a stats line satisfying ok.
func waitStats(t *testing.T, c *Client, what string, ok func(*Stats) bool) *Stats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s := c.LastStats(); s != nil && ok(s) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: last stats %+v", what, c.LastStats())
	return nil
}
