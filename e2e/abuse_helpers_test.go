package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Helpers of the abuse-and-soak suite (abuse_test.go): a controller that
// types and times each keystroke into the log, the attack command, process
// memory, and reading every keystroke back out of a session's log.

// logInputPoll is input_poll's call number in the log (shared/machine,
// docs/log-format.md: part of the log format, never renumbered).
const logInputPoll = 3

// typist is a controller speaking the raw protocol: it joins wanting
// replay, so the relay streams it the log, and types one marked keystroke
// every interval (key down, a text event carrying a unique marker, key up).
// A keystroke is acknowledged when its marker appears in an input_poll
// record of a LogBlock the typist receives: keystroke-to-log latency is
// that arrival minus the moment the Input was handed to the socket. It
// includes the relay's routing up, the arbiter, the guest polling its input
// at its next tick (up to 1/60 s), the block's flush and its fan-out back
// down, all on this machine's clock. After a lost connection (a server
// killed) it joins again and goes on typing.
type typist struct {
	prefix string // markers are prefix + 8 digits

	mu       sync.Mutex
	sent     map[string]time.Time
	acked    map[string]time.Time
	ackBlock map[string]int64 // marker → blockKey of the LogBlock it came back in
	order    []string         // markers in the order sent
	refused  map[string]int
	joins    int   // Welcomes
	forced   int   // forced switches to display
	badBlock int   // blocks the log stream refused (a gap, a damaged block)
	lastErr  error // why the last connection ended
	typing   atomic.Bool
	acks     chan string // if set, each newly acknowledged marker (never blocks)
}

func newTypist(prefix string) *typist {
	return &typist{prefix: prefix, sent: map[string]time.Time{}, acked: map[string]time.Time{}, ackBlock: map[string]int64{}, refused: map[string]int{}}
}

// run types until ctx ends, reconnecting to ws after each lost connection.
func (ty *typist) run(ctx context.Context, ws, tok string, every time.Duration) {
	for ctx.Err() == nil {
		err := ty.session(ctx, ws, tok, every)
		ty.mu.Lock()
		ty.lastErr = err
		ty.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (ty *typist) session(ctx context.Context, ws, tok string, every time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := wsconn.Dial(ctx, ws)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	context.AfterFunc(ctx, c.CloseNow)
	if err := c.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: clientCaps, Token: tok, Want: wire.ModeReplay, Name: "typist"}); err != nil {
		return err
	}
	var (
		epoch    atomic.Uint64
		stream   *recordlog.Stream
		restart  recordlog.Pos
		again    time.Time
		started  bool
		replayed bool
	)
	for {
		m, _, err := c.Recv(ctx)
		now := time.Now()
		if err != nil {
			return err
		}
		switch v := m.(type) {
		case *wire.Welcome:
			ty.mu.Lock()
			ty.joins++
			ty.mu.Unlock()
			if err := c.Send(ctx, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: "pinned replay"}); err != nil {
				return err
			}
		case *wire.Presence:
			epoch.Store(v.Epoch)
		case *wire.SnapshotAnnounce:
			restart = v.Pos
			if stream == nil {
				stream = recordlog.NewStream(v.Pos)
			}
		case *wire.LogBlock:
			if stream == nil {
				continue
			}
			if err := stream.Push(v.Pos, v.Block); err != nil {
				// After a forced switch the log comes back from a snapshot.
				if v.Pos != restart {
					ty.mu.Lock()
					ty.badBlock++
					ty.mu.Unlock()
					continue
				}
				stream = recordlog.NewStream(restart)
				if err := stream.Push(v.Pos, v.Block); err != nil {
					return fmt.Errorf("log block at %+v: %w", v.Pos, err)
				}
			}
			for stream.Ready() {
				r, err := stream.Next(ctx)
				if err != nil {
					return err
				}
				if r.Kind == recordlog.KindCall && r.Fn == logInputPoll {
					ty.ack(r.Data, now, blockKey(v.Pos.Segment, v.Pos.Offset))
				}
			}
			if !replayed {
				replayed = true
				if err := c.Send(ctx, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeReplay, Reason: "caught up"}); err != nil {
					return err
				}
			}
			if !started {
				started = true
				go ty.typeLoop(ctx, c, &epoch, every)
			}
		case *wire.InputRefused:
			ty.mu.Lock()
			ty.refused[fmt.Sprintf("%d %s", v.Reason, v.Text)]++
			ty.mu.Unlock()
		case *wire.ModeSwitch:
			if v.Kind == wire.SwitchForced && v.Mode == wire.ModeDisplay {
				ty.mu.Lock()
				ty.forced++
				ty.mu.Unlock()
				again = now.Add(time.Second)
			}
		case *wire.Error:
			return v
		}
		if !again.IsZero() && now.After(again) {
			again = time.Time{}
			if err := c.Send(ctx, &wire.ModeSwitch{Kind: wire.SwitchRequested, Mode: wire.ModeDual, Reason: "pinned replay"}); err != nil {
				return err
			}
		}
	}
}

