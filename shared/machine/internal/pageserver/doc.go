// Package pageserver restores a memory region lazily: the region is
// registered with userfaultfd in missing-page mode and its pages are filled
// on first touch by a page-server child process (DESIGN.md section 5, "Lazy
// restore"), from one of two sources:
//
//   - an Image: a memfd the parent filled (a local snapshot file);
//   - Remote: a page service (shared/pageservice) and the page hashes of a
//     snapshot's manifest. The child takes each page from the client's disk
//     cache (shared/pagecache) or fetches it — one GET for a faulting page,
//     one batch for read-ahead, a prefetch chunk or a completion chunk —
//     verifies it against its hash, keeps it in the cache and only then
//     copies it in. A page that fails verification, or a page service that
//     is gone, ends the child with an error that names the page and the
//     cause (see "When the child dies").
//
// Fetching happens in the child and nowhere else: a goroutine of the
// guest's own process waiting on the network while the guest's thread waits
// on the fault is the garbage-collector deadlock below, with a socket in it.
//
// It knows a region of bytes, page numbers, page contents and page hashes
// only: nothing of wazero, guests, snapshot files or manifests.
//
// # Why a child process
//
// A goroutine blocked in a missing-page fault is, for the Go scheduler,
// running: it cannot be preempted (JIT code has no safe points), so a
// stop-the-world for garbage collection waits for it forever. If the fault
// handler were a goroutine of the same process it would need a P to run,
// and the stop-the-world holds them all: deadlock (reproduced in the
// spike; with GOMAXPROCS=1 it happens without any GC). So faults are served
// by a re-executed copy of the current binary: MaybeRunChild, called first
// thing in main and TestMain, turns that copy into the server. The child
// gets the userfaultfd, a memfd holding the image (or the remote pages'
// description), two pipes and the parent's /proc/self/pagemap, and fills
// pages with UFFDIO_COPY into the parent's address space. Nothing in the
// parent ever has to run for a fault to be resolved.
//
// The child serves the faulting page first (UFFDIO_COPY of a zero page for
// a write fault on a zero page, so the write does not fault a second time;
// UFFDIO_ZEROPAGE for a read), then read-ahead: the next Readahead pages
// not yet served. Between faults it works through a prefetch list (the
// last known working set) and, after Complete, every remaining page.
//
// Each page is taken from its source once. A fault message can name a page
// that is present already (the kernel queues it before the faulting thread
// sleeps, and a fill dequeues only messages not read yet: two threads on one
// page, or a thread that faulted as read-ahead filled its page); the child
// answers those with a wake-up after checking the parent's pagemap, and
// reads a served page again only if the parent really dropped it.
//
// # When the child dies
//
// The parent closes its own copy of the userfaultfd as soon as the child
// has it, so the child holds the only reference. If the child dies — killed,
// crashed, OOM — the kernel releases the userfaultfd: it unregisters the
// region and wakes every blocked fault, and those and all later faults on
// pages never served are filled with zeros by the kernel. That is the
// design's choice, because every alternative hangs:
//
//   - if the parent kept a reference, a fault in flight would block until
//     someone in the parent answered it — a goroutine, which is exactly the
//     deadlock above (at GOMAXPROCS=1 nothing in the process can run);
//   - a second helper process could die too, and then the same hang.
//
// Zero-filling is silent corruption unless it is detected, so detection is
// part of the contract:
//
//   - a watcher goroutine waits for the child; on an unexpected exit it
//     records ErrServerDied (with the child's own error if it reported one
//     — "page 812 failed verification", "the page service at … refused the
//     connection" — else its exit status and stderr) and
//     calls Options.OnFailure, so the machine can cancel the running step
//     (a guest running on zeroed memory may loop forever);
//   - Server.Err, which the machine must call after every step before it
//     trusts guest state (snapshot, hash, output), is authoritative without
//     racing the watcher: it tries to register the region with a fresh
//     userfaultfd. While the server lives that fails with EBUSY; once the
//     kernel has released the server's userfaultfd it succeeds. The release
//     unregisters the region before it wakes any fault, so if any page of
//     the step was zero-filled, Err reports it.
//
// The guest state is then discarded and the viewer falls back (eager
// restore or display mode). A child that is alive but stuck would still
// hang the faulting thread; the child's loop does nothing that blocks
// other than poll.
//
// A region has only one userfaultfd: dirty tracking (internal/dirty) can
// start only after Complete has filled every page and the child has gone.
package pageserver
