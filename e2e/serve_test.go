package e2e

import (
	"bufio"
	"bytes"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's first command: `server` with no arguments serves the default
// session live, takes keyboard input from a browser, records everything,
// and what it recorded replays bit-identically.
func TestServeLiveSessionAndReplayIt(t *testing.T) {
	data := filepath.Join(t.TempDir(), "live")
	cmd := exec.Command(serverBin, "--listen", "127.0.0.1:0", "--data", data)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "open "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("server printed no link; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	client := &http.Client{Timeout: 30 * time.Second}

	page, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !bytes.Contains(body, []byte("<canvas")) {
		t.Fatalf("GET /: %d %.80q", page.StatusCode, body)
	}

	frame := func(after string) (image.Image, string) {
		t.Helper()
		r, err := client.Get(url + "frame?after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("GET /frame: %d", r.StatusCode)
		}
		img, err := png.Decode(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return img, r.Header.Get("X-Frame-Seq")
	}
	first, seq := frame("0")
	if b := first.Bounds(); b.Dx() != 1280 || b.Dy() != 720 { // the desk
		t.Fatalf("frame %v", first.Bounds())
	}

	input := `{"t":0,"user":"tester","type":"key","code":"KeyH","down":true}
{"t":0,"user":"tester","type":"text","text":"hi from the test"}
{"t":0,"user":"tester","type":"key","code":"KeyH","down":false}
{"t":0,"user":"tester","type":"move","x":320,"y":200}`
	r, err := client.Post(url+"input", "application/x-ndjson", strings.NewReader(input))
	if err != nil || r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /input: %v %v", r.StatusCode, err)
	}
	r.Body.Close()
	bad, _ := client.Post(url+"input", "application/x-ndjson", strings.NewReader(`{"t":0,"type":"key","code":"KeyZZ","down":true}`))
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed input: %d", bad.StatusCode)
	}
	bad.Body.Close()

	// Frames keep coming (the clock moves), each newer than the last.
	for i := 0; i < 3; i++ {
		_, next := frame(seq)
		a, _ := strconv.Atoi(seq)
		b, _ := strconv.Atoi(next)
		if b <= a {
			t.Fatalf("frame %s after %s", next, seq)
		}
		seq = next
	}

	// A scraper sees the session's counters.
	mr, err := client.Get(url + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{"# TYPE replaydesk_steps_total counter", "replaydesk_input_events_total 5", "replaydesk_log_bytes_total "} {
		if !strings.Contains(string(mb), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, mb)
		}
	}

	// Stop it as a user would.
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop on SIGINT")
	}
	// The four posted events and the user's arrival were recorded.
	if !strings.Contains(stderr.String(), `"input_events":5`) {
		t.Fatalf("the server did not record the posted input:\n%s", stderr.String())
	}
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
