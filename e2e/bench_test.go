package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"replaydesk/server/images"
	"replaydesk/shared/abi"
	"replaydesk/shared/machine"
	"replaydesk/shared/snapshot"
)

// The benchmark suite for guest ABI v1 and the machine. Run it with
//
//	go test ./e2e -run '^$' -bench . -benchtime 1x -count 5
//
// and compare medians (benchstat); these machines are noisy.

// BenchmarkTestcardStep: the cost of a busy step of the test card
// (animation on, so every tick runs step and repaints).
func BenchmarkTestcardStep(b *testing.B) {
	img, err := images.Lookup("testcard")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e, err := machine.NewEngine(ctx, img.Wasm, machine.EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	p := machine.Params{VirtualClock: true, DiskMode: abi.DiskSnapshotted, DiskBlocks: uint64(len(img.Disk) / abi.BlockSize), Endpoints: img.Endpoints}
	m, err := machine.New(ctx, e, machine.Config{Mode: machine.Live, Params: p, Disk: img.Disk})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	m.Input(abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: true, User: 1}, abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, User: 1})
	for range 120 { // warm up: JIT, heap growth
		m.Advance(ctx)
	}
	// Each op is 600 ticks (10 s of animation); the metrics are per step.
	var all []time.Duration
	for b.Loop() {
		for range 600 {
			t0 := time.Now()
			ran, err := m.Advance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if !ran {
				b.Fatal("a tick without a step: the animation is not busy")
			}
			all = append(all, time.Since(t0))
		}
	}
	slices.Sort(all)
	ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "step-ms-p50")
	b.ReportMetric(ms(0.99), "step-ms-p99")
}

// typingScript writes steady typing: five keystrokes a second for d seconds.
func typingScript(b *testing.B, seconds int) string {
	var sb strings.Builder
	for i := 0; i < seconds*5; i++ {
		t := float64(i) / 5
		code := fmt.Sprintf("Key%c", 'A'+i%26)
		fmt.Fprintf(&sb, `{"t":%.2f,"user":"typist","type":"key","code":"%s","down":true}`+"\n", t, code)
		fmt.Fprintf(&sb, `{"t":%.2f,"user":"typist","type":"text","text":"%c"}`+"\n", t, 'a'+i%26)
		fmt.Fprintf(&sb, `{"t":%.2f,"user":"typist","type":"key","code":"%s","down":false}`+"\n", t+0.08, code)
	}
	p := filepath.Join(b.TempDir(), "typing.jsonl")
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkLogRate records 60 s of virtual time of the test card and
// reports log bytes per second: idle, and under steady typing. Goal for
// idle: under 200 B/s (the paper's idle VM logged 1,700).
func BenchmarkLogRate(b *testing.B) {
	for _, c := range []struct {
		name  string
		input bool
	}{{"idle", false}, {"typing", true}} {
		b.Run(c.name, func(b *testing.B) {
			args := []string{"--image", "testcard", "--duration", "60s"}
			if c.input {
				args = append(args, "--input", typingScript(b, 60))
			}
			var r recordResult
			for i := 0; b.Loop(); i++ {
				r = record(b, append(args, "--out", filepath.Join(b.TempDir(), fmt.Sprint(i)))...)
			}
			b.ReportMetric(r.LogBytesPerS, "log-B/s")
			b.ReportMetric(float64(r.Steps)/60, "steps/s")
			b.ReportMetric(r.StepMsMedian, "step-ms-p50")
			b.ReportMetric(r.StepMsP99, "step-ms-p99")
		})
	}
}

func bigmemMachine(b *testing.B) (*machine.Engine, *machine.Machine) {
	ctx := context.Background()
	e, err := machine.NewEngine(ctx, bigmem, machine.EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := machine.New(ctx, e, machine.Config{Mode: machine.Live, Params: machine.Params{VirtualClock: true}})
	if err != nil {
		b.Fatal(err)
	}
	for range 10 {
		if _, err := m.Advance(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if mb := m.MemorySize() >> 20; mb < 60 || mb > 80 {
		b.Fatalf("bigmem has %d MiB of memory, want about 64", mb)
	}
	return e, m
}

// BenchmarkSnapshot64MiB: stop-the-world capture of ~64 MiB of guest
// memory, globals and device state (the eager path; background snapshots
// come with the page service).
func BenchmarkSnapshot64MiB(b *testing.B) {
	ctx := context.Background()
	e, m := bigmemMachine(b)
	defer e.Close(ctx)
	defer m.Close(ctx)
	b.SetBytes(int64(m.MemorySize()))
	for b.Loop() {
		if _, err := m.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestore64MiB: eager restore of that snapshot into a new
// instance, checked against the original's state hash.
func BenchmarkRestore64MiB(b *testing.B) {
	ctx := context.Background()
	e, m := bigmemMachine(b)
	defer e.Close(ctx)
	defer m.Close(ctx)
	s, err := m.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	want := m.StateHash()
	b.SetBytes(int64(len(s.Memory)))
	for b.Loop() {
		r, err := machine.Restore(ctx, e, machine.Config{Mode: machine.Live, Params: machine.Params{VirtualClock: true}}, s)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := r.StateHash(); got != want {
			b.Fatalf("restored state %x, want %x", got, want)
		}
		r.Close(ctx)
		b.StartTimer()
	}
}

// BenchmarkSnapshotFile64MiB: writing the snapshot file (zero pages elided).
func BenchmarkSnapshotFile64MiB(b *testing.B) {
	ctx := context.Background()
	e, m := bigmemMachine(b)
	defer e.Close(ctx)
	defer m.Close(ctx)
	s, err := m.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "s.snap")
	b.SetBytes(int64(len(s.Memory)))
	for b.Loop() {
		if err := snapshot.WriteFile(p, s); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := os.Stat(p)
	b.ReportMetric(float64(st.Size())/(1<<20), "file-MiB")
}
