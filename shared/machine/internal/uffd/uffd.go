//go:build linux

package uffd

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the page granularity everything here works in. Guest memory
// regions are mapped with MADV_NOHUGEPAGE, so faults and write-protection
// are per 4 KiB page.
const PageSize = 4096

// Errors callers branch on to fall back (stop-and-copy snapshots, eager
// restores). Returned errors wrap one of these and the errno.
var (
	// ErrNotPermitted: userfaultfd exists but this process may not use it
	// (EPERM/EACCES: vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE,
	// no access to /dev/userfaultfd, or a seccomp filter).
	ErrNotPermitted = errors.New("userfaultfd not permitted")
	// ErrUnsupported: the kernel lacks userfaultfd, a requested feature or
	// ioctl, or PAGEMAP_SCAN (Linux < 6.7).
	ErrUnsupported = errors.New("userfaultfd feature not supported")
)

// Feature is a UFFD_FEATURE_* bit negotiated with UFFDIO_API.
type Feature uint64

// UFFD_FEATURE_* from <linux/userfaultfd.h> (Linux 6.8 has all of them).
const (
	FeaturePagefaultFlagWP  Feature = 1 << 0
	FeatureEventFork        Feature = 1 << 1
	FeatureEventRemap       Feature = 1 << 2
	FeatureEventRemove      Feature = 1 << 3
	FeatureMissingHugetlbfs Feature = 1 << 4
	FeatureMissingShmem     Feature = 1 << 5
	FeatureEventUnmap       Feature = 1 << 6
	FeatureSigbus           Feature = 1 << 7
	FeatureThreadID         Feature = 1 << 8
	FeatureMinorHugetlbfs   Feature = 1 << 9
	FeatureMinorShmem       Feature = 1 << 10
	FeatureExactAddress     Feature = 1 << 11
	FeatureWPHugetlbfsShmem Feature = 1 << 12
	FeatureWPUnpopulated    Feature = 1 << 13
	FeaturePoison           Feature = 1 << 14
	FeatureWPAsync          Feature = 1 << 15
	FeatureMove             Feature = 1 << 16
)

// Mode is a UFFDIO_REGISTER_MODE_* bit.
type Mode uint64

// Registration modes.
const (
	ModeMissing Mode = 1 << 0 // faults on pages not present are reported
	ModeWP      Mode = 1 << 1 // writes to write-protected pages are reported (or, with WP_ASYNC, resolved by the kernel)
	ModeMinor   Mode = 1 << 2
)

// Fault message flags (UFFD_PAGEFAULT_FLAG_*).
const (
	PagefaultFlagWrite uint64 = 1 << 0
	PagefaultFlagWP    uint64 = 1 << 1
	PagefaultFlagMinor uint64 = 1 << 2
)

// EventPagefault is uffd_msg.event for a page fault.
const EventPagefault = 0x12

// Ioctl request numbers. They are _IOWR/_IOR(0xAA, nr, struct) from
// <linux/userfaultfd.h>; uffd_test.go recomputes them from the struct sizes
// and compares them with the header's values.
const (
	apiVersion = 0xAA

	ioctlAPI          = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	ioctlRegister     = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	ioctlUnregister   = 0x8010aa01 // _IOR(0xAA, 0x01, struct uffdio_range)
	ioctlWake         = 0x8010aa02 // _IOR(0xAA, 0x02, struct uffdio_range)
	ioctlCopy         = 0xc028aa03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	ioctlZeropage     = 0xc020aa04 // _IOWR(0xAA, 0x04, struct uffdio_zeropage)
	ioctlWriteProtect = 0xc018aa06 // _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
	ioctlDevNew       = 0xaa00     // USERFAULTFD_IOC_NEW = _IO(0xAA, 0x00) on /dev/userfaultfd

	copyModeDontWake     = 1 << 0
	zeropageModeDontWake = 1 << 0
	wpModeWP             = 1 << 0
	wpModeDontWake       = 1 << 1
)

type uffdioAPI struct{ API, Features, Ioctls uint64 }

type uffdioRange struct{ Start, Len uint64 }

type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioCopy struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

