//go:build linux

package uffd

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requireUffd skips when this machine cannot use userfaultfd, except in CI,
// where the tests exist precisely to exercise it.
func requireUffd(t *testing.T, features Feature) {
	t.Helper()
	have, err := Supported()
	if err == nil && have&features != features {
		err = errors.New("kernel lacks required features")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("userfaultfd unavailable in CI: %v", err)
		}
		t.Skipf("userfaultfd unavailable on this machine: %v", err)
	}
}

// ioc is the kernel's _IOC macro (asm-generic/ioctl.h, used by x86 and arm64).
func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

const (
	iocRead  = 2
	iocWrite = 1
)

func TestIoctlNumbersAndLayouts(t *testing.T) {
	// Values as printed by a C program including <linux/userfaultfd.h> and
	// from the 6.7+ <linux/fs.h> (see the spike notes, section 5).
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"UFFDIO_API", ioctlAPI, 0xc018aa3f},
		{"UFFDIO_REGISTER", ioctlRegister, 0xc020aa00},
		{"UFFDIO_UNREGISTER", ioctlUnregister, 0x8010aa01},
		{"UFFDIO_WAKE", ioctlWake, 0x8010aa02},
		{"UFFDIO_COPY", ioctlCopy, 0xc028aa03},
		{"UFFDIO_ZEROPAGE", ioctlZeropage, 0xc020aa04},
		{"UFFDIO_WRITEPROTECT", ioctlWriteProtect, 0xc018aa06},
		{"USERFAULTFD_IOC_NEW", ioctlDevNew, 0xaa00},
		{"PAGEMAP_SCAN", ioctlPagemapScan, 0xc0606610},
		// The same numbers derived from this package's struct sizes, so a
		// wrong field in a struct breaks the test rather than the kernel call.
		{"_IOWR(API)", ioc(iocRead|iocWrite, 0xAA, 0x3F, unsafe.Sizeof(uffdioAPI{})), ioctlAPI},
		{"_IOWR(REGISTER)", ioc(iocRead|iocWrite, 0xAA, 0x00, unsafe.Sizeof(uffdioRegister{})), ioctlRegister},
		{"_IOR(UNREGISTER)", ioc(iocRead, 0xAA, 0x01, unsafe.Sizeof(uffdioRange{})), ioctlUnregister},
		{"_IOR(WAKE)", ioc(iocRead, 0xAA, 0x02, unsafe.Sizeof(uffdioRange{})), ioctlWake},
		{"_IOWR(COPY)", ioc(iocRead|iocWrite, 0xAA, 0x03, unsafe.Sizeof(uffdioCopy{})), ioctlCopy},
		{"_IOWR(ZEROPAGE)", ioc(iocRead|iocWrite, 0xAA, 0x04, unsafe.Sizeof(uffdioZeropage{})), ioctlZeropage},
		{"_IOWR(WRITEPROTECT)", ioc(iocRead|iocWrite, 0xAA, 0x06, unsafe.Sizeof(uffdioWriteprotect{})), ioctlWriteProtect},
		{"_IOWR(PAGEMAP_SCAN)", ioc(iocRead|iocWrite, 'f', 16, unsafe.Sizeof(pmScanArg{})), ioctlPagemapScan},
		{"sizeof(uffd_msg)", unsafe.Sizeof(Msg{}), 32},
		{"offsetof(uffd_msg.arg.pagefault.flags)", unsafe.Offsetof(Msg{}.Flags), 8},
		{"offsetof(uffd_msg.arg.pagefault.address)", unsafe.Offsetof(Msg{}.Address), 16},
		{"offsetof(uffd_msg.arg.pagefault.feat.ptid)", unsafe.Offsetof(Msg{}.Ptid), 24},
		{"sizeof(page_region)", unsafe.Sizeof(PageRegion{}), 24},
		{"sizeof(pm_scan_arg)", unsafe.Sizeof(pmScanArg{}), 96},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestErrnoMapping(t *testing.T) {
	for _, c := range []struct {
		errno    unix.Errno
		sentinel error
	}{
		{unix.EPERM, ErrNotPermitted},
		{unix.EACCES, ErrNotPermitted},
		{unix.ENOSYS, ErrUnsupported},
		{unix.EINVAL, ErrUnsupported},
		{unix.ENOTTY, ErrUnsupported},
	} {
		err := mapErrno("op", c.errno)
		if !errors.Is(err, c.sentinel) || !errors.Is(err, c.errno) {
			t.Errorf("mapErrno(%v) = %v: want it to wrap %v and the errno", c.errno, err, c.sentinel)
		}
	}
	if err := mapErrno("op", unix.EMFILE); errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrUnsupported) || !errors.Is(err, unix.EMFILE) {
		t.Errorf("EMFILE mapped to %v: want a plain wrapped errno (not a reason to fall back)", err)
	}
}

