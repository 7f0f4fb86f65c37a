package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"replaydesk/e2e/internal/attack"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/token"
	"replaydesk/shared/wire"
)

// The abuse-and-soak suite (issue 9): the attacks run, from a
// separate `attack` process (e2e/attack) and from here, against a live
// `server --image testcard` and a standalone `relay` on loopback while a
// controller types (a raw protocol client timing each keystroke into the
// log it receives, see typist) and a native client replays through the
// relay. Then the crash soak: the server killed (-9) at random moments
// while the controller types, restarted each time on the same directory.
//
// Two forms. TestAbuse and TestAbuseCrashSoak are the reduced ones that
// `go test ./e2e` runs (200 hostile connections, 3 kills) and assert the
// issue's goals, latencies only as bounds against starvation (see
// latencyBounds). BenchmarkAbuse is the full one with the figures:
//
//	go test ./e2e -run '^$' -bench Abuse -benchtime 1x -timeout 30m \
//	    [-abuse.silent 2000] [-abuse.flood 200] [-abuse.pages 100000] \
//	    [-abuse.joins 5000] [-abuse.kills 20] [-abuse.seed N] [-abuse.measure 30s]
//
// Goals (issue 9, "Done when"): under the hostile load, the controller's
// keystroke-to-log p99 < 100 ms and a fresh controller's join < 1 s; server
// and relay RSS < 300 MB; the relay cache under its limit (256 MiB) after
// the distinct-key GETs; no keystroke acknowledged in a broadcast block
// missing from the final log and no divergence over the kills.
var (
	abuseSilent  = flag.Int("abuse.silent", 2000, "BenchmarkAbuse: connections that say Hello and never read")
	abuseFlood   = flag.Int("abuse.flood", 200, "BenchmarkAbuse: display connections flooding Input (256 text events, 385 a second each)")
	abusePages   = flag.Int("abuse.pages", 100000, "BenchmarkAbuse: page GETs under distinct URLs")
	abuseJoins   = flag.Int("abuse.joins", 5000, "BenchmarkAbuse: joins with the display link")
	abuseKills   = flag.Int("abuse.kills", 20, "BenchmarkAbuse: kill -9 restarts of the server")
	abuseMeasure = flag.Duration("abuse.measure", 30*time.Second, "BenchmarkAbuse: how long the controller types under the hostile load")
	abuseSeed    = flag.Uint64("abuse.seed", 0, "seed of the kill moments (0: from the clock, logged)")
)

// abuseConfig sizes one run.
type abuseConfig struct {
	silent, flood     int // hostile connections
	floodRate         float64
	floodEvents       int
	joins, pages      int
	baseline, measure time.Duration // the controller typing alone, then under load
}

var reducedAbuse = abuseConfig{silent: 200, flood: 20, floodRate: 385, floodEvents: 256, joins: 500, pages: 5000,
	baseline: 3 * time.Second, measure: 10 * time.Second}

// abuseResult is what one run measured.
type abuseResult struct {
	keyless           attack.KeylessResult
	keylessRefused    string // the keyless relay refused to start: its message
	forged            map[string]attack.Outcome
	baseP50, baseP99  float64 // ms, the controller typing alone
	p50, p99, maxLat  float64 // ms, under the hostile load
	keys, unacked     int     // keystrokes typed under load, never acknowledged
	inLog             int     // of the keystrokes typed under load, those in the server's log
	inP50, inP99      float64 // ms, typed → block handed to the relays (under load)
	outP50, outP99    float64 // ms, handed → received by the controller
	typistJoins       int     // the controller's Welcomes (1 + reconnects)
	typistErr         string  // why its last connection ended
	refusedKeys       map[string]int
	joinMs            []float64 // fresh controller joins (dial + Hello → Welcome) under load, sorted
	joinRefused       []string
	serverRSS         float64 // MB, peak from the attack's start to its end
	relayRSS          float64
	cacheBytes        float64 // the relay's figures after the distinct-key GETs
	cacheEntries      float64
	cacheOK           bool // the relay exports cache bytes and entries
	userBefore        uint16
	userAfter         uint16  // an owner's user number before and after the joins
	numbersPerJoin    float64 // user numbers used up per hostile join
	viewerFailures    int64
	viewerDivergences int
	viewerLast        string
	attack            attackSummary
	flooders          attackSummary
}

// abuseRig is the server, the standalone relay and the links through it.
type abuseRig struct {
	srv      *liveServer
	data     string // the session directory
	key      []byte
	keyFile  string
	relay    string // http://host:port of the standalone relay
	relayPid int
	relayErr *syncBuffer
	session  string
	tokens   map[string]string // role → token
}

