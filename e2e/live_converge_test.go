package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
	dir := t.TempDir()
	data, keyFile := filepath.Join(dir, "sess"), filepath.Join(dir, "key")
	srv := startLiveServer(t, "--image", "testcard", "--data", data, "--key-file", keyFile)
	// Through a standalone relay, which outlives the server: when the
	// session stops, it still hands its clients the session's last blocks.
	addr := freeAddr(t)
	startRelay(t, srv.upstream, addr, keyFile)
	link := func(role string) string { return withHost(t, srv.links[role], addr) }
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
		"alice":  startLiveClient(t, link("controller"), "--mode", "replay", "--name", "alice", "--input", alice),
		"bob":    startLiveClient(t, link("controller"), "--mode", "replay", "--name", "bob", "--input", bob),
		"viewer": startLiveClient(t, link("viewer"), "--mode", "replay", "--name", "viewer"),
	}
	waitFor(t, 90*time.Second, "both scripts played and every replay in replay mode past 8 verified checkpoints", func() bool {
		for name, c := range clients {
			s := c.last(t)
			if s.Failures != 0 {
				t.Fatalf("%s's replay failed: %+v\n%s", name, s, c.stderr.String())
			}
			if s.Checkpoints < 8 || s.Mode != "replay" || (name != "viewer" && !strings.Contains(c.stderr.String(), "input script played")) {
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ss []fbStats
		for _, c := range clients {
			ss = append(ss, lastFB(t, c))
		}
		same := ss[0].ReplayTick > 0 && ss[0].ReplayFB != ""
		for _, s := range ss[1:] {
			same = same && s.ReplayTick == ss[0].ReplayTick
		}
		final = ss[0]
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replays did not end at one tick: %+v", ss)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	// The offline replay of the sealed log runs to its end. The live
	// replays get the log to its end too (the relay hands them the last
	// blocks before its Error), but a client writes no --stats line while
	// it is reconnecting, so their last line is up to a second older than
	// the session's end. Where they show one tick the framebuffers agree.
	switch {
	case res.Ticks == final.ReplayTick && res.FinalFBHash != final.ReplayFB:
		t.Fatalf("offline replay ends at tick %d on %s, the live replays on %s", res.Ticks, res.FinalFBHash, final.ReplayFB)
	case res.Ticks < final.ReplayTick:
		t.Fatalf("offline replay ends at tick %d, before the live replays (%d)", res.Ticks, final.ReplayTick)
	}
	t.Logf("live replays end at tick %d on %s; offline at tick %d on %s", final.ReplayTick, final.ReplayFB, res.Ticks, res.FinalFBHash)

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
		evs, err := decodeLoggedEvents(rec.Data)
		if err != nil {
			t.Fatalf("input_poll outcome %x: %v", rec.Data, err)
		}
		for _, ev := range evs {
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

// decodeLoggedEvents reads an input_poll outcome as the log stores it
// (docs/log-format.md): per event type:u8 flags:u8 user:uvarint, then key
// code or button (uvarint), text (uvarint length, bytes) or x, y (varints).
func decodeLoggedEvents(b []byte) ([]abi.Event, error) {
	var out []abi.Event
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("bad uvarint")
		}
		b = b[n:]
		return v, nil
	}
	sv := func() (int64, error) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, errors.New("bad varint")
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("short event")
		}
		e := abi.Event{Type: abi.EventType(b[0]), Down: b[1]&1 != 0, Repeat: b[1]&2 != 0}
		b = b[2:]
		u, err := uv()
		if err != nil {
			return nil, err
		}
		e.User = uint16(u)
		switch e.Type {
		case abi.EvKey, abi.EvButton:
			v, err := uv()
			if err != nil {
				return nil, err
			}
			e.Code, e.Button = abi.KeyCode(v), uint32(v)
		case abi.EvText, abi.EvUser:
			n, err := uv()
			if err != nil || n > uint64(len(b)) {
				return nil, errors.New("bad text")
			}
			e.Text, b = string(b[:n]), b[n:]
		case abi.EvMove, abi.EvWheel:
			x, err := sv()
			if err != nil {
				return nil, err
			}
			y, err := sv()
			if err != nil {
				return nil, err
			}
			e.X, e.Y = int32(x), int32(y)
		default:
			return nil, fmt.Errorf("event type %d", e.Type)
		}
		out = append(out, e)
	}
	return out, nil
}
