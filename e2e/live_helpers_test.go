package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// liveServer is a `server` process running a live session.
type liveServer struct {
	cmd      *exec.Cmd
	links    map[string]string            // role → link (of the last session printed)
	sessions map[string]map[string]string // session id → role → link
	upstream string                       // the session endpoint (for a standalone relay)
	base     string                       // http://host:port of the embedded relay
	stderr   *syncBuffer
	done     chan error
}

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLiveServer starts `server` with args (plus --listen 127.0.0.1:0) and
// waits for its role links.
func startLiveServer(t testing.TB, args ...string) *liveServer {
	t.Helper()
	s := &liveServer{links: map[string]string{}, sessions: map[string]map[string]string{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(serverBin, append([]string{"--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	stdout, _ := s.cmd.StdoutPipe()
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	current := ""
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "replaydesk: session "); ok {
			current, _ = strconv.Unquote(strings.Fields(rest)[0])
			s.sessions[current] = map[string]string{}
			continue
		}
		role, link, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if role == "upstream" {
			s.upstream, _, _ = strings.Cut(link, " ")
			break // the last line
		}
		s.links[role] = link
		if s.sessions[current] != nil {
			s.sessions[current][role] = link
		}
	}
	go io.Copy(io.Discard, stdout)
	go func() { s.done <- s.cmd.Wait() }()
	for _, role := range []string{"owner", "controller", "viewer", "display"} {
		if s.links[role] == "" {
			t.Fatalf("server printed no %s link; stderr:\n%s", role, s.stderr.String())
		}
	}
	u, _ := url.Parse(s.links["owner"])
	s.base = u.Scheme + "://" + u.Host
	return s
}

// stop interrupts the server as a user would (Ctrl-C) and waits for it.
func (s *liveServer) stop(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop on SIGINT\n%s", s.stderr.String())
	}
}

// liveClient is a headless `client` process writing --stats.
type liveClient struct {
	cmd    *exec.Cmd
	stats  string
	stderr *syncBuffer
	done   chan error
}

// startLiveClient runs `client LINK --headless --stats FILE` plus args.
func startLiveClient(t testing.TB, link string, args ...string) *liveClient {
	t.Helper()
	dir := t.TempDir()
	c := &liveClient{stats: dir + "/stats.jsonl", stderr: &syncBuffer{}, done: make(chan error, 1)}
	c.cmd = exec.Command(clientBin, append([]string{link, "--headless", "--stats", c.stats, "--cache-dir", dir + "/cache", "--log-level", "info"}, args...)...)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill() })
	go func() { c.done <- c.cmd.Wait() }()
	return c
}

// clientStats is what the tests read of a --stats line.
type clientStats struct {
	Mode  string `json:"mode"`
	Bytes struct {
		Log, Display, Pages, Other uint64
	} `json:"bytes"`
	LagMs       float64 `json:"lag_ms"`
	SwitchCount int64   `json:"switch_count"`
	Failures    int64   `json:"failures"`
	LastFailure string  `json:"last_failure"`
	ReplayTick  uint64  `json:"replay_tick"`
	ServerTick  uint64  `json:"server_tick"`
	Checkpoints uint64  `json:"checkpoints"`
}

// last returns the newest stats line (zero value if none yet).
func (c *liveClient) last(t testing.TB) clientStats {
	t.Helper()
	b, _ := os.ReadFile(c.stats)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var s clientStats
	if len(lines) > 0 && lines[len(lines)-1] != "" {
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
			t.Fatalf("stats line %q: %v", lines[len(lines)-1], err)
		}
	}
	return s
}

// waitFor polls cond every 200 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop interrupts the client and waits for it to exit cleanly.
func (c *liveClient) stop(t testing.TB) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("client exit: %v\n%s", err, c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("client did not stop on SIGINT\n%s", c.stderr.String())
	}
}
