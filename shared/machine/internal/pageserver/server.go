//go:build linux

package pageserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

var (
	// ErrServerDied: the page-server child exited while it still had pages
	// to serve. Pages it had not served read as zeros, so the memory
	// restored so far must be discarded.
	ErrServerDied = errors.New("pageserver: page server died; pages it had not served read as zeros, the restored memory must be discarded")
	// ErrClosed: the server was closed or completed.
	ErrClosed = errors.New("pageserver: server closed")

	// Errors meaning "no lazy restore here; restore eagerly".
	ErrNotPermitted = uffd.ErrNotPermitted
	ErrUnsupported  = uffd.ErrUnsupported
)

// Options tune a Server. The zero value is valid.
type Options struct {
	// Readahead is how many pages after a faulting one the child fills
	// too, skipping pages already served (0: none). Sequential access
	// (framebuffers, stacks) gains; random access pays for unused pages.
	Readahead int
	// Prefetch lists pages (e.g. the last known working set) the child
	// fills in the background, in order, between faults.
	Prefetch []int
	// OnFailure, if set, is called once, from a goroutine of its own, when
	// the child dies unexpectedly; the machine cancels the running step
	// there. Err reports the same error.
	OnFailure func(error)
	// Executable is the binary to run as the child; it must call
	// MaybeRunChild first thing. Default: this process's executable.
	Executable string
	// StartTimeout bounds waiting for the child to be ready (default 10 s).
	StartTimeout time.Duration
	// Remote, if set, makes the child fetch the region's pages itself from
	// a page service instead of reading an Image (Start's img is then nil).
	Remote *Remote
}

// Remote is a region whose pages live in a page service
// (shared/pageservice): the child takes each page from the disk cache
// (shared/pagecache) or fetches it, verifies it against its hash, keeps it
// in the cache and only then copies it in. Pages not listed are zero.
type Remote struct {
	BaseURL    string // the page service, e.g. "http://host:8080"
	Token      string // sent as "Authorization: Bearer", if set
	CacheDir   string // the shared page cache; "" keeps none
	CacheBytes int64  // its bound (default 2 GiB)
	// Indices lists the non-zero pages in ascending order; Hashes holds the
	// SHA-256 of each, in the same order.
	Indices []uint32
	Hashes  [][32]byte
	// Timeout bounds each request (default 30 s): a page service that
	// stops answering fails the restore instead of hanging the guest.
	Timeout time.Duration
}