func (ty *typist) typeLoop(ctx context.Context, c *wsconn.Conn, epoch *atomic.Uint64, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !ty.typing.Load() {
			continue
		}
		ty.mu.Lock()
		marker := fmt.Sprintf("%s%08d", ty.prefix, len(ty.order))
		ty.order = append(ty.order, marker)
		ty.mu.Unlock()
		in := &wire.Input{Seq: seq, Epoch: epoch.Load(), Events: []abi.Event{
			{Type: abi.EvKey, Down: true, Code: abi.CodeKeyA},
			{Type: abi.EvText, Text: marker},
			{Type: abi.EvKey, Code: abi.CodeKeyA},
		}}
		b, _ := wire.Encode(in)
		ty.mu.Lock()
		ty.sent[marker] = time.Now()
		ty.mu.Unlock()
		if err := c.SendBytes(ctx, b); err != nil {
			return // the session ends; run reconnects
		}
	}
}

// ack marks every marker of the typist's found in an input_poll outcome.
func (ty *typist) ack(data []byte, at time.Time, block int64) {
	for _, m := range findMarkers(data, ty.prefix) {
		ty.mu.Lock()
		if _, sent := ty.sent[m]; sent {
			if _, ok := ty.acked[m]; !ok {
				ty.acked[m] = at
				ty.ackBlock[m] = block
				select {
				case ty.acks <- m:
				default:
				}
			}
		}
		ty.mu.Unlock()
	}
}

// findMarkers returns each prefix+8 digits in b.
func findMarkers(b []byte, prefix string) []string {
	var out []string
	p := []byte(prefix)
	for {
		i := bytes.Index(b, p)
		if i < 0 || i+len(p)+8 > len(b) {
			return out
		}
		out = append(out, string(b[i:i+len(p)+8]))
		b = b[i+len(p):]
	}
}

// latencies returns the keystroke-to-log latencies (ms) of the markers
// sent in [from, to), with +Inf for one never acknowledged, and how many
// were not.
func (ty *typist) latencies(from, to time.Time) (ms []float64, unacked int) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for _, m := range ty.order {
		s, ok := ty.sent[m]
		if !ok || s.Before(from) || !s.Before(to) {
			continue
		}
		a, ok := ty.acked[m]
		if !ok {
			ms = append(ms, inf)
			unacked++
			continue
		}
		ms = append(ms, float64(a.Sub(s).Microseconds())/1000)
	}
	slices.Sort(ms)
	return ms, unacked
}

// split divides the latencies of the keystrokes sent in [from, to) that
// came back at the server's "block written" moments (written: blockKey →
// Unix ns, from its debug log): typed → block handed to the relays (the
// way in: relay, arbiter, the guest's next poll, the block's flush), and
// handed → received (the way back: fan-out through the relay). Sorted, ms.
func (ty *typist) split(from, to time.Time, written map[int64]int64) (in, out []float64) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	for _, m := range ty.order {
		s, a := ty.sent[m], ty.acked[m]
		w, ok := written[ty.ackBlock[m]]
		if s.Before(from) || !s.Before(to) || a.IsZero() || !ok {
			continue
		}
		in = append(in, float64(w-s.UnixNano())/1e6)
		out = append(out, float64(a.UnixNano()-w)/1e6)
	}
	slices.Sort(in)
	slices.Sort(out)
	return in, out
}

// pct is the q quantile of sorted xs (0 if empty).
func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[int(q*float64(len(xs)-1)+0.5)]
}

// rssMB is a process's resident memory (VmRSS of /proc/PID/status), MB.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, _ := strconv.ParseFloat(f[0], 64)
			return kb / 1024
		}
	}
	return 0
}

// peakRSS samples processes' RSS every 250 ms until stop is called and
// returns each one's highest figure.
func peakRSS(pids ...int) (stop func() []float64) {
	peaks := make([]float64, len(pids))
	var mu sync.Mutex
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			mu.Lock()
			for i, p := range pids {
				peaks[i] = max(peaks[i], rssMB(p))
			}
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() []float64 {
		close(done)
		<-finished
		return peaks
	}
}

var (
	attackOnce sync.Once
	attackBin  string
	attackErr  error
)

// attackCmd builds e2e/attack (once) next to the other binaries.
func attackCmd(t testing.TB) string {
	t.Helper()
	attackOnce.Do(func() {
		attackBin = filepath.Join(binDir, "attack")
		out, err := exec.Command("go", "build", "-trimpath", "-o", attackBin, "./attack").CombinedOutput()
		if err != nil {
			attackErr = fmt.Errorf("go build ./e2e/attack: %v\n%s", err, out)
		}
	})
	if attackErr != nil {
		t.Fatal(attackErr)
	}
	return attackBin
}

// attackProc is a running attack command.
type attackProc struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	result chan string // its last stdout line, the JSON summary
	stderr *syncBuffer
}

