package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"replaydesk/client/internal/live/livetest"
	"replaydesk/shared/cli"
	"replaydesk/shared/wire"
)

// buildClient builds this command once per test.
func buildClient(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "client")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestLiveCommand runs the real binary against the test upstream: pinned
// to replay, headless, with a stats file; Ctrl-C ends it with exit 0.
func TestLiveCommand(t *testing.T) {
	bin := buildClient(t)
	tmp := t.TempDir()
	s, err := livetest.Record(filepath.Join(tmp, "engine"))
	if err != nil {
		t.Fatal(err)
	}
	u := livetest.NewUpstream(t, s)
	stats := filepath.Join(tmp, "stats.jsonl")
	cmd := exec.Command(bin, u.URL(), "--mode", "replay", "--headless", "--stats", stats, "--name", "bench-1",
		"--cache-dir", filepath.Join(tmp, "cache"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(tmp, "xdg"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if h := u.Next(t).(*wire.Hello); h.Name != "bench-1" || h.Want != wire.ModeReplay {
		t.Fatalf("Hello %+v", h)
	}
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeDual)
	u.ExpectSwitch(t, wire.SwitchRequested, wire.ModeReplay)
	// The stats file says replay within a line or two.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(lastLine(t, stats), `"mode":"replay"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the stats file never says replay: %s", lastLine(t, stats))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var st struct {
		ReplayTick  uint64 `json:"replay_tick"`
		Checkpoints uint64 `json:"checkpoints"`
	}
	if err := json.Unmarshal([]byte(lastLine(t, stats)), &st); err != nil || st.Checkpoints == 0 {
		t.Fatalf("stats %s: %v", lastLine(t, stats), err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := wait(cmd); err != nil {
		t.Fatalf("after Ctrl-C: %v", err)
	}
}

// TestLocalViewPrinted: without --headless the command prints its local
// view's URL, which serves the session's page.
func TestLocalViewPrinted(t *testing.T) {
	bin := buildClient(t)
	tmp := t.TempDir()
	s, err := livetest.Record(filepath.Join(tmp, "engine"))
	if err != nil {
		t.Fatal(err)
	}
	u := livetest.NewUpstream(t, s)
	cmd := exec.Command(bin, u.URL(), "--no-open", "--cache-dir", filepath.Join(tmp, "cache"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(tmp, "xdg"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var url string
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "local view: "); ok {
			url = rest
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(url, "/s/"+livetest.SessionID+"?t=") {
		t.Fatalf("local view URL %q", url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	// The page is the static web app; what it may see and do is guarded by
	// the local token in its Hello (localview's tests refuse a wrong one).
	cmd.Process.Signal(syscall.SIGINT)
	if err := wait(cmd); err != nil {
		t.Fatalf("after Ctrl-C: %v", err)
	}
}

func TestBadLinkExitCode(t *testing.T) {
	bin := buildClient(t)
	for _, args := range [][]string{{"http://127.0.0.1:1/nope"}, {"http://127.0.0.1:1/s/x?t=a", "--mode", "sideways"}} {
		err := exec.Command(bin, args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitError {
			t.Errorf("client %v: %v, want exit %d", args, err, cli.ExitError)
		}
	}
}

func wait(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return errors.New("did not exit within 30 s")
	}
}

func lastLine(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	// Only whole lines: the client may be writing the next one.
	whole := string(b[:max(0, strings.LastIndexByte(string(b), '\n'))])
	lines := strings.Split(whole, "\n")
	return lines[len(lines)-1]
}
