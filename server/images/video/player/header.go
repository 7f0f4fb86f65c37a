package player

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the size of the header in front of a video, on the disk (its
// block 0) and on the stream alike.
const HeaderSize = 4096

// Magic starts every header.
const Magic = "RDVIDEO1"

// MaxName bounds the file name in a header.
const MaxName = 255

// Header describes the video that follows it:
//
//	offset size field
//	0      8    magic "RDVIDEO1"
//	8      8    length of the file in bytes, little-endian
//	16     4    number of pictures (for the total time), little-endian
//	20     2    length of the name in bytes, little-endian
//	22     n    the file's name, UTF-8
//
// and zeros up to HeaderSize.
type Header struct {
	Length   uint64
	Pictures uint32
	Name     string
}

// Encode returns the HeaderSize bytes of h.
func (h Header) Encode() []byte {
	b := make([]byte, HeaderSize)
	copy(b, Magic)
	binary.LittleEndian.PutUint64(b[8:], h.Length)
	binary.LittleEndian.PutUint32(b[16:], h.Pictures)
	name := h.Name
	if len(name) > MaxName {
		name = name[:MaxName]
	}
	binary.LittleEndian.PutUint16(b[20:], uint16(len(name)))
	copy(b[22:], name)
	return b
}

// ParseHeader decodes a header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errors.New("video header: short")
	}
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("video header: bad magic %q", b[:8])
	}
	n := int(binary.LittleEndian.Uint16(b[20:]))
	if n > MaxName {
		return Header{}, fmt.Errorf("video header: name of %d bytes", n)
	}
	return Header{
		Length:   binary.LittleEndian.Uint64(b[8:]),
		Pictures: binary.LittleEndian.Uint32(b[16:]),
		Name:     string(b[22 : 22+n]),
	}, nil
}
