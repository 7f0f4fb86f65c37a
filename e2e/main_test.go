// Package e2e tests replaydesk across real processes: it builds the server,
// relay and client commands and the test guests once, then drives them as a user
// would. It also holds the benchmark suite (bench_test.go).
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"replaydesk/shared/machine"
)

var (
	binDir    string
	serverBin string
	clientBin string
	relayBin  string // the standalone relay (the live fault tests restart it)
	bigmem    []byte // the 64 MiB benchmark guest
)

func TestMain(m *testing.M) {
	machine.RunPageServerIfChild()
	var err error
	binDir, err = os.MkdirTemp("", "replaydesk-e2e")
	if err != nil {
		panic(err)
	}
	serverBin = filepath.Join(binDir, "server")
	clientBin = filepath.Join(binDir, "client")
	relayBin = filepath.Join(binDir, "relay")
	build := func(env []string, args ...string) {
		cmd := exec.Command("go", append([]string{"build", "-trimpath"}, args...)...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			panic("go build " + args[len(args)-1] + ": " + err.Error() + "\n" + string(out))
		}
	}
	build(nil, "-o", serverBin, "./server")
	build(nil, "-o", clientBin, "./client")
	build(nil, "-o", relayBin, "./relay")
	build([]string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared", "-o", filepath.Join(binDir, "bigmem.wasm"), "./e2e/testdata/bigmem")
	if bigmem, err = os.ReadFile(filepath.Join(binDir, "bigmem.wasm")); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// run runs a command and returns stdout, stderr and the exit code.
func run(t testing.TB, env []string, bin string, args ...string) ([]byte, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return out.Bytes(), errb.String(), code
}

type recordResult struct {
	Steps              uint64    `json:"steps"`
	Ticks              uint64    `json:"ticks"`
	LogBytes           int64     `json:"log_bytes"`
	LogBytesPerS       float64   `json:"log_bytes_per_s"`
	Snapshots          int       `json:"snapshots"`
	SnapshotStallMs    []float64 `json:"snapshot_stall_ms"`
	SnapshotTicks      []uint64  `json:"snapshot_ticks"`
	SnapshotWaitMs     []float64 `json:"snapshot_wait_ms"`
	SnapshotLatencyMs  []float64 `json:"snapshot_latency_ms"`
	SnapshotBackground bool      `json:"snapshot_background"`
	InputEvents        int       `json:"input_events"`
	FinalFBHash        string    `json:"final_fb_hash"`
	FinalStateHash     string    `json:"final_state_hash"`
	StepMsMedian       float64   `json:"step_ms_median"`
	StepMsP99          float64   `json:"step_ms_p99"`
	WallS              float64   `json:"wall_s"`
}

type replayResult struct {
	Steps          uint64  `json:"steps"`
	Ticks          uint64  `json:"ticks"`
	Checkpoints    uint64  `json:"checkpoints"`
	Divergences    int     `json:"divergences"`
	Divergence     string  `json:"divergence"`
	FinalFBHash    string  `json:"final_fb_hash"`
	FinalStateHash string  `json:"final_state_hash"`
	Frames         int     `json:"frames"`
	WallS          float64 `json:"wall_s"`
	RestoreMs      float64 `json:"restore_ms"`
}

// record runs `server record` and decodes its result; it fails the test on
// a non-zero exit.
func record(t testing.TB, args ...string) recordResult {
	t.Helper()
	out, stderr, code := run(t, nil, serverBin, append([]string{"record"}, args...)...)
	if code != 0 {
		t.Fatalf("server record %v: exit %d\n%s", args, code, stderr)
	}
	var r recordResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("server record printed %q: %v", out, err)
	}
	return r
}

func replay(t testing.TB, env []string, args ...string) (replayResult, string, int) {
	t.Helper()
	out, stderr, code := run(t, env, clientBin, append([]string{"replay"}, args...)...)
	var r replayResult
	if len(out) > 0 {
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("client replay printed %q: %v", out, err)
		}
	}
	return r, stderr, code
}

func init() {
	// The guests are single-threaded; the tests set GOMAXPROCS for the
	// child processes they check, not for themselves.
	_ = runtime.GOMAXPROCS(0)
}

func jsonErr(b []byte, v any) error { return json.Unmarshal(b, v) }
