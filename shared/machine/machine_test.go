package machine_test

import (
	"bytes"
	"context"
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
	"replaydesk/shared/endpoints"
	"replaydesk/shared/machine"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

var probeWasm []byte

// TestMain builds the probe guest once (the Go build cache makes repeats
// cheap). It needs the go command, which running these tests implies.
func TestMain(m *testing.M) {
	machine.RunPageServerIfChild()
	dir, err := os.MkdirTemp("", "probe")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "probe.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/probe")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		panic("building the probe guest: " + err.Error() + "\n" + string(b))
	}
	probeWasm, err = os.ReadFile(out)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memLog is an in-memory RecordSink and RecordSource.
type memLog struct {
	recs []recordlog.Record
	pos  int
}

func (l *memLog) Append(r recordlog.Record) error { l.recs = append(l.recs, r); return nil }
func (l *memLog) Next(context.Context) (recordlog.Record, error) {
	if l.pos >= len(l.recs) {
		return recordlog.Record{}, io.EOF
	}
	l.pos++
	return l.recs[l.pos-1], nil
}

const testBlocks = 16

func testDisk() []byte {
	d := make([]byte, testBlocks*abi.BlockSize)
	for i := range d {
		d[i] = byte(i * 7)
	}
	return d
}

func params(mode abi.DiskMode) machine.Params {
	p := machine.Params{VirtualClock: true, RealtimeBase: 1_700_000_000e9, CheckpointEvery: 10, MemCheckEvery: 3,
		DiskMode: mode, Endpoints: []string{"echo"}}
	if mode != abi.DiskNone {
		p.DiskBlocks = testBlocks
	}
	return p
}

