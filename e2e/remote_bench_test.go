package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkRemote measures, per image, replays over HTTP from `server
// serve` (loopback) from a mid-session snapshot:
//
//   - restore to first frame, eager (every page fetched before the
//     restore) and lazy (the page-server child fetches on fault), each with
//     an empty page cache;
//   - the lazy restore's paging: pages fetched on demand (before the first
//     full-memory check made it fetch the rest in bulk) against the pages
//     in the snapshot, and fault service p50/p99, network included;
//   - a repeat session: a second recording of the same image and script,
//     replayed after the first through the same cache; "repeat-saved-%" is
//     how many fewer pages it fetched than the first.
//
// Run it with
//
//	go test ./e2e -run '^$' -bench Remote -benchtime 1x
func BenchmarkRemote(b *testing.B) {
	for _, c := range []struct {
		image, duration, every, script string
	}{
		{"video", "12s", "6s", ""},
		{"testcard", "8s", "4s", "testdata/typing.jsonl"},
		{"game", "12s", "6s", "testdata/game.jsonl"},
	} {
		b.Run(c.image, func(b *testing.B) {
			tmp := b.TempDir()
			dirs := []string{filepath.Join(tmp, "first"), filepath.Join(tmp, "repeat")}
			var recs []recordResult
			for b.Loop() {
				recs = recs[:0]
				for _, d := range dirs {
					args := []string{"--image", c.image, "--duration", c.duration, "--snapshot-every", c.every, "--out", d}
					if c.script != "" {
						args = append(args, "--input", c.script)
					}
					recs = append(recs, record(b, args...))
				}
			}
			urls := serveSessions(b, filepath.Join(tmp, "store"), dirs...)
			type result struct {
				replayResult
				FirstFrameMs float64      `json:"first_frame_ms"`
				Fetch        *fetchResult `json:"fetch"`
				Lazy         *struct {
					Faults       int     `json:"faults"`
					ServiceP50Us float64 `json:"service_p50_us"`
					ServiceP99Us float64 `json:"service_p99_us"`
				} `json:"lazy"`
			}
			replayRemote := func(id, cache string, lazy bool, want recordResult) result {
				a := []string{"replay", "--cache-dir", filepath.Join(tmp, cache), "--from-snapshot", "1"}
				if lazy {
					a = append(a, "--lazy")
				}
				out, stderr, code := run(b, nil, clientBin, append(a, urls[id])...)
				var r result
				if code != 0 || json.Unmarshal(out, &r) != nil || r.Fetch == nil || r.FinalStateHash != want.FinalStateHash ||
					(lazy && r.Lazy == nil) {
					b.Fatalf("replay %v: exit %d %s\n%s", a, code, out, stderr)
				}
				return r
			}
			eager := replayRemote("first", "cache-eager", false, recs[0])
			lazy := replayRemote("first", "cache-lazy", true, recs[0])
			repeat := replayRemote("repeat", "cache-lazy", true, recs[1])
			b.ReportMetric(eager.RestoreMs+eager.FirstFrameMs, "eager-first-frame-ms")
			b.ReportMetric(lazy.RestoreMs+lazy.FirstFrameMs, "lazy-first-frame-ms")
			b.ReportMetric(float64(lazy.Fetch.PagesInSnapshot), "snapshot-pages")
			b.ReportMetric(float64(lazy.Fetch.PagesOnDemand), "lazy-pages-on-demand")
			b.ReportMetric(float64(lazy.Fetch.PagesFetched), "lazy-pages-fetched")
			b.ReportMetric(float64(lazy.Fetch.Requests), "lazy-requests")
			b.ReportMetric(float64(lazy.Lazy.Faults), "lazy-faults")
			b.ReportMetric(lazy.Lazy.ServiceP50Us, "fault-us-p50")
			b.ReportMetric(lazy.Lazy.ServiceP99Us, "fault-us-p99")
			b.ReportMetric(float64(repeat.Fetch.PagesFetched), "repeat-pages-fetched")
			b.ReportMetric(100*(1-float64(repeat.Fetch.PagesFetched)/float64(lazy.Fetch.PagesFetched)), "repeat-saved-%")
			b.Logf("%s: first %s, repeat %s", c.image, fmt.Sprintf("%+v", *lazy.Fetch), fmt.Sprintf("%+v", *repeat.Fetch))
		})
	}
}
