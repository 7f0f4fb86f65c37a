package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
)

// Two controllers typing, moving and clicking at once (shared control) and
// a viewer, all replaying: every replay verifies every checkpoint the server
// logged, they end on the same framebuffer at the same tick, and that is
// the framebuffer an offline replay of the session directory ends on. The
// log holds both controllers' input, each under its own user number.
func TestLiveReplaysConverge(t *testing.T) {
	data := filepath.Join(t.TempDir(), "sess")
	srv := startLiveServer(t, "--image", "testcard", "--data", data)
	alice := writeScript(t, `{"t":0.5,"type":"text","text":"alice was here"}
{"t":1.0,"type":"key","code":"KeyA","down":true}
{"t":1.1,"type":"key","code":"KeyA","down":false}
{"t":2.0,"type":"move","x":250,"y":60}
{"t":2.5,"type":"move","x":300,"y":90}
{"t":3.0,"type":"button","button":0,"down":true}
{"t":3.1,"type":"button","button":0,"down":false}
{"t":5.0,"type":"key","code":"Enter","down":true}
{"t":5.1,"type":"key","code":"Enter","down":false}
{"t":7.0,"type":"text","text":"alice again"}
{"t":9.0,"type":"wheel","dy":-3}
`)
	bob := writeScript(t, `{"t":0.8,"type":"move","x":400,"y":150}
{"t":1.5,"type":"text","text":"bob typing"}
{"t":2.2,"type":"button","button":0,"down":true}
{"t":2.3,"type":"button","button":0,"down":false}
{"t":4.0,"type":"key","code":"KeyB","down":true}
{"t":4.05,"type":"key","code":"KeyB","down":false}
{"t":6.0,"type":"move","x":210,"y":30}
{"t":6.5,"type":"button","button":2,"down":true}
{"t":6.6,"type":"button","button":2,"down":false}
{"t":8.5,"type":"text","text":"bob done"}
`)
	clients := map[string]*liveClient{
		"alice":  startLiveClient(t, srv.links["controller"], "--mode", "replay", "--name", "alice", "--input", alice),
		"bob":    startLiveClient(t, srv.links["controller"], "--mode", "replay", "--name", "bob", "--input", bob),
		"viewer": startLiveClient(t, srv.links["viewer"], "--mode", "replay", "--name", "viewer"),
	}
	waitFor(t, 90*time.Second, "both scripts played and every replay past 8 verified checkpoints", func() bool {
		for name, c := range clients {
			s := c.last(t)
			if s.Failures != 0 {
				t.Fatalf("%s's replay failed: %+v\n%s", name, s, c.stderr.String())
			}
			if s.Checkpoints < 8 || (name != "viewer" && !strings.Contains(c.stderr.String(), "input script played")) {
				return false
			}
		}
		return true
	})
	for name, c := range clients {
		if strings.Contains(c.stderr.String(), "input refused") {
			t.Fatalf("%s's input was refused in shared control:\n%s", name, c.stderr.String())
		}
	}

	// Stop the session: the replays run to the end of the log they got,
	// which is the log the server wrote.
	srv.stop(t)
	var final fbStats
	waitFor(t, 30*time.Second, "the three replays at one tick", func() bool {
		var ss []fbStats
		for _, c := range clients {
			ss = append(ss, lastFB(t, c))
		}
		same := ss[0].ReplayTick > 0 && ss[0].ReplayFB != ""
		for _, s := range ss[1:] {
			same = same && s.ReplayTick == ss[0].ReplayTick
		}
		final = ss[0]
		return same
	})
	for name, c := range clients {
		s := lastFB(t, c)
		if s.ReplayFB != final.ReplayFB || s.Failures != 0 {
			t.Fatalf("%s ends at tick %d on framebuffer %s (failures %d), the others on %s",
				name, s.ReplayTick, s.ReplayFB, s.Failures, final.ReplayFB)
		}
		c.stop(t)
	}

	// The same framebuffer offline, from the session directory.
	if out, err := exec.Command(serverBin, "end", data).CombinedOutput(); err != nil {
		t.Fatalf("server end: %v\n%s", err, out)
	}
	res, stderr, code := replay(t, nil, data)
	if code != 0 || res.Divergences != 0 {
		t.Fatalf("offline replay: exit %d %+v\n%s", code, res, stderr)
	}
	if res.Ticks == final.ReplayTick && res.FinalFBHash != final.ReplayFB {
		t.Fatalf("offline replay ends at tick %d on %s, the live replays on %s", res.Ticks, res.FinalFBHash, final.ReplayFB)
	}
	t.Logf("live replays and offline replay: tick %d (offline %d), framebuffer %s (offline %s)", final.ReplayTick, res.Ticks, final.ReplayFB, res.FinalFBHash)

	// Both controllers' input is in the log, stamped with their numbers.
	users, texts := loggedInput(t, data)
	for name, want := range map[string][]string{"alice": {"alice was here", "alice again"}, "bob": {"bob typing", "bob done"}} {
		u, ok := users[name]
		if !ok {
			t.Fatalf("no user %q joined in the log (users %v)", name, users)
		}
		for _, w := range want {
			if got, ok := texts[w]; !ok || got != u {
				t.Fatalf("text %q logged for user %d (found %v), want %s's number %d", w, got, ok, name, u)
			}
		}
	}
	if users["alice"] == users["bob"] {
		t.Fatalf("alice and bob share user number %d", users["alice"])
	}
}

// fbStats is a stats line with the replay's framebuffer hash.
type fbStats struct {
	clientStats
	ReplayFB string `json:"replay_fb_hash"`
}

func lastFB(t testing.TB, c *liveClient) fbStats {
	t.Helper()
	b, _ := os.ReadFile(c.stats)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var s fbStats
	if l := lines[len(lines)-1]; l != "" {
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("stats line %q: %v", l, err)
		}
	}
	return s
}

// loggedInput reads the input events of the log in dir: the users who
// joined (name → number) and each typed text's user.
func loggedInput(t testing.TB, dir string) (users map[string]uint16, texts map[string]uint16) {
	t.Helper()
	rd, err := recordlog.Open(filepath.Join(dir, "log"), recordlog.ModuleHash{}, recordlog.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	users, texts = map[string]uint16{}, map[string]uint16{}
	const fnInputPoll = 3 // the import number of input_poll in the log
	for {
		rec, err := rd.Next(context.Background())
		if errors.Is(err, io.EOF) || errors.Is(err, recordlog.ErrUnsealed) {
			return users, texts
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != recordlog.KindCall || rec.Fn != fnInputPoll {
			continue
		}
		for b := rec.Data; len(b) >= 32; b = b[32:] {
			ev, err := abi.DecodeEvent(b[:32])
			if err != nil {
				t.Fatalf("a logged event: %v", err)
			}
			switch ev.Type {
			case abi.EvUser:
				if ev.Down {
					users[ev.Text] = ev.User
				}
			case abi.EvText:
				texts[ev.Text] = ev.User
			}
		}
	}
}