func (rig *abuseRig) ws() string {
	return strings.Replace(rig.relay, "http://", "ws://", 1) + "/ws/" + rig.session
}

func (rig *abuseRig) link(role string) string {
	return fmt.Sprintf("%s/s/%s?t=%s", rig.relay, rig.session, url.QueryEscape(rig.tokens[role]))
}

func startAbuseRig(t testing.TB) *abuseRig {
	t.Helper()
	dir := t.TempDir()
	rig := &abuseRig{keyFile: filepath.Join(dir, "key"), tokens: map[string]string{}}
	rig.data = filepath.Join(dir, "live")
	// Debug: the server logs when it hands each block to its relays.
	rig.srv = startLiveServer(t, "--image", "testcard", "--key-file", rig.keyFile, "--data", rig.data, "--log-level", "debug")
	var err error
	if rig.key, err = os.ReadFile(rig.keyFile); err != nil {
		t.Fatal(err)
	}
	rig.relay, rig.relayErr, rig.relayPid = startFanoutRelay(t, rig.srv.upstream, rig.keyFile)
	for role, link := range rig.srv.links {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		rig.session = strings.TrimPrefix(u.Path, "/s/")
		rig.tokens[role] = u.Query().Get("t")
	}
	return rig
}

// probeJoin is a fresh join with role's token through the relay.
func (rig *abuseRig) probeJoin(role string) attack.Outcome {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, o := attack.Hello(ctx, rig.ws(), rig.tokens[role], wire.ModeDisplay, rawCaps, "probe "+role)
	if c != nil {
		c.Close("bye")
	}
	return o
}

// keylessRelay is finding 3: a standalone relay started without a key
// (it has a relay token for its own upstream) is asked for the log by a
// Hello with no token at all.
func (rig *abuseRig) keylessRelay(t testing.TB, r *abuseResult) {
	t.Helper()
	addr := freeAddr(t)
	relayTok := token.Sign(rig.key, token.Claims{Session: rig.session, Role: token.RoleRelay, Expiry: time.Now().Add(time.Hour)})
	cmd := exec.Command(relayBin, "--upstream", rig.srv.upstream, "--listen", addr, "--token", relayTok, "--log-level", "warn")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			r.keylessRefused = fmt.Sprintf("exit %v: %s", err, strings.TrimSpace(stderr.String()))
			return
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keyless relay neither listened nor exited\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.keyless = attack.KeylessRelay(context.Background(), "http://"+addr, rig.session, 5*time.Second)
}

// forgedTokens are tokens nobody was given: each must be refused.
func (rig *abuseRig) forgedTokens() map[string]string {
	good := rig.tokens["display"]
	dot := strings.LastIndex(good, ".")
	sig := good[dot+1:]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// The signature's last character carries 2 unused bits: flipping one
	// of them decodes to the same bytes unless the decoder is strict.
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	flipMid := "A"
	if sig[len(sig)/2] == 'A' {
		flipMid = "B"
	}
	owner := token.Sign(token.NewKey(), token.Claims{Session: rig.session, Role: token.RoleOwner, Expiry: time.Now().Add(time.Hour)})
	return map[string]string{
		"empty":             "",
		"garbage":           "not-a-token",
		"tampered":          good[:dot+1] + sig[:len(sig)/2] + flipMid + sig[len(sig)/2+1:],
		"non-canonical sig": good[:dot+1] + sig[:len(sig)-1] + string(alphabet[last^1]),
		"other key (owner)": owner,
		"expired":           token.Sign(rig.key, token.Claims{Session: rig.session, Role: token.RoleOwner, Expiry: time.Now().Add(-time.Minute)}),
		"other session":     token.Sign(rig.key, token.Claims{Session: "elsewhere", Role: token.RoleOwner, Expiry: time.Now().Add(time.Hour)}),
		"relay token":       token.Sign(rig.key, token.Claims{Session: rig.session, Role: token.RoleRelay, Expiry: time.Now().Add(time.Hour)}),
	}
}