func startAttack(t testing.TB, args ...string) *attackProc {
	t.Helper()
	a := &attackProc{ready: make(chan struct{}), result: make(chan string, 1), stderr: &syncBuffer{}}
	a.cmd = exec.Command(attackCmd(t), args...)
	a.cmd.Stderr = a.stderr
	out, _ := a.cmd.StdoutPipe()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Kill(); a.cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		last := ""
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "attack: ready") {
				close(a.ready)
				continue
			}
			last = sc.Text()
		}
		a.result <- last
	}()
	return a
}

// finish interrupts the attack (if interrupt) and returns its summary.
func (a *attackProc) finish(t testing.TB, interrupt bool, within time.Duration) attackSummary {
	t.Helper()
	if interrupt {
		a.cmd.Process.Signal(syscall.SIGINT)
	}
	var s attackSummary
	select {
	case line := <-a.result:
		a.cmd.Wait()
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("attack printed %q: %v\n%s", line, err, a.stderr.String())
		}
	case <-time.After(within):
		t.Fatalf("the attack did not finish within %v\n%s", within, a.stderr.String())
	}
	return s
}

// attackSummary is the attack command's JSON summary.
type attackSummary struct {
	Silent *hostileSummary `json:"silent"`
	Flood  *hostileSummary `json:"flood"`
	Joins  *struct {
		Accepted int            `json:"accepted"`
		Refused  map[string]int `json:"refused"`
		Failed   int            `json:"failed"`
		LastErr  string         `json:"last_err"`
		MaxUser  uint16         `json:"max_user"`
	} `json:"joins"`
	Pages *struct {
		Requests int            `json:"requests"`
		Status   map[string]int `json:"status"`
		Failed   int            `json:"failed"`
		LastErr  string         `json:"last_err"`
	} `json:"pages"`
	WallS float64 `json:"wall_s"`
}

type hostileSummary struct {
	Connected int            `json:"connected"`
	DialErr   int            `json:"dial_errors"`
	LastErr   string         `json:"last_err"`
	Sent      int64          `json:"inputs_sent"`
	Refused   int64          `json:"inputs_refused"`
	Closed    map[string]int `json:"closed"`
}

// cacheFigures reads the relay's page-cache size from its /metrics: the
// sum of replaydesk_relay_cache_* gauges whose name says bytes, and those
// whose name says entries (ok false when it exports none).
func cacheFigures(base string) (bytes, entries float64, okBytes, okEntries bool) {
	for _, l := range strings.Split(scrape(base), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.HasPrefix(f[0], "replaydesk_relay_cache_") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if strings.HasSuffix(name, "_total") || strings.Contains(name, "limit") || strings.Contains(name, "max") {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(name, "bytes"):
			bytes, okBytes = bytes+v, true
		case strings.HasSuffix(name, "entries"):
			entries, okEntries = entries+v, true
		}
	}
	return
}

// loggedMarkers reads a session directory's whole log and returns every
// marker with prefix found in its input_poll records.
func loggedMarkers(t testing.TB, dir, prefix string) map[string]bool {
	t.Helper()
	r, err := recordlog.Open(filepath.Join(dir, "log"), recordlog.ModuleHash{}, recordlog.ReaderOptions{})
	if err != nil {
		t.Fatalf("open the final log: %v", err)
	}
	defer r.Close()
	out := map[string]bool{}
	for {
		rec, err := r.Next(context.Background())
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, recordlog.ErrUnsealed) {
				t.Errorf("reading the final log: %v", err)
			}
			return out
		}
		if rec.Kind == recordlog.KindCall && rec.Fn == logInputPoll {
			for _, m := range findMarkers(rec.Data, prefix) {
				out[m] = true
			}
		}
	}
}

// lastBlock reads a session directory's log and returns its last data
// block's position and the markers with prefix in it.
func lastBlock(t testing.TB, dir, prefix string) (recordlog.Pos, []string) {
	t.Helper()
	var last recordlog.Pos
	r, err := recordlog.Open(filepath.Join(dir, "log"), recordlog.ModuleHash{}, recordlog.ReaderOptions{
		OnBlock: func(pos recordlog.Pos, block []byte) {
			if len(block) > 9 && block[4]&3 == 0 { // a data block, not NEXT or SEAL
				last = pos
			}
		},
	})
	if err != nil {
		t.Fatalf("open the log: %v", err)
	}
	defer r.Close()
	in := map[int64][]string{}
	for {
		rec, err := r.Next(context.Background())
		if err != nil {
			break // unsealed: the server is running (or was killed)
		}
		if rec.Kind == recordlog.KindCall && rec.Fn == logInputPoll {
			p := r.BlockPos()
			k := blockKey(p.Segment, p.Offset)
			in[k] = append(in[k], findMarkers(rec.Data, prefix)...)
		}
	}
	return last, in[blockKey(last.Segment, last.Offset)]
}
