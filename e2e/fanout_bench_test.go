package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// The fan-out figure of docs/live-sessions.md: one `server --image game`,
// one standalone `relay` process, and N downstream replay clients on this
// machine; delivery lag per LogBlock, p50 and p99.
//
//	go test ./e2e -run '^$' -bench Fanout -benchtime 1x -timeout 30m \
//	    [-fanout.n 10,100,300,1000] [-fanout.real 1,2,4] [-fanout.dur 20s]
//
// Two tiers, because 1,000 real replays cannot run on two cores (the game
// costs about 0.7 ms of CPU a step at 60 steps a second):
//   - receivers=N: N receive-only replay clients in this process, each a
//     real WebSocket speaking the real protocol as a pinned replay client
//     does (Hello wanting replay, ModeSwitch requested dual, then replay
//     after the first LogBlock, Lag once a second), checking that the log
//     arrives without a gap (every 50th also decodes every block into a
//     recordlog.Stream) but not executing the VM;
//   - replays=K: K real `client --headless --mode replay` processes.
//
// Lag is a block's arrival at a client (wall clock, read right after the
// WebSocket read returns) minus the wall time the server handed the block
// to its relays, which the server logs at debug level ("block written",
// wall_ns) — every process here shares the machine's clock. A block a
// client never got by the end counts as lag +Inf. The load generator runs
// on the same cores as the relay and server, so the figures bound the
// relay's lag from above.
var (
	fanoutN    = flag.String("fanout.n", "10,100,300,1000", "receive-only client counts for BenchmarkFanout")
	fanoutReal = flag.String("fanout.real", "1,2,4", "real `client --mode replay` process counts for BenchmarkFanout")
	fanoutDur  = flag.Duration("fanout.dur", 20*time.Second, "measured time per count in BenchmarkFanout")
)