type uffdioZeropage struct {
	Range    uffdioRange
	Mode     uint64
	Zeropage int64
}

type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

// Msg is struct uffd_msg as read from the descriptor. Only page-fault
// events are requested by this package's callers, so only those fields
// are named.
type Msg struct {
	Event uint8
	_     [7]byte
	// Flags is a set of PagefaultFlag* bits.
	Flags uint64
	// Address of the fault, page-aligned unless FeatureExactAddress.
	Address uint64
	// Ptid is the faulting thread with FeatureThreadID.
	Ptid uint32
	_    uint32
}

const msgSize = int(unsafe.Sizeof(Msg{}))

// mapErrno turns an errno from opening or negotiating userfaultfd into an
// error callers can branch on with errors.Is, keeping the errno itself.
func mapErrno(op string, errno error) error {
	switch {
	case errors.Is(errno, unix.EPERM), errors.Is(errno, unix.EACCES):
		return fmt.Errorf("%s: %w: %w", op, ErrNotPermitted, errno)
	case errors.Is(errno, unix.ENOSYS), errors.Is(errno, unix.ENOTTY), errors.Is(errno, unix.EINVAL), errors.Is(errno, unix.ENOENT):
		return fmt.Errorf("%s: %w: %w", op, ErrUnsupported, errno)
	}
	return fmt.Errorf("%s: %w", op, errno)
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// newFd returns a fresh, unconfigured userfaultfd. It tries the syscall
// first and then /dev/userfaultfd, whose file permissions can grant
// userfaultfd to an unprivileged user when the sysctl refuses it.
func newFd(flags int) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags|unix.O_CLOEXEC), 0, 0)
	if e == 0 {
		return int(fd), nil
	}
	if e != unix.EPERM && e != unix.EACCES {
		return -1, mapErrno("userfaultfd", e)
	}
	dev, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		// The syscall's refusal is the informative error.
		return -1, mapErrno("userfaultfd", e)
	}
	defer unix.Close(dev)
	r, _, e2 := unix.Syscall(unix.SYS_IOCTL, uintptr(dev), ioctlDevNew, uintptr(flags|unix.O_CLOEXEC))
	if e2 != 0 {
		return -1, mapErrno("userfaultfd via /dev/userfaultfd", e2)
	}
	return int(r), nil
}

