package live

import (
	"bufio"
	"context"
	"flag"
	"hash/fnv"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/abi"
	"replaydesk/shared/wire"
)

// These benchmarks drive this package as a library against a real `server`
// process (built once into a temporary directory), to time what a process
// cannot show from outside: when the screen changed.
//
//	go test ./client/internal/live -run '^$' -bench 'LiveSwitch|LiveKeystroke' -benchtime 1x

var (
	benchSwitches   = flag.Int("switches", 5, "display → replay → display cycles BenchmarkLiveSwitch times")
	benchKeystrokes = flag.Int("keystrokes", 30, "keys BenchmarkLiveKeystroke times per image")
	benchSwitchImg  = flag.String("switch-images", "game", "images BenchmarkLiveSwitch runs (comma-separated)")
	// A replay that copies every frame out of guest memory did not keep up
	// with the game on this project's loaded 2-core machine: headless by
	// default, screen changes being the replay's new frames.
	benchSwitchHeadless = flag.Bool("switch-headless", true, "BenchmarkLiveSwitch's client copies no frames (headless)")
)

var (
	serverOnce sync.Once
	serverBin  string
	serverErr  error
)

// benchServer starts `server --image image` on a loopback port and returns
// its role links.
func benchServer(b *testing.B, image string) map[string]Link {
	b.Helper()
	serverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "live-bench")
		if err != nil {
			serverErr = err
			return
		}
		serverBin = filepath.Join(dir, "server")
		cmd := exec.Command("go", "build", "-trimpath", "-o", serverBin, "replaydesk/server")
		if out, err := cmd.CombinedOutput(); err != nil {
			serverErr = &exec.Error{Name: "go build: " + string(out), Err: err}
		}
	})
	if serverErr != nil {
		b.Fatal(serverErr)
	}
	cmd := exec.Command(serverBin, "--listen", "127.0.0.1:0", "--log-level", "warn", "--image", image,
		"--data", filepath.Join(b.TempDir(), "session"))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	links := map[string]Link{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		role, link, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if role == "upstream" {
			break
		}
		l, err := ParseLink(link)
		if err == nil {
			links[role] = l
		}
	}
	go io.Copy(io.Discard, stdout)
	if links["controller"].Token == "" {
		b.Fatal("the server printed no controller link")
	}
	return links
}