// runAbuse runs findings 1–5 and the forged tokens against a live server
// and a standalone relay while a controller types and a viewer replays.
func runAbuse(t testing.TB, cfg abuseConfig) abuseResult {
	t.Helper()
	var r abuseResult
	rig := startAbuseRig(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay stderr (tail):\n%s", tail(rig.relayErr.String(), 3000))
			var keep []string // without the per-block debug lines
			for _, l := range strings.Split(rig.srv.stderr.String(), "\n") {
				if !strings.Contains(l, `"block written"`) {
					keep = append(keep, l)
				}
			}
			t.Logf("server stderr (tail):\n%s", tail(strings.Join(keep, "\n"), 3000))
		}
	})

	// Findings 3 and 8a first, on a quiet session.
	rig.keylessRelay(t, &r)
	r.forged = attack.Forged(context.Background(), rig.ws(), rig.forgedTokens())

	viewer := startLiveClient(t, rig.link("viewer"), "--mode", "replay")
	waitFor(t, 90*time.Second, "the viewer replaying through the relay", func() bool { return viewer.last(t).Checkpoints > 0 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ty := newTypist("kq")
	ty.typing.Store(true)
	go ty.run(ctx, rig.ws(), rig.tokens["controller"], 100*time.Millisecond)
	waitFor(t, 60*time.Second, "the controller's first keystroke in the log", func() bool {
		ty.mu.Lock()
		defer ty.mu.Unlock()
		return len(ty.acked) > 0
	})
	if o := rig.probeJoin("owner"); o.Welcome != nil {
		r.userBefore = o.Welcome.User
	} else {
		t.Fatalf("the owner cannot join before the attack: %v", o)
	}

	b0 := time.Now()
	time.Sleep(cfg.baseline)
	b1 := time.Now()

	// The hostile load: one process holds the silent and flooding
	// connections for the measurement, another joins and GETs pages until
	// it has done them all.
	stopRSS := peakRSS(rig.srv.cmd.Process.Pid, rig.relayPid)
	tok := rig.tokens["display"]
	hostile := startAttack(t, "-ws", rig.ws(), "-token", tok, "-silent", fmt.Sprint(cfg.silent),
		"-flood", fmt.Sprint(cfg.flood), "-rate", fmt.Sprint(cfg.floodRate), "-events", fmt.Sprint(cfg.floodEvents),
		"-duration", "20m")
	// The page GETs carry a viewer link's token: the session endpoint
	// asks the relay for one, and a viewer link is one a stranger can have.
	volume := startAttack(t, "-ws", rig.ws(), "-base", rig.relay, "-token", tok, "-joins", fmt.Sprint(cfg.joins),
		"-pages", fmt.Sprint(cfg.pages), "-page-token", rig.tokens["viewer"], "-duration", "20m")
	select {
	case <-hostile.ready:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the hostile connections were not all open after 5 minutes\n%s", hostile.stderr.String())
	}
	m0 := time.Now()
	probes := 0
	for time.Since(m0) < cfg.measure {
		time.Sleep(2 * time.Second)
		o := rig.probeJoin("controller")
		probes++
		switch {
		case o.Welcome != nil:
			r.joinMs = append(r.joinMs, float64(o.Took.Microseconds())/1000)
		default:
			r.joinRefused = append(r.joinRefused, o.String())
		}
	}
	m1 := time.Now()
	// The last keystrokes' blocks: a keystroke not in the log 15 s after
	// it was typed counts as lost (latency +Inf).
	waitUntil(15*time.Second, func() bool { _, n := ty.latencies(b0, m1); return n == 0 })
	base, _ := ty.latencies(b0, b1)
	r.baseP50, r.baseP99 = pct(base, 0.5), pct(base, 0.99)
	lat, unacked := ty.latencies(m0, m1)
	r.keys, r.unacked = len(lat), unacked
	r.p50, r.p99, r.maxLat = pct(lat, 0.5), pct(lat, 0.99), pct(lat, 1)
	in, out := ty.split(m0, m1, writeTimes(t, rig.srv.stderr.String()))
	r.inP50, r.inP99, r.outP50, r.outP99 = pct(in, 0.5), pct(in, 0.99), pct(out, 0.5), pct(out, 0.99)
	// Lost on the way in, or on the way back? The server's own log says.
	logged := loggedMarkers(t, rig.data, ty.prefix)
	ty.mu.Lock()
	for _, m := range ty.order {
		if s := ty.sent[m]; !s.Before(m0) && s.Before(m1) && logged[m] {
			r.inLog++
		}
	}
	r.typistJoins = ty.joins
	if ty.lastErr != nil {
		r.typistErr = ty.lastErr.Error()
	}
	ty.mu.Unlock()
	sort.Float64s(r.joinMs)
	r.flooders = hostile.finish(t, true, time.Minute)
	r.attack = volume.finish(t, false, 20*time.Minute)
	peaks := stopRSS()
	r.serverRSS, r.relayRSS = peaks[0], peaks[1]
	r.cacheBytes, r.cacheEntries, _, _ = cacheFigures(rig.relay)
	_, _, okB, okE := cacheFigures(rig.relay)
	r.cacheOK = okB && okE
	cancel()
	ty.mu.Lock()
	r.refusedKeys = ty.refused
	ty.mu.Unlock()

	// Finding 1: how many user numbers the joins used up.
	if o := rig.probeJoin("owner"); o.Welcome != nil {
		r.userAfter = o.Welcome.User
		// Every Hello in between counts: the display-link joins, the
		// silent and flooding connections, the controller's probes and
		// reconnects, this owner's.
		ty.mu.Lock()
		joins := cfg.joins + cfg.silent + cfg.flood + probes + 1 + ty.joins - 1
		ty.mu.Unlock()
		r.numbersPerJoin = float64(int(r.userAfter)-int(r.userBefore)) / float64(joins)
	} else {
		r.joinRefused = append(r.joinRefused, "owner after the attack: "+o.String())
		r.numbersPerJoin = 1
	}

	r.viewerFailures, r.viewerDivergences, r.viewerLast = viewerFailures(t, viewer)
	viewer.stop(t)
	return r
}

// viewerFailures counts a --stats client's failures, and those that were
// divergences, over its whole run.
func viewerFailures(t testing.TB, c *liveClient) (int64, int, string) {
	t.Helper()
	raw, _ := os.ReadFile(c.stats)
	var n int64
	div := 0
	last := ""
	for _, line := range strings.Split(string(raw), "\n") {
		var s clientStats
		if jsonErr([]byte(line), &s) != nil {
			continue
		}
		if s.Failures > n {
			if strings.Contains(s.LastFailure, "diverg") {
				div += int(s.Failures - n)
			}
			n, last = s.Failures, s.LastFailure
		}
	}
	return n, div, last
}

// waitUntil polls cond every 100 ms until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) {
	for end := time.Now().Add(d); !cond() && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
}

