//go:build linux

// Package dirty finds the pages of a memory region written since a point in
// time, and builds on that the pre-copy algorithm of the asynchronous
// snapshot (DESIGN.md section 5): copy guest memory while the guest keeps
// running, then stop it only long enough to re-copy what it wrote meanwhile.
//
// Tracking uses userfaultfd write-protection in WP_ASYNC mode: the kernel
// itself resolves the write fault and marks the page written, so there is
// no fault-handler thread and none of the garbage-collector deadlock that a
// handler goroutine would risk. PAGEMAP_SCAN then reports the written pages
// and write-protects them again in one atomic step.
//
// The package knows a region of bytes and page numbers only: nothing of
// wazero, guests, snapshot formats or networking. A region can have only one
// userfaultfd, so tracking cannot start while a lazy restore
// (internal/pageserver) still serves the same region.
package dirty

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"replaydesk/shared/machine/internal/uffd"
)

// Errors that mean "no dirty tracking here; fall back to stop-and-copy".
// They are the uffd package's sentinels, so errors.Is works with either.
var (
	ErrNotPermitted = uffd.ErrNotPermitted
	ErrUnsupported  = uffd.ErrUnsupported
)

// features are what tracking needs: WP_ASYNC so the kernel resolves write
// faults itself, WP_UNPOPULATED so pages never touched are protected too
// (otherwise their first write would go unnoticed).
const features = uffd.FeatureWPAsync | uffd.FeatureWPUnpopulated

// Tracker tracks writes to one fixed region. Its methods must not be called
// concurrently with each other; writes to the region from any goroutine
// (or JIT code) may happen at any time.
type Tracker struct {
	region []byte
	base   uintptr
	u      *uffd.UFFD
	pm     *uffd.Pagemap
	vec    []uffd.PageRegion
}

// New starts tracking region, which must be page-aligned, a whole number of
// pages, and mapped private anonymous (like linmem's reservation). It
// write-protects the region, so the first Scan reports the pages written
// after New. If userfaultfd is refused or lacks WP_ASYNC the error wraps
// ErrNotPermitted or ErrUnsupported.
//
// The region's size is fixed: a memory that grows past it must be tracked
// by a new Tracker (or the grown tail copied in full).
func New(region []byte) (*Tracker, error) {
	if len(region) == 0 || len(region)%PageSize != 0 {
		return nil, fmt.Errorf("dirty: region length %d is not a positive multiple of %d", len(region), PageSize)
	}
	base := uintptr(unsafe.Pointer(&region[0]))
	if base%PageSize != 0 {
		return nil, fmt.Errorf("dirty: region at %#x is not page-aligned", base)
	}
	u, err := uffd.Open(features, 0)
	if err != nil {
		return nil, fmt.Errorf("dirty: %w", err)
	}
	t := &Tracker{region: region, base: base, u: u, vec: make([]uffd.PageRegion, 1024)}
	if _, err := u.Register(base, len(region), uffd.ModeWP); err != nil {
		u.Close()
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("dirty: region already has a userfaultfd (a lazy restore still running?): %w", err)
		}
		return nil, fmt.Errorf("dirty: %w", err)
	}
	if t.pm, err = uffd.OpenPagemap(0); err != nil {
		u.Close()
		return nil, fmt.Errorf("dirty: %w", err)
	}
	if err := t.Reset(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Pages returns the number of pages tracked.
func (t *Tracker) Pages() int { return len(t.region) / PageSize }

// Reset forgets all writes so far: it write-protects the whole region, so
// the next Scan reports only pages written after Reset returns. It costs a
// page-table walk of the whole region (~0.8 ms for 64 MiB here; a Scan,
// which re-protects only written pages, is ~20-40 µs), so it is done once
// per snapshot, not per round.
func (t *Tracker) Reset() error {
	if err := t.u.WriteProtect(t.base, len(t.region), true, false); err != nil {
		return fmt.Errorf("dirty: reset: %w", err)
	}
	return nil
}

// Scan calls fn for every run of pages written since the last Reset or
// Scan, in ascending order, and write-protects those pages again
// atomically with reporting them: a write that races with Scan is either
// reported now or by the next Scan, never lost. It returns the number of
// pages reported.
//
// fn runs while the scan is in progress and must not call the Tracker.
func (t *Tracker) Scan(fn func(firstPage, nPages int)) (int, error) {
	args := uffd.ScanArgs{
		Start:  t.base,
		End:    t.base + uintptr(len(t.region)),
		Flags:  uffd.ScanWPMatching | uffd.ScanCheckWPAsync,
		Mask:   uffd.PageIsWritten,
		Return: uffd.PageIsWritten,
	}
	total := 0
	for args.Start < args.End {
		n, walkEnd, err := t.pm.Scan(args, t.vec)
		if err != nil {
			return total, fmt.Errorf("dirty: scan: %w", err)
		}
		for _, r := range t.vec[:n] {
			first := int((uintptr(r.Start) - t.base) / PageSize)
			count := int((r.End - r.Start) / PageSize)
			total += count
			fn(first, count)
		}
		if walkEnd <= args.Start {
			// No progress would loop forever; the kernel always advances
			// unless the range is empty.
			break
		}
		args.Start = walkEnd
	}
	return total, nil
}

// Close stops tracking: the region is unregistered and no longer
// write-protected.
func (t *Tracker) Close() error {
	var err error
	if t.pm != nil {
		err = t.pm.Close()
		t.pm = nil
	}
	if t.u != nil {
		if e := t.u.Close(); err == nil {
			err = e
		}
		t.u = nil
	}
	return err
}
