// Package livetest is a small in-process upstream for tests of live
// clients: a testcard session recorded on the spot (its log blocks as the
// writer emitted them, a snapshot published to a page store, lossless
// display frames) and an HTTP server that speaks the relay's downstream
// side of docs/live-sessions.md for it — WebSocket /ws/{session}, the page
// service and the session's module.
//
// It must not be used outside tests: it keeps everything in memory and
// fails the test it was given on surprises.
package livetest

import (
	"context"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

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

// Session is a testcard session recorded for the tests: its log blocks as
// the recorder's writer emitted them, one published snapshot, display
// frames of its screen, and what a replay must reproduce.
type Session struct {
	Module     []byte
	ModuleHash recordlog.ModuleHash
	Params     []byte
	Blocks     []wire.LogBlock // every block, in order
	SnapIdx    int             // blocks[snapIdx] is the first after the snapshot
	Snap       wire.SnapshotAnnounce
	BadSnap    wire.SnapshotAnnounce // the same snapshot with one byte of free memory flipped
	Store      *pagestore.MemStore
	Index      *pageservice.SessionIndex
	EndTick    uint64
	EndFB      uint64 // the recorder's framebuffer hash at endTick
	EndPix     []byte // its screen, tightly packed
	W, H       int
	Frames     []*wire.DisplayFrame // a key frame and deltas, lossless
}

// SessionID is the recorded session's id.
const SessionID = "s1"

// Record runs the testcard for 240 ticks, a block every 6 busy ticks,
// a snapshot at tick 60.
func Record(engineCache string) (*Session, error) {
	img, err := images.Lookup("testcard")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	s := &Session{Module: img.Wasm, Store: pagestore.NewMemStore(), Index: pageservice.NewSessionIndex()}
	p := machine.Params{VirtualClock: true, RealtimeBase: 1_700_000_000e9, CheckpointEvery: 10, MemCheckEvery: 3,
		DiskMode: abi.DiskReplayed, DiskBlocks: uint64(len(img.Disk) / abi.BlockSize), Endpoints: img.Endpoints}.WithDefaults()
	s.Params = p.Encode()
	eng, err := machine.NewEngine(ctx, img.Wasm, machine.EngineOptions{CacheDir: engineCache})
	if err != nil {
		return nil, err
	}
	defer eng.Close(ctx)
	s.ModuleHash = eng.Hash()
	dir, err := os.MkdirTemp("", "live-rec")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	w, err := recordlog.Create(dir, recordlog.Header{ModuleHash: s.ModuleHash, Params: s.Params}, recordlog.WriterOptions{
		OnBlock: func(pos recordlog.Pos, b []byte) {
			s.Blocks = append(s.Blocks, wire.LogBlock{Pos: pos, Block: append([]byte(nil), b...)})
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
			key := len(s.Frames) == 0
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
			s.Frames = append(s.Frames, df)
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
			man, h, err := pageservice.Publish(s.Store, snap, nil)
			if err != nil {
				return nil, err
			}
			s.Index.Add(SessionID, pageservice.EntryFor(1, man, h))
			bad := *snap
			bad.Memory = append([]byte(nil), snap.Memory...)
			bad.Memory[len(bad.Memory)-1] ^= 1 // the heap's far end: unused, so only a memory checkpoint sees it
			_, bh, err := pageservice.Publish(s.Store, &bad, nil)
			if err != nil {
				return nil, err
			}
			s.BadSnap = wire.SnapshotAnnounce{Number: 1, ManifestHash: bh, Tick: snap.LogPos.Tick, Step: snap.LogPos.Step, Pos: snap.LogPos}
			s.SnapIdx = len(s.Blocks)
			s.Snap = wire.SnapshotAnnounce{Number: 1, ManifestHash: h, Tick: snap.LogPos.Tick, Step: snap.LogPos.Step, Pos: snap.LogPos}
		}
	}
	if err := m.Sync(); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil { // flushes and seals
		return nil, err
	}
	f := m.Frame()
	s.EndTick, s.EndFB, s.EndPix, s.W, s.H = m.Ticks(), m.FramebufferHash(), tight(f, m.Pixels()), int(f.Width), int(f.Height)
	// The display stream's last frame: the end screen.
	tiles := enc.Encode(s.EndPix, s.W, s.H, s.W*4, []image.Rectangle{image.Rect(0, 0, s.W, s.H)})
	df := &wire.DisplayFrame{Seq: seq, Tick: s.EndTick, Width: f.Width, Height: f.Height}
	for _, t := range tiles {
		df.Tiles = append(df.Tiles, t.Wire())
	}
	s.Frames = append(s.Frames, df)
	if s.SnapIdx == 0 || s.SnapIdx >= len(s.Blocks)-2 {
		return nil, fmt.Errorf("snapshot at block %d of %d", s.SnapIdx, len(s.Blocks))
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

// Upstream speaks the relay's downstream side of docs/live-sessions.md for
// one recorded session: Welcome, display frames, and on a dual request the
// snapshot and the log after it; pages, manifests and the module over HTTP.
type Upstream struct {
	Token string // a client's Hello must carry it
	Srv   *httptest.Server
	// Set before a client connects:
	// HoldFrom: on dual, send the log only up to this block (0: all).
	HoldFrom int
	// DualOnce: answer only the first dual request.
	DualOnce bool
	// BadSnapshot: announce the tampered snapshot.
	BadSnapshot bool
	// Role is the role the Welcome gives (default viewer).
	Role wire.Role
	// KeyEvery, if set, repeats the key frame this often until the client
	// asks for replay: a display stream that costs far more than the log.
	KeyEvery time.Duration
	Got      chan wire.Message // what clients sent (Lag left out)
	Lags     chan *wire.Lag

	t       testing.TB
	s       *Session
	mu      sync.Mutex
	conn    *wsconn.Conn
	conns   int
	duals   int
	nextIdx int // the next block the client gets
}

// NewUpstream serves s on a loopback port until the test ends; clients
// must say Hello with Token.
func NewUpstream(t testing.TB, s *Session) *Upstream {
	u := &Upstream{t: t, s: s, Token: "tok-ok", Got: make(chan wire.Message, 256), Lags: make(chan *wire.Lag, 1024)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{session}", u.serveWS)
	mux.HandleFunc("GET /sessions/{id}/files/module.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Write(s.Module)
	})
	mux.Handle("/", pageservice.NewServer(s.Store, s.Index))
	u.Srv = httptest.NewServer(mux)
	t.Cleanup(u.Srv.Close)
	return u
}

// URL is the session link a client opens.
func (u *Upstream) URL() string { return u.Srv.URL + "/s/" + SessionID + "?t=" + u.Token }

// Conns counts the connections that said a good Hello.
func (u *Upstream) Conns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// Send sends m to the connected client.
func (u *Upstream) Send(m wire.Message) {
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
func (u *Upstream) sendBlocks(ctx context.Context, c *wsconn.Conn, from, to int) error {
	for i := from; i < to; i++ {
		if err := c.Send(ctx, &u.s.Blocks[i]); err != nil {
			return err
		}
	}
	u.mu.Lock()
	u.nextIdx = to
	u.mu.Unlock()
	return nil
}

// Drop ends the current connection abruptly (a relay restarting).
func (u *Upstream) Drop() {
	u.mu.Lock()
	c := u.conn
	u.conn = nil
	u.mu.Unlock()
	c.CloseNow()
}

func (u *Upstream) serveWS(w http.ResponseWriter, r *http.Request) {
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
	u.Got <- h
	if h.Token != u.Token {
		c.Fail(wire.CodeUnauthorized, "bad token")
		return
	}
	u.mu.Lock()
	u.conn = c
	u.conns++
	u.mu.Unlock()
	s := u.s
	role := u.Role
	if role == 0 {
		role = wire.RoleViewer
	}
	stopKeys := make(chan struct{})
	var stopOnce sync.Once
	defer stopOnce.Do(func() { close(stopKeys) })
	c.Send(ctx, &wire.Welcome{Major: wire.Major, Minor: wire.Minor, Caps: h.Caps, SessionID: SessionID, User: 7,
		Role: role, Mode: wire.ModeDisplay, ModuleHash: s.ModuleHash, Params: s.Params, TickRate: 60, Tick: s.EndTick})
	for _, f := range s.Frames {
		c.Send(ctx, f)
	}
	c.Send(ctx, &wire.Estimates{LogBytesPerSec: 1000, DisplayBytesPerSec: 50000, WindowMillis: 1000, Tick: s.EndTick})
	if u.KeyEvery > 0 {
		go func() {
			t := time.NewTicker(u.KeyEvery)
			defer t.Stop()
			for {
				select {
				case <-stopKeys:
					return
				case <-t.C:
					if c.Send(ctx, s.Frames[0]) != nil {
						return
					}
				}
			}
		}()
	}
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			return
		}
		if l, ok := m.(*wire.Lag); ok {
			select {
			case u.Lags <- l:
			default:
			}
			continue
		}
		u.Got <- m
		switch m := m.(type) {
		case *wire.ModeSwitch:
			switch m.Mode {
			case wire.ModeDual:
				u.mu.Lock()
				u.duals++
				answer := !u.DualOnce || u.duals == 1
				u.mu.Unlock()
				if !answer {
					continue
				}
				if u.BadSnapshot {
					c.Send(ctx, &s.BadSnap)
				} else {
					c.Send(ctx, &s.Snap)
				}
				to := len(s.Blocks)
				if u.HoldFrom > 0 {
					to = u.HoldFrom
				}
				if err := u.sendBlocks(ctx, c, s.SnapIdx, to); err != nil {
					return
				}
			case wire.ModeReplay:
				stopOnce.Do(func() { close(stopKeys) })
			case wire.ModeDisplay:
				c.Send(ctx, s.Frames[0]) // a key frame (of an older screen: enough here)
			}
		case *wire.Resume:
			idx := -1
			for i, b := range s.Blocks {
				if b.Pos == m.Pos {
					idx = i
				}
			}
			if idx < 0 {
				u.t.Errorf("upstream: Resume at %+v, which is no block's start", m.Pos)
				return
			}
			if err := u.sendBlocks(ctx, c, idx, len(s.Blocks)); err != nil {
				return
			}
		}
	}
}

// Next returns the next message a client sent (Lag aside), failing the test
// after a generous deadline.
func (u *Upstream) Next(t testing.TB) wire.Message {
	t.Helper()
	select {
	case m := <-u.Got:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("the client sent nothing for 30 s")
		return nil
	}
}

// ExpectSwitch skips to the client's next ModeSwitch and checks it.
func (u *Upstream) ExpectSwitch(t testing.TB, kind wire.SwitchKind, mode wire.Mode) *wire.ModeSwitch {
	t.Helper()
	for {
		m := u.Next(t)
		if ms, ok := m.(*wire.ModeSwitch); ok {
			if ms.Kind != kind || ms.Mode != mode {
				t.Fatalf("ModeSwitch kind %d mode %d (%q), want kind %d mode %d", ms.Kind, ms.Mode, ms.Reason, kind, mode)
			}
			return ms
		}
	}
}
