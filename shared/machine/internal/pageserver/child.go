//go:build linux

package pageserver

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

// MaybeRunChild turns this process into a page server if it was started as
// one (EnvVar=1) and then exits; otherwise it returns at once. Call it first
// thing in main, and in TestMain of any package whose tests start servers:
// the server is a re-execution of the running binary, so that no separate
// executable has to be found or shipped.
func MaybeRunChild() {
	if os.Getenv(EnvVar) != "1" {
		return
	}
	// One thread does everything; nothing else runs in this process.
	runtime.LockOSThread()
	rep := os.NewFile(childReport, "report")
	if err := runChild(rep); err != nil {
		_ = writeMessage(rep, report{Kind: "error", Err: err.Error()})
		fmt.Fprintln(os.Stderr, "pageserver child:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// errParentGone: the parent's address space is gone (it exited or unmapped
// the region); there is nobody left to serve.
var errParentGone = errors.New("parent address space gone")

// child is the server's state; it lives on one locked thread.
type child struct {
	u         *uffd.UFFD
	pagemap   *uffd.Pagemap // the parent's; nil if unavailable
	src       source
	base      uintptr
	pages     int
	readahead int
	data      []bool // page has content in the image (else zero)
	served    []bool // page filled by us (readahead and background skip it)
	nServed   int
	buf       []byte // page-aligned UFFDIO_COPY source, bufPages long
	stats     Stats
	service   []uint32 // ns per fault, capped
}

const (
	bufPages    = 64 // largest single UFFDIO_COPY
	maxSamples  = 1 << 20
	bgChunk     = 64 // background pages between two polls
	maxFaultMsg = 64
)

func runChild(rep *os.File) error {
	ctl := os.NewFile(childCtl, "control")
	// The loop polls and reads the descriptor by number: without this the
	// File is garbage once the config is read, and its finalizer would
	// close the control pipe under the loop (a remote source allocates
	// enough to make the collector run).
	defer runtime.KeepAlive(ctl)
	var cfg childConfig
	if err := readMessage(ctl, &cfg); err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	// The description is shared with the parent's former copy, which
	// exec.Cmd made blocking; reads must not block once poll said ready.
	if err := unix.SetNonblock(childUffd, true); err != nil {
		return err
	}
	c := &child{
		u: uffd.FromFd(childUffd), base: uintptr(cfg.Base), pages: cfg.Pages,
		readahead: max(cfg.Readahead, 0), served: make([]bool, cfg.Pages),
	}
	if cfg.Pagemap {
		c.pagemap = uffd.PagemapFromFd(childPagemap)
	}
	var err error
	if cfg.Remote != nil {
		rs, err := newRemoteSource(cfg.Remote, cfg.Pages)
		if err != nil {
			return err
		}
		c.src, c.data = rs, rs.data
	} else {
		if c.data, err = dataPages(childImage, c.pages); err != nil {
			return err
		}
		c.src = imageSource{fd: childImage}
	}
	// Cache writes the remote source started must land before the child
	// goes, or the next session fetches those pages again.
	defer c.src.close()
	c.buf, err = unix.Mmap(-1, 0, bufPages*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	c.stats.Pages = c.pages
	for _, d := range c.data {
		if d {
			c.stats.DataPages++
		}
	}
	if err := writeMessage(rep, report{Kind: "ready"}); err != nil {
		return err
	}
	err = c.loop(ctl, rep, cfg.Prefetch)
	c.src.close()
	if errors.Is(err, errParentGone) {
		return nil
	}
	return err
}

// dataPages marks the pages of the image that are not holes.
func dataPages(fd, pages int) ([]bool, error) {
	data := make([]bool, pages)
	size := int64(pages) * PageSize
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO { // no data after off
			break
		}
		if err != nil {
			return nil, fmt.Errorf("image SEEK_DATA: %w", err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("image SEEK_HOLE: %w", err)
		}
		for p := start / PageSize; p < (end+PageSize-1)/PageSize && p < int64(pages); p++ {
			data[p] = true
		}
		off = end
	}
	return data, nil
}

func (c *child) loop(ctl, rep *os.File, prefetch []int) error {
	msgs := make([]uffd.Msg, maxFaultMsg)
	faulted := make([]int, 0, maxFaultMsg)
	complete := -1 // next page to fill after cmdComplete
	pfds := []unix.PollFd{{Fd: childUffd, Events: unix.POLLIN}, {Fd: childCtl, Events: unix.POLLIN}}
	var cmd [16]byte
	for {
		if complete >= 0 && c.nServed == c.pages {
			c.finishStats()
			return writeMessage(rep, report{Kind: "done", Stats: c.stats})
		}
		timeout := -1
		if len(prefetch) > 0 || complete >= 0 {
			timeout = 0 // background work: just peek for faults
		}
		n, err := unix.Poll(pfds, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if pfds[1].Revents != 0 {
			k, err := unix.Read(childCtl, cmd[:])
			if k == 0 || (err != nil && err != unix.EAGAIN && err != unix.EINTR) {
				return nil // parent closed the control pipe: stop
			}
			for _, b := range cmd[:max(k, 0)] {
				switch b {
				case cmdStats:
					c.finishStats()
					if err := writeMessage(rep, report{Kind: "stats", Stats: c.stats}); err != nil {
						return err
					}
				case cmdComplete:
					if complete < 0 {
						complete = 0
						c.src.completing()
					}
				}
			}
		}
		if pfds[0].Revents&unix.POLLIN != 0 {
			k, err := c.u.Read(msgs)
			if err == unix.EAGAIN {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading faults: %w", err)
			}
			t0 := time.Now()
			faulted = faulted[:0]
			// Faulting pages first: their threads are waiting.
			for _, m := range msgs[:k] {
				if m.Event != uffd.EventPagefault {
					continue
				}
				p := int((uintptr(m.Address) - c.base) / PageSize)
				if p < 0 || p >= c.pages {
					continue
				}
				c.stats.Faults++
				write := m.Flags&uffd.PagefaultFlagWrite != 0
				if write {
					c.stats.WriteFaults++
				}
				if err := c.serveFault(p, write); err != nil {
					return err
				}
				if len(c.service) < maxSamples {
					c.service = append(c.service, uint32(min(time.Since(t0), time.Duration(^uint32(0)))))
				}
				faulted = append(faulted, p)
			}
			for _, p := range faulted {
				end := min(p+1+c.readahead, c.pages)
				if err := c.src.want(c.unserved(p+1, end, nil)); err != nil {
					return err
				}
				if err := c.fillRange(p+1, end, &c.stats.ServedByReadahead); err != nil {
					return err
				}
			}
			continue
		}
		if n > 0 && pfds[1].Revents != 0 {
			continue
		}
		// Idle: background work, a chunk at a time so faults wait little.
		switch {
		case len(prefetch) > 0:
			k := min(len(prefetch), bgChunk)
			var want []int
			for _, p := range prefetch[:k] {
				if p >= 0 && p < c.pages && c.data[p] && !c.served[p] {
					want = append(want, p)
				}
			}
			if err := c.src.want(want); err != nil { // one request for the chunk
				return err
			}
			for _, p := range prefetch[:k] {
				if p >= 0 && p < c.pages {
					if err := c.fillRange(p, p+1, &c.stats.ServedByPrefetch); err != nil {
						return err
					}
				}
			}
			prefetch = prefetch[k:]
		case complete >= 0:
			end := min(complete+bgChunk, c.pages)
			if err := c.src.want(c.unserved(complete, end, nil)); err != nil {
				return err
			}
			if err := c.fillRange(complete, end, &c.stats.ServedByComplete); err != nil {
				return err
			}
			complete = end
			if complete == c.pages && c.nServed < c.pages {
				complete = 0 // pages skipped as present: go round once more
			}
		}
	}
}

func (c *child) finishStats() {
	c.stats.percentiles(c.service)
	c.src.count(&c.stats)
}

// unserved appends the data pages of [from, to) not served yet to dst.
func (c *child) unserved(from, to int, dst []int) []int {
	for p := from; p < to; p++ {
		if c.data[p] && !c.served[p] {
			dst = append(dst, p)
		}
	}
	return dst
}

func (c *child) addr(p int) uintptr { return c.base + uintptr(p)*PageSize }

func (c *child) markServed(p int, counter *int) {
	if !c.served[p] {
		c.served[p] = true
		c.nServed++
		*counter++
		if !c.data[p] {
			c.stats.ZeroFilled++
		}
	}
}

// serveFault fills page p, which a thread is waiting on, and wakes the
// thread if the page turns out to be present already, because a failed
// UFFDIO_COPY does not wake.
//
// A message for a page already served usually names a page that is
// present: the kernel queues a fault's message before it sleeps, and a fill
// dequeues, with the wake-up, only the messages of that page nobody has
// read yet. So a message read in the same batch as another one for the same
// page (two threads), or one queued by a thread that faulted while
// read-ahead was filling its page and read before the thread dequeued it
// again, arrives after its page is filled. Taking such a page from the
// source again fetched it twice (TestRemoteStaleFaultNotFetchedAgain), so a
// served data page is looked up in the parent's page table first and only
// read again if it really is missing: the parent may have dropped it with
// MADV_DONTNEED.
func (c *child) serveFault(p int, write bool) error {
	var err error
	switch {
	case c.data[p] && c.served[p] && c.present(p):
		err = unix.EEXIST
	case c.data[p]:
		if err = c.src.read(p, 1, c.buf[:PageSize]); err == nil {
			_, err = c.retry(func() (int, error) { return c.u.Copy(c.addr(p), c.bufAddr(), PageSize, false) })
		}
	case write:
		// A zero page mapped by UFFDIO_ZEROPAGE would fault again on this
		// very write; a copied zero page does not.
		_, err = c.retry(func() (int, error) {
			return c.u.Copy(c.addr(p), uintptr(unsafe.Pointer(&zeroPage[0])), PageSize, false)
		})
	default:
		_, err = c.retry(func() (int, error) { return c.u.ZeroPage(c.addr(p), PageSize, false) })
	}
	switch {
	case err == nil:
	case err == unix.EEXIST:
		c.stats.AlreadyPresent++
		if err := c.u.Wake(c.addr(p), PageSize); err != nil {
			return c.fillErr(p, err)
		}
	default:
		return c.fillErr(p, err)
	}
	c.markServed(p, &c.stats.ServedByFault)
	return nil
}

// present reports whether page p is mapped in the parent; false if that
// cannot be known, so that the page is served again.
func (c *child) present(p int) bool {
	if c.pagemap == nil {
		return false
	}
	ok, err := c.pagemap.Mapped(c.addr(p))
	return err == nil && ok
}

func (c *child) fillErr(p int, err error) error {
	if errors.Is(err, errSource) {
		return err // the source's own message says which page and why
	}
	if err == unix.ENOENT || err == unix.ESRCH {
		return errParentGone
	}
	return fmt.Errorf("filling page %d: %w", p, err)
}

// retry repeats a fill that failed with EAGAIN (the parent's address space
// was changing under the ioctl).
func (c *child) retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EAGAIN {
			return n, err
		}
	}
}

func (c *child) bufAddr() uintptr { return uintptr(unsafe.Pointer(&c.buf[0])) }

// fillRange fills the pages of [from, to) not served yet, as runs of data
// pages (one pread and one UFFDIO_COPY each) and runs of zero pages (one
// UFFDIO_ZEROPAGE). Nobody waits on these pages, so a page found present
// (EEXIST) is just skipped.
func (c *child) fillRange(from, to int, counter *int) error {
	for p := from; p < to; {
		if c.served[p] {
			p++
			continue
		}
		end := p + 1
		for end < to && end-p < bufPages && !c.served[end] && c.data[end] == c.data[p] {
			end++
		}
		done, err := c.fillRun(p, end-p)
		for q := p; q < p+done; q++ {
			c.markServed(q, counter)
		}
		switch {
		case err == nil:
			p = end
		case err == unix.EEXIST:
			// Page p+done is present: count it as served and go on after it.
			c.stats.AlreadyPresent++
			c.markServed(p+done, counter)
			p += done + 1
		default:
			return c.fillErr(p+done, err)
		}
	}
	return nil
}

// fillRun fills n pages of one kind at p and returns how many it filled,
// carrying on after an EAGAIN that filled part of the run.
func (c *child) fillRun(p, n int) (int, error) {
	if c.data[p] {
		if err := c.src.read(p, n, c.buf[:n*PageSize]); err != nil {
			return 0, err
		}
	}
	done := 0
	for done < n {
		var k int
		var err error
		if c.data[p] {
			k, err = c.u.Copy(c.addr(p+done), c.bufAddr()+uintptr(done)*PageSize, (n-done)*PageSize, false)
		} else {
			k, err = c.u.ZeroPage(c.addr(p+done), (n-done)*PageSize, false)
		}
		done += k / PageSize
		if err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
