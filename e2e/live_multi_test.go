package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One server process hosts several sessions (--image a,b): each gets its
// own links, its own directory and labelled metrics, and clients of each see
// their own session through the one embedded relay.
func TestLiveServerHostsSeveralSessions(t *testing.T) {
	data := t.TempDir()
	srv := startLiveServer(t, "--image", "testcard,kbuild", "--data", data)
	for _, id := range []string{"testcard", "kbuild"} {
		if len(srv.sessions[id]) != 4 {
			t.Fatalf("session %s: links %v", id, srv.sessions[id])
		}
	}
	a := startLiveClient(t, srv.sessions["testcard"]["viewer"], "--mode", "replay")
	b := startLiveClient(t, srv.sessions["kbuild"]["display"], "--mode", "display")
	waitFor(t, 60*time.Second, "the testcard client replaying and the kbuild client showing frames", func() bool {
		return a.last(t).Mode == "replay" && a.last(t).Checkpoints > 2 && b.last(t).Bytes.Display > 0
	})
	if a.last(t).Failures != 0 || b.last(t).Bytes.Log != 0 {
		t.Fatalf("testcard client %+v, kbuild display client %+v", a.last(t), b.last(t))
	}
	r, err := http.Get(srv.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{`replaydesk_ticks_total{session="testcard"} `, `replaydesk_ticks_total{session="kbuild"} `} {
		if !strings.Contains(string(m), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	a.stop(t)
	b.stop(t)
	srv.stop(t)
	for _, id := range []string{"testcard", "kbuild"} {
		if _, err := os.Stat(filepath.Join(data, id, "session.json")); err != nil {
			t.Fatalf("session %s has no directory of its own: %v", id, err)
		}
	}
}
