package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Sentinels a *DecodeError wraps; test with errors.Is.
var (
	// ErrMalformed: bytes no encoder produces (truncated, bad enum, non-minimal
	// varint, trailing bytes, invalid UTF-8, inconsistent fields).
	ErrMalformed = errors.New("wire: malformed message")
	// ErrLimit: a size or count beyond the protocol's hard limits.
	ErrLimit = errors.New("wire: limit exceeded")
	// ErrVersion: the peer speaks another major protocol version.
	ErrVersion = errors.New("wire: unsupported protocol version")
	// ErrUnknownType: a message type this version does not know.
	ErrUnknownType = errors.New("wire: unknown message type")
)

// DecodeError says which message, which field and which byte of the message
// a decoder refused, and why.
type DecodeError struct {
	Type   Type   // 0 if the type byte itself is missing
	Field  string // e.g. "tiles[3].w"; "" for the message as a whole
	Offset int    // byte offset in the message
	Reason string
	Err    error // ErrMalformed, ErrLimit, ErrVersion or ErrUnknownType
}

func (e *DecodeError) Error() string {
	where := e.Type.String()
	if e.Field != "" {
		where += "." + e.Field
	}
	return fmt.Sprintf("wire: %s at byte %d: %s", where, e.Offset, e.Reason)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Encode returns m's bytes: one WebSocket binary message. It refuses (with an
// error wrapping the *DecodeError the bytes would cause) anything Decode
// would refuse, so a peer never receives what it cannot read.
func Encode(m Message) ([]byte, error) {
	if m == nil {
		return nil, errors.New("wire: Encode(nil)")
	}
	if in, ok := m.(*Input); ok {
		for i := range in.Events {
			if err := checkEvent(&in.Events[i]); err != nil {
				return nil, fmt.Errorf("wire: cannot encode Input: events[%d]: %w", i, err)
			}
		}
	}
	b := m.appendBody([]byte{byte(m.Type())})
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("wire: cannot encode %s: %w", m.Type(), &DecodeError{Type: m.Type(),
			Offset: MaxMessage, Reason: fmt.Sprintf("message of %d bytes exceeds %d", len(b), MaxMessage), Err: ErrLimit})
	}
	// Validating the output with the decoder keeps one definition of "valid".
	// It allocates little: decoded byte fields alias b.
	if _, err := Decode(b); err != nil {
		return nil, fmt.Errorf("wire: cannot encode %s: %w", m.Type(), err)
	}
	return b, nil
}

// Decode parses one message. Byte-slice fields of the result (LogBlock.Block,
// Tile.Data, Welcome.Params, Hello.CacheFilter) alias b: copy them to keep
// them beyond b's lifetime. Errors are *DecodeError.
func Decode(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, &DecodeError{Reason: "empty message", Err: ErrMalformed}
	}
	t := Type(b[0])
	if len(b) > MaxMessage {
		return nil, &DecodeError{Type: t, Offset: MaxMessage,
			Reason: fmt.Sprintf("message of %d bytes exceeds %d", len(b), MaxMessage), Err: ErrLimit}
	}
	m := newMessage(t)
	if m == nil {
		return nil, &DecodeError{Type: t, Reason: fmt.Sprintf("unknown message type %d", b[0]), Err: ErrUnknownType}
	}
	r := &reader{b: b, off: 1, t: t}
	m.decodeBody(r)
	if r.err == nil && r.off != len(b) {
		r.failAt("", r.off, ErrMalformed, "%d trailing bytes", len(b)-r.off)
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// reader decodes with a sticky error: after the first failure every read
// returns zero values, so decodeBody methods read straight through.
type reader struct {
	b    []byte
	off  int
	t    Type
	err  *DecodeError
	list string // list being read, for field names like tiles[3].w
	idx  int
}

func (r *reader) field(name string) string {
	if r.list == "" {
		return name
	}
	if name == "" {
		return fmt.Sprintf("%s[%d]", r.list, r.idx)
	}
	return fmt.Sprintf("%s[%d].%s", r.list, r.idx, name)
}

func (r *reader) failAt(field string, off int, err error, format string, args ...any) {
	if r.err != nil {
		return
	}
	r.err = &DecodeError{Type: r.t, Field: r.field(field), Offset: off, Reason: fmt.Sprintf(format, args...), Err: err}
}

func (r *reader) ok() bool { return r.err == nil }

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) uvarint(field string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		r.failAt(field, r.off, ErrMalformed, "truncated varint")
		return 0
	case n < 0:
		r.failAt(field, r.off, ErrMalformed, "varint overflows 64 bits")
		return 0
	case n > 1 && r.b[r.off+n-1] == 0:
		r.failAt(field, r.off, ErrMalformed, "non-minimal varint")
		return 0
	case v > max:
		r.failAt(field, r.off, ErrLimit, "value %d exceeds %d", v, max)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) svarint(field string) int32 {
	off := r.off
	u := r.uvarint(field, math.MaxUint64)
	v := int64(u>>1) ^ -int64(u&1)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.failAt(field, off, ErrLimit, "value %d outside int32", v)
		return 0
	}
	return int32(v)
}

