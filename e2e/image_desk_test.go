package e2e

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestDeskRecordReplay records 30 s of two people using the desk (terminal
// commands writing the disk, the editor saving, windows dragged, raised and
// closed) in both disk modes, replays each in another process, and checks
// that the replay is bit-identical and that its frames show a real screen.
func TestDeskRecordReplay(t *testing.T) {
	for _, mode := range []string{"snapshotted", "replayed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "session")
			rec := record(t, "--image", "desk", "--duration", "30s", "--disk-mode", mode,
				"--input", "testdata/desk.jsonl", "--out", dir)
			if rec.Steps == 0 || rec.InputEvents < 300 {
				t.Fatalf("recorded %d steps, %d input events", rec.Steps, rec.InputEvents)
			}
			frames := filepath.Join(t.TempDir(), "frames")
			res, stderr, code := replay(t, nil, dir, "--frames", frames, "--every", "40")
			if code != 0 {
				t.Fatalf("replay exit %d: %s", code, stderr)
			}
			if res.Divergences != 0 || res.FinalStateHash != rec.FinalStateHash || res.FinalFBHash != rec.FinalFBHash {
				t.Fatalf("replay %+v differs from the recording %+v", res, rec)
			}
			pngs, _ := filepath.Glob(filepath.Join(frames, "*.png"))
			if len(pngs) < 3 {
				t.Fatalf("%d frames written", len(pngs))
			}
			sort.Strings(pngs)
			f, err := os.Open(pngs[len(pngs)-1])
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b != image.Rect(0, 0, 1280, 720) {
				t.Fatalf("frame is %v", b)
			}
			colours := map[[3]uint32]bool{}
			for y := 0; y < 720; y += 7 {
				for x := 0; x < 1280; x += 7 {
					r, g, b, _ := img.At(x, y).RGBA()
					colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
				}
			}
			if len(colours) < 50 {
				t.Fatalf("the last frame has only %d colours: not a desktop", len(colours))
			}
		})
	}
}
