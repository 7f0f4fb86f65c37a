package e2e

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The game image, recorded for 20 s with a person playing (in both disk
// modes) and with nobody at the keyboard (the attract-mode AI plays), must
// replay bit-identical in another process, and its late frames must be real
// pictures of the right size.
func TestGameRecordReplay(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"snapshotted", []string{"--disk-mode", "snapshotted", "--input", "testdata/game.jsonl"}},
		{"replayed", []string{"--disk-mode", "replayed", "--input", "testdata/game.jsonl"}},
		{"attract", []string{"--disk-mode", "snapshotted"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "session")
			args := append([]string{"--image", "game", "--duration", "20s", "--out", dir}, c.args...)
			rec := record(t, args...)
			if rec.Ticks != 1200 || rec.Steps != 1200 || rec.FinalStateHash == "" {
				t.Fatalf("unexpected recording: %+v", rec)
			}
			if len(c.args) > 2 && rec.InputEvents < 30 {
				t.Fatalf("only %d input events recorded from the script", rec.InputEvents)
			}
			frames := filepath.Join(t.TempDir(), "frames")
			r, stderr, code := replay(t, nil, "--frames", frames, "--every", "300", dir)
			if code != 0 || r.Divergences != 0 {
				t.Fatalf("replay: exit %d, %d divergences: %s\n%s", code, r.Divergences, r.Divergence, stderr)
			}
			if r.FinalStateHash != rec.FinalStateHash || r.FinalFBHash != rec.FinalFBHash || r.Steps != rec.Steps {
				t.Fatalf("replay ended with state %s fb %s after %d steps; the recording %s %s after %d",
					r.FinalStateHash, r.FinalFBHash, r.Steps, rec.FinalStateHash, rec.FinalFBHash, rec.Steps)
			}
			files, _ := filepath.Glob(filepath.Join(frames, "*.png"))
			if len(files) < 3 {
				t.Fatalf("%d frames written, want at least 3", len(files))
			}
			checkPicture(t, files[len(files)-1])
		})
	}
}

// checkPicture requires a 640x360 PNG with many colours, not a flat fill.
func checkPicture(t *testing.T, path string) {
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
	if b := img.Bounds(); b != image.Rect(0, 0, 640, 360) {
		t.Fatalf("%s is %v, want 640x360", path, b)
	}
	colours := map[[3]uint32]bool{}
	for y := 0; y < 360; y += 3 {
		for x := 0; x < 640; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r, g, b}] = true
		}
	}
	if len(colours) < 20 {
		t.Fatalf("%s has only %d colours: not a game picture", path, len(colours))
	}
}
