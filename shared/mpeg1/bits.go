package mpeg1

import "encoding/binary"

// bitReader reads a byte slice most significant bit first. Reading past the
// end yields zero bits and sets overrun, so a truncated or corrupt slice
// ends instead of panicking.
type bitReader struct {
	data []byte
	pos  int // in bits
}

func (b *bitReader) reset(data []byte) { b.data, b.pos = data, 0 }

// peek returns the next n bits (n ≤ 32) without consuming them.
func (b *bitReader) peek(n int) uint32 {
	i := b.pos >> 3
	if i+8 <= len(b.data) {
		v := binary.BigEndian.Uint64(b.data[i:])
		return uint32(v << uint(b.pos&7) >> uint(64-n))
	}
	var v uint64
	for k := 0; k < 8; k++ {
		v <<= 8
		if i+k < len(b.data) && i+k >= 0 {
			v |= uint64(b.data[i+k])
		}
	}
	return uint32(v << uint(b.pos&7) >> uint(64-n))
}

func (b *bitReader) skip(n int) { b.pos += n }

func (b *bitReader) read(n int) uint32 {
	v := b.peek(n)
	b.pos += n
	return v
}

func (b *bitReader) read1() bool { return b.read(1) == 1 }

// overrun reports whether reading went past the end of the data.
func (b *bitReader) overrun() bool { return b.pos > len(b.data)*8 }

// bitsLeft is the number of unread bits (negative after an overrun).
func (b *bitReader) bitsLeft() int { return len(b.data)*8 - b.pos }

// atStartCode reports whether the next 23 bits are zero, which only
// happens at a start code (or in the zero padding before one); the data of
// a slice ends before its next start code, so fewer bits left that are all
// zero count too.
func (b *bitReader) atStartCode() bool {
	n := min(b.bitsLeft(), 23)
	return n <= 0 || b.peek(n) == 0
}