// Supported returns the features the running kernel offers. It opens and
// closes a throwaway descriptor, because UFFDIO_API may be issued only once
// per descriptor.
func Supported() (Feature, error) {
	fd, err := newFd(0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	a := uffdioAPI{API: apiVersion}
	if err := ioctl(fd, ioctlAPI, unsafe.Pointer(&a)); err != nil {
		return 0, mapErrno("UFFDIO_API", err)
	}
	return Feature(a.Features), nil
}

// UFFD is an open, negotiated userfaultfd. Methods may be called from any
// goroutine or process holding the descriptor; the kernel serializes them.
type UFFD struct {
	fd int
}

// Open creates a userfaultfd with the given open flags (unix.O_NONBLOCK or
// 0; O_CLOEXEC is always added) and enables features. If the kernel lacks a
// feature the error wraps ErrUnsupported and names the missing bits.
func Open(features Feature, flags int) (*UFFD, error) {
	fd, err := newFd(flags)
	if err != nil {
		return nil, err
	}
	a := uffdioAPI{API: apiVersion, Features: uint64(features)}
	if err := ioctl(fd, ioctlAPI, unsafe.Pointer(&a)); err != nil {
		unix.Close(fd)
		if err == unix.EINVAL {
			if have, perr := Supported(); perr == nil {
				return nil, fmt.Errorf("UFFDIO_API: kernel lacks features %#x: %w: %w", uint64(features&^have), ErrUnsupported, err)
			}
		}
		return nil, mapErrno("UFFDIO_API", err)
	}
	return &UFFD{fd: fd}, nil
}

// FromFd adopts a descriptor that was negotiated elsewhere, typically one
// inherited by a page-server child process.
func FromFd(fd int) *UFFD { return &UFFD{fd: fd} }

// Fd returns the descriptor, e.g. to hand it to a child process.
func (u *UFFD) Fd() int { return u.fd }

// Close closes the descriptor. When the last reference to the userfaultfd
// goes away the kernel unregisters every range and wakes blocked faults,
// which then fault in ordinary (zero) pages.
func (u *UFFD) Close() error {
	if u.fd < 0 {
		return nil
	}
	err := unix.Close(u.fd)
	u.fd = -1
	return err
}

// Register registers [start, start+length) in the given modes and returns
// the bitmask of ioctls allowed on it. EBUSY means another userfaultfd has
// the range already.
func (u *UFFD) Register(start uintptr, length int, mode Mode) (uint64, error) {
	r := uffdioRegister{Range: uffdioRange{uint64(start), uint64(length)}, Mode: uint64(mode)}
	if err := ioctl(u.fd, ioctlRegister, unsafe.Pointer(&r)); err != nil {
		return 0, fmt.Errorf("UFFDIO_REGISTER(%#x+%#x, mode %d): %w", start, length, mode, err)
	}
	return r.Ioctls, nil
}

// Unregister removes the registration of [start, start+length).
func (u *UFFD) Unregister(start uintptr, length int) error {
	r := uffdioRange{uint64(start), uint64(length)}
	if err := ioctl(u.fd, ioctlUnregister, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("UFFDIO_UNREGISTER: %w", err)
	}
	return nil
}

// Copy atomically fills the missing pages [dst, dst+length) with a copy of
// src (both page-aligned) and, unless dontWake, wakes threads faulting
// there. It returns the bytes copied, which on error (EEXIST when a page is
// already present, EAGAIN when the mm is changing) may be a prefix of the
// range. The raw errno is returned so callers can compare it.
func (u *UFFD) Copy(dst, src uintptr, length int, dontWake bool) (int, error) {
	c := uffdioCopy{Dst: uint64(dst), Src: uint64(src), Len: uint64(length)}
	if dontWake {
		c.Mode = copyModeDontWake
	}
	err := ioctl(u.fd, ioctlCopy, unsafe.Pointer(&c))
	return max(int(c.Copy), 0), err
}

// ZeroPage maps the shared zero page over the missing pages [dst,
// dst+length) and wakes faulting threads unless dontWake. A later write to
// such a page takes another, kernel-resolved fault. Errors as for Copy.
func (u *UFFD) ZeroPage(dst uintptr, length int, dontWake bool) (int, error) {
	z := uffdioZeropage{Range: uffdioRange{uint64(dst), uint64(length)}}
	if dontWake {
		z.Mode = zeropageModeDontWake
	}
	err := ioctl(u.fd, ioctlZeropage, unsafe.Pointer(&z))
	return max(int(z.Zeropage), 0), err
}

// WriteProtect sets (wp) or clears write protection on [start,
// start+length). Clearing wakes threads blocked on the range unless
// dontWake.
func (u *UFFD) WriteProtect(start uintptr, length int, wp, dontWake bool) error {
	a := uffdioWriteprotect{Range: uffdioRange{uint64(start), uint64(length)}}
	if wp {
		a.Mode |= wpModeWP
	}
	if dontWake {
		a.Mode |= wpModeDontWake
	}
	if err := ioctl(u.fd, ioctlWriteProtect, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("UFFDIO_WRITEPROTECT(%#x+%#x, wp=%v): %w", start, length, wp, err)
	}
	return nil
}

// Wake wakes threads blocked on faults in [start, start+length) without
// filling anything; they retry the access. Needed after a Copy or ZeroPage
// that failed with EEXIST, which does not wake.
func (u *UFFD) Wake(start uintptr, length int) error {
	r := uffdioRange{uint64(start), uint64(length)}
	return ioctl(u.fd, ioctlWake, unsafe.Pointer(&r))
}

// Read reads pending fault messages into msgs and returns how many it got.
// With O_NONBLOCK and nothing pending it returns unix.EAGAIN.
func (u *UFFD) Read(msgs []Msg) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&msgs[0])), len(msgs)*msgSize)
	for {
		n, err := unix.Read(u.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n / msgSize, nil
	}
}
