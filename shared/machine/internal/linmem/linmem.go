// Package linmem backs a wasm linear memory with one anonymous mmap
// reservation of the memory's maximum size, so its base address never moves.
// A fixed base is what userfaultfd registration, write-protection and
// MADV_* calls need (DESIGN.md section 5); wazero's default allocator moves
// memory on growth.
//
// It must not know about wazero beyond the allocator interface, nor about
// snapshots or guests.
package linmem

import (
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// PageSize is the host page size snapshots and dirty tracking work in.
const PageSize = 4096

// Memory is one guest's linear memory.
type Memory struct {
	mu     sync.Mutex
	region []byte // the whole reservation
	size   uint64 // current wasm memory length
}

// Bytes returns the current linear memory. The slice is valid until Free.
func (m *Memory) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.region[:m.size:m.size]
}

// Reallocate implements experimental.LinearMemory: growth never moves.
func (m *Memory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size > uint64(len(m.region)) {
		return nil
	}
	m.size = size
	return m.region[:size:size]
}

// Free implements experimental.LinearMemory; wazero calls it on Close.
func (m *Memory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.region != nil {
		_ = unix.Munmap(m.region)
		m.region = nil
		m.size = 0
	}
}

// Zero drops every page of the memory, which then reads as zeros; the
// reservation stays. It is how a restore discards data segments applied by
// instantiation.
func (m *Memory) Zero() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.size == 0 {
		return nil
	}
	return unix.Madvise(m.region[:m.size], unix.MADV_DONTNEED)
}

// Populate pre-faults the current memory for writing. First-touch page
// faults cost ~10 µs each on these machines; one madvise costs far less than
// faulting 16k pages one by one during a restore copy.
func (m *Memory) Populate() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.size == 0 {
		return nil
	}
	return unix.Madvise(m.region[:m.size], unix.MADV_POPULATE_WRITE)
}

// Allocator implements experimental.MemoryAllocator for one instance and
// remembers the memory it made.
type Allocator struct {
	// Limit caps the reservation in bytes (0: the module's maximum, which is
	// 4 GiB for a Go guest; MAP_NORESERVE makes that free).
	Limit uint64

	mem *Memory
	err error
}

// Memory returns the memory allocated, or nil before instantiation.
func (a *Allocator) Memory() *Memory { return a.mem }

// Err returns why allocation failed, if it did.
func (a *Allocator) Err() error { return a.err }

// Allocate implements experimental.MemoryAllocator.
func (a *Allocator) Allocate(cap, max uint64) experimental.LinearMemory {
	n := max
	if a.Limit != 0 && a.Limit < n {
		n = a.Limit
	}
	b, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		// wazero has no error path here; the machine recovers this panic
		// around instantiation and reports it.
		a.err = fmt.Errorf("linmem: reserving %d bytes: %w", n, err)
		panic(a.err)
	}
	// 4 KiB granularity for userfaultfd and dirty tracking.
	_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
	a.mem = &Memory{region: b}
	return a.mem
}
