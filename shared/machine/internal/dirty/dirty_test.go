//go:build linux

package dirty

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

func requireUffd(t *testing.T) {
	t.Helper()
	have, err := uffd.Supported()
	if err == nil && have&features != features {
		err = errors.New("kernel lacks WP_ASYNC or WP_UNPOPULATED")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("userfaultfd unavailable in CI: %v", err)
		}
		t.Skipf("userfaultfd unavailable on this machine: %v", err)
	}
}

// mmapRegion maps a guest-memory-like region: private anonymous, 4 KiB
// pages, populated so that copies do not measure first-touch faults.
func mmapRegion(t testing.TB, size int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	if err := unix.Madvise(b, unix.MADV_POPULATE_WRITE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func fillRandom(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(b); i += 8 {
		*(*uint64)(unsafe.Pointer(&b[i])) = r.Uint64()
	}
}

func TestTrackerReportsWrittenPages(t *testing.T) {
	requireUffd(t)
	region := mmapRegion(t, 256*PageSize)
	tr, err := New(region)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if n, err := tr.Scan(func(int, int) {}); err != nil || n != 0 {
		t.Fatalf("scan right after New: %d pages, %v", n, err)
	}
	written := []int{0, 1, 2, 17, 100, 255}
	for _, p := range written {
		region[p*PageSize+p] = 0xAB
	}
	_ = region[50*PageSize] // reads are not writes
	var got []int
	n, err := tr.Scan(func(first, count int) {
		for q := first; q < first+count; q++ {
			got = append(got, q)
		}
	})
	if err != nil || n != len(written) {
		t.Fatalf("scan: %d pages, %v; want %d", n, err, len(written))
	}
	for i := range written {
		if got[i] != written[i] {
			t.Fatalf("written pages %v, want %v", got, written)
		}
	}
	region[7*PageSize] = 1
	if err := tr.Reset(); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.Scan(func(int, int) {}); n != 0 {
		t.Fatalf("scan after Reset: %d pages, want 0", n)
	}
}

// fakeSource reports scripted dirty sets, for the pure algorithm.
type fakeSource struct {
	resets int
	scans  [][]int // dirty pages reported by successive scans
}

func (f *fakeSource) Reset() error { f.resets++; return nil }
func (f *fakeSource) Scan(fn func(int, int)) (int, error) {
	if len(f.scans) == 0 {
		return 0, nil
	}
	s := f.scans[0]
	f.scans = f.scans[1:]
	for _, p := range s {
		fn(p, 1)
	}
	return len(s), nil
}

func pagesN(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestPreCopyAlgorithm(t *testing.T) {
	const pages = 4096
	src, dst := make([]byte, pages*PageSize), make([]byte, pages*PageSize)
	fs := &fakeSource{scans: [][]int{pagesN(3000), pagesN(2100), {5, 9, 4000}, {9, 10}}}
	p, err := NewPreCopy(src, dst, fs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Final(); err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	// Round 1 copies everything; each next round the previous round's
	// dirty set; Final the union of the last round's set and the final scan.
	wantCopied, wantDirtied := []int{pages, 3000, 2100}, []int{3000, 2100, 3}
	if fs.resets != 1 || s.Rounds != 3 || !s.Converged || s.FinalPages != 4 {
		t.Fatalf("stats %+v, resets %d", s, fs.resets)
	}
	for i := range wantCopied {
		if s.Copied[i] != wantCopied[i] || s.Dirtied[i] != wantDirtied[i] {
			t.Fatalf("copied %v dirtied %v, want %v %v", s.Copied, s.Dirtied, wantCopied, wantDirtied)
		}
	}
	if _, err := p.Round(); !errors.Is(err, ErrFinished) {
		t.Fatalf("Round after Final: %v", err)
	}

	// Never converging: ErrTooManyRounds at exactly MaxRounds.
	fs = &fakeSource{}
	for range 40 {
		fs.scans = append(fs.scans, pagesN(2048))
	}
	p, _ = NewPreCopy(src, dst, fs, Config{})
	err = p.Run(context.Background())
	if !errors.Is(err, ErrTooManyRounds) || p.Stats().Rounds != DefaultMaxRounds {
		t.Fatalf("Run = %v after %d rounds, want ErrTooManyRounds after %d", err, p.Stats().Rounds, DefaultMaxRounds)
	}

	// No tracker: Final is a stop-and-copy.
	src[123] = 7
	p, _ = NewPreCopy(src, dst, nil, Config{})
	if _, err := p.Round(); err == nil {
		t.Fatal("Round without a tracker succeeded")
	}
	if err := p.Final(); err != nil || !bytes.Equal(src, dst) || p.Stats().FinalPages != pages {
		t.Fatalf("stop-and-copy: %v, equal %v, %d pages", err, bytes.Equal(src, dst), p.Stats().FinalPages)
	}
}

// Refresh, after convergence, re-copies what was written since the last
// round, so Final is left with only the latest writes; it refuses to run
// before convergence and after Final, and never counts towards MaxRounds.
func TestPreCopyRefresh(t *testing.T) {
	const pages = 4096
	src, dst := make([]byte, pages*PageSize), make([]byte, pages*PageSize)
	fs := &fakeSource{scans: [][]int{pagesN(3000)}}
	p, _ := NewPreCopy(src, dst, fs, Config{MaxRounds: 2})
	if _, err := p.Refresh(); err == nil {
		t.Fatal("Refresh before any round succeeded")
	}
	fs.scans = [][]int{pagesN(1500), pagesN(1000), {7, 8}, {8}}
	if err := p.Run(context.Background()); err != nil { // round 1 copies all, 1500 dirty: converged
		t.Fatal(err)
	}
	for range 2 { // copies 1500, then 1000; MaxRounds 2 is not hit
		if _, err := p.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Final(); err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	if s.Refreshes != 2 || s.Refreshed != 2500 || s.FinalPages != 2 { // {7, 8} ∪ {8}
		t.Fatalf("stats %+v", s)
	}
	if _, err := p.Refresh(); !errors.Is(err, ErrFinished) {
		t.Fatalf("Refresh after Final: %v", err)
	}
}

func TestCopySetRuns(t *testing.T) {
	const pages = 200
	src, dst := make([]byte, pages*PageSize), make([]byte, pages*PageSize)
	fillRandom(src, 1)
	p, _ := NewPreCopy(src, dst, nil, Config{})
	set := make([]uint64, 4)
	want := map[int]bool{}
	for _, q := range []int{0, 1, 63, 64, 65, 127, 128, 190, 199} {
		set[q/64] |= 1 << (q % 64)
		want[q] = true
	}
	if n := copySet(p, set); n != len(want) {
		t.Fatalf("copied %d pages, want %d", n, len(want))
	}
	for q := 0; q < pages; q++ {
		same := bytes.Equal(src[q*PageSize:(q+1)*PageSize], dst[q*PageSize:(q+1)*PageSize])
		if same != want[q] {
			t.Fatalf("page %d copied=%v, want %v", q, same, want[q])
		}
	}
}

// stepper imitates a VM: each step writes random pages (8 bytes each, so a
// copy racing with it can be torn) and holds mu while it runs, so the test
// can stop it between two steps like the machine does.
type stepper struct {
	mu           sync.Mutex
	region       []byte
	pagesPerStep int
	pause        time.Duration
	stop         atomic.Bool
	steps        atomic.Int64
	done         chan struct{}
}

func (s *stepper) start(seed uint64) {
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		r := rand.New(rand.NewPCG(seed, 1))
		pages := len(s.region) / PageSize
		for !s.stop.Load() {
			s.mu.Lock()
			for range s.pagesPerStep {
				off := r.IntN(pages)*PageSize + 8*r.IntN(PageSize/8)
				*(*uint64)(unsafe.Pointer(&s.region[off])) = r.Uint64()
			}
			s.steps.Add(1)
			s.mu.Unlock()
			time.Sleep(s.pause)
		}
	}()
}

func (s *stepper) halt() { s.stop.Store(true); <-s.done }

func logStats(t *testing.T, s Stats) {
	t.Helper()
	t.Logf("rounds %d, pages copied per round %v, dirtied per round %v, round times %v; final: %d pages in %v",
		s.Rounds, s.Copied, s.Dirtied, s.RoundTimes, s.FinalPages, s.FinalTime)
}

// TestPreCopyWhileWriting is the asynchronous snapshot end to end on a
// 64 MiB region: pre-copy runs on one goroutine while another keeps
// writing random pages (~250 pages per 1 ms step, like the spike's guest);
// Final runs between two steps; the copy must equal the memory.
func TestPreCopyWhileWriting(t *testing.T) {
	requireUffd(t)
	const size = 64 << 20
	src, dst := mmapRegion(t, size), mmapRegion(t, size)
	fillRandom(src, 2)
	tr, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	w := &stepper{region: src, pagesPerStep: 250, pause: time.Millisecond}
	w.start(3)
	defer w.halt()

	p, err := NewPreCopy(src, dst, tr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock() // the VM is between two steps
	err = p.Final()
	equal := bytes.Equal(src, dst)
	w.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	logStats(t, s)
	t.Logf("writer ran %d steps", w.steps.Load())
	if !equal {
		t.Fatal("destination differs from the source after Final")
	}
	if s.Rounds < 1 || s.FinalPages >= DefaultStopBelow*2 {
		t.Fatalf("unexpected stats %+v", s)
	}
}

func TestPreCopyIdleConvergesInOneRound(t *testing.T) {
	requireUffd(t)
	const size = 64 << 20
	src, dst := mmapRegion(t, size), mmapRegion(t, size)
	fillRandom(src, 4)
	tr, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p, _ := NewPreCopy(src, dst, tr, Config{})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Final(); err != nil {
		t.Fatal(err)
	}
	s := p.Stats()
	logStats(t, s)
	if s.Rounds != 1 || s.Dirtied[0] != 0 || s.FinalPages != 0 || !bytes.Equal(src, dst) {
		t.Fatalf("idle region: %+v, equal %v", s, bytes.Equal(src, dst))
	}
}

// TestPreCopyGivesUp: a writer that dirties more than 2048 distinct pages
// during every round never converges. The writes happen between rounds
// (not concurrently) so that every round's dirty set is exactly 2100
// pages whatever the machine's speed.
func TestPreCopyGivesUp(t *testing.T) {
	requireUffd(t)
	const size = 16 << 20
	src, dst := mmapRegion(t, size), mmapRegion(t, size)
	tr, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p, _ := NewPreCopy(src, dst, tr, Config{})
	r := rand.New(rand.NewPCG(5, 5))
	pages := size / PageSize
	var roundErr error
	for round := 1; round <= 40 && roundErr == nil; round++ {
		if round > 1 { // round 1's Reset would forget writes made before it
			for _, q := range r.Perm(pages)[:2100] {
				src[q*PageSize] ^= 1
			}
		}
		var dirty int
		dirty, roundErr = p.Round()
		if round > 1 && roundErr == nil && dirty < DefaultStopBelow {
			t.Fatalf("round %d: only %d dirty pages", round, dirty)
		}
	}
	if !errors.Is(roundErr, ErrTooManyRounds) || p.Stats().Rounds != DefaultMaxRounds {
		t.Fatalf("got %v after %d rounds, want ErrTooManyRounds after %d", roundErr, p.Stats().Rounds, DefaultMaxRounds)
	}
}

// TestNewNotPermitted forces the fallback path for real: a child test
// process installs a seccomp filter that refuses userfaultfd(2) and
// /dev/userfaultfd's USERFAULTFD_IOC_NEW with EPERM, as a kernel with
// vm.unprivileged_userfaultfd=0 does for non-root users.
func TestNewNotPermitted(t *testing.T) {
	if os.Getenv("DIRTY_TEST_DENY_UFFD") == "1" {
		if err := denyUserfaultfd(); err != nil {
			t.Fatalf("installing the seccomp filter: %v", err)
		}
		region := mmapRegion(t, 16*PageSize)
		tr, err := New(region)
		if !errors.Is(err, ErrNotPermitted) || !errors.Is(err, unix.EPERM) {
			if tr != nil {
				tr.Close()
			}
			t.Fatalf("New with userfaultfd denied: %v; want ErrNotPermitted wrapping EPERM", err)
		}
		t.Logf("New: %v", err)
		return
	}
	if auditArch() == 0 {
		t.Skipf("no seccomp audit arch known for %s; the errno mapping is covered by uffd.TestErrnoMapping", runtime.GOARCH)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNewNotPermitted$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "DIRTY_TEST_DENY_UFFD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestNewNotPermitted")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child with userfaultfd denied by seccomp:\n%s", out)
}

func auditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	return 0
}

// denyUserfaultfd installs, on every thread, a classic-BPF seccomp filter:
// userfaultfd(2) and ioctl(_, USERFAULTFD_IOC_NEW, _) fail with EPERM.
func denyUserfaultfd() error {
	const (
		ldW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		// struct seccomp_data: nr at 0, arch at 4, args[1] (low half) at 24.
		offNr, offArch, offArg1 = 0, 4, 24
	)
	prog := []unix.SockFilter{
		{Code: ldW, K: offArch},
		{Code: jeq, K: auditArch(), Jt: 0, Jf: 5}, // other arch: allow
		{Code: ldW, K: offNr},
		{Code: jeq, K: unix.SYS_USERFAULTFD, Jt: 4, Jf: 0}, // deny
		{Code: jeq, K: unix.SYS_IOCTL, Jt: 0, Jf: 2},       // not ioctl: allow
		{Code: ldW, K: offArg1},
		{Code: jeq, K: 0xaa00, Jt: 1, Jf: 0}, // USERFAULTFD_IOC_NEW: deny
		{Code: ret, K: allow},
		{Code: ret, K: eperm},
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return e
	}
	return nil
}

// BenchmarkScan measures Scan of a 64 MiB region with 250 pages written
// per interval (one guest step of the spike's workload) and Reset.
func BenchmarkScan(b *testing.B) {
	have, err := uffd.Supported()
	if err != nil || have&features != features {
		b.Skip("userfaultfd with WP_ASYNC unavailable")
	}
	const size = 64 << 20
	region := mmapRegion(b, size)
	tr, err := New(region)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	r := rand.New(rand.NewPCG(1, 1))
	b.Run("250dirty", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			for range 250 {
				region[r.IntN(size/PageSize)*PageSize] ^= 1
			}
			b.StartTimer()
			if _, err := tr.Scan(func(int, int) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.Scan(func(int, int) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Reset", func(b *testing.B) {
		for b.Loop() {
			if err := tr.Reset(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
