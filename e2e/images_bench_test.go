package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"replaydesk/server/images"
)

var imageBenchDuration = flag.String("image-duration", "60s", "virtual time each BenchmarkImages recording covers")

// BenchmarkImages is the paper's Table 1 for our images: log growth per
// image and disk mode, and step cost, from `server record` runs. An image's
// input script e2e/testdata/<name>.jsonl is used when it exists; without
// one the image runs on its own (idle, attract mode, playback).
//
//	go test ./e2e -run '^$' -bench Images -benchtime 1x -count 3 -image-duration 300s
func BenchmarkImages(b *testing.B) {
	for _, name := range images.Names() {
		for _, mode := range []string{"snapshotted", "replayed"} {
			b.Run(fmt.Sprintf("%s/%s", name, mode), func(b *testing.B) {
				args := []string{"--image", name, "--duration", *imageBenchDuration, "--disk-mode", mode}
				if script := filepath.Join("testdata", name+".jsonl"); fileExists(script) {
					args = append(args, "--input", script)
				}
				var r recordResult
				for i := 0; b.Loop(); i++ {
					r = record(b, append(args, "--out", filepath.Join(b.TempDir(), fmt.Sprint(i)))...)
				}
				b.ReportMetric(r.LogBytesPerS, "log-B/s")
				b.ReportMetric(r.StepMsMedian, "step-ms-p50")
				b.ReportMetric(r.StepMsP99, "step-ms-p99")
				b.ReportMetric(float64(r.Steps)/(float64(r.Ticks)/60), "steps/s")
			})
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
