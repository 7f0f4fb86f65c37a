package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var liveBenchDuration = flag.Duration("live-duration", 10*time.Second, "measurement window of each BenchmarkLiveTraffic session (after warm-up)")

var liveReplayWait = flag.Duration("live-replay-wait", 30*time.Second, "how long BenchmarkLiveTraffic waits for its replay client to reach replay mode before measuring it in dual")

var liveBenchImages = flag.String("live-images", "game,video,desk,testcard", "images BenchmarkLiveTraffic measures (comma-separated)")

// BenchmarkLiveTraffic measures, per image, what a live session costs on the
// wire and on the server: the bytes a display client receives (JPEG q79 and
// lossless tiles) next to what a replay client receives (log, and log plus
// the snapshot pages it fetched at the start), and the server process's CPU
// with only replay clients next to with a display client. Real processes:
// one `server` and headless `client`s. desk and game play their input
// script (testdata/NAME.jsonl), the testcard a generated typing-and-moving
// script, so the screen changes; video plays on its own.
//
// Each image runs three sessions one after another, each measured over the
// same window after warm-up (the replay client in replay mode):
//
//	lossy:     --display lossy, a display client and a replay client
//	lossless:  --display lossless, the same two clients
//	replay:    --display lossy, only the replay client
//
//	go test ./e2e -run '^$' -bench LiveTraffic -benchtime 1x -live-duration 30s
func BenchmarkLiveTraffic(b *testing.B) {
	for _, name := range strings.Split(*liveBenchImages, ",") {
		b.Run(name, func(b *testing.B) {
			var lossy, lossless, only liveRun
			for b.Loop() {
				lossy = runLive(b, name, "lossy", true)
				lossless = runLive(b, name, "lossless", true)
				only = runLive(b, name, "lossy", false)
			}
			b.ReportMetric(lossy.displayBps, "display-q79-B/s")
			b.ReportMetric(lossless.displayBps, "display-lossless-B/s")
			b.ReportMetric(lossy.logBps, "replay-log-B/s")
			b.ReportMetric(lossy.replayTotalBps, "replay-all-B/s")
			b.ReportMetric(lossy.pages, "replay-pages-B")
			if lossy.logBps > 0 {
				b.ReportMetric(lossy.displayBps/lossy.logBps, "q79/log-x")
				b.ReportMetric(lossless.displayBps/lossy.logBps, "lossless/log-x")
			}
			b.ReportMetric(100*lossy.cpu, "cpu-display-%")
			b.ReportMetric(100*lossless.cpu, "cpu-lossless-%")
			b.ReportMetric(100*only.cpu, "cpu-replay-only-%")
			if lossy.cpu > 0 {
				b.ReportMetric(100*(1-only.cpu/lossy.cpu), "cpu-saving-%")
			}
			reached := 0.0
			if lossy.replay && only.replay {
				reached = 1
			}
			b.ReportMetric(reached, "replay-reached")
			b.ReportMetric(only.toReplayMs, "to-replay-ms")
			b.ReportMetric(only.awaitMs, "await-snapshot-ms")
			b.ReportMetric(only.dualMs, "dual-ms")
			if lossy.stallMs >= 0 {
				b.ReportMetric(lossy.stallMs, "snapshot-stall-ms")
			}
		})
	}
}

// liveRun is what one session of BenchmarkLiveTraffic measured.
type liveRun struct {
	displayBps      float64 // display client: DisplayFrame bytes a second in the window
	logBps          float64 // replay client: log bytes a second in the window
	replayTotalBps  float64 // replay client: all bytes (log, pages, other) since it started, a second
	pages           float64 // replay client: page service bytes (snapshot, module, disk)
	cpu             float64 // server process: CPU seconds a second in the window
	toReplayMs      float64 // replay client: from its Welcome (pinned replay) to replay mode
	awaitMs, dualMs float64
	stallMs         float64 // the server's last snapshot stall (-1 unknown)
	replay          bool    // the replay client reached replay mode
}

