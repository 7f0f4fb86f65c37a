// Package abi is guest ABI v1: the names, numbers and byte layouts shared by the
// host (shared/machine) and guest programs (shared/guest). It is plain data and
// pure encoding functions, so it compiles for both GOOS=linux and GOOS=wasip1.
//
// It must not know about wazero, record logs or sessions. The reference is
// docs/abi.md; keep the two in step.
package abi

// Version is the ABI version this package describes.
const Version = 1

// Module is the import module name of ABI v1. A guest built for another ABI
// version imports another module name and is refused at load with a clear
// error, never half-run.
const Module = "replaydesk_v1"

// ModulePrefix is what every ABI version's import module name starts with.
const ModulePrefix = "replaydesk_v"

// Guest exports.
const (
	// ExportStep is `step() -> i32`, called once per tick the guest is awake.
	// Its result is a Sleep value.
	ExportStep = "step"
	// ExportInit is the Go reactor's `_initialize`, called once on a cold start
	// and never on a restore.
	ExportInit = "_initialize"
	// ExportMemory is the guest's linear memory.
	ExportMemory = "memory"
)

// Sleep values returned by step.
const (
	// SleepNone asks for the next tick.
	SleepNone int32 = 0
	// SleepUntilEvent sleeps until input or network data arrives.
	SleepUntilEvent int32 = -1
	// Any n > 0 sleeps n ticks, or less if input or network data arrives.
)

// Imports of module "replaydesk_v1". Signatures are in docs/abi.md; all
// pointers and lengths are i32, block numbers i64.
const (
	ImportPresent      = "present"       // (fb, w, h, stride, format, rects, nrects)
	ImportInputPoll    = "input_poll"    // (buf, max) -> n events
	ImportDiskInfo     = "disk_info"     // (out) -> errno
	ImportDiskRead     = "disk_read"     // (block i64, buf) -> errno
	ImportDiskWrite    = "disk_write"    // (block i64, buf) -> errno
	ImportNetOpen      = "net_open"      // (name, len) -> handle or -errno
	ImportNetSend      = "net_send"      // (h, buf, len) -> n or -errno
	ImportNetRecv      = "net_recv"      // (h, buf, len) -> n or -errno
	ImportNetClose     = "net_close"     // (h) -> errno
	ImportConsoleWrite = "console_write" // (buf, len)
)

// Pixel formats for present.
const (
	// FormatRGBA8888: bytes R, G, B, A per pixel; A is ignored.
	FormatRGBA8888 int32 = 0
)

// Limits a host enforces on present; larger values are a guest error.
const (
	MaxWidth  = 8192
	MaxHeight = 8192
	MaxRects  = 4096
)

// Errno values are WASI preview 1's, so guests have one table to consult.
const (
	ErrnoSuccess     int32 = 0
	ErrnoAcces       int32 = 2
	ErrnoAgain       int32 = 6
	ErrnoBadf        int32 = 8
	ErrnoConnrefused int32 = 14
	ErrnoFault       int32 = 21
	ErrnoInval       int32 = 28
	ErrnoIO          int32 = 29
	ErrnoNoent       int32 = 44
	ErrnoNodev       int32 = 19
	ErrnoNospc       int32 = 51
	ErrnoNosys       int32 = 52
	ErrnoPipe        int32 = 64
	ErrnoRofs        int32 = 69
)

// Disk.
const (
	// BlockSize is the disk block size in bytes.
	BlockSize = 4096
	// DiskInfoSize is the size of the struct disk_info writes:
	// u64 blocks, u32 block size, u32 mode.
	DiskInfoSize = 16
)

// DiskMode says how a session's disk reaches replayers (DESIGN.md section 4).
type DiskMode uint32

const (
	// DiskNone: the session has no disk; disk_* return ErrnoNodev.
	DiskNone DiskMode = 0
	// DiskSnapshotted: reads come from a frozen base image plus a copy-on-write
	// overlay that is part of machine state; nothing is logged.
	DiskSnapshotted DiskMode = 1
	// DiskReplayed: every read's data goes into the log; writes reach the real
	// disk in record mode only.
	DiskReplayed DiskMode = 2
)

func (m DiskMode) String() string {
	switch m {
	case DiskNone:
		return "none"
	case DiskSnapshotted:
		return "snapshotted"
	case DiskReplayed:
		return "replayed"
	}
	return "unknown"
}

// ParseDiskMode accepts the names String returns.
func ParseDiskMode(s string) (DiskMode, bool) {
	for _, m := range []DiskMode{DiskNone, DiskSnapshotted, DiskReplayed} {
		if m.String() == s {
			return m, true
		}
	}
	return 0, false
}

// Net limits.
const (
	MaxNetHandles = 16
	MaxNetName    = 256
	// MaxNetChunk is the most bytes one net_send or net_recv moves.
	MaxNetChunk = 64 << 10
)
