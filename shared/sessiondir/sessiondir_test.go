package sessiondir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

func TestCreateOpenAndTamper(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	module, disk := []byte("\x00asm fake module"), make([]byte, 8192)
	d, err := Create(path, "img", module, disk, "snapshotted")
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: 60, Step: 30, LogPos: recordlog.Pos{Offset: 99, Tick: 60, Step: 30},
		Globals: []uint64{1}, Device: []byte("{}"), Memory: make([]byte, 65536)}
	if info, err := d.AddSnapshot(s); err != nil || info.N != 1 {
		t.Fatal(info, err)
	}
	if _, err := Create(path, "img", module, disk, "snapshotted"); err == nil || !strings.Contains(err.Error(), "already holds a session") {
		t.Fatalf("second Create: %v", err)
	}
	d2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, info, err := d2.Snapshot(1)
	if err != nil || got.Tick != 60 || info.LogPos.Offset != 99 {
		t.Fatal(got, info, err)
	}
	if _, _, err := d2.Snapshot(2); err == nil || !strings.Contains(err.Error(), "no snapshot 2") {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(path, "disk.img"), make([]byte, 4096), 0o644)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "disk.img has SHA-256") {
		t.Fatalf("a changed disk image was accepted: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a session directory") {
		t.Fatal(err)
	}
}

// Verify reads everything before a session is sealed or served: damage to
// the log or a snapshot, or a snapshot pointing into nowhere, is a
// Corrupter (exit 2); an unsealed log is not an error.
func TestVerify(t *testing.T) {
	newDir := func(t *testing.T) (*Dir, recordlog.Pos, *recordlog.Writer) {
		path := filepath.Join(t.TempDir(), "s")
		d, err := Create(path, "img", []byte("\x00asm fake"), nil, "snapshotted")
		if err != nil {
			t.Fatal(err)
		}
		w, err := recordlog.Create(d.LogDir(), recordlog.Header{ModuleHash: d.ModuleHash()}, recordlog.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			w.Append(recordlog.Record{Kind: recordlog.KindStep})
			w.Append(recordlog.Record{Kind: recordlog.KindCall, Fn: 2, Data: []byte("key")})
			w.Flush()
		}
		pos := w.Pos()
		s := &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: pos.Tick, Step: pos.Step, LogPos: pos, Memory: make([]byte, 65536)}
		if _, err := d.AddSnapshot(s); err != nil {
			t.Fatal(err)
		}
		w.Append(recordlog.Record{Kind: recordlog.KindStep})
		w.Flush()
		return d, pos, w
	}
	corrupt := func(t *testing.T, err error, what string) {
		t.Helper()
		var c interface{ Corrupt() bool }
		if err == nil || !errors.As(err, &c) || !c.Corrupt() || !strings.Contains(err.Error(), what) {
			t.Fatalf("got %v; want a Corrupter naming %q", err, what)
		}
	}
	t.Run("ok", func(t *testing.T) {
		d, _, w := newDir(t)
		w.Detach()
		if sealed, err := d.Verify(); sealed || err != nil {
			t.Fatalf("unsealed: %v %v", sealed, err)
		}
		w2, err := recordlog.Resume(d.LogDir(), d.ModuleHash(), recordlog.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w2.Close()
		if sealed, err := d.Verify(); !sealed || err != nil {
			t.Fatalf("sealed: %v %v", sealed, err)
		}
	})
	t.Run("snapshots numbered with gaps", func(t *testing.T) {
		// A live session's retention deletes old snapshots: Verify goes by
		// the numbers the index holds, not by position.
		d, pos, w := newDir(t)
		w.Detach()
		for range 3 {
			s := &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: pos.Tick, Step: pos.Step, LogPos: pos, Memory: make([]byte, 65536)}
			if _, err := d.AddSnapshotKind(s, KindDemand); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Prune(Retention{Demand: 1}); err != nil {
			t.Fatal(err)
		}
		if n := len(d.Meta.Snapshots); n != 3 || d.Meta.Snapshots[1].N != 3 {
			t.Fatalf("kept %+v; want snapshots 1 (periodic), 3 and 4", d.Meta.Snapshots)
		}
		if _, err := d.Verify(); err != nil {
			t.Fatalf("Verify after deletions: %v", err)
		}
	})
	t.Run("corrupt log", func(t *testing.T) {
		d, pos, w := newDir(t)
		w.Detach()
		seg := filepath.Join(d.LogDir(), recordlog.SegmentName(0))
		b, _ := os.ReadFile(seg)
		b[pos.Offset-2] ^= 0x20 // inside the block before the snapshot, which a restart does not replay
		os.WriteFile(seg, b, 0o644)
		_, err := d.Verify()
		corrupt(t, err, "00000000.seg")
		_, err = d.VerifyLog()
		corrupt(t, err, "checksum")
	})
	t.Run("corrupt snapshot", func(t *testing.T) {
		d, _, w := newDir(t)
		w.Detach()
		p := filepath.Join(d.Path, d.Meta.Snapshots[0].File)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o644)
		_, err := d.Verify()
		corrupt(t, err, "checksum mismatch")
		if !errors.Is(err, snapshot.ErrCorrupt) {
			t.Fatalf("%v is not snapshot.ErrCorrupt", err)
		}
		os.Remove(p)
		_, err = d.Verify()
		corrupt(t, err, "missing")
	})
	t.Run("snapshot off a block boundary", func(t *testing.T) {
		d, pos, w := newDir(t)
		w.Detach()
		pos.Offset++
		s := &snapshot.Snapshot{ModuleHash: d.ModuleHash(), Tick: pos.Tick, Step: pos.Step, LogPos: pos, Memory: make([]byte, 65536)}
		if _, err := d.AddSnapshot(s); err != nil {
			t.Fatal(err)
		}
		_, err := d.Verify()
		corrupt(t, err, "snapshot 2's log position")
	})
}