func engine(t testing.TB) *machine.Engine {
	t.Helper()
	e, err := machine.NewEngine(context.Background(), probeWasm, machine.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

type recording struct {
	log       *memLog
	fbHash    uint64
	stateHash uint64
	steps     uint64
	console   string
	finalDisk []byte
}

func key(code abi.KeyCode, down bool) abi.Event {
	return abi.Event{Type: abi.EvKey, Code: code, Down: down, User: 1}
}

// record runs the probe for ticks ticks with some input, returning what a
// replay must reproduce.
func record(t *testing.T, e *machine.Engine, mode abi.DiskMode, ticks int, input map[int][]abi.Event) *recording {
	t.Helper()
	ctx := context.Background()
	rec := &recording{log: &memLog{}}
	var console bytes.Buffer
	disk := testDisk()
	m, err := machine.New(ctx, e, machine.Config{Mode: machine.Record, Params: params(mode), Sink: rec.log,
		Disk: disk, Net: endpoints.NewHost(), Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	for i := 0; i < ticks; i++ {
		m.Input(input[i]...)
		if _, err := m.Advance(ctx); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Checkpoint(true); err != nil {
		t.Fatal(err)
	}
	rec.fbHash, rec.stateHash, rec.steps = m.FramebufferHash(), m.StateHash(), m.Steps()
	rec.console, rec.finalDisk = console.String(), disk
	return rec
}

func replay(t *testing.T, e *machine.Engine, mode abi.DiskMode, log *memLog) (*machine.Machine, error) {
	t.Helper()
	ctx := context.Background()
	log.pos = 0
	m, err := machine.New(ctx, e, machine.Config{Mode: machine.Replay, Params: params(mode), Source: log, Disk: testDisk()})
	if err != nil {
		return nil, err
	}
	for {
		if _, err := m.ReplayNext(ctx); err != nil {
			if errors.Is(err, machine.ErrEndOfLog) {
				return m, nil
			}
			return m, err
		}
	}
}

func typing() map[int][]abi.Event {
	in := map[int][]abi.Event{}
	for i := 5; i < 200; i += 9 {
		k := abi.CodeKeyA + abi.KeyCode(i%18) // A..R: S, T and U steer the probe
		in[i] = []abi.Event{key(k, true), {Type: abi.EvText, Text: "x", User: 2}}
		in[i+2] = []abi.Event{key(k, false), {Type: abi.EvMove, X: int32(i), Y: -3, User: 1}}
	}
	return in
}

func TestRecordReplayBitIdentical(t *testing.T) {
	e := engine(t)
	for _, mode := range []abi.DiskMode{abi.DiskSnapshotted, abi.DiskReplayed} {
		t.Run(mode.String(), func(t *testing.T) {
			rec := record(t, e, mode, 240, typing())
			m, err := replay(t, e, mode, rec.log)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			if m.Steps() != rec.steps || m.FramebufferHash() != rec.fbHash || m.StateHash() != rec.stateHash {
				t.Fatalf("replay ended at step %d fb %x state %x; record %d %x %x", m.Steps(), m.FramebufferHash(), m.StateHash(), rec.steps, rec.fbHash, rec.stateHash)
			}
			st := m.Stats()
			if st.Checkpoints < 20 {
				t.Errorf("only %d checkpoints verified", st.Checkpoints)
			}
			if st.Calls[3] == 0 || st.Calls[0] == 0 || st.Calls[1] == 0 || st.Calls[5] == 0 || st.Calls[6] == 0 || st.Calls[7] == 0 {
				t.Errorf("some logged import was never replayed: %v", st.Calls)
			}
			if (mode == abi.DiskReplayed) != (st.Calls[4] > 0) {
				t.Errorf("disk reads logged %d times in %s mode", st.Calls[4], mode)
			}
			if !strings.Contains(rec.console, "probe: step") {
				t.Errorf("console output missing: %q", rec.console)
			}
			// Replayed mode writes the real disk when recording; snapshotted never does.
			changed := !bytes.Equal(rec.finalDisk, testDisk())
			if changed != (mode == abi.DiskReplayed) {
				t.Errorf("%s mode: real disk changed = %v", mode, changed)
			}
		})
	}
}

func TestLiveRunsDiffer(t *testing.T) {
	// Sanity: without the log, two runs really are different, so the replay
	// test above is not passing because the guest is deterministic anyway.
	e := engine(t)
	a := record(t, e, abi.DiskSnapshotted, 30, nil)
	b := record(t, e, abi.DiskSnapshotted, 30, nil)
	if a.stateHash == b.stateHash {
		t.Fatal("two live runs ended in the same state: random input is not reaching the guest")
	}
}

func TestDivergences(t *testing.T) {
	e := engine(t)
	rec := record(t, e, abi.DiskSnapshotted, 60, typing())
	find := func(pred func(r recordlog.Record) bool) int {
		for i, r := range rec.log.recs {
			if pred(r) {
				return i
			}
		}
		t.Fatal("record not found")
		return -1
	}
	firstStep := find(func(r recordlog.Record) bool { return r.Kind == recordlog.KindStep })
	cases := []struct {
		name   string
		mutate func(l *memLog)
		want   string
	}{
		{"argument", func(l *memLog) {
			i := find(func(r recordlog.Record) bool { return r.Kind == recordlog.KindCall && r.Fn == 3 })
			l.recs[i].Args[1]++
		}, "input_poll: argument 1"},
		{"clock reading", func(l *memLog) {
			for i := firstStep; i < len(l.recs); i++ {
				if r := l.recs[i]; r.Kind == recordlog.KindCall && r.Fn == 0 {
					l.recs[i].Data = []byte{0x40}
					return
				}
			}
		}, "divergence"},
		{"missing call", func(l *memLog) {
			i := find(func(r recordlog.Record) bool { return r.Kind == recordlog.KindCall && r.Fn == 6 })
			l.recs = append(l.recs[:i:i], l.recs[i+1:]...)
		}, "the guest called net_send, the log has net_recv"},
		{"extra call", func(l *memLog) {
			i := find(func(r recordlog.Record) bool { return r.Kind == recordlog.KindCall && r.Fn == 7 })
			l.recs = append(l.recs[:i+1:i+1], l.recs[i:]...)
		}, "more calls"},
		{"input", func(l *memLog) {
			for i := range l.recs {
				if r := l.recs[i]; r.Kind == recordlog.KindCall && r.Fn == 3 && r.Ret > 0 {
					d := append([]byte(nil), r.Data...)
					d[len(d)-1] ^= 1
					l.recs[i].Data = d
					return
				}
			}
		}, "hash"},
		{"checkpoint", func(l *memLog) {
			i := find(func(r recordlog.Record) bool { return r.Kind == recordlog.KindCheckpoint })
			l.recs[i].FBHash ^= 1
		}, "framebuffer hash"},
		{"idle", func(l *memLog) {
			l.recs = append([]recordlog.Record{{Kind: recordlog.KindIdle, N: 1}}, l.recs...)
		}, "divergence"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &memLog{}
			for _, r := range rec.log.recs {
				r.Args = append([]uint64(nil), r.Args...)
				l.recs = append(l.recs, r)
			}
			c.mutate(l)
			m, err := replay(t, e, abi.DiskSnapshotted, l)
			if m != nil {
				defer m.Close(context.Background())
			}
			var d *machine.Divergence
			if !errors.As(err, &d) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want a divergence mentioning %q, got %v", c.want, err)
			}
			t.Log(err)
		})
	}
}

func TestIdleTicksAreCompressed(t *testing.T) {
	e := engine(t)
	in := map[int][]abi.Event{10: {key(abi.CodeKeyS, true)}}
	rec := record(t, e, abi.DiskNone, 300, in)
	var steps, idle uint64
	for _, r := range rec.log.recs {
		switch r.Kind {
		case recordlog.KindStep:
			steps++
		case recordlog.KindIdle:
			idle += r.N
		}
	}
	if steps+idle != 300 || steps > 50 || steps != rec.steps {
		t.Fatalf("steps %d + idle ticks %d, want 300 ticks with the guest mostly asleep (machine says %d steps)", steps, idle, rec.steps)
	}
	m, err := replay(t, e, abi.DiskNone, rec.log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if m.Ticks() != 300 || m.StateHash() != rec.stateHash {
		t.Fatalf("replay reached tick %d, state %x; want 300, %x", m.Ticks(), m.StateHash(), rec.stateHash)
	}
}

func TestSleepUntilEventWakesOnInput(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	m := liveMachine(t, e)
	m.Input(key(abi.CodeKeyU, true))
	if ran, err := m.Advance(ctx); !ran || err != nil {
		t.Fatal(ran, err)
	}
	for i := 0; i < 50; i++ {
		if ran, _ := m.Advance(ctx); ran {
			t.Fatalf("guest ran at tick %d while asleep until an event", m.Ticks())
		}
	}
	m.Input(key(abi.CodeKeyU, false))
	if ran, err := m.Advance(ctx); !ran || err != nil {
		t.Fatalf("input did not wake the guest: %v %v", ran, err)
	}
}

func TestGuestErrorIsReportedNotHidden(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	m := liveMachine(t, e)
	m.Input(key(abi.CodeKeyT, true))
	_, err := m.Advance(ctx)
	var ge *machine.GuestError
	if !errors.As(err, &ge) || !strings.Contains(err.Error(), "present: bad size") {
		t.Fatalf("want a guest error about present, got %v", err)
	}
	if _, err2 := m.Advance(ctx); err2 == nil {
		t.Fatal("a failed machine kept running")
	}
}

func TestSnapshotRestoreReplay(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	log, snap, snapIdx, snapState, final := snapshotMidway(t, e)

	// Through the file format and back, as another process would read it.
	var buf bytes.Buffer
	if err := snapshot.Write(&buf, snap); err != nil {
		t.Fatal(err)
	}
	snap2, err := snapshot.Decode(buf.Bytes(), e.Hash(), "test")
	if err != nil {
		t.Fatal(err)
	}
	log.pos = snapIdx
	r, err := machine.Restore(ctx, e, machine.Config{Mode: machine.Replay, Params: params(abi.DiskSnapshotted), Source: log, Disk: testDisk()}, snap2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if got := r.StateHash(); got != snapState {
		t.Fatalf("restored state %x, snapshot was taken at %x", got, snapState)
	}
	// Snapshotting the restored machine gives the same device state: the
	// overlay keeps the order its blocks were first written in.
	if again, err := r.Snapshot(); err != nil || !bytes.Equal(again.Device, snap.Device) {
		t.Fatalf("the restored machine's device state differs from the snapshot's (%v)", err)
	}
	for {
		if _, err := r.ReplayNext(ctx); err != nil {
			if errors.Is(err, machine.ErrEndOfLog) {
				break
			}
			t.Fatal(err)
		}
	}
	if r.StateHash() != final || r.Ticks() != 200 {
		t.Fatalf("replay from the snapshot ended at tick %d in state %x, the recorder at 200 in %x", r.Ticks(), r.StateHash(), final)
	}
}

func TestSnapshotOfAnotherModuleIsRefused(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	m := liveMachine(t, e)
	s, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s.ModuleHash[0] ^= 1
	_, err = machine.Restore(ctx, e, machine.Config{Mode: machine.Live, Params: params(abi.DiskNone)}, s)
	var mm *snapshot.ModuleMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("want a module mismatch, got %v", err)
	}
}

// A snapshot taken in the background while the guest runs equals a
// stop-the-world copy taken at the same step, byte for byte.
func TestBackgroundSnapshotEqualsStopTheWorld(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	// The probe writes a disk block each step (16 blocks): after 20 steps
	// every block is in the overlay and the guest rewrites some while the
	// copy runs; after 3 it also writes blocks for the first time.
	for _, before := range []int{20, 3} {
		t.Run(fmt.Sprint(before), func(t *testing.T) {
			m, err := machine.New(ctx, e, machine.Config{Mode: machine.Live, Params: params(abi.DiskSnapshotted),
				Disk: testDisk(), Net: endpoints.NewHost()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			in := typing()
			for i := 0; i < before; i++ {
				m.Input(in[i]...)
				m.Advance(ctx)
			}
			p, err := m.StartSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			steps := 0
			// The guest keeps running while pages are copied (a few steps
			// at least, so that it writes memory and disk meanwhile).
			for ; steps < 4 || !p.Ready(); steps++ {
				if steps > 10000 {
					t.Fatal("the background snapshot never became ready")
				}
				m.Input(in[20+steps%150]...)
				if _, err := m.Advance(ctx); err != nil {
					t.Fatal(err)
				}
			}
			bg, st, err := p.Finish()
			if err != nil {
				t.Fatal(err)
			}
			stw, err := m.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if !st.Background {
				t.Fatalf("not a background snapshot (%s): this test needs userfaultfd", st.Fallback)
			}
			if !bytes.Equal(bg.Memory, stw.Memory) || !bytes.Equal(bg.Device, stw.Device) || fmt.Sprint(bg.Globals) != fmt.Sprint(stw.Globals) {
				t.Fatal("the background snapshot differs from a stop-the-world copy at the same step")
			}
			// The overlay was copied in the background: only blocks the
			// guest wrote meanwhile (one a step) were copied at the stall.
			if st.OverlayBlocks != min(before+steps, testBlocks) || st.OverlayStallBlocks == 0 || st.OverlayStallBlocks > steps {
				t.Fatalf("overlay: %d blocks, %d copied at the stall, after %d steps", st.OverlayBlocks, st.OverlayStallBlocks, steps)
			}
			t.Logf("%d steps ran during %d rounds (pages per round %v); stall %v for %d pages and %d of %d overlay blocks",
				steps, st.Rounds, st.Copied, st.Stall, st.StallPages, st.OverlayStallBlocks, st.OverlayBlocks)
		})
	}
}

// snapshotMidway records 200 ticks of the probe with a snapshot after tick
// 60; it returns the log, the snapshot, the log index it continues from, the
// state hash at the snapshot and the final state hash.
func snapshotMidway(t *testing.T, e *machine.Engine) (log *memLog, snap *snapshot.Snapshot, idx int, snapState, final uint64) {
	t.Helper()
	ctx := context.Background()
	log = &memLog{}
	m, err := machine.New(ctx, e, machine.Config{Mode: machine.Record, Params: params(abi.DiskSnapshotted), Sink: log,
		Disk: testDisk(), Net: endpoints.NewHost()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	in := typing()
	for i := 0; i < 200; i++ {
		m.Input(in[i]...)
		if _, err := m.Advance(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 59 {
			m.Sync()
			if snap, err = m.Snapshot(); err != nil {
				t.Fatal(err)
			}
			idx, snapState = len(log.recs), m.StateHash()
		}
	}
	m.Sync()
	m.Checkpoint(true)
	return log, snap, idx, snapState, m.StateHash()
}

// Lazy and eager restores replay to identical hashes.
func TestLazyRestoreReplaysLikeEager(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	log, snap, idx, _, final := snapshotMidway(t, e)
	cfg := machine.Config{Mode: machine.Replay, Params: params(abi.DiskSnapshotted), Source: log, Disk: testDisk()}
	log.pos = idx
	m, err := machine.RestoreLazy(ctx, e, cfg, snap, machine.LazyOptions{Readahead: machine.DefaultReadahead})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	for {
		if _, err := m.ReplayNext(ctx); err != nil {
			if errors.Is(err, machine.ErrEndOfLog) {
				break
			}
			t.Fatal(err)
		}
	}
	if m.StateHash() != final {
		t.Fatalf("lazy replay ended in state %x, the recorder in %x", m.StateHash(), final)
	}
	st, ok := m.LazyStats()
	if !ok || st.Faults == 0 || st.ServedByFault+st.ServedByReadahead == 0 || st.ServedByFault > st.Pages {
		t.Fatalf("paging stats %+v", st)
	}
	// The log's memory checkpoints hash every page: the machine completed
	// the restore in bulk before the first one, and the server is gone.
	if st.Served() != st.Pages || st.ServedByComplete == 0 || m.PageServerPid() != 0 {
		t.Fatalf("a memory checkpoint did not complete the lazy restore: %v, server pid %d", st, m.PageServerPid())
	}
	t.Logf("pages %d (non-zero %d): %d faults, %d served by fault, %d by read-ahead, %d to complete; service p50 %v p99 %v",
		st.Pages, st.DataPages, st.Faults, st.ServedByFault, st.ServedByReadahead, st.ServedByComplete, st.ServiceP50, st.ServiceP99)
}

// The page server dying mid-replay is a clear error, not a hang and not a
// silent replay on zero-filled memory.
func TestLazyRestorePageServerDeath(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	log, snap, idx, _, _ := snapshotMidway(t, e)
	log.pos = idx
	m, err := machine.RestoreLazy(ctx, e, machine.Config{Mode: machine.Replay, Params: params(abi.DiskSnapshotted), Source: log, Disk: testDisk()},
		snap, machine.LazyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if _, err := m.ReplayNext(ctx); err != nil { // a few pages in
		t.Fatal(err)
	}
	p, err := os.FindProcess(m.PageServerPid())
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := m.ReplayNext(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !strings.Contains(err.Error(), "page server died") {
			t.Fatalf("want the page server's death reported, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("replay hung after the page server died")
	}
}

// blocks is a BlockSource over an image that can be told to fail.
type blocks struct {
	img   []byte
	reads int
	fail  bool
}

func (b *blocks) Block(n uint64) ([]byte, error) {
	if b.fail {
		return nil, errors.New("network unreachable")
	}
	b.reads++
	return b.img[n*abi.BlockSize : (n+1)*abi.BlockSize], nil
}

// A replayer may get the snapshotted disk's frozen blocks on demand; a
// block that cannot be delivered stops the machine, never a silent guess.
func TestDiskBlocksOnDemand(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	rec := record(t, e, abi.DiskSnapshotted, 60, typing())
	for _, fail := range []bool{false, true} {
		src := &blocks{img: testDisk(), fail: fail}
		rec.log.pos = 0
		m, err := machine.New(ctx, e, machine.Config{Mode: machine.Replay, Params: params(abi.DiskSnapshotted), Source: rec.log, DiskSource: src})
		if err == nil {
			for err == nil {
				_, err = m.ReplayNext(ctx)
			}
			defer m.Close(ctx)
		}
		if !fail && (!errors.Is(err, machine.ErrEndOfLog) || src.reads == 0 || m.StateHash() != rec.stateHash) {
			t.Fatalf("on-demand disk: %v after %d block reads", err, src.reads)
		}
		if fail && (err == nil || !strings.Contains(err.Error(), "network unreachable") || !strings.Contains(err.Error(), "disk block")) {
			t.Fatalf("a failing block source: %v", err)
		}
	}
}

// liveMachine is a probe machine in live mode without a disk, closed with
// the test.
func liveMachine(t *testing.T, e *machine.Engine) *machine.Machine {
	t.Helper()
	m, err := machine.New(context.Background(), e, machine.Config{Mode: machine.Live, Params: params(abi.DiskNone)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// A machine that replayed its log to the end goes on recording into the
// same log (a live server's restart): the whole log then replays as one.
func TestContinueRecordingAfterReplay(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	mode := abi.DiskSnapshotted
	rec := record(t, e, mode, 120, typing())
	m, err := replay(t, e, mode, rec.log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	if m.StateHash() != rec.stateHash {
		t.Fatal("the replay did not reach the recorded state")
	}
	if err := m.ContinueRecording(rec.log, endpoints.NewHost()); err != nil {
		t.Fatal(err)
	}
	if m.Mode() != machine.Record {
		t.Fatalf("mode %v after ContinueRecording", m.Mode())
	}
	if err := m.ContinueRecording(rec.log, nil); err == nil {
		t.Fatal("ContinueRecording in record mode was accepted")
	}
	in := typing()
	for i := 120; i < 240; i++ {
		m.Input(in[i]...)
		if _, err := m.Advance(ctx); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Checkpoint(true); err != nil {
		t.Fatal(err)
	}
	whole, err := replay(t, e, mode, rec.log)
	if err != nil {
		t.Fatalf("replaying across the continuation: %v", err)
	}
	defer whole.Close(ctx)
	if whole.Ticks() != 240 || whole.StateHash() != m.StateHash() || whole.FramebufferHash() != m.FramebufferHash() {
		t.Fatalf("replay ended at tick %d state %x; the continued recording at tick %d state %x",
			whole.Ticks(), whole.StateHash(), m.Ticks(), m.StateHash())
	}
}