func mmap(t *testing.T, pages int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, pages*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// TestMissingModeFillWithoutFaults fills pages before anything touches them,
// so no fault handler is needed in this process (see the package comment).
func TestMissingModeFillWithoutFaults(t *testing.T) {
	requireUffd(t, 0)
	region := mmap(t, 8)
	u, err := Open(0, unix.O_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Register(addr(region), len(region), ModeMissing); err != nil {
		t.Fatal(err)
	}
	src := mmap(t, 2)
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	if n, err := u.Copy(addr(region), addr(src), 2*PageSize, false); err != nil || n != 2*PageSize {
		t.Fatalf("Copy = %d, %v", n, err)
	}
	if _, err := u.Copy(addr(region)+PageSize, addr(src), PageSize, false); err != unix.EEXIST {
		t.Fatalf("second Copy onto a present page: %v, want EEXIST", err)
	}
	if n, err := u.ZeroPage(addr(region)+2*PageSize, 6*PageSize, false); err != nil || n != 6*PageSize {
		t.Fatalf("ZeroPage = %d, %v", n, err)
	}
	if !bytes.Equal(region[:2*PageSize], src) || bytes.ContainsFunc(region[2*PageSize:], func(r rune) bool { return r != 0 }) {
		t.Fatal("region contents differ from what was copied")
	}
	var msgs [4]Msg
	if _, err := u.Read(msgs[:]); err != unix.EAGAIN {
		t.Fatalf("Read with no faults: %v, want EAGAIN", err)
	}
	if err := u.Unregister(addr(region), len(region)); err != nil {
		t.Fatal(err)
	}
}

func TestWPAsyncAndPagemapScan(t *testing.T) {
	requireUffd(t, FeatureWPAsync|FeatureWPUnpopulated)
	const pages = 64
	region := mmap(t, pages)
	u, err := Open(FeatureWPAsync|FeatureWPUnpopulated, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Register(addr(region), len(region), ModeWP); err != nil {
		t.Fatal(err)
	}
	if err := u.WriteProtect(addr(region), len(region), true, false); err != nil {
		t.Fatal(err)
	}
	pm, err := OpenPagemap(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	// Pages 3, 4 and 40 written; page 10 only read.
	region[3*PageSize] = 1
	region[4*PageSize+100] = 2
	region[40*PageSize+4095] = 3
	_ = region[10*PageSize]
	args := ScanArgs{Start: addr(region), End: addr(region) + uintptr(len(region)),
		Flags: ScanWPMatching | ScanCheckWPAsync, Mask: PageIsWritten, Return: PageIsWritten}
	vec := make([]PageRegion, 1) // one slot: forces the continue-from-walkEnd path
	var got [][2]int
	for start := args.Start; start < args.End; {
		a := args
		a.Start = start
		n, walkEnd, err := pm.Scan(a, vec)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range vec[:n] {
			got = append(got, [2]int{int((uintptr(r.Start) - addr(region)) / PageSize), int((uintptr(r.End) - uintptr(r.Start)) / PageSize)})
		}
		if walkEnd <= start {
			break
		}
		start = walkEnd
	}
	want := [][2]int{{3, 2}, {40, 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("written runs = %v, want %v", got, want)
	}
	// The scan re-protected them: a second scan is empty until new writes.
	n, _, err := pm.Scan(args, make([]PageRegion, 8))
	if err != nil || n != 0 {
		t.Fatalf("second scan: %d runs, %v; want none", n, err)
	}
	region[5*PageSize] = 9
	if n, _, err := pm.Scan(args, make([]PageRegion, 8)); err != nil || n != 1 {
		t.Fatalf("scan after one write: %d runs, %v", n, err)
	}
}

// TestCheckWPAsyncRefusesPlainRange: PM_SCAN_CHECK_WPASYNC turns an
// untracked range into an error instead of an (empty) dirty set.
func TestCheckWPAsyncRefusesPlainRange(t *testing.T) {
	requireUffd(t, 0)
	region := mmap(t, 4)
	region[0] = 1
	pm, err := OpenPagemap(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	_, _, err = pm.Scan(ScanArgs{Start: addr(region), End: addr(region) + uintptr(len(region)),
		Flags: ScanWPMatching | ScanCheckWPAsync, Mask: PageIsWritten, Return: PageIsWritten}, make([]PageRegion, 4))
	if err == nil {
		t.Fatal("scan of an unregistered range with CHECK_WPASYNC succeeded")
	}
}

var readSink byte

// TestPagemapMapped: a written page and a read one (the shared zero page)
// are mapped, an untouched or dropped one is not — also through a
// descriptor handed over by number, as the page server's child gets it.
func TestPagemapMapped(t *testing.T) {
	region := mmap(t, 4)
	region[0] = 1
	readSink = region[1*PageSize] // a read: maps the shared zero page
	region[3*PageSize] = 1
	if err := unix.Madvise(region[3*PageSize:], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	pm, err := OpenPagemap(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	for _, pm := range []*Pagemap{pm, PagemapFromFd(pm.fd)} {
		for p, want := range []bool{true, true, false, false} {
			got, err := pm.Mapped(addr(region) + uintptr(p)*PageSize)
			if err != nil || got != want {
				t.Fatalf("page %d: mapped %v (%v), want %v", p, got, err, want)
			}
		}
	}
}