// startFanoutRelay runs `relay --upstream up --key-file key` (built by
// TestMain) on a free loopback port and returns its base URL, its stderr
// and its process id once it answers.
func startFanoutRelay(t testing.TB, up, key string) (string, *syncBuffer, int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stderr := &syncBuffer{}
	cmd := exec.Command(relayBin, "--upstream", up, "--listen", addr, "--key-file", key, "--log-level", "warn")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	waitFor(t, 30*time.Second, "the relay to listen", func() bool {
		r, err := http.Get(base + "/metrics")
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
	return base, stderr, cmd.Process.Pid
}

// cpuTime is a process's user+system CPU time so far (Linux /proc).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks (100 a second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// writeTimes parses the server's "block written" debug lines: block start
// offset (segment<<40 | offset) → Unix ns.
func writeTimes(t testing.TB, stderr string) map[int64]int64 {
	out := map[int64]int64{}
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, `"block written"`) {
			continue
		}
		var v struct {
			Seg    uint32 `json:"seg"`
			Off    int64  `json:"off"`
			WallNs int64  `json:"wall_ns"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("server log line %q: %v", line, err)
		}
		out[blockKey(v.Seg, v.Off)] = v.WallNs
	}
	return out
}

func blockKey(seg uint32, off int64) int64 { return int64(seg)<<40 | off }

// receiver is one receive-only replay client.
type receiver struct {
	arrivals map[int64]int64       // block key → arrival Unix ns
	replay   atomic.Bool           // it asked for replay (got its first block)
	forced   atomic.Int64          // forced ModeSwitches (too slow)
	stage    atomic.Int32          // 1 welcomed, 2 announced, 3 replaying (for a stuck join's report)
	runErr   error                 // the current attempt's (its goroutine's only)
	failed   atomic.Pointer[error] // the final failure, for the benchmark
}

// clientCaps are the native client's capabilities (client/internal/live).
const clientCaps = wire.CapReplay | wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapPNG |
	wire.CapPageCache | wire.CapDualStream

// run speaks the protocol as a pinned replay client until ctx ends.
func (r *receiver) run(ctx context.Context, wsURL, tok, name string, validate bool) {
	ws, err := wsconn.Dial(ctx, wsURL)
	if err != nil {
		r.runErr = err
		return
	}
	defer ws.CloseNow()
	context.AfterFunc(ctx, ws.CloseNow)
	send := func(m wire.Message) bool {
		if err := ws.Send(ctx, m); err != nil && ctx.Err() == nil {
			r.runErr = err
			return false
		}
		return true
	}
	if !send(&wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: clientCaps, Token: tok, Want: wire.ModeReplay, Name: name}) {
		return
	}
	var (
		stream   *recordlog.Stream
		next     recordlog.Pos
		restart  recordlog.Pos // the newest announcement's
		haveNext bool
		lastTick uint64
		lastLag  time.Time
		again    time.Time // when to ask for the log again after a forced switch
	)
	for {
		m, _, err := ws.Recv(ctx)
		now := time.Now().UnixNano()
		if err != nil {
			if ctx.Err() == nil {
				r.runErr = err
			}
			return
		}
		switch v := m.(type) {
		case *wire.Welcome:
			r.stage.Store(1)
			if !send(&wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: "pinned replay"}) {
				return
			}
		case *wire.SnapshotAnnounce:
			// The first starts the log; a later one may restart it (after a
			// forced switch to display, the log comes back from a snapshot).
			restart = v.Pos
			r.stage.CompareAndSwap(1, 2)
			if !haveNext {
				next, haveNext = v.Pos, true
				if validate {
					stream = recordlog.NewStream(v.Pos)
				}
			}
		case *wire.LogBlock:
			if !haveNext {
				r.runErr = fmt.Errorf("a LogBlock at %+v before any SnapshotAnnounce", v.Pos)
				return
			}
			if v.Pos.Segment == restart.Segment && v.Pos.Offset == restart.Offset && v.Pos.Offset != next.Offset {
				next = v.Pos
				if stream != nil {
					stream = recordlog.NewStream(v.Pos)
				}
			}
			if v.Pos.Segment == next.Segment && v.Pos.Offset != next.Offset {
				r.runErr = fmt.Errorf("log gap: block at offset %d, want %d", v.Pos.Offset, next.Offset)
				return
			}
			next = recordlog.Pos{Segment: v.Pos.Segment, Offset: v.Pos.Offset + int64(len(v.Block))}
			if stream != nil {
				if err := stream.Push(v.Pos, v.Block); err != nil {
					r.runErr = err
					return
				}
				for stream.Ready() { // keep its buffer small
					if _, err := stream.Next(ctx); err != nil {
						r.runErr = err
						return
					}
				}
			}
			r.arrivals[blockKey(v.Pos.Segment, v.Pos.Offset)] = now
			lastTick = v.Pos.Tick
			if !r.replay.Load() {
				r.replay.Store(true)
				r.stage.Store(3)
				if !send(&wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay, Reason: "caught up"}) {
					return
				}
			}
		case *wire.ModeSwitch:
			if v.Kind == wire.SwitchForced && v.Mode == wire.ModeDisplay {
				// Too slow (or the snapshot failed): like a pinned client,
				// ask for the log again a little later.
				r.forced.Add(1)
				again = time.Now().Add(2 * time.Second)
			}
		case *wire.Error:
			r.runErr = v
			return
		}
		if !again.IsZero() && time.Now().After(again) {
			again = time.Time{}
			if !send(&wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: "pinned replay"}) {
				return
			}
		}
		if r.replay.Load() && time.Since(lastLag) >= time.Second {
			lastLag = time.Now()
			if !send(&wire.Lag{ReplayTick: lastTick, ReceivedTick: lastTick}) {
				return
			}
		}
	}
}

// fanoutRig is the server and the standalone relay the sub-benchmarks share.
type fanoutRig struct {
	srv       *liveServer
	relayBase string
	relayPid  int
	viewer    string // the viewer link, pointed at the standalone relay
	session   string
	token     string
}

func BenchmarkFanout(b *testing.B) {
	key := filepath.Join(b.TempDir(), "key")
	srv := startLiveServer(b, "--image", "game", "--data", filepath.Join(b.TempDir(), "live"), "--key-file", key, "--log-level", "debug")
	relayBase, relayErr, relayPid := startFanoutRelay(b, srv.upstream, key)
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("relay stderr:\n%s", relayErr.String())
		}
	})
	u, err := url.Parse(srv.links["viewer"])
	if err != nil {
		b.Fatal(err)
	}
	rig := &fanoutRig{srv: srv, relayBase: relayBase, relayPid: relayPid, session: strings.TrimPrefix(u.Path, "/s/"), token: u.Query().Get("t")}
	ru, _ := url.Parse(relayBase)
	u.Host = ru.Host
	rig.viewer = u.String()
	for _, n := range counts(b, *fanoutN) {
		b.Run(fmt.Sprintf("receivers=%d", n), func(b *testing.B) { rig.receivers(b, n) })
	}
	for _, n := range counts(b, *fanoutReal) {
		b.Run(fmt.Sprintf("replays=%d", n), func(b *testing.B) { rig.replays(b, n) })
	}
}

func counts(b *testing.B, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			b.Fatalf("count %q: want a number", f)
		}
		if n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func (rig *fanoutRig) receivers(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wsURL := strings.Replace(rig.relayBase, "http://", "ws://", 1) + "/ws/" + rig.session
	rs := make([]*receiver, n)
	var wg sync.WaitGroup
	var retries atomic.Int64
	var measuring atomic.Bool
	replaying := func(rs []*receiver) bool {
		for _, r := range rs {
			if e := r.failed.Load(); e != nil {
				b.Fatalf("receiver: %v", *e)
			}
			if !r.replay.Load() {
				return false
			}
		}
		return true
	}
	// Join in waves of 20, each replaying before the next starts, so the
	// relay and server are not asked for a thousand Hellos and key frames
	// at once (joining is not what this measures).
	for i := range rs {
		rs[i] = &receiver{arrivals: map[int64]int64{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rs[i]
			for try := 0; ; try++ {
				r.run(ctx, wsURL, rig.token, fmt.Sprintf("rx%d", i), i%50 == 0)
				// A connection lost while joining (the relay's 10 s Hello
				// rule, or its slow-client rule while display frames flow,
				// on a starved machine) is retried, as a real client
				// reconnects; once the measurement runs it is a failure.
				if r.runErr == nil || measuring.Load() || try == 4 || ctx.Err() != nil {
					if r.runErr != nil {
						r.failed.Store(&r.runErr)
					}
					return
				}
				retries.Add(1)
				r.runErr = nil
				r.stage.Store(0)
				r.replay.Store(false)
				time.Sleep(time.Second)
			}
		}()
		if i%20 == 19 || i == n-1 {
			wave := rs[i/20*20 : i+1]
			deadline := time.Now().Add(time.Minute)
			for !replaying(wave) {
				if time.Now().After(deadline) {
					var st [4]int
					forced := int64(0)
					for _, r := range wave {
						st[r.stage.Load()]++
						forced += r.forced.Load()
					}
					var snaps []string
					for _, l := range strings.Split(rig.srv.stderr.String(), "\n") {
						if strings.Contains(l, "snapshot") && !strings.Contains(l, `"block written"`) {
							snaps = append(snaps, l)
						}
					}
					b.Logf("server's snapshot lines (newest 10):\n%s", strings.Join(snaps[max(0, len(snaps)-10):], "\n"))
					b.Fatalf("receivers %d..%d not all replaying after a minute: %d without Welcome, %d welcomed, %d announced, %d replaying; %d forced switches", i/20*20, i, st[0], st[1], st[2], st[3], forced)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	time.Sleep(2 * time.Second) // display frames for the last joiners stop
	measuring.Store(true)
	b.ResetTimer()
	t0 := time.Now().UnixNano()
	rc0, sc0 := cpuTime(rig.relayPid), cpuTime(rig.srv.cmd.Process.Pid)
	time.Sleep(*fanoutDur)
	t1 := time.Now().UnixNano()
	rc1, sc1 := cpuTime(rig.relayPid), cpuTime(rig.srv.cmd.Process.Pid)
	// CPU use in percent of one core over the measured time.
	b.ReportMetric(100*float64(rc1-rc0)/float64(t1-t0), "relay-cpu-%")
	b.ReportMetric(100*float64(sc1-sc0)/float64(t1-t0), "server-cpu-%")
	time.Sleep(2 * time.Second) // blocks written before t1 still arriving
	b.StopTimer()
	cancel()
	wg.Wait()
	written := writeTimes(b, rig.srv.stderr.String())
	var lags []float64 // ms
	forced := int64(0)
	for _, r := range rs {
		if e := r.failed.Load(); e != nil {
			b.Fatalf("receiver: %v", *e)
		}
		forced += r.forced.Load()
		for k, w := range written {
			if w < t0 || w >= t1 {
				continue
			}
			a, ok := r.arrivals[k]
			if !ok {
				lags = append(lags, inf)
				continue
			}
			lags = append(lags, float64(a-w)/1e6)
		}
	}
	var offs []int64 // the measured blocks' keys, for their mean size
	for k, w := range written {
		if w >= t0 && w < t1 {
			offs = append(offs, k)
		}
	}
	if slices.Sort(offs); len(offs) > 1 && offs[0]>>40 == offs[len(offs)-1]>>40 {
		b.ReportMetric(float64(offs[len(offs)-1]-offs[0])/float64(len(offs)-1), "block-B")
	}
	if os.Getenv("FANOUT_TRACE") != "" {
		trace(b, written, rs, t0, t1)
	}
	report(b, lags, len(lags)/n)
	b.ReportMetric(float64(forced), "forced")
	b.ReportMetric(float64(retries.Load()), "join-retries")
}

const inf = 1e18

func report(b *testing.B, lags []float64, blocks int) {
	if len(lags) == 0 {
		b.Fatal("no blocks measured")
	}
	slices.Sort(lags)
	q := func(p float64) float64 { return lags[int(p*float64(len(lags)-1))] }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(blocks), "blocks")
	missing := 0
	for _, l := range lags {
		if l == inf {
			missing++
		}
	}
	b.ReportMetric(float64(missing), "missing")
}

// replays runs n real replay clients through the relay and reports their
// own lag figure (--stats lag_ms: how far the replay trails the session's
// newest tick), sampled once a second over the measured time.
func (rig *fanoutRig) replays(b *testing.B, n int) {
	var cs []*liveClient
	for range n {
		cs = append(cs, startLiveClient(b, rig.viewer, "--mode", "replay"))
	}
	waitFor(b, 2*time.Minute, "every client replaying", func() bool {
		for _, c := range cs {
			if c.last(b).Mode != "replay" {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second)
	b.ResetTimer()
	t0 := time.Now()
	time.Sleep(*fanoutDur)
	b.StopTimer()
	var lags []float64
	for _, c := range cs {
		f, err := os.Open(c.stats)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var s struct {
				clientStats
				T string `json:"time"`
			}
			if json.Unmarshal(sc.Bytes(), &s) != nil {
				continue
			}
			if ts, err := time.Parse(time.RFC3339Nano, s.T); err == nil && ts.Before(t0) {
				continue
			}
			if s.Mode != "replay" {
				b.Errorf("a client left replay: %+v", s.clientStats)
			}
			if s.Failures != 0 {
				b.Errorf("a replay failed: %s", s.LastFailure)
			}
			lags = append(lags, s.LagMs)
		}
		f.Close()
		c.stop(b)
	}
	report(b, lags, len(lags)/n)
}

// trace logs each measured block's median and worst lag over the clients
// (FANOUT_TRACE=1), to tell a stall of everyone from a few slow clients.
func trace(b *testing.B, written map[int64]int64, rs []*receiver, t0, t1 int64) {
	type row struct{ w, p50, max int64 }
	var rows []row
	for k, w := range written {
		if w < t0 || w >= t1 {
			continue
		}
		var ls []int64
		for _, r := range rs {
			if a, ok := r.arrivals[k]; ok {
				ls = append(ls, a-w)
			}
		}
		if len(ls) == 0 {
			continue
		}
		slices.Sort(ls)
		rows = append(rows, row{w, ls[len(ls)/2], ls[len(ls)-1]})
	}
	for i, r := range rs {
		var worst int64
		for k, w := range written {
			if a, ok := r.arrivals[k]; ok && w >= t0 && w < t1 {
				worst = max(worst, a-w)
			}
		}
		if worst > 100e6 {
			b.Logf("receiver %d: worst lag %.1f ms", i, float64(worst)/1e6)
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return int(a.w - b.w) })
	for _, r := range rows {
		b.Logf("t=%7.3fs p50 %6.1f ms max %6.1f ms", float64(r.w-t0)/1e9, float64(r.p50)/1e6, float64(r.max)/1e6)
	}
}
