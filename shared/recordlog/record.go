// Package recordlog is the record log: the append-only, checksummed,
// segmented file format that holds everything non-deterministic a recorded
// machine received, in order. It encodes and decodes records, binds a log to
// its guest module's hash, and tails a log that is still growing.
//
// It must not know about wazero, the guest ABI's meaning or sessions: a call
// record's Fn, Args, Ret and Data are opaque numbers and bytes to it. The byte
// format is documented in docs/log-format.md.
package recordlog

// Kind says what a record is.
type Kind uint8

const (
	// KindStep: the machine ran step once at the current tick; the tick then
	// advances by one. The call records that follow, up to the next Step or
	// Idle, belong to this step.
	KindStep Kind = 1
	// KindIdle: N ticks passed without running step (the guest slept).
	KindIdle Kind = 2
	// KindCall: one logged import call: which import (Fn), its arguments (for
	// divergence checks), its result (Ret) and its outcome bytes (Data, whose
	// meaning belongs to the import).
	KindCall Kind = 3
	// KindCheckpoint: hashes the replayer must reproduce after the step just
	// logged: FBHash always, MemHash when non-zero.
	KindCheckpoint Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindStep:
		return "step"
	case KindIdle:
		return "idle"
	case KindCall:
		return "call"
	case KindCheckpoint:
		return "checkpoint"
	}
	return "kind?"
}

// MaxFn is the largest import number a call record can carry.
const MaxFn = 47

// MaxArgs is the most arguments a call record can carry.
const MaxArgs = 16

// MaxData is the largest outcome a call record can carry (a disk block or a
// net chunk fits with room to spare).
const MaxData = 1 << 20

// Record is one entry of the log. Which fields matter depends on Kind.
type Record struct {
	Kind Kind

	N uint64 // Idle: ticks skipped (>= 1)

	Fn   uint8    // Call: import number, 0..MaxFn
	Args []uint64 // Call: arguments as the guest passed them
	Ret  uint64   // Call: the import's result (0 if it has none)
	Data []byte   // Call: outcome bytes; nil and empty are the same

	FBHash  uint64 // Checkpoint
	MemHash uint64 // Checkpoint; 0 means "not checked here"
}

// ModuleHash is the SHA-256 of the guest module a log was recorded with.
type ModuleHash [32]byte

// Header is what each segment file starts with. A reader refuses a segment
// whose ModuleHash differs from the one it was opened for.
type Header struct {
	ModuleHash ModuleHash
	// Params is the machine's configuration that a replayer needs (tick rate,
	// clock bases, disk mode...), opaque here. The same bytes in every segment.
	Params []byte
	// Segment is this segment's number, from 0; StartTick and StartStep are
	// the machine's tick and step count where its first record begins.
	Segment   uint32
	StartTick uint64
	StartStep uint64
}

// Pos is a position in a log at a block boundary: where a reader can start.
// A snapshot stores the Pos of the block that follows it.
type Pos struct {
	Segment uint32
	Offset  int64 // byte offset of a block within the segment file
	Tick    uint64
	Step    uint64
}
