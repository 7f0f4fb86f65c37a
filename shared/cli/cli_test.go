package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/snapshot"
)

// The contract's codes for the errors the commands end on, however wrapped.
func TestExitCode(t *testing.T) {
	dir := t.TempDir()
	w, err := recordlog.Create(dir, recordlog.Header{}, recordlog.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Append(recordlog.Record{Kind: recordlog.KindStep})
	w.Detach()
	_, unsealed := readLog(dir)
	seg := filepath.Join(dir, recordlog.SegmentName(0))
	b, _ := os.ReadFile(seg)
	b[len(b)-1] ^= 1
	os.WriteFile(seg, b, 0o644)
	_, corruptLog := readLog(dir)
	_, corruptSnap := snapshot.Decode(make([]byte, 100), recordlog.ModuleHash{}, "x.snap")
	_, notDir := sessiondir.Open(t.TempDir())

	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"plain", errors.New("no such image"), ExitError},
		{"not a session directory", notDir, ExitError},
		{"sealed log", fmt.Errorf("resume: %w", recordlog.ErrSealed), ExitError},
		{"unsealed log", unsealed, ExitCorrupt},
		{"ErrUnsealed", recordlog.ErrUnsealed, ExitCorrupt},
		{"corrupt log", corruptLog, ExitCorrupt},
		{"corrupt log, wrapped twice", fmt.Errorf("session: %w", fmt.Errorf("resuming the log of d: %w", corruptLog)), ExitCorrupt},
		{"foreign log", &recordlog.ModuleMismatchError{}, ExitCorrupt},
		{"corrupt snapshot", corruptSnap, ExitCorrupt},
		{"foreign snapshot", fmt.Errorf("restore: %w", &snapshot.ModuleMismatchError{}), ExitCorrupt},
		{"corrupt session directory", &sessiondir.CorruptError{Msg: "module.wasm has SHA-256 …"}, ExitCorrupt},
		{"joined", errors.Join(errors.New("a"), corruptSnap), ExitCorrupt},
	} {
		if c.err == nil && c.want != ExitOK {
			t.Fatalf("%s: setup gave no error", c.name)
		}
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("%s (%v): exit %d, want %d", c.name, c.err, got, c.want)
		}
	}
	if _, ok := corruptLog.(*recordlog.CorruptError); !ok {
		t.Fatalf("setup: %T %v is not a CorruptError", corruptLog, corruptLog)
	}
}

func readLog(dir string) (int, error) {
	r, err := recordlog.Open(dir, recordlog.ModuleHash{}, recordlog.ReaderOptions{})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for n := 0; ; n++ {
		if _, err := r.Next(context.Background()); err != nil {
			return n, err
		}
	}
}