// benchClient runs a client (not headless: the screen is what is timed).
func benchClient(b *testing.B, l Link, want wire.Mode, headless bool) *Client {
	b.Helper()
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewConsoleWriter(func(w *zerolog.ConsoleWriter) { w.Out = os.Stderr })).With().Timestamp().Logger().Level(zerolog.InfoLevel)
	}
	c, err := New(Options{Link: l, Want: want, CacheDir: b.TempDir(), EngineCacheDir: engineCache, Headless: headless, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// screenEvent is one change of the screen as a watcher saw it.
type screenEvent struct {
	at     time.Time
	replay bool
	tick   uint64
}

// watchScreen records every change of c's screen until ctx ends. It reads
// what is shown without copying the picture, so that watching costs the
// client nothing.
func watchScreen(ctx context.Context, c *Client, out chan<- screenEvent) {
	for {
		ch := c.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		e := screenEvent{at: time.Now()}
		if r := c.currentReplay(); c.showReplay.Load() && r != nil && r.ready.Load() {
			// A headless replay copies no picture: its tick stands for it.
			e.replay, e.tick = true, r.ticks.Load()
		}
		if !e.replay {
			c.mu.Lock()
			e.tick = c.dfb.tick
			c.mu.Unlock()
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return
		}
	}
}

// BenchmarkLiveSwitch times a native client's switches on a busy image:
// display → replay (SetMode(ModeReplay) until the screen is the replay's:
// snapshot announce, fetch, restore and catch-up) and the stall, the longest
// the screen went without a change from the request until a second after
// the switch, next to the longest gap in as long a stretch of display mode
// before it; and replay → display (SetMode(ModeDisplay) until the first
// display frame newer than the replay's screen is shown).
func BenchmarkLiveSwitch(b *testing.B) {
	for _, image := range strings.Split(*benchSwitchImg, ",") {
		b.Run(image, func(b *testing.B) {
			for b.Loop() {
				benchSwitch(b, image)
			}
		})
	}
}

func benchSwitch(b *testing.B, image string) {
	links := benchServer(b, image)
	c := benchClient(b, links["viewer"], wire.ModeDisplay, *benchSwitchHeadless)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan screenEvent, 4096)
	go watchScreen(ctx, c, events)
	// next waits for a screen change satisfying ok; it returns the events
	// seen meanwhile, the matching one last.
	next := func(what string, ok func(screenEvent) bool) []screenEvent {
		var seen []screenEvent
		deadline := time.After(60 * time.Second)
		for {
			select {
			case e := <-events:
				seen = append(seen, e)
				if ok(e) {
					return seen
				}
			case <-deadline:
				st := c.LastStats()
				if st == nil {
					st = &Stats{}
				}
				b.Fatalf("%s: timed out waiting for %s: mode %s, state %s, lag %.0f ms (%d ticks), replay tick %d, server tick %d, %d bytes buffered",
					image, what, st.Mode, st.State, st.LagMs, st.LagTicks, st.ReplayTick, st.ServerTick, st.BufferBytes)
			}
		}
	}
	drain := func() {
		for {
			select {
			case <-events:
			default:
				return
			}
		}
	}
	collect := func(d time.Duration) []screenEvent {
		var seen []screenEvent
		end := time.After(d)
		for {
			select {
			case e := <-events:
				seen = append(seen, e)
			case <-end:
				return seen
			}
		}
	}
	next("display frames", func(e screenEvent) bool { return !e.replay })
	time.Sleep(3 * time.Second) // the session warms up
	var toReplay, stall, baseline, toDisplay, await, dual []float64
	for range *benchSwitches {
		drain()
		pre := collect(3 * time.Second)
		baseline = append(baseline, maxGap(time.Time{}, pre, time.Time{}))
		t0 := time.Now()
		c.SetMode(wire.ModeReplay)
		sw := watchSwitches(c)
		seen := next("the replay's screen", func(e screenEvent) bool { return e.replay && e.at.After(t0) })
		tReplay := seen[len(seen)-1].at
		seen = append(seen, collect(time.Second)...)
		toReplay = append(toReplay, ms(tReplay.Sub(t0)))
		stall = append(stall, maxGap(t0, seen, tReplay.Add(time.Second)))
		a, d := sw()
		await, dual = append(await, a), append(dual, d)
		time.Sleep(2 * time.Second)
		// The replay's tick (a headless replay has no picture whose tick
		// Screen could give): the display frame to wait for is as new.
		var replayTick uint64
		if r := c.currentReplay(); r != nil {
			replayTick = r.ticks.Load()
		}
		drain()
		t1 := time.Now()
		c.SetMode(wire.ModeDisplay)
		seen = next("a fresh display frame", func(e screenEvent) bool { return !e.replay && e.tick >= replayTick && e.at.After(t1) })
		toDisplay = append(toDisplay, ms(seen[len(seen)-1].at.Sub(t1)))
		time.Sleep(2 * time.Second)
	}
	b.ReportMetric(median(toReplay), "to-replay-ms")
	b.ReportMetric(median(await), "await-snapshot-ms")
	b.ReportMetric(median(dual), "dual-ms")
	b.ReportMetric(median(stall), "stall-ms")
	b.ReportMetric(median(baseline), "display-gap-ms")
	b.ReportMetric(median(toDisplay), "to-display-ms")
	b.ReportMetric(slices.Max(toDisplay), "to-display-max-ms")
	b.Logf("%s: to replay %v ms, stall %v ms (display gaps %v ms), to display %v ms, await %v, dual %v",
		image, toReplay, stall, baseline, toDisplay, await, dual)
}

// watchSwitches collects the client's switch records from its stats lines
// from now on; the returned func waits for the switch to replay and gives
// how long the client was in await-snapshot and in dual.
func watchSwitches(c *Client) func() (await, dual float64) {
	var mu sync.Mutex
	var got []Switch
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		last := c.LastStats()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if st := c.LastStats(); st != nil && st != last {
				last = st
				mu.Lock()
				got = append(got, st.Switches...)
				mu.Unlock()
			}
		}
	}()
	return func() (await, dual float64) {
		defer func() { close(stop); <-done }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, s := range got {
				switch {
				case s.From == "await-snapshot" && s.To == "dual":
					await = s.InFromMs
				case s.From == "dual" && s.To == "replay":
					dual = s.InFromMs
				}
			}
			mu.Unlock()
			if dual > 0 {
				return await, dual
			}
			time.Sleep(50 * time.Millisecond)
		}
		return await, dual
	}
}

// maxGap is the longest time between screen changes in es, counting from
// from and to until when they are set.
func maxGap(from time.Time, es []screenEvent, until time.Time) float64 {
	var gap time.Duration
	prev := from
	for _, e := range es {
		if !prev.IsZero() {
			gap = max(gap, e.at.Sub(prev))
		}
		prev = e.at
	}
	if !until.IsZero() && !prev.IsZero() {
		gap = max(gap, until.Sub(prev))
	}
	return ms(gap)
}

