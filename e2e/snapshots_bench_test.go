package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"replaydesk/server/images"
)

// BenchmarkSnapshots measures, per image: the stall of background snapshots
// taken while the guest runs (the time it is stopped) and their latency
// (request to ready); then restore-to-first-frame from a mid-session
// snapshot, eager and lazy, with the lazy restore's paging.
//
//	go test ./e2e -run '^$' -bench Snapshots -benchtime 1x
func BenchmarkSnapshots(b *testing.B) {
	for _, name := range images.Names() {
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "s")
			args := []string{"--image", name, "--duration", "40s", "--snapshot-every", "2s", "--out", dir}
			if script := filepath.Join("testdata", name+".jsonl"); fileExists(script) {
				args = append(args, "--input", script)
			}
			var rec recordResult
			for b.Loop() {
				rec = record(b, args...)
			}
			if !rec.SnapshotBackground || len(rec.SnapshotStallMs) == 0 {
				b.Fatalf("no background snapshots: %+v", rec)
			}
			b.ReportMetric(quantile(rec.SnapshotStallMs, 0.5), "stall-ms-p50")
			b.ReportMetric(quantile(rec.SnapshotStallMs, 0.99), "stall-ms-p99")
			b.ReportMetric(quantile(rec.SnapshotLatencyMs, 0.5), "latency-ms-p50")
			mid := fmt.Sprint(len(rec.SnapshotStallMs) / 2)
			for _, lazy := range []bool{false, true} {
				a := []string{"--from-snapshot", mid, dir}
				if lazy {
					a = append([]string{"--lazy"}, a...)
				}
				out, stderr, code := run(b, nil, clientBin, append([]string{"replay"}, a...)...)
				var r struct {
					replayResult
					FirstFrameMs float64 `json:"first_frame_ms"`
					Lazy         *struct {
						Pages             int     `json:"pages"`
						Faults            int     `json:"faults"`
						ServedByFault     int     `json:"served_by_fault"`
						ServedByReadahead int     `json:"served_by_readahead"`
						ServiceP50Us      float64 `json:"service_p50_us"`
						ServiceP99Us      float64 `json:"service_p99_us"`
					} `json:"lazy"`
				}
				if code != 0 || json.Unmarshal(out, &r) != nil || r.FinalStateHash != rec.FinalStateHash {
					b.Fatalf("replay %v: exit %d %s\n%s", a, code, out, stderr)
				}
				kind := "eager"
				if lazy {
					kind = "lazy"
					b.ReportMetric(float64(r.Lazy.Faults), "lazy-faults")
					b.ReportMetric(float64(r.Lazy.ServedByFault+r.Lazy.ServedByReadahead), "lazy-pages-served")
					b.ReportMetric(float64(r.Lazy.Pages), "snapshot-pages")
					b.ReportMetric(r.Lazy.ServiceP50Us, "fault-us-p50")
					b.ReportMetric(r.Lazy.ServiceP99Us, "fault-us-p99")
				}
				b.ReportMetric(r.RestoreMs+r.FirstFrameMs, kind+"-first-frame-ms")
			}
		})
	}
}

func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}
