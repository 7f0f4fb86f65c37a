package recordlog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
)

// ErrUnsealed is what a non-following Reader reports at the end of a log that
// has no SEAL block: the recording was interrupted (or is still running). The
// error returned is an *UnsealedError wrapping it; test with errors.Is.
var ErrUnsealed error = corruptSentinel("recordlog: log is not sealed")

// corruptSentinel is a sentinel error that, for a command's exit code, means
// damaged or truncated data (see Corrupt).
type corruptSentinel string

func (e corruptSentinel) Error() string { return string(e) }

// Corrupt reports true: a command that ends on this error exits with the
// "corrupt, truncated or foreign data" code (shared/cli).
func (e corruptSentinel) Corrupt() bool { return true }

// ErrSealed is returned by Resume for a log that was closed properly: a
// sealed log is immutable.
var ErrSealed = errors.New("recordlog: log is sealed")

// ErrClosed is returned by Writer methods after Close.
var ErrClosed = errors.New("recordlog: writer is closed")

// UnsealedError says where an unsealed log ends. Torn is set when the log ends
// inside a block or a segment header (a write was cut short), clear when it
// ends cleanly at a block boundary.
type UnsealedError struct {
	Segment uint32
	File    string // path of the segment file
	Offset  int64  // byte offset in File where the complete data ends
	Torn    bool
}

func (e *UnsealedError) Error() string {
	if e.Torn {
		return fmt.Sprintf("log %s: not sealed: torn tail at byte %d", filepath.Base(e.File), e.Offset)
	}
	return fmt.Sprintf("log %s: not sealed: ends at byte %d", filepath.Base(e.File), e.Offset)
}

func (e *UnsealedError) Unwrap() error { return ErrUnsealed }

// Corrupt reports true: to a command that needed the whole log, an unsealed
// log is a truncated one (shared/cli's exit codes).
func (e *UnsealedError) Corrupt() bool { return true }

// CorruptError reports bytes that cannot be a valid log: a checksum
// mismatch, an impossible length, a malformed record, a broken segment chain.
type CorruptError struct {
	Segment uint32
	File    string // path of the segment file
	Offset  int64  // byte offset in File of the damaged header or block
	Reason  string
}

// Corrupt reports true (shared/cli's exit codes).
func (e *CorruptError) Corrupt() bool { return true }

func (e *CorruptError) Error() string {
	return fmt.Sprintf("log %s: corrupt at byte %d: %s", filepath.Base(e.File), e.Offset, e.Reason)
}

// ModuleMismatchError reports a segment recorded with another guest module
// than the one the reader was opened for.
type ModuleMismatchError struct {
	File      string
	Want, Got ModuleHash
}

// Corrupt reports true: a foreign log counts as corrupt data for a
// command's exit code (shared/cli).
func (e *ModuleMismatchError) Corrupt() bool { return true }

func (e *ModuleMismatchError) Error() string {
	return fmt.Sprintf("log %s: recorded with module %s, want module %s", filepath.Base(e.File), e.Got, e.Want)
}

// String returns the hash in lower-case hex.
func (h ModuleHash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros ("any module" for Open).
func (h ModuleHash) IsZero() bool { return h == ModuleHash{} }