// ms formats a latency, +Inf (never acknowledged) as such.
func ms(v float64) string {
	if v >= inf {
		return "lost"
	}
	return fmt.Sprintf("%.1f", v)
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// table prints the run's figures, one per line.
func (r *abuseResult) table(t testing.TB, cfg abuseConfig) string {
	var b strings.Builder
	row := func(what, got, goal string) { fmt.Fprintf(&b, "| %-52s | %-28s | %-10s |\n", what, got, goal) }
	row("figure", "measured", "goal")
	row("---", "---", "---")
	row("hostile: silent + flooding connections", fmt.Sprintf("%d + %d", cfg.silent, cfg.flood), "")
	if f := r.flooders.Flood; f != nil && cfg.measure > 0 {
		row("flood: Inputs a second a connection (achieved)", fmt.Sprintf("%.0f", float64(f.Sent)/max(1, float64(f.Connected))/r.flooders.WallS), fmt.Sprintf("%.0f", cfg.floodRate))
	}
	row("controller keystroke→log, alone: p50 / p99", ms(r.baseP50)+" / "+ms(r.baseP99)+" ms", "")
	row("controller keystroke→log, under load: p50 / p99", ms(r.p50)+" / "+ms(r.p99)+" ms", "p99 < 100")
	row("  max; keystrokes; not back in 15 s", fmt.Sprintf("%s ms; %d; %d", ms(r.maxLat), r.keys, r.unacked), "0")
	row("  of the keystrokes, in the server's log", fmt.Sprint(r.inLog), fmt.Sprint(r.keys))
	row("  typed → block written: p50 / p99", ms(r.inP50)+" / "+ms(r.inP99)+" ms", "")
	row("  block written → back at the controller: p50 / p99", ms(r.outP50)+" / "+ms(r.outP99)+" ms", "")
	row("  controller's joins (1 + reconnects)", fmt.Sprint(r.typistJoins), "1")
	if r.typistErr != "" {
		row("  its last connection ended", cut(r.typistErr, 60), "")
	}
	if len(r.joinMs) > 0 {
		row("fresh controller join under load: median / max", fmt.Sprintf("%.0f / %.0f ms", pct(r.joinMs, 0.5), r.joinMs[len(r.joinMs)-1]), "< 1000")
	}
	row("  joins refused or failed", fmt.Sprint(len(r.joinRefused)), "0")
	for _, j := range r.joinRefused[:min(3, len(r.joinRefused))] {
		row("    one", cut(j, 60), "")
	}
	row("server RSS peak", fmt.Sprintf("%.0f MB", r.serverRSS), "< 300")
	row("relay RSS peak", fmt.Sprintf("%.0f MB", r.relayRSS), "< 300")
	cache := "no metric"
	if r.cacheOK {
		cache = fmt.Sprintf("%.1f MiB, %.0f entries", r.cacheBytes/(1<<20), r.cacheEntries)
	}
	row(fmt.Sprintf("relay cache after %d distinct-key GETs", cfg.pages), cache, "≤ 256 MiB")
	if p := r.attack.Pages; p != nil {
		row("  page GETs: answers by status", fmt.Sprint(p.Status), "")
	}
	if j := r.attack.Joins; j != nil {
		row("display-link joins: accepted / refused / failed", fmt.Sprintf("%d / %d / %d", j.Accepted, sum(j.Refused), j.Failed), "")
		if j.LastErr != "" {
			row("  a failed one", cut(j.LastErr, 60), "")
		}
	}
	row("user numbers used up per Hello", fmt.Sprintf("%.2f (owner %d → %d)", r.numbersPerJoin, r.userBefore, r.userAfter), "< 0.5")
	kl := r.keylessRefused
	if kl == "" {
		kl = fmt.Sprintf("welcome %v, %d snapshots, %d blocks", r.keyless.Welcome, r.keyless.Snapshots, r.keyless.LogBlocks)
	} else {
		kl = "refused to start"
	}
	row("keyless relay, Hello{CapRelay, token \"\"}", kl, "no log")
	row("forged tokens admitted", fmt.Sprintf("%d of %d", len(r.forgedAdmitted()), len(r.forged)), "0")
	row("viewer failures (divergences)", fmt.Sprintf("%d (%d)", r.viewerFailures, r.viewerDivergences), "0")
	if r.viewerLast != "" {
		row("  its last failure", cut(r.viewerLast, 60), "")
	}
	return b.String()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (r *abuseResult) forgedAdmitted() []string {
	var out []string
	for name, o := range r.forged {
		if o.Welcome != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Latency bounds. The goals (keystroke→log p99 < 100 ms, a join <
// 1 s) are speeds: BenchmarkAbuse checks them on a quiet machine and
// docs/abuse-soak.md has its figures. The reduced test runs while `go test
// ./...` keeps both cores busy with other packages, so it asserts only that
// the hostile load does not starve the controller: bounds an order of
// magnitude under what was found before the fixes (keystrokes 2.9 s mean and
// 10 s max; a join ~45 s) and far above what a working server needs.
type latencyBounds struct{ keyP99, join float64 } // ms

var (
	goalLatency     = latencyBounds{keyP99: 100, join: 1000}
	noStarvationCap = latencyBounds{keyP99: 1000, join: 5000}
)

// check asserts the goals, latencies against lim; each missed goal
// is its own error.
func (r *abuseResult) check(t testing.TB, lim latencyBounds) {
	t.Helper()
	if r.keylessRefused == "" && (r.keyless.Welcome || r.keyless.LogBlocks > 0 || r.keyless.Snapshots > 0) {
		t.Errorf("finding 3: a relay without a key served a Hello with no token: welcome %v, %d snapshots, %d log blocks (%d bytes)",
			r.keyless.Welcome, r.keyless.Snapshots, r.keyless.LogBlocks, r.keyless.LogBytes)
	}
	if a := r.forgedAdmitted(); len(a) > 0 {
		t.Errorf("finding 8: forged tokens admitted: %s", strings.Join(a, ", "))
	}
	if r.p99 >= lim.keyP99 || r.unacked > 0 {
		t.Errorf("findings 4/5: the controller's keystroke-to-log p50 %s ms, p99 %s ms under load (bound %.0f), %d of %d keystrokes not in the log after 15 s (refusals %v)",
			ms(r.p50), ms(r.p99), lim.keyP99, r.unacked, r.keys, r.refusedKeys)
	}
	if len(r.joinMs) == 0 || r.joinMs[len(r.joinMs)-1] >= lim.join || len(r.joinRefused) > 0 {
		t.Errorf("finding 4: fresh controller joins under load took %v ms (bound %.0f); refused: %v", r.joinMs, lim.join, r.joinRefused)
	}
	if r.serverRSS >= 300 || r.relayRSS >= 300 {
		t.Errorf("RSS under load: server %.0f MB, relay %.0f MB (goal < 300 each)", r.serverRSS, r.relayRSS)
	}
	if !r.cacheOK {
		t.Errorf("finding 2: the relay exports no page-cache bytes and entries gauges (replaydesk_relay_cache_*bytes, *entries)")
	} else if r.cacheBytes > 256<<20 {
		t.Errorf("finding 2: the relay cache holds %.0f MiB, over its 256 MiB limit", r.cacheBytes/(1<<20))
	}
	if r.numbersPerJoin >= 0.5 {
		t.Errorf("finding 1: each display-link join used up %.2f user numbers (owner %d → %d): 65,535 joins lock everyone out",
			r.numbersPerJoin, r.userBefore, r.userAfter)
	}
	if r.viewerFailures > 0 {
		t.Errorf("the replaying viewer failed %d times (%d divergences): %s", r.viewerFailures, r.viewerDivergences, r.viewerLast)
	}
}

// soakResult is what the crash soak measured.
type soakResult struct {
	seed          uint64
	kills         int
	acked, lost   int
	lostSample    []string
	restartMs     []float64 // kill → links printed again
	offline       replayResult
	offlineCode   int
	offlineStderr string
	endOut        string
	endCode       int
	viewerFails   int64
	viewerDivs    int
	viewerLast    string
}

// runCrashSoak kills the server (-9) kills times at seeded random moments
// while a controller types and a viewer replays, restarting it on the same
// directory each time, then checks every keystroke acknowledged in a
// broadcast block is in the final log and the log replays offline.
func runCrashSoak(t testing.TB, kills int, seed uint64) soakResult {
	t.Helper()
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash soak: %d kills, seed %d (-abuse.seed %d repeats the moments)", kills, seed, seed)
	res := soakResult{seed: seed, kills: kills}
	rnd := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	data := filepath.Join(dir, "sess")
	keyFile := filepath.Join(dir, "key")
	addr := freeAddr(t)
	args := []string{"--data", data, "--key-file", keyFile, "--listen", addr}
	srv := startLiveServer(t, append([]string{"--image", "testcard"}, args...)...)
	ws, tok := linkParts(t, srv.links["controller"])

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ty := newTypist("ks")
	ty.typing.Store(true)
	go ty.run(ctx, ws, tok, 50*time.Millisecond)
	viewer := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 60*time.Second, "the controller's first keystroke in the log", func() bool {
		ty.mu.Lock()
		defer ty.mu.Unlock()
		return len(ty.acked) > 0
	})
	for i := range kills {
		// A moment between 0.5 s and 4 s after the server is up (typing
		// resumes once the controller is back).
		d := time.Duration(500+rnd.IntN(3500)) * time.Millisecond
		time.Sleep(d)
		t.Logf("kill %d after %v", i+1, d)
		srv.cmd.Process.Signal(syscall.SIGKILL)
		<-srv.done
		k := time.Now()
		srv = startLiveServer(t, args...)
		res.restartMs = append(res.restartMs, float64(time.Since(k).Milliseconds()))
	}
	// Type on after the last restart, then let the last blocks arrive.
	n := func() int { ty.mu.Lock(); defer ty.mu.Unlock(); return len(ty.acked) }
	n0 := n()
	waitFor(t, 60*time.Second, "keystrokes acknowledged after the last restart", func() bool { return n() > n0+20 })
	ty.typing.Store(false)
	time.Sleep(2 * time.Second)
	cancel()
	res.viewerFails, res.viewerDivs, res.viewerLast = viewerFailures(t, viewer)
	viewer.stop(t)
	srv.stop(t)
	out, err := exec.Command(serverBin, "end", data).CombinedOutput()
	res.endOut = string(out)
	if err != nil {
		res.endCode = -1
		if ee, ok := err.(*exec.ExitError); ok {
			res.endCode = ee.ExitCode()
		}
	}
	logged := loggedMarkers(t, data, ty.prefix)
	ty.mu.Lock()
	res.acked = len(ty.acked)
	for m := range ty.acked {
		if !logged[m] {
			res.lost++
			res.lostSample = append(res.lostSample, m)
		}
	}
	ty.mu.Unlock()
	sort.Strings(res.lostSample)
	res.lostSample = res.lostSample[:min(len(res.lostSample), 10)]
	res.offline, res.offlineStderr, res.offlineCode = replay(t, nil, data)
	return res
}

func (s *soakResult) table() string {
	var b strings.Builder
	row := func(what, got, goal string) { fmt.Fprintf(&b, "| %-52s | %-28s | %-10s |\n", what, got, goal) }
	row("crash soak: kill -9 restarts (seed)", fmt.Sprintf("%d (%d)", s.kills, s.seed), "")
	sorted := append([]float64(nil), s.restartMs...)
	sort.Float64s(sorted)
	if len(sorted) > 0 {
		row("  restart to links printed: median / max", fmt.Sprintf("%.0f / %.0f ms", pct(sorted, 0.5), sorted[len(sorted)-1]), "")
	}
	row("  keystrokes acknowledged in broadcast blocks", fmt.Sprint(s.acked), "")
	row("  of those, missing from the final log", fmt.Sprint(s.lost), "0")
	row("  offline replay: exit / divergences / checkpoints", fmt.Sprintf("%d / %d / %d", s.offlineCode, s.offline.Divergences, s.offline.Checkpoints), "0 / 0 / >0")
	row("  live viewer failures (divergences)", fmt.Sprintf("%d (%d)", s.viewerFails, s.viewerDivs), "0")
	if s.viewerLast != "" {
		row("    its last failure", cut(s.viewerLast, 60), "")
	}
	return b.String()
}

func (s *soakResult) check(t testing.TB) {
	t.Helper()
	if s.endCode != 0 {
		t.Errorf("server end after the soak: exit %d\n%s", s.endCode, s.endOut)
	}
	if s.acked == 0 {
		t.Errorf("no keystroke was acknowledged: nothing was measured")
	}
	if s.lost > 0 {
		t.Errorf("finding 6: %d of %d keystrokes seen in broadcast blocks are missing from the final log (seed %d), e.g. %v",
			s.lost, s.acked, s.seed, s.lostSample)
	}
	if s.offlineCode != 0 || s.offline.Divergences != 0 || s.offline.Checkpoints == 0 {
		t.Errorf("offline replay after the soak: exit %d, %+v\n%s", s.offlineCode, s.offline, tail(s.offlineStderr, 2000))
	}
	// A replay interrupted by a kill (a page fetch from a dead server) is a
	// failure the client recovers from; a divergence never is.
	if s.viewerDivs > 0 {
		t.Errorf("the live viewer diverged %d times over the kills (%d failures): %s", s.viewerDivs, s.viewerFails, s.viewerLast)
	}
}

// TestAbuse is the reduced abuse run that CI runs: 200 silent and 20
// flooding connections, 500 display-link joins and 5,000 distinct page
// URLs, against the goals of issue 9.
func TestAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("the abuse suite runs real processes for about a minute")
	}
	r := runAbuse(t, reducedAbuse)
	t.Logf("abuse (reduced):\n%s", r.table(t, reducedAbuse))
	r.check(t, noStarvationCap)
}

// TestAbuseCrashSoak is the reduced crash soak: 3 kill -9 restarts.
func TestAbuseCrashSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash soak runs real processes for about half a minute")
	}
	s := runCrashSoak(t, 3, *abuseSeed)
	t.Logf("crash soak (reduced):\n%s", s.table())
	s.check(t)
}

