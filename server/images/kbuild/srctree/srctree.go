// Package srctree is the on-disk layout of the kbuild image's disk — a
// superblock, a file table, the source files and an output area for the
// compiled objects — and the host-side generator of its deterministic tree
// of pseudo-C sources.
//
// Both sides use it: the server to build the initial disk, the guest to
// read the table. It must not know about the guest SDK, the host or how the
// files are compiled.
package srctree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"replaydesk/shared/abi"
)

// Layout:
//
//	block 0                     superblock
//	blocks 1 .. 1+TableBlocks   file table, EntriesPerBlock entries a block
//	DataStart ..                each file's bytes, from a block boundary
//	OutStart ..                 each file's output slot (Entry.OutBlock)
const (
	Magic           = "KBTREE1\x00"
	EntrySize       = 128
	EntriesPerBlock = abi.BlockSize / EntrySize
	MaxPath         = 96
	BS              = abi.BlockSize
)

// Super is block 0.
type Super struct {
	Files       uint32
	TableStart  uint32
	TableBlocks uint32
	DataStart   uint32
	OutStart    uint32
	Blocks      uint32 // the whole disk
}

// Entry is one source file.
type Entry struct {
	Path      string
	Size      uint32 // bytes
	DataBlock uint32 // first block of the source
	OutBlock  uint32 // first block of the output slot
	OutBlocks uint32 // size of the output slot
}

// Blocks is how many blocks n bytes take.
func Blocks(n uint32) uint32 { return (n + BS - 1) / BS }

// OutSlot is the output slot reserved for a source of size bytes: room for
// its compressed form even when compression does not help, plus a header
// block.
func OutSlot(size uint32) uint32 { return Blocks(size+size/64+64) + 1 }

// EncodeSuper lays s out in a block.
func EncodeSuper(s Super) []byte {
	b := make([]byte, BS)
	copy(b, Magic)
	for i, v := range []uint32{s.Files, s.TableStart, s.TableBlocks, s.DataStart, s.OutStart, s.Blocks} {
		binary.LittleEndian.PutUint32(b[8+4*i:], v)
	}
	return b
}

// DecodeSuper reads block 0 and checks that its regions are in order.
func DecodeSuper(b []byte) (Super, error) {
	if len(b) < BS || string(b[:8]) != Magic {
		return Super{}, errors.New("srctree: no source tree on this disk")
	}
	var v [6]uint32
	for i := range v {
		v[i] = binary.LittleEndian.Uint32(b[8+4*i:])
	}
	s := Super{v[0], v[1], v[2], v[3], v[4], v[5]}
	if s.TableStart != 1 || s.TableBlocks != (s.Files+EntriesPerBlock-1)/EntriesPerBlock ||
		s.DataStart != s.TableStart+s.TableBlocks || s.OutStart < s.DataStart || s.Blocks < s.OutStart {
		return Super{}, fmt.Errorf("srctree: inconsistent superblock %+v", s)
	}
	return s, nil
}

// PutEntry writes e at b[:EntrySize].
func PutEntry(b []byte, e Entry) {
	clear(b[:EntrySize])
	copy(b[:MaxPath], e.Path)
	binary.LittleEndian.PutUint32(b[96:], e.Size)
	binary.LittleEndian.PutUint32(b[100:], e.DataBlock)
	binary.LittleEndian.PutUint32(b[104:], e.OutBlock)
	binary.LittleEndian.PutUint32(b[108:], e.OutBlocks)
}

// DecodeEntry reads an entry and checks it lies inside the disk s describes.
func DecodeEntry(s Super, b []byte) (Entry, error) {
	path := string(b[:MaxPath])
	if i := strings.IndexByte(path, 0); i >= 0 {
		path = path[:i]
	}
	e := Entry{
		Path:      path,
		Size:      binary.LittleEndian.Uint32(b[96:]),
		DataBlock: binary.LittleEndian.Uint32(b[100:]),
		OutBlock:  binary.LittleEndian.Uint32(b[104:]),
		OutBlocks: binary.LittleEndian.Uint32(b[108:]),
	}
	if path == "" || e.DataBlock < s.DataStart || uint64(e.DataBlock)+uint64(Blocks(e.Size)) > uint64(s.OutStart) ||
		e.OutBlock < s.OutStart || uint64(e.OutBlock)+uint64(e.OutBlocks) > uint64(s.Blocks) || e.OutBlocks < OutSlot(e.Size) {
		return Entry{}, fmt.Errorf("srctree: bad entry %+v", e)
	}
	return e, nil
}

// Build lays out files (path and contents, in order) as a disk image.
func Build(paths []string, contents [][]byte) ([]byte, []Entry, error) {
	if len(paths) != len(contents) {
		return nil, nil, errors.New("srctree: paths and contents differ in number")
	}
	n := uint32(len(paths))
	s := Super{Files: n, TableStart: 1, TableBlocks: (n + EntriesPerBlock - 1) / EntriesPerBlock}
	s.DataStart = s.TableStart + s.TableBlocks
	entries := make([]Entry, n)
	next := s.DataStart
	for i, p := range paths {
		if p == "" || len(p) > MaxPath || strings.IndexByte(p, 0) >= 0 {
			return nil, nil, fmt.Errorf("srctree: bad path %q", p)
		}
		entries[i] = Entry{Path: p, Size: uint32(len(contents[i])), DataBlock: next}
		next += Blocks(uint32(len(contents[i])))
	}
	s.OutStart = next
	for i := range entries {
		entries[i].OutBlock, entries[i].OutBlocks = next, OutSlot(entries[i].Size)
		next += entries[i].OutBlocks
	}
	s.Blocks = next
	disk := make([]byte, int(s.Blocks)*BS)
	copy(disk, EncodeSuper(s))
	for i, e := range entries {
		PutEntry(disk[int(s.TableStart)*BS+i*EntrySize:], e)
		copy(disk[int(e.DataBlock)*BS:], contents[i])
	}
	return disk, entries, nil
}
