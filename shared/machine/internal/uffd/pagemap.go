//go:build linux

package uffd

import (
	"fmt"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Category is a PAGE_IS_* bit of PAGEMAP_SCAN (<linux/fs.h>, Linux 6.7+).
type Category uint64

// Page categories.
const (
	PageIsWPAllowed Category = 1 << 0 // the range is registered for async write-protect
	PageIsWritten   Category = 1 << 1 // written since it was last write-protected (WP_ASYNC)
	PageIsFile      Category = 1 << 2
	PageIsPresent   Category = 1 << 3
	PageIsSwapped   Category = 1 << 4
	PageIsPFNZero   Category = 1 << 5 // maps the shared zero page
	PageIsHuge      Category = 1 << 6
	PageIsSoftDirty Category = 1 << 7
)

// ScanFlag is a PM_SCAN_* flag.
type ScanFlag uint64

// Scan flags.
const (
	// ScanWPMatching write-protects, atomically with reporting them, the
	// pages that match. With PageIsWritten that is "take the dirty set and
	// start a new interval".
	ScanWPMatching ScanFlag = 1 << 0
	// ScanCheckWPAsync fails the scan unless the range is registered with
	// UFFD_FEATURE_WP_ASYNC, so a misconfigured tracker is an error rather
	// than an empty dirty set.
	ScanCheckWPAsync ScanFlag = 1 << 1
)

// ioctlPagemapScan is _IOWR('f', 16, struct pm_scan_arg).
const ioctlPagemapScan = 0xc0606610

// PageRegion is struct page_region: a run [Start, End) of pages sharing
// Categories (masked by the scan's return mask).
type PageRegion struct {
	Start, End uint64
	Categories uint64
}

type pmScanArg struct {
	Size, Flags, Start, End, WalkEnd, Vec, VecLen, MaxPages       uint64
	CategoryInverted, CategoryMask, CategoryAnyofMask, ReturnMask uint64
}

// ScanArgs selects what a PAGEMAP_SCAN reports; see
// Documentation/admin-guide/mm/pagemap.rst. A page matches when
// (categories ^ Inverted) & Mask == Mask and, if AnyOf is set, it has one
// of AnyOf's bits.
type ScanArgs struct {
	Start, End uintptr // page-aligned address range
	Flags      ScanFlag
	Inverted   Category
	Mask       Category
	AnyOf      Category
	Return     Category
	MaxPages   uint64 // stop after this many matching pages (0: no limit)
}

// Pagemap is an open /proc/<pid>/pagemap for PAGEMAP_SCAN.
type Pagemap struct {
	fd int
}

// OpenPagemap opens the pagemap of pid (0: this process). Scanning another
// process needs ptrace-read access to it.
func OpenPagemap(pid int) (*Pagemap, error) {
	path := "/proc/self/pagemap"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/pagemap"
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, mapErrno("open "+path, err)
	}
	return &Pagemap{fd: fd}, nil
}

// PagemapFromFd wraps an open pagemap descriptor, e.g. one a process
// opened on itself and handed to a helper process: reads then describe the
// opener's memory, and the helper needs no ptrace access to it.
func PagemapFromFd(fd int) *Pagemap { return &Pagemap{fd: fd} }

// Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
)

// Mapped reports whether the page at addr has a page-table entry: present
// (the shared zero page included) or swapped out. A missing-page fault can
// only happen where it has none. It reads the plain pagemap entry, so it
// works on kernels without PAGEMAP_SCAN.
func (p *Pagemap) Mapped(addr uintptr) (bool, error) {
	var b [8]byte
	off := int64(addr/PageSize) * 8
	for {
		n, err := unix.Pread(p.fd, b[:], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading the pagemap entry of %#x: %w", addr, err)
		}
		if n != len(b) {
			// The process's address space is gone (the read returns 0).
			return false, fmt.Errorf("reading the pagemap entry of %#x: %d bytes", addr, n)
		}
		e := *(*uint64)(unsafe.Pointer(&b[0]))
		return e&(pmPresent|pmSwapped) != 0, nil
	}
}

// Close closes the pagemap file.
func (p *Pagemap) Close() error {
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}

// Scan runs one PAGEMAP_SCAN and fills vec with matching runs. It returns
// the number of runs and where the walk stopped: when vec fills up (or
// MaxPages is reached) walkEnd < a.End and the caller continues from there.
// With ScanWPMatching only the pages reported are re-protected, so nothing
// is lost by continuing.
func (p *Pagemap) Scan(a ScanArgs, vec []PageRegion) (n int, walkEnd uintptr, err error) {
	if len(vec) == 0 {
		return 0, a.Start, fmt.Errorf("PAGEMAP_SCAN: empty result vector")
	}
	arg := pmScanArg{
		Size:              uint64(unsafe.Sizeof(pmScanArg{})),
		Flags:             uint64(a.Flags),
		Start:             uint64(a.Start),
		End:               uint64(a.End),
		Vec:               uint64(uintptr(unsafe.Pointer(&vec[0]))),
		VecLen:            uint64(len(vec)),
		MaxPages:          a.MaxPages,
		CategoryInverted:  uint64(a.Inverted),
		CategoryMask:      uint64(a.Mask),
		CategoryAnyofMask: uint64(a.AnyOf),
		ReturnMask:        uint64(a.Return),
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(p.fd), ioctlPagemapScan, uintptr(unsafe.Pointer(&arg)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			if e == unix.ENOTTY {
				return 0, uintptr(arg.WalkEnd), fmt.Errorf("PAGEMAP_SCAN: %w: %w", ErrUnsupported, e)
			}
			return 0, uintptr(arg.WalkEnd), fmt.Errorf("PAGEMAP_SCAN(%#x-%#x, flags %#x): %w", a.Start, a.End, a.Flags, e)
		}
		return int(r), uintptr(arg.WalkEnd), nil
	}
}
