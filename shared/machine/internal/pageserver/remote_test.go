//go:build linux

package pageserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"replaydesk/shared/pageservice"
	"replaydesk/shared/pagestore"
)

// testPageServiceEnv makes the test binary a page service over a DirStore
// (see TestMain). The service must be another process: a page service in
// the process whose memory faults would be the very deadlock the child
// exists to avoid (its handler goroutines need a P the stop-the-world holds).
const testPageServiceEnv = "PAGESERVER_TEST_PAGESERVICE"

// testPageGateEnv ("HASH DIR") holds back the test page service's answer
// to any request naming page HASH: it creates DIR/asked, then answers once
// DIR/open exists. Files, because the test's process may have goroutines
// blocked in faults that only this answer resolves.
const testPageGateEnv = "PAGESERVER_TEST_GATE"

func runTestPageService(dir string) {
	st, err := pagestore.OpenDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr())
	var h http.Handler = pageservice.NewServer(st, nil)
	if hash, gate, ok := strings.Cut(os.Getenv(testPageGateEnv), " "); ok {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.String(), hash) {
				_ = os.WriteFile(filepath.Join(gate, "asked"), nil, 0o644)
				for {
					if _, err := os.Stat(filepath.Join(gate, "open")); err == nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	_ = http.Serve(ln, h)
	os.Exit(0)
}

// publish stores every non-zero page of mem in a DirStore under dir and
// returns the Remote description of mem (without URL and cache).
func publish(t *testing.T, dir string, mem []byte) *Remote {
	t.Helper()
	st, err := pagestore.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Remote{}
	for p := 0; p < len(mem)/PageSize; p++ {
		raw := mem[p*PageSize : (p+1)*PageSize]
		if pagestore.IsZero(raw) {
			continue
		}
		h := pagestore.HashPage(raw)
		if err := st.Put(h, raw); err != nil {
			t.Fatal(err)
		}
		r.Indices = append(r.Indices, uint32(p))
		r.Hashes = append(r.Hashes, h)
	}
	return r
}

// startPageService runs the page service over dir in a child process and
// returns its base URL and the process (killed at cleanup).
func startPageService(t *testing.T, dir string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), testPageServiceEnv+"="+dir), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("page service printed no address: %v", err)
	}
	return "http://" + strings.TrimSpace(line), cmd
}