func runLive(b *testing.B, image, display string, withDisplay bool) liveRun {
	b.Helper()
	srv := startLiveServer(b, "--image", image, "--display", display, "--data", filepath.Join(b.TempDir(), "session"))
	defer srv.stop(b)
	script := filepath.Join("testdata", image+".jsonl")
	switch {
	case image == "testcard":
		script = writeTypingScript(b, *liveBenchDuration+60*time.Second)
	case !fileExists(script):
		script = ""
	}
	replayArgs := []string{"--mode", "replay"}
	if script != "" {
		replayArgs = append(replayArgs, "--input", script)
	}
	started := time.Now()
	rc := startLiveClient(b, srv.links["controller"], replayArgs...)
	defer rc.stop(b)
	var dc *liveClient
	if withDisplay {
		dc = startLiveClient(b, srv.links["viewer"], "--mode", "display")
		defer dc.stop(b)
	}
	// A replay that cannot keep up stays in dual; it still receives the
	// log a replay client would, so the traffic is measured all the same
	// (and the run says it never reached replay).
	deadline := time.Now().Add(*liveReplayWait)
	reached := false
	waitFor(b, *liveReplayWait+30*time.Second, image+" clients under way", func() bool {
		s := readStats(b, rc.stats)
		if len(s) == 0 {
			return false
		}
		reached = s[len(s)-1].Mode == "replay"
		if !reached && (time.Now().Before(deadline) || s[len(s)-1].Mode != "dual") {
			return false
		}
		if dc == nil {
			return true
		}
		d := readStats(b, dc.stats)
		return len(d) > 0 && d[len(d)-1].Bytes.Display > 0
	})
	if !reached {
		raw, _ := os.ReadFile(rc.stats)
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		b.Logf("%s (%s, display client %v): the replay client did not reach replay mode in %v, measuring it in dual; its last stats line:\n%s",
			image, display, withDisplay, *liveReplayWait, lines[len(lines)-1])
	}
	time.Sleep(2 * time.Second) // past the switch's fetches and the display client's key frame
	r0, cpu0, t0 := lastStats(b, rc.stats), procCPU(b, srv.cmd.Process.Pid), time.Now()
	var d0 benchStats
	if dc != nil {
		d0 = lastStats(b, dc.stats)
	}
	time.Sleep(*liveBenchDuration)
	cpu1, t1 := procCPU(b, srv.cmd.Process.Pid), time.Now()
	time.Sleep(1100 * time.Millisecond) // a stats line after the window
	var r liveRun
	rs := readStats(b, rc.stats)
	r1 := statsAt(rs, t1)
	r.cpu = (cpu1 - cpu0) / t1.Sub(t0).Seconds()
	r.logBps = rate(r0, r1, func(s benchStats) uint64 { return s.Bytes.Log })
	r.replayTotalBps = float64(r1.Bytes.Log+r1.Bytes.Pages+r1.Bytes.Other) / r1.Time.Sub(started).Seconds()
	r.pages = float64(r1.Bytes.Pages)
	if dc != nil {
		d1 := statsAt(readStats(b, dc.stats), t1)
		r.displayBps = rate(d0, d1, func(s benchStats) uint64 { return s.Bytes.Display })
	}
	for _, s := range rs {
		for _, sw := range s.Switches {
			switch {
			case sw.From == "await-snapshot" && sw.To == "dual":
				r.awaitMs = sw.InFromMs
			case sw.From == "dual" && sw.To == "replay":
				r.dualMs = sw.InFromMs
			}
		}
	}
	r.toReplayMs = r.awaitMs + r.dualMs
	r.replay = reached
	r.stallMs = snapshotStallMs(srv.base)
	if n := rs[len(rs)-1].Failures; n > 0 {
		b.Fatalf("%s: the replay client failed %d times: %s", image, n, rs[len(rs)-1].LastFailure)
	}
	return r
}

// benchStats is what the benchmarks read of a --stats line.
type benchStats struct {
	Time  time.Time `json:"time"`
	Mode  string    `json:"mode"`
	Bytes struct {
		Log, Display, Pages, Other uint64
	} `json:"bytes"`
	Switches []struct {
		From, To string
		InFromMs float64
	} `json:"switches"`
	Failures    int64  `json:"failures"`
	LastFailure string `json:"last_failure"`
}

func readStats(b testing.TB, path string) []benchStats {
	b.Helper()
	raw, _ := os.ReadFile(path)
	var out []benchStats
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" {
			continue
		}
		var s benchStats
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			continue // a line being written
		}
		out = append(out, s)
	}
	return out
}

func lastStats(b testing.TB, path string) benchStats {
	b.Helper()
	s := readStats(b, path)
	if len(s) == 0 {
		b.Fatalf("no stats in %s", path)
	}
	return s[len(s)-1]
}

// statsAt is the first line written at or after t (the last one if none).
func statsAt(s []benchStats, t time.Time) benchStats {
	for _, x := range s {
		if !x.Time.Before(t) {
			return x
		}
	}
	return s[len(s)-1]
}

func rate(a, b benchStats, f func(benchStats) uint64) float64 {
	dt := b.Time.Sub(a.Time).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(f(b)-f(a)) / dt
}

// procCPU is the user plus system CPU seconds process pid has used
// (/proc/PID/stat, in clock ticks of 1/100 s on Linux).
func procCPU(b testing.TB, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name may hold spaces: the fields start after its ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// snapshotStallMs reads the server's replaydesk_snapshot_stall_seconds
// (-1 if it has none).
func snapshotStallMs(base string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "replaydesk_snapshot_stall_seconds "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f * 1000
			}
		}
	}
	return -1
}

// writeTypingScript writes an input script of d that types a letter and
// moves the pointer every 100 ms: someone typing steadily, for images
// that react to keys (the testcard's keyboard panel, desk's editor).
func writeTypingScript(b testing.TB, d time.Duration) string {
	b.Helper()
	var sb strings.Builder
	letters := "abcdefghijklmnopqrstuvwxyz"
	for i := 0; time.Duration(i)*100*time.Millisecond < d; i++ {
		t := 0.5 + float64(i)/10
		l := letters[i%len(letters)]
		code := "Key" + strings.ToUpper(string(l))
		fmt.Fprintf(&sb, `{"t":%.2f,"type":"key","code":%q,"down":true}`+"\n", t, code)
		fmt.Fprintf(&sb, `{"t":%.2f,"type":"text","text":%q}`+"\n", t, string(l))
		fmt.Fprintf(&sb, `{"t":%.2f,"type":"key","code":%q,"down":false}`+"\n", t+0.05, code)
		fmt.Fprintf(&sb, `{"t":%.2f,"type":"move","x":%d,"y":%d}`+"\n", t+0.05, 100+(i*37)%500, 100+(i*23)%300)
	}
	p := filepath.Join(b.TempDir(), "typing.jsonl")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}
