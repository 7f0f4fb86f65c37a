package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
)

// runCmd runs bin with args. When ready is not empty and shows up in its
// stdout or stderr, the command is serving: it is interrupted as a user
// would (SIGINT) and served is true. It returns the exit code and stderr.
func runCmd(t *testing.T, ready string, bin string, args ...string) (code int, served bool, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-poll.C:
			if ready != "" && !served && (strings.Contains(out.String(), ready) || strings.Contains(errb.String(), ready)) {
				served = true
				cmd.Process.Signal(syscall.SIGINT)
			}
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s %v did not exit within 3 minutes\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), args, out.String(), errb.String())
		}
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", bin, err)
	}
	return code, served, errb.String()
}

// treeBytes maps every file under dir to its bytes: "nothing changed on
// disk" is an equal map.
func treeBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type logBlock struct {
	pos   recordlog.Pos
	len   int
	flags byte
	recs  []recordlog.Record
}

// logBlocks lists the blocks of a session directory's log and the records of
// each.
func logBlocks(t *testing.T, dir string) []logBlock {
	t.Helper()
	var blocks []logBlock
	r, err := recordlog.Open(filepath.Join(dir, "log"), recordlog.ModuleHash{}, recordlog.ReaderOptions{
		OnBlock: func(pos recordlog.Pos, b []byte) {
			blocks = append(blocks, logBlock{pos: pos, len: len(b), flags: b[4]})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		rec, err := r.Next(context.Background())
		if err != nil {
			if !errors.Is(err, recordlog.ErrUnsealed) && err != io.EOF {
				t.Fatalf("reading the pristine log: %v", err)
			}
			return blocks
		}
		blocks[len(blocks)-1].recs = append(blocks[len(blocks)-1].recs, rec)
	}
}

func segPath(dir string, seg uint32) string {
	return filepath.Join(dir, "log", recordlog.SegmentName(seg))
}

func patchFile(t *testing.T, path string, patch func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flipLastBlockLength is finding 6's attack: the length of the last block
// on disk changed to point past the end of the file. It returns the
// segment file's name and the block's offset.
func flipLastBlockLength(t *testing.T, dir string) (string, int64) {
	t.Helper()
	blocks := logBlocks(t, dir)
	last := blocks[len(blocks)-1]
	if len(last.recs) == 0 {
		t.Fatalf("setup: the last block of %s holds no records", dir)
	}
	patchFile(t, segPath(dir, last.pos.Segment), func(b []byte) {
		if int64(len(b)) != last.pos.Offset+int64(last.len) {
			t.Fatalf("setup: the last block does not end its segment")
		}
		b[last.pos.Offset+2] ^= 0x01 // +64 KiB: past the end, under the 8 MiB limit
	})
	return recordlog.SegmentName(last.pos.Segment), last.pos.Offset
}

// breakCheckpoint makes a valid log that the guest will not follow: one
// checkpoint's framebuffer hash, in a block stored uncompressed at or after
// from, gets a bit flipped and the block's checksum is fixed up.
func breakCheckpoint(t *testing.T, dir string, from recordlog.Pos) {
	t.Helper()
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, bl := range logBlocks(t, dir) {
		if bl.pos.Segment < from.Segment || (bl.pos.Segment == from.Segment && bl.pos.Offset < from.Offset) || bl.flags&1 != 0 {
			continue
		}
		for _, rec := range bl.recs {
			if rec.Kind != recordlog.KindCheckpoint {
				continue
			}
			pat := binary.LittleEndian.AppendUint64([]byte{0x03}, rec.FBHash)
			done := false
			patchFile(t, segPath(dir, bl.pos.Segment), func(b []byte) {
				block := b[bl.pos.Offset : bl.pos.Offset+int64(bl.len)]
				i := bytes.Index(block[9:], pat)
				if i < 0 {
					return
				}
				block[9+i+1] ^= 0x01
				binary.LittleEndian.PutUint32(block[5:], crc32.Update(crc32.Update(0, castagnoli, block[4:5]), castagnoli, block[9:]))
				done = true
			})
			if done {
				return
			}
		}
	}
	t.Fatalf("setup: no uncompressed block with a checkpoint after %+v in %s", from, dir)
}

// damageSnapshot flips a byte in the middle of snapshot n's file.
func damageSnapshot(t *testing.T, dir string, n int) {
	t.Helper()
	patchFile(t, filepath.Join(dir, "snapshots", snapName(n)), func(b []byte) { b[len(b)/2] ^= 0x10 })
}

func snapName(n int) string { return fmt.Sprintf("%06d.snap", n) }

func readMeta(t *testing.T, dir string) sessiondir.Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m sessiondir.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// damageEarlyBlock flips a payload byte of the log's first block: damage
// a restart, which replays from the newest snapshot, would not read.
func damageEarlyBlock(t *testing.T, dir string) {
	t.Helper()
	first := logBlocks(t, dir)[0]
	patchFile(t, segPath(dir, first.pos.Segment), func(b []byte) { b[first.pos.Offset+int64(first.len)-1] ^= 0x04 })
}

// Every command exits the way shared/cli's contract says — 0 done, 1 bad
// usage or any other error, 2 a corrupt, truncated or foreign log or
// snapshot, 3 a divergence — and says on stderr what the problem is
// (issue 9, finding 7). The restart cases include finding 6's attack: the
// length of a live-recorded segment's last block flipped to point past the
// end must be refused, not cut off as a torn tail. `client LINK` has no
// exit 2 or 3: a damaged block or a divergence sends it back to display
// mode (docs/live-sessions.md); the relay reads no log or snapshot files.
func TestExitCodes(t *testing.T) {
	tmp := t.TempDir()
	copyOf := func(src string) string {
		dst := filepath.Join(t.TempDir(), filepath.Base(src))
		copyDir(t, src, dst)
		return dst
	}

	// A recording (server record), sealed, with snapshots.
	rec := filepath.Join(tmp, "rec")
	record(t, "--duration", "3s", "--input", "testdata/typing.jsonl", "--snapshot-every", "1s", "--out", rec)

	// A live session, stopped (unsealed), with a snapshot a replaying
	// viewer asked for and typing after it.
	keyFile := filepath.Join(tmp, "key")
	live := filepath.Join(tmp, "live")
	srv := startLiveServer(t, "--image", "testcard", "--data", live, "--key-file", keyFile)
	viewer := startLiveClient(t, srv.links["viewer"], "--mode", "replay")
	waitFor(t, 90*time.Second, "a replaying viewer", func() bool { return viewer.last(t).Checkpoints >= 1 })
	script := writeScript(t, `{"t":0.2,"type":"text","text":"typed after the snapshot"}
{"t":0.3,"type":"key","code":"KeyA","down":true}
{"t":0.4,"type":"key","code":"KeyA","down":false}
`)
	ctl := startLiveClient(t, srv.links["controller"], "--mode", "display", "--input", script)
	waitFor(t, 60*time.Second, "the script played and replayed", func() bool {
		return strings.Contains(ctl.stderr.String(), "input script played") && viewer.last(t).Checkpoints >= 4
	})
	ctl.stop(t)
	viewer.stop(t)
	srv.stop(t)
	meta := readMeta(t, live)
	if len(meta.Snapshots) == 0 {
		t.Fatalf("setup: the live session took no snapshot")
	}
	newest := meta.Snapshots[len(meta.Snapshots)-1]

	type tc struct {
		name string
		// setup returns the command's arguments, and what stderr must name
		// besides want.
		setup func(t *testing.T) (args, want []string)
		ready string // for serving commands: printed once serving
		code  int
		want  []string // in stderr
		check func(t *testing.T, args []string)
	}
	runAll := func(t *testing.T, bin string, cases []tc) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				args, want := c.setup(t)
				code, served, stderr := runCmd(t, c.ready, bin, args...)
				name := filepath.Base(bin)
				if served && c.code != 0 {
					t.Fatalf("%s %v started serving; want exit %d\n%s", name, args, c.code, stderr)
				}
				if code != c.code || (c.ready != "" && c.code == 0 && !served) {
					t.Fatalf("%s %v: exit %d (served: %v), want %d\n%s", name, args, code, served, c.code, stderr)
				}
				for _, w := range append(c.want, want...) {
					if !strings.Contains(stderr, w) {
						t.Fatalf("%s %v: exit %d, but stderr does not name %q:\n%s", name, args, code, w, stderr)
					}
				}
				if c.check != nil {
					c.check(t, args)
				}
			})
		}
	}
	withReady := func(ready string, cases []tc) []tc {
		for i := range cases {
			cases[i].ready = ready
		}
		return cases
	}
	fixed := func(a ...string) func(*testing.T) ([]string, []string) {
		return func(*testing.T) ([]string, []string) { return a, nil }
	}
	// unchanged checks that the command left its directory (the last
	// argument) exactly as it was.
	unchanged := func(setup func(t *testing.T) string, extra ...string) (func(*testing.T) ([]string, []string), func(*testing.T, []string)) {
		var before map[string]string
		return func(t *testing.T) ([]string, []string) {
				dir := setup(t)
				before = treeBytes(t, dir)
				return append(extra, dir), nil
			}, func(t *testing.T, args []string) {
				after := treeBytes(t, args[len(args)-1])
				if len(after) != len(before) {
					t.Fatalf("files changed: %d before, %d after", len(before), len(after))
				}
				for p, b := range before {
					if after[p] != b {
						t.Fatalf("%s changed", p)
					}
				}
			}
	}

	t.Run("server", func(t *testing.T) {
		restart := func(dir string) []string {
			return []string{"--data", dir, "--listen", "127.0.0.1:0", "--key-file", keyFile, "--log-level", "warn"}
		}
		// Every restart case watches for the server serving, so one that
		// should have refused fails at once instead of running on.
		runAll(t, serverBin, withReady("upstream:", []tc{
			{name: "ok: restart", code: 0,
				setup: func(t *testing.T) ([]string, []string) { return restart(copyOf(live)), nil }},
			{name: "ok: restart after a torn tail, cut and logged", code: 0, want: []string{"torn tail"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(live)
					blocks := logBlocks(t, dir)
					last := blocks[len(blocks)-1]
					if err := os.Truncate(segPath(dir, last.pos.Segment), last.pos.Offset+int64(last.len)-3); err != nil {
						t.Fatal(err)
					}
					return restart(dir), []string{fmt.Sprintf(`"offset":%d`, last.pos.Offset), fmt.Sprintf(`"bytes":%d`, last.len-3)}
				}},
			{name: "bad usage: unknown flag", setup: fixed("--no-such-flag"), code: 1, want: []string{"no-such-flag"}},
			{name: "bad usage: bad value", setup: fixed("--control", "bogus"), code: 1, want: []string{"--control"}},
			{name: "bad usage: unknown command", setup: fixed("rekord"), code: 1, want: []string{"unknown command"}},
			{name: "corrupt log: last block's length flipped", code: 2,
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(live)
					seg, off := flipLastBlockLength(t, dir)
					return restart(dir), []string{seg, fmt.Sprintf("byte %d", off), "length is damaged"}
				}},
			{name: "corrupt log: before the newest snapshot", code: 2, want: []string{recordlog.SegmentName(0), "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(live)
					damageEarlyBlock(t, dir)
					return restart(dir), nil
				}},
			{name: "corrupt snapshot", code: 2, want: []string{snapName(newest.N), "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(live)
					damageSnapshot(t, dir, newest.N)
					return restart(dir), nil
				}},
			{name: "divergence", code: 3, want: []string{"divergence"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(live)
					breakCheckpoint(t, dir, newest.LogPos)
					return restart(dir), nil
				}},
		}))
	})

	t.Run("server end", func(t *testing.T) {
		corruptLog, corruptLogCheck := unchanged(func(t *testing.T) string {
			dir := copyOf(live)
			flipLastBlockLength(t, dir)
			return dir
		}, "end")
		corruptSnap, corruptSnapCheck := unchanged(func(t *testing.T) string {
			dir := copyOf(live)
			damageSnapshot(t, dir, newest.N)
			return dir
		}, "end")
		runAll(t, serverBin, []tc{
			{name: "ok", code: 0,
				setup: func(t *testing.T) ([]string, []string) { return []string{"end", copyOf(live)}, []string{"sealed"} },
				check: func(t *testing.T, args []string) {
					if _, stderr, code := replay(t, nil, args[1]); code != 0 {
						t.Fatalf("the sealed session does not replay: exit %d\n%s", code, stderr)
					}
				}},
			{name: "bad usage: no directory", setup: fixed("end"), code: 1, want: []string{"usage"}},
			{name: "bad usage: not a session directory", setup: fixed("end", t.TempDir()), code: 1, want: []string{"not a session directory"}},
			{name: "already sealed", setup: fixed("end", rec), code: 1, want: []string{"already ended"}},
			{name: "corrupt log", code: 2, want: []string{"not sealing", "length is damaged"},
				setup: corruptLog, check: corruptLogCheck},
			{name: "corrupt snapshot", code: 2, want: []string{"not sealing", snapName(newest.N), "checksum"},
				setup: corruptSnap, check: corruptSnapCheck},
		})
	})

	t.Run("server record", func(t *testing.T) {
		runAll(t, serverBin, []tc{
			{name: "ok", code: 0, setup: func(t *testing.T) ([]string, []string) {
				return []string{"record", "--duration", "1s", "--out", filepath.Join(t.TempDir(), "r")}, []string{"recorded"}
			}},
			{name: "bad usage: no --out", setup: fixed("record", "--duration", "1s"), code: 1, want: []string{"usage"}},
			{name: "bad usage: unknown flag", setup: fixed("record", "--no-such-flag"), code: 1, want: []string{"no-such-flag"}},
			{name: "bad usage: unknown image", setup: fixed("record", "--image", "nope", "--out", filepath.Join(tmp, "nope")), code: 1, want: []string{"nope"}},
			{name: "existing session", setup: fixed("record", "--duration", "1s", "--out", rec), code: 1, want: []string{"already holds a session"}},
		})
	})

	t.Run("server serve", func(t *testing.T) {
		serve := func(dir string) []string {
			return []string{"serve", "--listen", "127.0.0.1:0", "--store", filepath.Join(tmp, "store"), dir}
		}
		runAll(t, serverBin, withReady("/sessions/", []tc{
			{name: "ok", code: 0,
				setup: func(t *testing.T) ([]string, []string) { return serve(copyOf(rec)), nil }},
			{name: "bad usage: no directory", setup: fixed("serve"), code: 1, want: []string{"usage"}},
			{name: "bad usage: unknown flag", setup: fixed("serve", "--no-such-flag", rec), code: 1, want: []string{"no-such-flag"}},
			{name: "corrupt log", code: 2, want: []string{"not serving", "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(rec)
					damageEarlyBlock(t, dir)
					return serve(dir), nil
				}},
			{name: "corrupt snapshot", code: 2, want: []string{snapName(1), "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(rec)
					damageSnapshot(t, dir, 1)
					return serve(dir), nil
				}},
		}))
	})

	t.Run("client replay", func(t *testing.T) {
		sealedLive := copyOf(live)
		if code, _, stderr := runCmd(t, "", serverBin, "end", sealedLive); code != 0 {
			t.Fatalf("server end: exit %d\n%s", code, stderr)
		}
		runAll(t, clientBin, []tc{
			{name: "ok", setup: fixed("replay", rec), code: 0},
			{name: "ok: from a snapshot", setup: fixed("replay", "--from-snapshot", "1", rec), code: 0},
			{name: "bad usage: no directory", setup: fixed("replay"), code: 1, want: []string{"usage"}},
			{name: "bad usage: unknown flag", setup: fixed("replay", "--no-such-flag", rec), code: 1, want: []string{"no-such-flag"}},
			{name: "bad usage: no such snapshot", setup: fixed("replay", "--from-snapshot", "99", rec), code: 1, want: []string{"no snapshot 99"}},
			{name: "bad usage: not a session directory", setup: fixed("replay", t.TempDir()), code: 1, want: []string{"not a session directory"}},
			{name: "corrupt log", code: 2, want: []string{recordlog.SegmentName(0), "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(rec)
					damageEarlyBlock(t, dir)
					return []string{"replay", dir}, nil
				}},
			{name: "truncated log", code: 2, want: []string{"not sealed"},
				setup: func(t *testing.T) ([]string, []string) { return []string{"replay", copyOf(live)}, nil }},
			{name: "corrupt snapshot", code: 2, want: []string{snapName(1), "checksum"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(rec)
					damageSnapshot(t, dir, 1)
					return []string{"replay", "--from-snapshot", "1", dir}, nil
				}},
			{name: "divergence", code: 3, want: []string{"divergence"},
				setup: func(t *testing.T) ([]string, []string) {
					dir := copyOf(sealedLive)
					breakCheckpoint(t, dir, recordlog.Pos{})
					return []string{"replay", dir}, nil
				}},
		})
	})

	t.Run("client LINK", func(t *testing.T) {
		srv := startLiveServer(t, "--data", copyOf(live), "--key-file", keyFile)
		link := srv.links["viewer"]
		runAll(t, clientBin, []tc{
			{name: "ok", ready: "welcomed", code: 0,
				setup: func(t *testing.T) ([]string, []string) {
					return []string{link, "--headless", "--log-level", "info", "--cache-dir", t.TempDir()}, nil
				}},
			{name: "bad usage: no link", setup: fixed(), code: 1, want: []string{"usage"}},
			{name: "bad usage: unknown flag", setup: fixed(link, "--no-such-flag"), code: 1, want: []string{"no-such-flag"}},
			{name: "bad usage: not a link", setup: fixed("ftp://nowhere", "--headless"), code: 1, want: []string{"ftp://nowhere"}},
			{name: "refused: tampered token", code: 1, want: []string{"refused"},
				setup: func(t *testing.T) ([]string, []string) {
					_, tok := linkParts(t, link)
					dot := strings.LastIndex(tok, ".")
					flipped := "A"
					if tok[dot+1] == 'A' {
						flipped = "B"
					}
					u, _ := url.Parse(link)
					u.RawQuery = "t=" + url.QueryEscape(tok[:dot+1]+flipped+tok[dot+2:])
					return []string{u.String(), "--headless", "--cache-dir", t.TempDir()}, []string{"bad signature"}
				}},
		})
		srv.stop(t)
	})

	t.Run("relay", func(t *testing.T) {
		srv := startLiveServer(t, "--data", copyOf(live), "--key-file", keyFile)
		runAll(t, relayBin, []tc{
			{name: "ok", ready: "relay serving", code: 0,
				setup: fixed("--upstream", srv.upstream, "--listen", "127.0.0.1:0", "--key-file", keyFile)},
			{name: "bad usage: no --upstream", setup: fixed("--listen", "127.0.0.1:0"), code: 1, want: []string{"usage"}},
			{name: "bad usage: unknown flag", setup: fixed("--no-such-flag"), code: 1, want: []string{"no-such-flag"}},
			{name: "bad usage: bad key", setup: fixed("--upstream", srv.upstream, "--key", "zz"), code: 1, want: []string{"key"}},
		})
		srv.stop(t)
	})
}