func startRemote(t *testing.T, mem []byte, r *Remote, opts Options) ([]byte, *Server) {
	t.Helper()
	region := mmapRegion(t, len(mem))
	opts.Remote = r
	s, err := Start(region, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return region, s
}

// A remote restore fetches only what is touched (plus read-ahead), the
// contents equal the source, Complete fetches the rest, and a second
// restore of the same pages takes them all from the disk cache.
func TestRemoteFetchesOnFault(t *testing.T) {
	requireUffd(t)
	const pages = 2048
	src, l := snapshotLike(pages, 11)
	tmp := t.TempDir()
	r := publish(t, filepath.Join(tmp, "store"), src)
	url, _ := startPageService(t, filepath.Join(tmp, "store"))
	r.BaseURL, r.CacheDir, r.CacheBytes = url, filepath.Join(tmp, "cache"), 64<<20

	region, s := startRemote(t, src, r, Options{Readahead: 8, Prefetch: []int{l.stack[0], l.stack[0] + 1}})
	for p := l.fb[0]; p < l.fb[1]; p++ {
		touch(region, p*PageSize)
	}
	region[l.world[0]*PageSize+7] = 0x5A // a write fault
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("touched: %v", st)
	if st.Fetched == 0 || st.Fetched >= len(r.Indices)/2 || st.FetchRequests == 0 || st.FromCache != 0 {
		t.Fatalf("after touching the framebuffer: %v (of %d data pages)", st, len(r.Indices))
	}
	for p := l.fb[0]; p < l.fb[1]; p++ {
		if !bytes.Equal(region[p*PageSize:(p+1)*PageSize], src[p*PageSize:(p+1)*PageSize]) {
			t.Fatalf("page %d differs from the source", p)
		}
	}
	final, err := s.Complete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("complete: %v", final)
	want := bytes.Clone(src)
	want[l.world[0]*PageSize+7] = 0x5A
	if !bytes.Equal(region, want) {
		t.Fatal("remote restore differs from the source after Complete")
	}
	if final.Fetched != len(r.Indices) || final.FetchedByComplete == 0 || final.FetchedByComplete >= final.Fetched {
		t.Fatalf("Complete: %v, want all %d data pages fetched, some of them to complete", final, len(r.Indices))
	}

	// The repeat: every page is in the disk cache now.
	region2, s2 := startRemote(t, src, r, Options{Readahead: 8})
	touch(region2, l.fb[0]*PageSize)
	again, err := s2.Complete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(region2, src) || again.Fetched != 0 || again.FromCache != len(r.Indices) {
		t.Fatalf("second restore: %v (equal: %v), want every page from the cache", again, bytes.Equal(region2, src))
	}
}

// A fault message can name a page that is present already: the kernel
// queues a faulting thread's message before it sleeps, and a fill of that
// page wakes and dequeues only the messages nobody has read yet. Messages
// the child has read in the same batch as the one it serves first — here,
// four threads faulting on one page while the child waits for another —
// name a page the first fill made present. The child must answer those
// without taking the page from its source again: one fetch per page. (The
// same race, one thread touching a page while read-ahead filled it, made
// TestRemoteFetchesOnFault fetch 874 of 873 pages about one run in 20.)
func TestRemoteStaleFaultNotFetchedAgain(t *testing.T) {
	requireUffd(t)
	const pages, threads = 1024, 4
	src, l := snapshotLike(pages, 14)
	tmp := t.TempDir()
	store, gate := filepath.Join(tmp, "store"), filepath.Join(tmp, "gate")
	if err := os.Mkdir(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	r := publish(t, store, src)
	q, p := l.heap[0], l.fb[0] // data pages, far apart
	hq := pagestore.HashPage(src[q*PageSize : (q+1)*PageSize])
	url, _ := startPageService(t, store, testPageGateEnv+"="+hq.String()+" "+gate)
	r.BaseURL = url // no disk cache: a second take of a page is a fetch

	// Every faulting goroutine holds a P while it waits, and a collection
	// would wait for them all while the goroutine that opens the gate is
	// stopped: enough Ps, and no GC until every fault is served.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads + 4))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	region, s := startRemote(t, src, r, Options{})
	done := make(chan struct{}, threads+1)
	go func() { touch(region, q*PageSize); done <- struct{}{} }()
	waitFile(t, filepath.Join(gate, "asked")) // the child has read q's fault and waits for q
	tids := make(chan int, threads)
	for range threads {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids <- unix.Gettid()
			touch(region, p*PageSize)
			done <- struct{}{}
		}()
	}
	for range threads {
		waitFault(t, <-tids)
	}
	if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range threads + 1 {
		<-done
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v; %d fault messages for a page already present", st, st.AlreadyPresent)
	for _, pg := range []int{q, p} {
		if !bytes.Equal(region[pg*PageSize:(pg+1)*PageSize], src[pg*PageSize:(pg+1)*PageSize]) {
			t.Fatalf("page %d differs from the source", pg)
		}
	}
	if st.AlreadyPresent == 0 {
		t.Fatalf("no fault message named a present page (%v): the test did not set up the race", st)
	}
	if st.Fetched != 2 || st.FetchRequests != 2 || st.Served() != 2 {
		t.Fatalf("%v: want pages %d and %d served and fetched once each", st, q, p)
	}

	// A served page the parent dropped is really missing: it is served
	// again, from the source.
	if err := unix.Madvise(region[p*PageSize:(p+1)*PageSize], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	touch(region, p*PageSize)
	if !bytes.Equal(region[p*PageSize:(p+1)*PageSize], src[p*PageSize:(p+1)*PageSize]) {
		t.Fatalf("page %d, dropped and touched again, differs from the source", p)
	}
	again, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if again.Fetched != 3 || again.AlreadyPresent != st.AlreadyPresent {
		t.Fatalf("after dropping page %d and touching it again: %v, want it fetched a second time", p, again)
	}
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", path)
}

// waitFault waits until thread tid of this process sleeps in a
// userfaultfd fault.
func waitFault(t *testing.T, tid int) {
	t.Helper()
	path := fmt.Sprintf("/proc/self/task/%d/wchan", tid)
	var last []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) == "handle_userfault" {
			return
		}
		last = b
	}
	t.Fatalf("thread %d never blocked in a userfaultfd fault (wchan %q)", tid, last)
}

// A page the service serves with the wrong content is refused: the restore
// fails with an error naming the page and the cause; nothing is copied in
// from it.
func TestRemoteCorruptPageRefused(t *testing.T) {
	requireUffd(t)
	const pages = 1024
	src, l := snapshotLike(pages, 12)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	r := publish(t, store, src)
	bad := l.fb[0] + 3
	h := pagestore.HashPage(src[bad*PageSize : (bad+1)*PageSize])
	ds, _ := pagestore.OpenDir(store)
	forged := append([]byte{0}, src[(bad+1)*PageSize:(bad+2)*PageSize]...) // a valid page, but not that one
	if err := os.WriteFile(ds.PagePath(h), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	url, _ := startPageService(t, store)
	r.BaseURL, r.CacheDir = url, filepath.Join(tmp, "cache")
	region, s := startRemote(t, src, r, Options{})
	touch(region, bad*PageSize)
	err := s.Err()
	if err == nil {
		t.Fatal("a corrupted page was accepted")
	}
	for _, want := range []string{fmt.Sprintf("page %d", bad), h.String(), "corrupt"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	t.Logf("refused: %v", err)
	// The forged bytes never reached memory.
	if bytes.Equal(region[bad*PageSize:(bad+1)*PageSize], forged[1:]) {
		t.Fatal("the forged page was copied in")
	}
	if _, err := os.Stat(filepath.Join(tmp, "cache", h.String()[:2], h.String()+".pg")); err == nil {
		t.Fatal("the forged page was cached")
	}
}

// A page service that goes away, or stops answering, fails the restore
// with an error saying so; the faulting thread is not left hanging.
func TestRemoteServiceGone(t *testing.T) {
	requireUffd(t)
	const pages = 1024
	src, l := snapshotLike(pages, 13)
	tmp := t.TempDir()
	r := publish(t, filepath.Join(tmp, "store"), src)

	t.Run("killed", func(t *testing.T) {
		url, svc := startPageService(t, filepath.Join(tmp, "store"))
		rr := *r
		rr.BaseURL, rr.CacheDir = url, t.TempDir()
		region, s := startRemote(t, src, &rr, Options{})
		touch(region, l.fb[0]*PageSize)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		svc.Process.Kill()
		svc.Wait()
		touch(region, l.heap[0]*PageSize)
		err := s.Err()
		if err == nil || !strings.Contains(err.Error(), "page service at "+url) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("after the page service died: %v", err)
		}
		t.Logf("%v", err)
	})
	t.Run("silent", func(t *testing.T) {
		// Nobody accepts: the kernel completes connections into the
		// backlog, and requests are never answered.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		rr := *r
		rr.BaseURL, rr.Timeout = "http://"+ln.Addr().String(), 500*time.Millisecond
		region, s := startRemote(t, src, &rr, Options{})
		t0 := time.Now()
		touch(region, l.fb[0]*PageSize)
		err = s.Err()
		if err == nil || !strings.Contains(err.Error(), "Timeout") {
			t.Fatalf("a page service that never answers: %v", err)
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Fatalf("the fault waited %v", d)
		}
		t.Logf("%v", err)
	})
}

func TestRemoteConfigRejected(t *testing.T) {
	region := make([]byte, 4*PageSize)
	for _, r := range []*Remote{
		{Indices: []uint32{0}, Hashes: [][32]byte{{1}}},                              // no URL
		{BaseURL: "http://x", Indices: []uint32{0, 1}, Hashes: [][32]byte{{1}}},      // lengths
		{BaseURL: "http://x", Indices: []uint32{2, 1}, Hashes: [][32]byte{{1}, {2}}}, // order
		{BaseURL: "http://x", Indices: []uint32{4}, Hashes: [][32]byte{{1}}},         // outside
		{BaseURL: "http://x", Indices: []uint32{1, 1}, Hashes: [][32]byte{{1}, {2}}}, // duplicate
	} {
		if _, err := Start(region, nil, Options{Remote: r}); err == nil {
			t.Fatalf("Start accepted %+v", r)
		}
	}
	if _, err := Start(region, nil, Options{}); err == nil {
		t.Fatal("Start accepted neither an image nor remote pages")
	}
}
