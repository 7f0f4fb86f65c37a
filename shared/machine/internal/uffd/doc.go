// Package uffd is a thin binding to Linux userfaultfd(2) and
// /proc/<pid>/pagemap (its PAGEMAP_SCAN ioctl and its plain per-page
// entries), the kernel interfaces that guest-memory snapshots
// (write-protect dirty tracking) and lazy restores (missing-page serving)
// are built on (DESIGN.md section 5).
//
// golang.org/x/sys/unix has the userfaultfd syscall number but none of its
// ioctls or structs, so they are written out here and checked by a test
// against the values of <linux/userfaultfd.h> and <linux/fs.h>.
//
// The package only wraps syscalls: it knows nothing of wazero, guests,
// snapshot formats or networking, and it runs no fault handler. Reading
// fault messages and answering them is the caller's business, and callers
// must remember the rule that shaped the design of the page server: a
// missing-page handler must never run as a goroutine of the process whose
// goroutines fault, because a goroutine blocked in a fault cannot be
// stopped for garbage collection and the handler then never gets a P again.
//
// When userfaultfd cannot be used the errors say why in a way callers can
// branch on: ErrNotPermitted (the syscall is refused, e.g.
// vm.unprivileged_userfaultfd=0 for a non-root user) and ErrUnsupported
// (the kernel lacks userfaultfd, a feature, or PAGEMAP_SCAN). Both wrap the
// errno.
package uffd
