package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// TestRelayProcess runs the relay command as a real process in front of a
// minimal upstream: a client is welcomed through it, a page is fetched
// upstream once, /metrics answers, SIGTERM stops it cleanly.
func TestRelayProcess(t *testing.T) {
	key := token.NewKey()
	var pageHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pages/{hash}", func(w http.ResponseWriter, r *http.Request) {
		pageHits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		io.WriteString(w, "page")
	})
	mux.HandleFunc("GET /upstream/{session}", func(w http.ResponseWriter, r *http.Request) {
		ws, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		m, _, err := ws.Recv(r.Context())
		if err != nil {
			return
		}
		if c, err := token.Verify(key, m.(*wire.Hello).Token, time.Now()); err != nil || c.Role != token.RoleRelay {
			ws.Fail(wire.CodeUnauthorized, "want a relay token")
			return
		}
		ws.Send(r.Context(), &wire.Welcome{Major: 1, Minor: 1, SessionID: "s1", User: 1, Role: wire.RoleViewer, Mode: wire.ModeReplay, TickRate: 60})
		for {
			m, _, err := ws.Recv(context.Background())
			if err != nil {
				return
			}
			if rt, ok := m.(*wire.Routed); ok && rt.Msg.Type() == wire.TypeHello {
				ws.Send(context.Background(), &wire.Routed{Client: rt.Client, Msg: &wire.Welcome{Major: 1, Minor: 1, SessionID: "s1", User: 7, Role: wire.RoleViewer, Mode: wire.ModeDisplay, TickRate: 60}})
			}
		}
	})
	up := httptest.NewServer(mux)
	defer up.Close()

	dir := t.TempDir()
	bin := filepath.Join(dir, "relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600)
	cmd := exec.Command(bin, "--upstream", up.URL, "--listen", "127.0.0.1:0", "--key-file", keyFile)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var base string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct{ Listen, Message string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Listen != "" {
			base = line.Listen
			break
		}
	}
	if base == "" {
		t.Fatal("the relay never said where it listens")
	}
	go io.Copy(io.Discard, stderr)

	ws, err := wsconn.Dial(context.Background(), strings.Replace(base, "http", "ws", 1)+"/ws/s1")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	tok := token.Sign(key, token.Claims{Session: "s1", Role: token.RoleViewer, Expiry: time.Now().Add(time.Hour)})
	ws.Send(context.Background(), &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapDisplay, Token: tok})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	m, _, err := ws.Recv(ctx)
	cancel()
	if w, ok := m.(*wire.Welcome); err != nil || !ok || w.User != 7 {
		t.Fatalf("got %+v %v", m, err)
	}
	for range 2 {
		req, _ := http.NewRequest("GET", base+"/pages/"+strings.Repeat("ab", 32), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "page" {
			t.Fatalf("page %q", b)
		}
	}
	if n := pageHits.Load(); n != 1 {
		t.Fatalf("upstream page hits %d", n)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `replaydesk_relay_clients{mode="display"} 1`) || !strings.Contains(string(b), "replaydesk_relay_cache_hits_total 1") {
		t.Fatalf("metrics:\n%s", b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the relay did not stop on SIGTERM")
	}
}

// TestRelayWithoutKeyRefusesToStart is finding 3 of issue 9: a relay with
// no key streamed the log to anyone whose Hello carried the relay
// capability and no token. Now it does not start: exit 1, and says why.
// With the key, that Hello is refused, and nothing goes upstream.
func TestRelayWithoutKeyRefusesToStart(t *testing.T) {
	var upstreamHellos atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /upstream/{session}", func(w http.ResponseWriter, r *http.Request) {
		upstreamHellos.Add(1)
		ws, err := wsconn.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		// An upstream that would welcome anyone: the relay is the only check.
		ws.Recv(r.Context())
		ws.Send(r.Context(), &wire.Welcome{Major: 1, Minor: 1, SessionID: "s1", User: 1, Role: wire.RoleViewer, Mode: wire.ModeReplay, TickRate: 60})
		ws.Send(r.Context(), &wire.LogBlock{Block: make([]byte, 9)})
		<-r.Context().Done()
	})
	up := httptest.NewServer(mux)
	defer up.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "relay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	for _, args := range [][]string{{}, {"--token", "some-relay-token"}} {
		cmd := exec.Command(bin, append([]string{"--upstream", up.URL, "--listen", "127.0.0.1:0"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("%v: exit %v, want 1", args, err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: a relay without a key started (and would serve the log to anyone):\n%s", args, stderr.String())
		}
		if !strings.Contains(stderr.String(), "--key-file") {
			t.Fatalf("%v: the refusal does not say what to do:\n%s", args, stderr.String())
		}
	}

	// With the key: the attack's Hello (relay capability, no token) is refused.
	key := token.NewKey()
	cmd := exec.Command(bin, "--upstream", up.URL, "--listen", "127.0.0.1:0", "--key", hex.EncodeToString(key))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := listenAddr(t, stderr)
	for _, path := range []string{"/upstream/s1", "/ws/s1"} {
		ws, err := wsconn.Dial(context.Background(), strings.Replace(base, "http", "ws", 1)+path)
		if err != nil {
			t.Fatal(err)
		}
		ws.Send(context.Background(), &wire.Hello{Major: 1, Minor: 1, Caps: wire.CapRelay, Token: ""})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, _, err := ws.Recv(ctx)
		cancel()
		if e, ok := m.(*wire.Error); err != nil || !ok || (e.Code != wire.CodeUnauthorized && e.Code != wire.CodeMalformed) {
			t.Fatalf("%s: an empty token got %+v %v, want an Error", path, m, err)
		}
		ws.CloseNow()
	}
	resp, err := http.Get(base + "/sessions/s1/log/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the log listing without a token: %d, want 401", resp.StatusCode)
	}
	if n := upstreamHellos.Load(); n != 0 {
		t.Fatalf("the relay went upstream %d times for refused Hellos", n)
	}
}

// listenAddr reads the relay's log until it says where it listens.
func listenAddr(t *testing.T, stderr io.Reader) string {
	t.Helper()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct{ Listen string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Listen != "" {
			go io.Copy(io.Discard, stderr)
			return line.Listen
		}
	}
	t.Fatal("the relay never said where it listens")
	return ""
}
