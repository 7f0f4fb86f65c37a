package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's first command: `server` with no arguments serves the default
// session live through its embedded relay, prints a link per role, serves
// the web app, takes a controller's input, records everything, and what it
// recorded replays bit-identically.
func TestServeLiveSessionAndReplayIt(t *testing.T) {
	data := filepath.Join(t.TempDir(), "live")
	srv := startLiveServer(t, "--data", data)
	hc := &http.Client{Timeout: 30 * time.Second}

	page, err := hc.Get(srv.links["display"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !bytes.Contains(body, []byte("<canvas")) {
		t.Fatalf("GET the display link: %d %.80q", page.StatusCode, body)
	}

	script := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(script, []byte(`{"t":0.5,"type":"key","code":"KeyH","down":true}
{"t":0.5,"type":"text","text":"hi from the test"}
{"t":0.6,"type":"key","code":"KeyH","down":false}
{"t":0.7,"type":"move","x":320,"y":200}
`), 0o644)
	c := startLiveClient(t, srv.links["controller"], "--mode", "display", "--input", script)
	waitFor(t, 60*time.Second, "display frames and the script played", func() bool {
		return c.last(t).Bytes.Display > 0 && strings.Contains(c.stderr.String(), "input script played")
	})

	// A scraper sees the session's and the relay's counters.
	mr, err := hc.Get(srv.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{"# TYPE replaydesk_steps_total counter", "replaydesk_log_bytes_total "} {
		if !strings.Contains(string(mb), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, mb)
		}
	}
	waitFor(t, 10*time.Second, "the four events recorded", func() bool {
		r, err := hc.Get(srv.base + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "replaydesk_input_events_total "); ok {
				n, _ := strconv.Atoi(v)
				return n >= 4
			}
		}
		return false
	})
	c.stop(t)
	srv.stop(t)

	// A stopped live session stays open to be continued; `server end`
	// seals it into a finished recording.
	if out, err := exec.Command(serverBin, "end", data).CombinedOutput(); err != nil {
		t.Fatalf("server end: %v\n%s", err, out)
	}
	res, stderr2, code := replay(t, nil, data)
	if code != 0 || res.Divergences != 0 || res.Steps == 0 {
		t.Fatalf("replaying the live session: exit %d %+v\n%s", code, res, stderr2)
	}
	if _, err := os.Stat(filepath.Join(data, "session.json")); err != nil {
		t.Fatal(err)
	}
}