func (r *Remote) config(pages int) (*remoteConfig, error) {
	if r.BaseURL == "" {
		return nil, errors.New("pageserver: remote pages without a page-service URL")
	}
	if len(r.Indices) != len(r.Hashes) {
		return nil, fmt.Errorf("pageserver: %d remote page indices but %d hashes", len(r.Indices), len(r.Hashes))
	}
	c := &remoteConfig{BaseURL: r.BaseURL, Token: r.Token, CacheDir: r.CacheDir, CacheBytes: r.CacheBytes, Timeout: r.Timeout,
		Indices: r.Indices, Hashes: make([]byte, 0, 32*len(r.Hashes))}
	for i, p := range r.Indices {
		if int(p) >= pages || (i > 0 && p <= r.Indices[i-1]) {
			return nil, fmt.Errorf("pageserver: remote page index %d (position %d) is out of order or outside %d pages", p, i, pages)
		}
		c.Hashes = append(c.Hashes, r.Hashes[i][:]...)
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 2 << 30
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	return c, nil
}

type state int

const (
	running state = iota
	completing
	stopped // completed or closed
)

// Server is a running lazy restore of one region. Its methods may be called
// from any goroutine.
type Server struct {
	region []byte
	base   uintptr
	cmd    *exec.Cmd
	ctl    *os.File // write end of the control pipe
	stderr *tailBuffer

	reports    chan report   // from the child, in order; closed at EOF
	readerDone chan struct{} // closed when the report pipe reached EOF
	exited     chan struct{} // closed when the child has been waited for

	opMu sync.Mutex // one Stats/Complete/Close exchange at a time

	mu       sync.Mutex
	st       state
	failErr  error
	sawDone  bool // the child reported "done": its exit is expected
	failOnce sync.Once
	onFail   func(error)
	childErr string // the child's own account of why it stopped, if it gave one
}

// Start drops every page of region (so that each one is served from img,
// or from opts.Remote, on first touch), registers it with userfaultfd in
// missing-page mode and starts the child that serves it. region must be
// page-aligned, private anonymous memory of img.Pages() pages, and must
// stay mapped until the Server is completed or closed. img may be closed
// after Start returns; it is nil with opts.Remote.
//
// If userfaultfd is refused or missing the error wraps ErrNotPermitted or
// ErrUnsupported; the caller restores eagerly instead.
func Start(region []byte, img *Image, opts Options) (*Server, error) {
	var remote *remoteConfig
	var imgFile *os.File
	switch {
	case opts.Remote != nil && img != nil:
		return nil, errors.New("pageserver: both an image and remote pages")
	case opts.Remote != nil:
		if len(region) == 0 || len(region)%PageSize != 0 {
			return nil, fmt.Errorf("pageserver: region of %d bytes is not a whole number of pages", len(region))
		}
		var err error
		if remote, err = opts.Remote.config(len(region) / PageSize); err != nil {
			return nil, err
		}
	case img == nil:
		return nil, errors.New("pageserver: no image and no remote pages")
	case len(region) == 0 || len(region)%PageSize != 0 || len(region)/PageSize != img.Pages():
		return nil, fmt.Errorf("pageserver: region of %d bytes for an image of %d pages", len(region), img.Pages())
	default:
		imgFile = img.f
	}
	base := uintptr(unsafe.Pointer(&region[0]))
	if base%PageSize != 0 {
		return nil, fmt.Errorf("pageserver: region at %#x is not page-aligned", base)
	}
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("pageserver: finding the executable to re-run: %w", err)
		}
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if err := unix.Madvise(region, unix.MADV_DONTNEED); err != nil {
		return nil, fmt.Errorf("pageserver: dropping pages: %w", err)
	}
	u, err := uffd.Open(0, 0)
	if err != nil {
		return nil, fmt.Errorf("pageserver: %w", err)
	}
	uf := os.NewFile(uintptr(u.Fd()), "userfaultfd")
	defer uf.Close() // the parent must not keep a reference: see the package comment
	if _, err := u.Register(base, len(region), uffd.ModeMissing); err != nil {
		return nil, fmt.Errorf("pageserver: %w", err)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	// The child reads the parent's page tables through this descriptor;
	// opened here, it needs no ptrace permission over the parent. Without
	// it the child still serves correctly (see serveFault), with waste.
	var pagemap *os.File
	if f, err := os.Open("/proc/self/pagemap"); err == nil {
		pagemap = f
		defer f.Close()
	}
	s := &Server{
		region: region, base: base, ctl: ctlW, stderr: &tailBuffer{max: 4096},
		reports: make(chan report, 16), readerDone: make(chan struct{}), exited: make(chan struct{}), onFail: opts.OnFailure,
	}
	s.cmd = &exec.Cmd{
		Path:       exe,
		Args:       []string{"replaydesk-pageserver"},
		Env:        append(os.Environ(), EnvVar+"=1"),
		ExtraFiles: []*os.File{uf, imgFile, ctlR, repW, pagemap}, // fds 3, 4 (closed for a remote restore), 5, 6, 7
		Stderr:     s.stderr,
	}
	err = s.cmd.Start()
	ctlR.Close()
	repW.Close()
	if err != nil {
		ctlW.Close()
		repR.Close()
		return nil, fmt.Errorf("pageserver: starting the child: %w", err)
	}
	go s.readReports(repR)
	go s.watch()

	cfg := childConfig{Base: uint64(base), Pages: len(region) / PageSize, Readahead: opts.Readahead, Prefetch: opts.Prefetch, Remote: remote,
		Pagemap: pagemap != nil}
	// The pipe may be smaller than a long prefetch list; the child reads
	// the config first thing, so writing here does not deadlock, and a dead
	// child makes the write fail with EPIPE.
	if err := writeMessage(ctlW, cfg); err != nil {
		s.Close()
		return nil, fmt.Errorf("pageserver: configuring the child: %w (%s)", err, s.stderr)
	}
	select {
	case r, ok := <-s.reports:
		if ok && r.Kind == "ready" {
			return s, nil
		}
		s.Close()
		if ok && r.Err != "" {
			return nil, fmt.Errorf("pageserver: child failed to start: %s", r.Err)
		}
		return nil, fmt.Errorf("pageserver: child exited before it was ready: %s", s.stderr)
	case <-time.After(opts.StartTimeout):
		s.Close()
		return nil, fmt.Errorf("pageserver: child not ready after %v", opts.StartTimeout)
	}
}

// Pid returns the child's process id (for diagnostics and tests).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func (s *Server) readReports(r *os.File) {
	defer close(s.readerDone)
	defer close(s.reports)
	defer r.Close()
	for {
		var rep report
		if err := readMessage(r, &rep); err != nil {
			return
		}
		switch rep.Kind {
		case "done":
			s.mu.Lock()
			s.sawDone = true
			s.mu.Unlock()
		case "error":
			s.mu.Lock()
			s.childErr = rep.Err
			s.mu.Unlock()
		}
		select {
		case s.reports <- rep:
		default:
			// Nobody is waiting (a Stats call that timed out); never
			// block, or the watcher would wait for this goroutine forever.
		}
	}
}

// watch waits for the child; an exit the parent did not ask for is a
// failure.
func (s *Server) watch() {
	err := s.cmd.Wait()
	// The report pipe's last writer was the child, so it is at EOF now,
	// and a "done" the child wrote before exiting has been seen.
	<-s.readerDone
	s.mu.Lock()
	unexpected := s.st != stopped && !s.sawDone
	childErr := s.childErr
	s.mu.Unlock()
	switch {
	case unexpected && childErr != "":
		// The child said why (a page that failed verification, a page
		// service that went away): that is the error, not "it died".
		s.fail(fmt.Errorf("%w: %s (child %d: %v)", ErrServerDied, childErr, s.cmd.Process.Pid, err))
	case unexpected:
		s.fail(fmt.Errorf("%w (child %d: %v; stderr: %q)", ErrServerDied, s.cmd.Process.Pid, err, s.stderr.String()))
	}
	close(s.exited)
}

