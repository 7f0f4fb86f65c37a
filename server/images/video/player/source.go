package player

import (
	"errors"
	"io"

	"replaydesk/shared/abi"
)

// Disk is the block device a DiskSource reads (package guest's functions).
type Disk interface {
	DiskInfo() (blocks uint64, mode abi.DiskMode, err error)
	ReadBlock(n uint64, buf []byte) error
}

// DiskSource reads the header and the video from a disk, block by block
// from block 0. Each block is read once per pass, when the decoder needs it
// (in replayed disk mode each read is logged).
type DiskSource struct {
	disk   Disk
	blocks uint64
	info   bool
	pos    uint64 // in bytes
	cached uint64 // block number held in block, +1 (0: none)
	block  []byte
}

// NewDiskSource returns a source reading d.
func NewDiskSource(d Disk) *DiskSource {
	return &DiskSource{disk: d, block: make([]byte, abi.BlockSize)}
}

func (s *DiskSource) Read(p []byte) (int, error) {
	if !s.info {
		blocks, _, err := s.disk.DiskInfo()
		if err != nil {
			return 0, err
		}
		s.blocks, s.info = blocks, true
	}
	n := 0
	for n < len(p) {
		b := s.pos / abi.BlockSize
		if b >= s.blocks {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		if s.cached != b+1 {
			if err := s.disk.ReadBlock(b, s.block); err != nil {
				return n, err
			}
			s.cached = b + 1
		}
		c := copy(p[n:], s.block[s.pos%abi.BlockSize:])
		n += c
		s.pos += uint64(c)
	}
	return n, nil
}

// Rewind starts again at block 0.
func (s *DiskSource) Rewind() error {
	s.pos = 0
	return nil
}

// Conn is a non-blocking stream (guest.Conn): Recv returns 0, nil when
// nothing has arrived and io.EOF once the peer has closed.
type Conn interface {
	Recv(b []byte) (int, error)
	Close() error
}

// StreamSource reads the header and the video from a net stream, dialled on
// the first read; Rewind closes it so that the next read dials again and
// the endpoint serves the video from its start.
type StreamSource struct {
	dial func() (Conn, error)
	c    Conn
}

// NewStreamSource returns a source that opens its stream with dial.
func NewStreamSource(dial func() (Conn, error)) *StreamSource {
	return &StreamSource{dial: dial}
}

func (s *StreamSource) Read(p []byte) (int, error) {
	if s.c == nil {
		c, err := s.dial()
		if err != nil {
			return 0, err
		}
		if c == nil {
			return 0, errors.New("dial returned no stream")
		}
		s.c = c
	}
	return s.c.Recv(p)
}

func (s *StreamSource) Rewind() error {
	if s.c == nil {
		return nil
	}
	err := s.c.Close()
	s.c = nil
	return err
}
