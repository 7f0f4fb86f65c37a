package e2e

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestDownloadAndKbuildImages records 10 s of the download and kbuild images
// in both disk modes, with a key press at 5 s that starts each workload
// again, replays each recording and requires a bit-identical run whose last
// frame is a real picture.
func TestDownloadAndKbuildImages(t *testing.T) {
	for _, image := range []string{"download", "kbuild"} {
		for _, mode := range []string{"snapshotted", "replayed"} {
			t.Run(image+"/"+mode, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				out := filepath.Join(dir, "rec")
				rec := record(t, "--image", image, "--duration", "10s", "--disk-mode", mode,
					"--input", "testdata/restart-at-5s.jsonl", "--out", out)
				if rec.Steps < 20 || rec.InputEvents < 2 {
					t.Fatalf("record: %+v", rec)
				}
				if image == "download" && rec.LogBytes < 2*12<<20 {
					t.Fatalf("download logged %d bytes; two 12 MiB downloads should be in the log", rec.LogBytes)
				}
				frames := filepath.Join(dir, "frames")
				rep, stderr, code := replay(t, nil, out, "--frames", frames, "--every", fmt.Sprint(rec.Steps))
				if code != 0 {
					t.Fatalf("replay exit %d: %s", code, stderr)
				}
				if rep.Divergences != 0 || rep.FinalStateHash != rec.FinalStateHash || rep.FinalFBHash != rec.FinalFBHash {
					t.Fatalf("replay %+v differs from record %+v", rep, rec)
				}
				ents, err := os.ReadDir(frames)
				if err != nil || len(ents) == 0 {
					t.Fatalf("no frames: %v", err)
				}
				checkNotFlat(t, filepath.Join(frames, ents[len(ents)-1].Name()))
			})
		}
	}
}

// checkNotFlat fails unless the PNG has many colours.
func checkNotFlat(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r, g, bl}] = true
		}
	}
	if len(colours) < 8 {
		t.Fatalf("%s has %d colours: a flat picture", path, len(colours))
	}
}
