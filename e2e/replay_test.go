package e2e

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A session with scripted and random input, snapshots every 10 s, replayed
// in other processes from the start (GOMAXPROCS 1 and 2) and from a
// mid-session snapshot, must end bit-identical: every checkpoint's
// framebuffer hash and the final memory hash.
func TestRecordReplayAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "session")
	rec := record(t, "--image", "testcard", "--duration", "30s", "--input", "testdata/typing.jsonl",
		"--random-input", "6", "--seed", "7", "--snapshot-every", "10s", "--out", dir)
	if rec.Ticks != 1800 || rec.Snapshots != 2 || rec.InputEvents < 150 || rec.FinalStateHash == "" {
		t.Fatalf("unexpected recording: %+v", rec)
	}
	// Snapshots are taken in the background (userfaultfd write-protection);
	// this machine, like CI's, runs as root with userfaultfd available.
	if !rec.SnapshotBackground || len(rec.SnapshotStallMs) != 2 {
		t.Fatalf("snapshots were not taken in the background: %+v", rec)
	}
	// On virtual time a snapshot's tick depends only on the schedule (the
	// request tick plus the settle interval), never on how fast the copy
	// went: two recordings of a script snapshot the same ticks.
	if !slices.Equal(rec.SnapshotTicks, []uint64{600 + 6, 1200 + 6}) {
		t.Fatalf("snapshots taken at ticks %v, want [606 1206]", rec.SnapshotTicks)
	}
	check := func(name string, r replayResult, stderr string, code int) {
		t.Helper()
		if code != 0 || r.Divergences != 0 {
			t.Fatalf("%s: exit %d, %d divergences: %s\n%s", name, code, r.Divergences, r.Divergence, stderr)
		}
		if r.FinalFBHash != rec.FinalFBHash || r.FinalStateHash != rec.FinalStateHash || r.Ticks != rec.Ticks {
			t.Fatalf("%s: ended at tick %d with fb %s state %s; the recording at %d with %s %s",
				name, r.Ticks, r.FinalFBHash, r.FinalStateHash, rec.Ticks, rec.FinalFBHash, rec.FinalStateHash)
		}
	}
	for _, procs := range []string{"1", "2"} {
		r, stderr, code := replay(t, []string{"GOMAXPROCS=" + procs}, dir)
		check("GOMAXPROCS="+procs, r, stderr, code)
		if r.Steps != rec.Steps || r.Checkpoints < 30 {
			t.Fatalf("GOMAXPROCS=%s: %d steps, %d checkpoints; the recording has %d steps", procs, r.Steps, r.Checkpoints, rec.Steps)
		}
	}
	r, stderr, code := replay(t, nil, "--from-snapshot", "2", dir)
	check("from snapshot 2", r, stderr, code)
	if r.Steps != rec.Steps {
		t.Fatalf("from snapshot 2: step count %d, want %d", r.Steps, rec.Steps)
	}

	// Each snapshot carries its working set (pages written in the second
	// after it), and a lazy restore prefetches it.
	var meta struct {
		Snapshots []struct {
			WorkingSet []uint32 `json:"working_set"`
		} `json:"snapshots"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "session.json"))
	if err := json.Unmarshal(b, &meta); err != nil || len(meta.Snapshots) != 2 || len(meta.Snapshots[1].WorkingSet) == 0 {
		t.Fatalf("no working sets in session.json: %v %s", err, b)
	}
	out, stderr, code := run(t, nil, clientBin, "replay", "--from-snapshot", "2", "--lazy", dir)
	var lazy struct {
		replayResult
		PrefetchPages int `json:"prefetch_pages"`
	}
	if json.Unmarshal(out, &lazy) != nil || code != 0 || lazy.PrefetchPages != len(meta.Snapshots[1].WorkingSet) {
		t.Fatalf("lazy replay: exit %d %s\n%s", code, out, stderr)
	}
	check("lazy from snapshot 2", lazy.replayResult, stderr, code)

	frames := filepath.Join(t.TempDir(), "frames")
	r, stderr, code = replay(t, nil, "--from-snapshot", "1", "--frames", frames, "--every", "60", dir)
	check("frames", r, stderr, code)
	files, _ := filepath.Glob(filepath.Join(frames, "*.png"))
	if len(files) == 0 || len(files) != r.Frames {
		t.Fatalf("%d PNG files, the replay reported %d frames", len(files), r.Frames)
	}
	f, err := os.Open(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 360 {
		t.Fatalf("frame is %v, want 640x360", b)
	}
}

func TestReplayedDiskMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "session")
	rec := record(t, "--image", "testcard", "--duration", "10s", "--input", "testdata/typing.jsonl",
		"--disk-mode", "replayed", "--snapshot-every", "5s", "--out", dir)
	for _, args := range [][]string{{dir}, {"--from-snapshot", "1", dir}} {
		r, stderr, code := replay(t, nil, args...)
		if code != 0 || r.FinalStateHash != rec.FinalStateHash {
			t.Fatalf("replay %v: exit %d state %s, want %s\n%s", args, code, r.FinalStateHash, rec.FinalStateHash, stderr)
		}
	}
	// Replayed mode must not need the disk image: the reads are in the log.
	if err := os.Remove(filepath.Join(dir, "disk.img")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "session.json"))
	if !strings.Contains(string(b), `"disk_mode": "replayed"`) {
		t.Fatalf("session.json does not record the disk mode: %s", b)
	}
}

func TestRecordRefusesBadInput(t *testing.T) {
	tmp := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown image", []string{"--image", "nosuch", "--out", filepath.Join(tmp, "a")}, "testcard"},
		{"missing input file", []string{"--input", filepath.Join(tmp, "none.jsonl"), "--out", filepath.Join(tmp, "b")}, "none.jsonl"},
		{"malformed input", []string{"--input", writeFile(t, tmp, "bad.jsonl",
			`{"t":0.1,"type":"key","code":"KeyA","down":true}`+"\n"+
				`{"t":0.2,"type":"move","x":1,"y":2}`+"\n"+
				`{"t":0.3,"type":"key","code":"KeyAA","down":true}`+"\n"), "--out", filepath.Join(tmp, "c")}, "line 3"},
		{"bad disk mode", []string{"--disk-mode", "floppy", "--out", filepath.Join(tmp, "d")}, "floppy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, nil, serverBin, append([]string{"record", "--duration", "1s"}, c.args...)...)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want a failure mentioning %q", code, stderr, c.want)
			}
		})
	}
	// An existing session is never overwritten.
	dir := filepath.Join(tmp, "twice")
	record(t, "--duration", "1s", "--out", dir)
	_, stderr, code := run(t, nil, serverBin, "record", "--duration", "1s", "--out", dir)
	if code == 0 || !strings.Contains(stderr, "already holds a session") {
		t.Fatalf("second recording into %s: exit %d, %q", dir, code, stderr)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
