// Package bindec reads the project's small binary formats (snapshot files,
// manifests): uvarints and length-checked byte runs from a buffer, stopping
// at the first problem and naming what was being read and at which byte.
//
// It knows no format; callers say what each field is.
package bindec

import (
	"encoding/binary"
	"fmt"
)

// Decoder reads b from P onwards. After the first failure every read
// returns zero values and Err keeps that failure.
type Decoder struct {
	B   []byte
	P   int
	Err error
	// Kind wraps every failure (e.g. a package's ErrCorrupt sentinel).
	Kind error
}

// Fail records a failure at the current position, unless one is recorded.
func (d *Decoder) Fail(what string) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: %s at byte %d", d.Kind, what, d.P)
	}
}

// Uvarint reads one uvarint in its shortest encoding; a padded encoding is
// refused, so a valid file decodes only from the bytes that encode it.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B[d.P:])
	var min [binary.MaxVarintLen64]byte
	if n <= 0 || n != binary.PutUvarint(min[:], v) {
		d.Fail("bad " + what)
		return 0
	}
	d.P += n
	return v
}

// Bytes returns the next n bytes (aliasing B).
func (d *Decoder) Bytes(n uint64, what string) []byte {
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.B)-d.P) {
		d.Fail(what + " runs past the end")
		return nil
	}
	out := d.B[d.P : d.P+int(n)]
	d.P += int(n)
	return out
}
