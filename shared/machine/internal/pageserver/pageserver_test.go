//go:build linux

package pageserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

func TestMain(m *testing.M) {
	MaybeRunChild() // the page-server children are this test binary
	if dir := os.Getenv(testPageServiceEnv); dir != "" {
		runTestPageService(dir) // so are the page services of remote restores
	}
	os.Exit(m.Run())
}

func requireUffd(t *testing.T) {
	t.Helper()
	if _, err := uffd.Supported(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("userfaultfd unavailable in CI: %v", err)
		}
		t.Skipf("userfaultfd unavailable on this machine: %v", err)
	}
}

// isolated runs the calling test in a child test process with a deadline
// and reports whether the caller is the parent (true: the child ran and
// passed; return). A deadlock in the Go runtime stops every timer of the
// deadlocked process, so only another process can time it out.
func isolated(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	if os.Getenv("PAGESERVER_TEST_ISOLATED") == t.Name() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PAGESERVER_TEST_ISOLATED="+t.Name())
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("no result after %v: the process hung or deadlocked\n%s", time.Since(start).Round(time.Millisecond), out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("isolated run: %v\n%s", err, out)
	}
	t.Logf("isolated run (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	return true
}

// sink keeps loads from guest memory alive: a load whose value is unused
// is dead code to the compiler, and a page it never reads never faults.
var sink atomic.Uint32

func touch(b []byte, off int) { sink.Add(uint32(b[off])) }

func mmapRegion(t testing.TB, size int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// snapshotLike returns page contents shaped like a guest's memory: a
// dense heap, a framebuffer and a stack, then a large sparse area where
// only every fourth page (at random) holds data. Page numbers of the parts
// are returned for access patterns.
type layout struct{ heap, fb, stack, world [2]int }

func snapshotLike(pages int, seed uint64) ([]byte, layout) {
	l := layout{heap: [2]int{0, pages / 8}, fb: [2]int{pages / 8, pages/8 + 225}, stack: [2]int{pages/8 + 240, pages/8 + 256}, world: [2]int{pages / 4, pages}}
	mem := make([]byte, pages*PageSize)
	r := rand.New(rand.NewPCG(seed, 7))
	fill := func(p int) {
		for i := 0; i < PageSize; i += 8 {
			*(*uint64)(unsafe.Pointer(&mem[p*PageSize+i])) = r.Uint64() | 1
		}
	}
	for _, part := range [][2]int{l.heap, l.fb, l.stack} {
		for p := part[0]; p < part[1]; p++ {
			fill(p)
		}
	}
	for p := l.world[0]; p < l.world[1]; p++ {
		if r.IntN(4) == 0 {
			fill(p)
		}
	}
	return mem, l
}

func startServer(t *testing.T, src []byte, opts Options) ([]byte, *Server) {
	t.Helper()
	img, err := ImageOf(src)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	region := mmapRegion(t, len(src))
	s, err := Start(region, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return region, s
}

func TestImageHolesAreZeroPages(t *testing.T) {
	mem := make([]byte, 8*PageSize)
	mem[3*PageSize+5] = 1
	mem[7*PageSize] = 2
	im, err := ImageOf(mem)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.DataPages() != 2 {
		t.Fatalf("DataPages = %d, want 2", im.DataPages())
	}
	if err := im.WritePage(3, zeroPage[:]); err != nil {
		t.Fatal(err)
	}
	data, err := dataPages(int(im.f.Fd()), im.Pages())
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, false, false, false, false, false, true}; !slices.Equal(data, want) {
		t.Fatalf("data pages %v, want %v", data, want)
	}
}

// TestLazyContentsEqualSource touches every page of a 16 MiB region —
// reads and writes, in random order — and then compares it with the
// source (plus the test's own writes).
func TestLazyContentsEqualSource(t *testing.T) {
	requireUffd(t)
	const pages = 4096
	src, _ := snapshotLike(pages, 1)
	want := slices.Clone(src)
	region, s := startServer(t, src, Options{Readahead: 4})
	r := rand.New(rand.NewPCG(2, 2))
	for _, p := range r.Perm(pages) {
		off := p*PageSize + r.IntN(PageSize)
		if r.IntN(3) == 0 {
			region[off] = 0x5A // a write fault (zero page or data)
			want[off] = 0x5A
		} else {
			touch(region, off)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", st)
	if !bytes.Equal(region, want) {
		t.Fatal("lazily restored region differs from the source")
	}
	if st.Faults == 0 || st.Served() != pages {
		t.Fatalf("stats %v: want every page served", st)
	}
	final, err := s.Complete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if final.Served() != pages || final.ServedByComplete != 0 {
		t.Fatalf("Complete stats %v", final)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after Complete: %v", err)
	}
	if alive, err := registered(s.base, len(region)); err != nil || alive {
		t.Fatalf("region still registered after Complete (%v, %v)", alive, err)
	}
}

// TestCompleteFillsTheRest: pages nobody touched are filled by Complete,
// and the region then needs no server.
func TestCompleteFillsTheRest(t *testing.T) {
	requireUffd(t)
	const pages = 4096
	src, l := snapshotLike(pages, 3)
	region, s := startServer(t, src, Options{Prefetch: []int{l.stack[0], l.stack[0] + 1}})
	for p := l.fb[0]; p < l.fb[1]; p++ {
		touch(region, p*PageSize)
	}
	st, err := s.Complete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", st)
	if st.Served() != pages || st.ServedByComplete == 0 || st.ServedByPrefetch != 2 {
		t.Fatalf("stats %v", st)
	}
	if !bytes.Equal(region, src) {
		t.Fatal("region differs from the source after Complete")
	}
}

// TestNoDeadlockUnderGC is the hazard that put the server in a child: the
// faulting goroutine holds the only P while runtime.GC keeps asking for a
// stop-the-world. With an in-process handler this deadlocks at once.
func TestNoDeadlockUnderGC(t *testing.T) {
	requireUffd(t)
	if isolated(t, 60*time.Second) {
		return
	}
	runtime.GOMAXPROCS(1)
	var stop atomic.Bool
	gcs := atomic.Int64{}
	go func() {
		for !stop.Load() {
			runtime.GC()
			gcs.Add(1)
			_ = make([]byte, 1<<16)
		}
	}()
	defer stop.Store(true)
	const pages = 4096
	src, _ := snapshotLike(pages, 4)
	region, s := startServer(t, src, Options{})
	// Fault every page, drop them all (they fault again), and repeat for
	// a second, so that many GC cycles overlap faults.
	start := time.Now()
	rounds := 0
	for time.Since(start) < time.Second || gcs.Load() < 20 {
		for p := range pages {
			if p%2 == 0 {
				region[p*PageSize+1] = src[p*PageSize+1] // write fault, same value
			} else {
				touch(region, p*PageSize+1)
			}
			if p%32 == 0 {
				runtime.Gosched() // let the GC goroutine start cycles mid-round
			}
		}
		rounds++
		if time.Since(start) > 20*time.Second {
			break
		}
		if err := unix.Madvise(region, unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(region, src) {
		t.Fatal("region differs from the source")
	}
	t.Logf("GOMAXPROCS=1: %d rounds over %d pages in %v with %d concurrent runtime.GC calls; server: %v", rounds, pages, took.Round(time.Millisecond), gcs.Load(), st)
	if gcs.Load() < 20 || st.Faults < pages {
		t.Fatalf("too little overlap to prove anything: %d GCs, %d faults", gcs.Load(), st.Faults)
	}
}

// TestChildKilled: killing the server mid-restore must produce
// ErrServerDied promptly — from Err at once and from OnFailure within a
// bound — and never a hang, even for a goroutine faulting when the kill
// lands, at GOMAXPROCS=1 under GC pressure.
func TestChildKilled(t *testing.T) {
	requireUffd(t)
	if isolated(t, 60*time.Second) {
		return
	}
	runtime.GOMAXPROCS(1)
	var stop atomic.Bool
	go func() {
		for !stop.Load() {
			runtime.GC()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer stop.Store(true)
	const pages = 4096
	src, _ := snapshotLike(pages, 5)
	failed := make(chan error, 1)
	region, s := startServer(t, src, Options{OnFailure: func(err error) { failed <- err }})
	var touched atomic.Int64
	toucherDone := make(chan struct{})
	go func() {
		defer close(toucherDone)
		for p := range pages {
			touch(region, p*PageSize)
			touched.Add(1)
			if p%64 == 0 {
				runtime.Gosched()
			}
		}
	}()
	for touched.Load() < pages/4 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err before the kill: %v", err)
	}
	if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	t.Logf("killed the server after %d pages were touched", touched.Load())
	<-toucherDone // would hang forever if a fault were left blocked
	err := s.Err()
	if !errors.Is(err, ErrServerDied) {
		t.Fatalf("Err after the kill: %v; want ErrServerDied", err)
	}
	t.Logf("Err: %v (%v after the kill)", err, time.Since(killed).Round(time.Microsecond))
	select {
	case err := <-failed:
		if !errors.Is(err, ErrServerDied) {
			t.Fatalf("OnFailure got %v", err)
		}
		t.Logf("OnFailure after %v: %v", time.Since(killed).Round(time.Microsecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("OnFailure not called within 5 s of the kill")
	}
	if _, err := s.Complete(context.Background()); !errors.Is(err, ErrServerDied) {
		t.Fatalf("Complete after the kill: %v", err)
	}
	// The documented consequence: pages the server never served are zeros.
	zeros := 0
	for p := range pages {
		if !bytes.Equal(region[p*PageSize:(p+1)*PageSize], src[p*PageSize:(p+1)*PageSize]) {
			zeros++
		}
	}
	t.Logf("%d of %d pages differ from the source (zero-filled by the kernel after the kill)", zeros, pages)
	if zeros == 0 {
		t.Fatal("no page lost: the kill landed after the restore finished, so the test proved nothing")
	}
}

// TestErrDetectsDeathWithoutWatcher checks the probe on its own: right
// after the kill, before the watcher goroutine may have run, Err already
// knows, because the kernel unregistered the region.
func TestErrDetectsDeathWithoutWatcher(t *testing.T) {
	requireUffd(t)
	src, _ := snapshotLike(4096, 6)
	_, s := startServer(t, src, Options{})
	p, _ := os.FindProcess(s.Pid())
	pidfd, err := unix.PidfdOpen(s.Pid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	_ = p.Signal(syscall.SIGKILL)
	// Wait for the exit without reaping (the watcher reaps).
	pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if _, err := unix.Poll(pfd, 5000); err != nil {
		t.Fatal(err)
	}
	alive, err := registered(s.base, len(s.region))
	if err != nil || alive {
		t.Fatalf("probe after the child's exit: registered=%v, %v", alive, err)
	}
	if err := s.Err(); !errors.Is(err, ErrServerDied) {
		t.Fatalf("Err = %v", err)
	}
}

func TestCloseStopsChild(t *testing.T) {
	requireUffd(t)
	src, _ := snapshotLike(4096, 8)
	_, s := startServer(t, src, Options{})
	pid := s.Pid()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, 0); err != unix.ESRCH {
		t.Fatalf("child %d still exists after Close (%v)", pid, err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after a requested Close: %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
}

func TestErrProbeCost(t *testing.T) {
	requireUffd(t)
	src, _ := snapshotLike(4096, 9)
	_, s := startServer(t, src, Options{})
	const n = 200
	start := time.Now()
	for range n {
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Err (registration probe): %v per call", (time.Since(start) / n).Round(100*time.Nanosecond))
}

// TestStartRejectsMismatch: configuration errors are reported, not served.
func TestStartRejectsMismatch(t *testing.T) {
	img, err := NewImage(4)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := Start(make([]byte, 8*PageSize), img, Options{}); err == nil || !strings.Contains(err.Error(), "image of 4 pages") {
		t.Fatalf("Start with a region larger than the image: %v", err)
	}
}

// TestWorkloadFigures measures a lazy restore of a 64 MiB region under a
// guest-like access pattern driven from Go: 60 "steps", each rewriting the
// 225-page framebuffer, using a 16-page stack, reading 40 and writing 10
// random heap pages and writing 16 random pages of a sparse world. It
// reports pages faulted against pages in the snapshot, the round trip of a
// first touch as the toucher sees it (p50/p99), the child's service time,
// and the effect of read-ahead and of prefetching the working set (the
// pages the same pattern touched in an earlier run).
func TestWorkloadFigures(t *testing.T) {
	requireUffd(t)
	const pages = 16384
	src, l := snapshotLike(pages, 10)
	type access struct {
		page  int
		write bool
	}
	var steps [][]access
	r := rand.New(rand.NewPCG(11, 11))
	for range 60 {
		var a []access
		for p := l.stack[0]; p < l.stack[1]; p++ {
			a = append(a, access{p, true})
		}
		for range 40 {
			a = append(a, access{l.heap[0] + r.IntN(l.heap[1]-l.heap[0]), false})
		}
		for range 10 {
			a = append(a, access{l.heap[0] + r.IntN(l.heap[1]-l.heap[0]), true})
		}
		for p := l.fb[0]; p < l.fb[1]; p++ {
			a = append(a, access{p, true})
		}
		for range 16 {
			a = append(a, access{l.world[0] + r.IntN(l.world[1]-l.world[0]), true})
		}
		steps = append(steps, a)
	}
	workingSet := map[int]bool{}
	var prefetch []int
	for _, a := range steps[:20] { // "last session" saw the first 20 steps
		for _, x := range a {
			if !workingSet[x.page] {
				workingSet[x.page] = true
				prefetch = append(prefetch, x.page)
			}
		}
	}
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"readahead 0", Options{}},
		{"readahead 16", Options{Readahead: 16}},
		{"readahead 16 + prefetch", Options{Readahead: 16, Prefetch: prefetch}},
	} {
		region, s := startServer(t, src, c.opts)
		touched := make([]bool, pages)
		var firstTouch []time.Duration
		start := time.Now()
		var firstStep time.Duration
		for i, a := range steps {
			for _, x := range a {
				off := x.page*PageSize + 64
				t0 := time.Now()
				if x.write {
					region[off] = src[off]
				} else {
					touch(region, off)
				}
				if !touched[x.page] {
					touched[x.page] = true
					firstTouch = append(firstTouch, time.Since(t0))
				}
			}
			if i == 0 {
				firstStep = time.Since(start)
			}
		}
		total := time.Since(start)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(firstTouch)
		pct := func(q float64) time.Duration { return firstTouch[int(q*float64(len(firstTouch)-1))] }
		t.Logf("%s: %d distinct pages touched of %d in the snapshot (%d data); %d faults; %d pages served (%.1f%%); "+
			"first-touch round trip p50 %v p99 %v; server service p50 %v p99 %v; first step %v, 60 steps %v",
			c.name, len(firstTouch), pages, st.DataPages, st.Faults, st.Served(), 100*float64(st.Served())/pages,
			pct(0.5).Round(100*time.Nanosecond), pct(0.99).Round(100*time.Nanosecond), st.ServiceP50, st.ServiceP99,
			firstStep.Round(10*time.Microsecond), total.Round(10*time.Microsecond))
		if _, err := s.Complete(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(region, src) {
			t.Fatalf("%s: region differs from the source after Complete", c.name)
		}
	}
}