func (r *reader) u8(field string) uint8 {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.failAt(field, r.off, ErrMalformed, "truncated")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

// enum reads a byte that must be one of the values in [lo, hi].
func (r *reader) enum(field string, lo, hi uint8) uint8 {
	off := r.off
	v := r.u8(field)
	if r.err == nil && (v < lo || v > hi) {
		r.failAt(field, off, ErrMalformed, "invalid value %d (want %d..%d)", v, lo, hi)
		return 0
	}
	return v
}

func (r *reader) bool(field string) bool { return r.enum(field, 0, 1) == 1 }

func (r *reader) bytes(field string, max int) []byte {
	off := r.off
	n := r.uvarint(field, uint64(max))
	if r.err != nil {
		return nil
	}
	if n > uint64(r.remaining()) {
		r.failAt(field, off, ErrMalformed, "length %d runs past the end (%d bytes left)", n, r.remaining())
		return nil
	}
	if n == 0 {
		return nil // nil and empty are the same on the wire
	}
	b := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}

func (r *reader) str(field string, max int) string {
	off := r.off
	b := r.bytes(field, max)
	if r.err == nil && !utf8.Valid(b) {
		r.failAt(field, off, ErrMalformed, "invalid UTF-8")
		return ""
	}
	return string(b)
}

func (r *reader) hash(field string) (h [32]byte) {
	if r.err != nil {
		return h
	}
	if r.remaining() < 32 {
		r.failAt(field, r.off, ErrMalformed, "truncated: 32 bytes needed, %d left", r.remaining())
		return h
	}
	copy(h[:], r.b[r.off:])
	r.off += 32
	return h
}

// count reads a list length, bounded by max and by the bytes left (each
// element takes at least minSize bytes) before anything is allocated.
func (r *reader) count(field string, max, minSize int) int {
	off := r.off
	n := r.uvarint(field, uint64(max))
	if r.err != nil {
		return 0
	}
	if n*uint64(minSize) > uint64(r.remaining()) {
		r.failAt(field, off, ErrMalformed, "%d elements cannot fit in %d bytes", n, r.remaining())
		return 0
	}
	return int(n)
}

func (r *reader) user(field string) uint16 { return uint16(r.uvarint(field, MaxUser)) }

// Writers. Encode validates their output with Decode, so they write values
// as they are, even out-of-range ones.

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendSvarint(b []byte, v int32) []byte {
	return binary.AppendUvarint(b, uint64(int64(v)<<1)^uint64(int64(v)>>63))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendBytes(b, v []byte) []byte { return append(appendUvarint(b, uint64(len(v))), v...) }

func appendString(b []byte, s string) []byte { return append(appendUvarint(b, uint64(len(s))), s...) }
