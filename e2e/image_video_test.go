package e2e

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestImageVideoAndStream records the video image in both disk modes and
// the stream image, 10 s of virtual time each, and replays each recording
// bit for bit; the last frame written shows a picture, not a flat colour.
func TestImageVideoAndStream(t *testing.T) {
	for _, c := range []struct{ name, image, diskMode string }{
		{"video-snapshotted", "video", "snapshotted"},
		{"video-replayed", "video", "replayed"},
		{"stream", "stream", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "rec")
			args := []string{"--image", c.image, "--duration", "10s", "--out", dir}
			if c.diskMode != "" {
				args = append(args, "--disk-mode", c.diskMode)
			}
			rec := record(t, args...)
			if rec.Steps == 0 || rec.Ticks != 600 {
				t.Fatalf("recorded %d steps in %d ticks", rec.Steps, rec.Ticks)
			}
			frames := filepath.Join(t.TempDir(), "frames")
			r, stderr, code := replay(t, nil, "--frames", frames, "--every", "120", dir)
			if code != 0 || r.Divergences != 0 {
				t.Fatalf("replay: exit %d, %d divergences (%s)\n%s", code, r.Divergences, r.Divergence, stderr)
			}
			if r.FinalStateHash != rec.FinalStateHash || r.FinalFBHash != rec.FinalFBHash {
				t.Fatalf("replay ended in state %s fb %s, the recording in %s %s",
					r.FinalStateHash, r.FinalFBHash, rec.FinalStateHash, rec.FinalFBHash)
			}
			files, _ := filepath.Glob(filepath.Join(frames, "*.png"))
			if len(files) == 0 {
				t.Fatal("no frames written")
			}
			sort.Strings(files)
			img := readPNG(t, files[len(files)-1])
			if flatImage(img, image.Rect(0, 0, img.Bounds().Dx(), 360)) {
				t.Fatalf("%s: the video area is a flat colour", files[len(files)-1])
			}
			t.Logf("%s: %d steps, %.0f log B/s, step median %.2f ms p99 %.2f ms",
				c.name, rec.Steps, rec.LogBytesPerS, rec.StepMsMedian, rec.StepMsP99)
		})
	}
}

func readPNG(t *testing.T, path string) image.Image {
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
	return img
}

// flatImage reports whether r of img is one colour (sampled on a grid).
func flatImage(img image.Image, r image.Rectangle) bool {
	r = r.Intersect(img.Bounds())
	c := img.At(r.Min.X, r.Min.Y)
	for y := r.Min.Y; y < r.Max.Y; y += 5 {
		for x := r.Min.X; x < r.Max.X; x += 5 {
			if img.At(x, y) != c {
				return false
			}
		}
	}
	return true
}