// fail records the first failure and reports it to OnFailure.
func (s *Server) fail(err error) {
	s.failOnce.Do(func() {
		s.mu.Lock()
		s.failErr = err
		s.mu.Unlock()
		if s.onFail != nil {
			go s.onFail(err)
		}
	})
}

// Err reports whether the restore is still sound: nil while the child
// serves, ErrServerDied (wrapped) once it has died. Call it after every
// step, before trusting anything the guest computed; it is exact even if
// the child died an instant before the step ended (see the package
// comment), at the cost of a userfaultfd open and register (~10 µs). After
// Complete or Close it returns nil or the failure that ended the server.
func (s *Server) Err() error {
	s.mu.Lock()
	st, failErr := s.st, s.failErr
	s.mu.Unlock()
	if failErr != nil || st != running {
		return failErr
	}
	alive, err := registered(s.base, len(s.region))
	if err != nil {
		return fmt.Errorf("pageserver: checking the server: %w", err)
	}
	if !alive {
		// The child is gone. Give the watcher a moment to collect its exit
		// and its own account of why (a page refused, a page service gone),
		// which says more than "released".
		select {
		case <-s.exited:
		case <-time.After(2 * time.Second):
		}
		s.mu.Lock()
		st = s.st
		s.mu.Unlock()
		if st == running {
			s.fail(fmt.Errorf("%w (its userfaultfd was released)", ErrServerDied))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.failErr
	}
	return nil
}

// registered reports whether [base, base+length) is still registered with
// some userfaultfd: registering it again with a fresh one fails with EBUSY
// exactly then. If it succeeds, closing the fresh one undoes it.
func registered(base uintptr, length int) (bool, error) {
	u, err := uffd.Open(0, 0)
	if err != nil {
		return false, err
	}
	defer u.Close()
	_, err = u.Register(base, length, uffd.ModeMissing)
	switch {
	case errors.Is(err, unix.EBUSY):
		return true, nil
	case err == nil:
		return false, nil
	}
	return false, err
}

// Stats asks the child for its statistics.
func (s *Server) Stats() (Stats, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.command(cmdStats); err != nil {
		return Stats{}, err
	}
	return s.await("stats", 10*time.Second)
}

func (s *Server) command(b byte) error {
	s.mu.Lock()
	st, failErr := s.st, s.failErr
	s.mu.Unlock()
	if failErr != nil {
		return failErr
	}
	if st != running {
		return ErrClosed
	}
	if _, err := s.ctl.Write([]byte{b}); err != nil {
		return fmt.Errorf("pageserver: talking to the child: %w", err)
	}
	return nil
}

func (s *Server) await(kind string, timeout time.Duration) (Stats, error) {
	deadline := time.After(timeout)
	for {
		select {
		case r, ok := <-s.reports:
			if !ok {
				<-s.exited
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.failErr != nil {
					return Stats{}, s.failErr
				}
				return Stats{}, fmt.Errorf("%w (report pipe closed)", ErrServerDied)
			}
			if r.Kind == kind {
				return r.Stats, nil
			}
			if r.Kind == "error" {
				return Stats{}, fmt.Errorf("pageserver: child: %s", r.Err)
			}
		case <-deadline:
			return Stats{}, fmt.Errorf("pageserver: no %s report from the child after %v", kind, timeout)
		}
	}
}

// Complete has the child fill every page not yet served, waits for it to
// exit and returns its final statistics. Afterwards the region is ordinary
// memory with no userfaultfd (dirty tracking may begin). Faults keep being
// served while it runs.
func (s *Server) Complete(ctx context.Context) (Stats, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.command(cmdComplete); err != nil {
		return Stats{}, err
	}
	s.mu.Lock()
	s.st = completing
	s.mu.Unlock()
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.await("done", time.Hour) // bounded by ctx below
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return Stats{}, r.err
		}
		<-s.exited // the child exits right after "done"; its exit releases the userfaultfd
		s.mu.Lock()
		s.st = stopped
		failErr := s.failErr
		s.mu.Unlock()
		return r.st, failErr
	case <-ctx.Done():
		s.kill()
		return Stats{}, ctx.Err()
	}
}

// Close stops the child without filling the rest: pages never served will
// read as zeros, so the caller discards the region. It waits for the child
// to exit (killing it after 2 s).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.st == stopped {
		s.mu.Unlock()
		return nil
	}
	s.st = stopped
	s.mu.Unlock()
	s.ctl.Close() // EOF: the child stops
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		s.kill()
	}
	return nil
}

func (s *Server) kill() {
	s.mu.Lock()
	s.st = stopped
	s.mu.Unlock()
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// tailBuffer keeps the last max bytes of the child's stderr for error
// messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
