package machine

import (
	"errors"
	"fmt"
)

// Divergence is a replay that does not match its log: the guest called
// something else, with other arguments, or drew another picture. It is never
// ignored: the machine stops at the first one.
type Divergence struct {
	Step   uint64 // the step in which it happened (counting from 0)
	Tick   uint64
	Init   bool   // during the guest's _initialize, before any step
	Import string // the import involved, or "" for a checkpoint
	What   string // what differed, e.g. "argument 2 is 0x10, the log has 0x20"
}

func (d *Divergence) Error() string {
	where := "checkpoint"
	if d.Import != "" {
		where = d.Import
	}
	if d.Init {
		return fmt.Sprintf("divergence during guest initialisation in %s: %s", where, d.What)
	}
	return fmt.Sprintf("divergence at step %d (tick %d) in %s: %s", d.Step, d.Tick, where, d.What)
}

// GuestError is the guest misbehaving: a trap, proc_exit, or an import
// called with impossible arguments. It happens identically on record and
// replay, so it is not a divergence.
type GuestError struct {
	Step uint64
	What string
}

func (e *GuestError) Error() string {
	return fmt.Sprintf("guest error in step %d: %s", e.Step, e.What)
}

// ErrEndOfLog is returned by ReplayNext when the log is exhausted.
var ErrEndOfLog = errors.New("machine: end of log")

// ErrClosed is returned by a machine that was closed or failed earlier.
var ErrClosed = errors.New("machine: closed")