// BenchmarkAbuse is the full run with the figures (see the top of
// this file); it prints them as a table and reports them as metrics.
func BenchmarkAbuse(b *testing.B) {
	cfg := abuseConfig{silent: *abuseSilent, flood: *abuseFlood, floodRate: 385, floodEvents: 256, joins: *abuseJoins,
		pages: *abusePages, baseline: 5 * time.Second, measure: *abuseMeasure}
	var r abuseResult
	var s soakResult
	for b.Loop() {
		r = runAbuse(b, cfg)
		s = runCrashSoak(b, *abuseKills, *abuseSeed)
	}
	fmt.Printf("abuse (full):\n%s%s", r.table(b, cfg), s.table())
	b.ReportMetric(r.baseP99, "alone-p99-ms")
	// A keystroke that never came back is +Inf; as a metric, 1e9 ms.
	b.ReportMetric(min(r.p50, 1e9), "key-p50-ms")
	b.ReportMetric(min(r.p99, 1e9), "key-p99-ms")
	b.ReportMetric(r.inP50, "key-in-p50-ms")
	b.ReportMetric(r.outP50, "key-out-p50-ms")
	b.ReportMetric(float64(r.unacked), "keys-unacked")
	if len(r.joinMs) > 0 {
		b.ReportMetric(r.joinMs[len(r.joinMs)-1], "join-max-ms")
	}
	b.ReportMetric(float64(len(r.joinRefused)), "joins-refused")
	b.ReportMetric(r.serverRSS, "server-rss-MB")
	b.ReportMetric(r.relayRSS, "relay-rss-MB")
	if r.cacheOK {
		b.ReportMetric(r.cacheBytes/(1<<20), "cache-MiB")
		b.ReportMetric(r.cacheEntries, "cache-entries")
	}
	b.ReportMetric(r.numbersPerJoin, "users-per-join")
	b.ReportMetric(float64(len(r.forgedAdmitted())), "forged-admitted")
	b.ReportMetric(float64(r.viewerFailures), "viewer-failures")
	b.ReportMetric(float64(s.lost), "events-lost")
	b.ReportMetric(float64(s.offline.Divergences), "divergences")
	// The goals are reported, not asserted: a benchmark measures.
	r.check(&softTB{TB: b}, goalLatency)
	s.check(&softTB{TB: b})
}