// BenchmarkLiveKeystroke times keystroke to screen in replay mode on
// loopback: from Send of a key to the replayed screen showing its effect
// (the testcard's keyboard panel; any change of desk's screen, the key being
// sent just after a change so that a blinking caret is not taken for it).
func BenchmarkLiveKeystroke(b *testing.B) {
	for _, image := range []string{"testcard", "desk"} {
		b.Run(image, func(b *testing.B) {
			for b.Loop() {
				benchKeystroke(b, image)
			}
		})
	}
}

func benchKeystroke(b *testing.B, image string) {
	links := benchServer(b, image)
	c := benchClient(b, links["controller"], wire.ModeReplay, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, unsub := c.Subscribe()
	defer unsub()
	var epoch uint64
	region := image == "testcard"
	var sc Screen
	hash := func() uint64 {
		h := fnv.New64a()
		if region {
			r := testcardKeys
			for y := r.Min.Y; y < min(r.Max.Y, sc.H); y++ {
				h.Write(sc.Pix[(y*sc.W+r.Min.X)*4 : (y*sc.W+min(r.Max.X, sc.W))*4])
			}
		} else {
			h.Write(sc.Pix)
		}
		return h.Sum64()
	}
	deadline := time.Now().Add(90 * time.Second)
	for !(c.Screen(&sc) && sc.Replay) {
		if time.Now().After(deadline) {
			b.Fatalf("%s: no replay after 90 s: %+v", image, c.LastStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // past the switch
	var lat []float64
	misses := 0
	letters := "abcdefghijklmnopqrstuvwxyz"
	for i := 0; i < *benchKeystrokes; i++ {
		for drained := false; !drained; {
			select {
			case m := <-msgs:
				if p, ok := m.(*wire.Presence); ok {
					epoch = p.Epoch
				}
			default:
				drained = true
			}
		}
		if !region {
			// Right after a change (a caret blink), the screen stays still
			// for a while.
			select {
			case <-c.Changed():
			case <-time.After(time.Second):
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Screen(&sc)
		before := hash()
		l := letters[i%len(letters)]
		code, _ := abi.KeyCodeByName("Key" + strings.ToUpper(string(l)))
		evs := []abi.Event{{Type: abi.EvKey, Down: true, Code: code}, {Type: abi.EvText, Text: string(l)}}
		ch := c.Changed()
		t0 := time.Now()
		if err := c.Send(ctx, &wire.Input{Seq: uint64(2*i + 1), Epoch: epoch, Events: evs}); err != nil {
			b.Fatal(err)
		}
		got := false
		timeout := time.After(2 * time.Second)
		for !got {
			select {
			case <-ch:
				at := time.Now()
				ch = c.Changed()
				if c.Screen(&sc) && sc.Replay && hash() != before {
					lat = append(lat, ms(at.Sub(t0)))
					got = true
				}
			case <-timeout:
				misses++
				got = true
			}
		}
		// The key's release: wait until it shows too (the testcard's
		// panel says "up"), so that it is not taken for the next key's.
		c.Screen(&sc)
		before = hash()
		ch = c.Changed()
		up := &wire.Input{Seq: uint64(2*i + 2), Epoch: epoch, Events: []abi.Event{{Type: abi.EvKey, Code: code}}}
		if err := c.Send(ctx, up); err != nil {
			b.Fatal(err)
		}
		timeout = time.After(2 * time.Second)
		for shown := !region; !shown; { // desk shows nothing on a release
			select {
			case <-ch:
				ch = c.Changed()
				shown = c.Screen(&sc) && hash() != before
			case <-timeout:
				shown = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(lat) == 0 {
		b.Fatalf("%s: no key showed on the replayed screen (%d misses)", image, misses)
	}
	slices.Sort(lat)
	b.ReportMetric(median(lat), "key-to-screen-p50-ms")
	b.ReportMetric(lat[len(lat)*9/10], "key-to-screen-p90-ms")
	b.ReportMetric(lat[0], "key-to-screen-min-ms")
	b.ReportMetric(float64(misses), "misses")
	b.Logf("%s: %d keys, latencies %v ms, %d not seen within 2 s", image, len(lat), lat, misses)
}

// testcardKeys is the testcard's keyboard panel (server/images/testcard/card).
var testcardKeys = image.Rect(0, 280, 640, 360)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
