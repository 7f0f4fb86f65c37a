package sessiondir

import (
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