// softTB turns a check's errors into log lines (a benchmark that missed a
// goal still prints its figures).
type softTB struct{ testing.TB }

func (s *softTB) Errorf(format string, args ...any) {
	fmt.Printf("GOAL MISSED: "+format+"\n", args...) // b.Log keeps only a benchmark's first lines
}

// TestAbuseFlippedLastBlock is finding 6 in a live session: a controller
// types one keystroke, sees it acknowledged in a broadcast block, and the
// server is frozen (SIGSTOP) at once; if that block is the last on disk,
// its length byte is changed to point past the end of the file, the server
// is killed (-9) and started again on the directory. A restart must either
// refuse with the contract's exit code 2 naming the damage, or keep the
// block: cutting a complete, already broadcast block as if it were a torn
// tail loses keystrokes people saw.
func TestAbuseFlippedLastBlock(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "sess")
	keyFile := filepath.Join(dir, "key")
	addr := freeAddr(t)
	args := []string{"--data", data, "--key-file", keyFile, "--listen", addr}
	srv := startLiveServer(t, append([]string{"--image", "testcard"}, args...)...)
	ws, tok := linkParts(t, srv.links["controller"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ty := newTypist("kf")
	ty.acks = make(chan string, 64)
	go ty.run(ctx, ws, tok, 50*time.Millisecond)

	var block recordlog.Pos
	var seen []string
	for try := 0; ; try++ {
		if try == 20 {
			t.Fatalf("in 20 tries the acknowledged keystroke's block was never the last on disk")
		}
		for len(ty.acks) > 0 {
			<-ty.acks
		}
		ty.typing.Store(true)
		var m string
		select {
		case m = <-ty.acks:
		case <-time.After(60 * time.Second):
			t.Fatalf("no keystroke acknowledged within 60 s (last error %v)", ty.lastErr)
		}
		srv.cmd.Process.Signal(syscall.SIGSTOP)
		ty.typing.Store(false)
		block, seen = lastBlock(t, data, ty.prefix)
		if slices.Contains(seen, m) {
			break
		}
		srv.cmd.Process.Signal(syscall.SIGCONT)
		time.Sleep(time.Duration(50*try) * time.Millisecond)
	}
	cancel()
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	seg := filepath.Join(data, "log", recordlog.SegmentName(block.Segment))
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], block.Offset+1); err != nil {
		t.Fatal(err)
	}
	b[0]++ // the length grows by 256: past the end of the file
	if _, err := f.WriteAt(b[:], block.Offset+1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Logf("flipped the length of the last block (segment %d, offset %d), holding acknowledged keystrokes %v", block.Segment, block.Offset, seen)

	// The restart: refused (exit 2), or running with the block kept.
	cmd := exec.Command(serverBin, append([]string{"--log-level", "warn"}, args...)...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "upstream: ") {
				up <- true
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 2 || !strings.Contains(stderr.String(), ".seg") {
			t.Fatalf("the restart on a damaged last block exited %d (want 2, naming the segment file):\n%s", code, stderr.String())
		}
		t.Logf("the restart refused, as it should: %s", strings.TrimSpace(stderr.String()))
		return
	case <-up:
	case <-time.After(90 * time.Second):
		t.Fatalf("the restarted server neither served nor exited\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the restarted server did not stop on SIGINT\n%s", stderr.String())
	}
	logged := loggedMarkers(t, data, ty.prefix)
	var lost []string
	for _, m := range seen {
		if !logged[m] {
			lost = append(lost, m)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("finding 6: the restart cut a complete, broadcast block (segment %d, offset %d) as a torn tail: keystrokes %v lost; the server said:\n%s",
			block.Segment, block.Offset, lost, stderr.String())
	}
}
