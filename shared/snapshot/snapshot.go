// Package snapshot holds a machine's full state between two steps and its
// file format: memory pages (zero pages elided), every mutable global, the
// host-side device state and the log position to replay on from.
//
// It must not know about wazero or what the device state means: Device is
// opaque bytes that the machine encodes. The format is in docs/log-format.md.
package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"replaydesk/shared/internal/bindec"
	"replaydesk/shared/recordlog"
)

// PageSize is the unit of zero-page elision (and of the page service later).
const PageSize = 4096

// Limits that keep a corrupt file from asking for absurd allocations.
const (
	MaxMemory  = 4 << 30
	MaxGlobals = 1 << 16
	MaxDevice  = 256 << 20
)

// Snapshot is a machine's state between two steps.
type Snapshot struct {
	ModuleHash recordlog.ModuleHash
	Tick, Step uint64
	// LogPos is where replay continues: the block that follows the snapshot.
	LogPos  recordlog.Pos
	Globals []uint64
	Device  []byte
	Memory  []byte // len is a multiple of the wasm page size (64 KiB)
}

var magic = [8]byte{'R', 'D', 'S', 'N', 'A', 'P', 0, 1}

// ModuleMismatchError: the snapshot was taken of another guest module.
type ModuleMismatchError struct {
	File      string
	Want, Got recordlog.ModuleHash
}

func (e *ModuleMismatchError) Error() string {
	return fmt.Sprintf("snapshot %s was taken of module %s, not of this module %s",
		e.File, hex.EncodeToString(e.Got[:]), hex.EncodeToString(e.Want[:]))
}

// ErrCorrupt wraps every format violation.
var ErrCorrupt error = corruptError("snapshot: corrupt")

type corruptError string

func (e corruptError) Error() string { return string(e) }

// Corrupt reports true: a command ending on ErrCorrupt exits with the
// "corrupt, truncated or foreign data" code (shared/cli).
func (e corruptError) Corrupt() bool { return true }

// Corrupt reports true: a snapshot of another module is foreign data
// (shared/cli's exit codes).
func (e *ModuleMismatchError) Corrupt() bool { return true }

func isZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Write encodes s. Layout: magic, module hash, tick, step, log position,
// globals, device state, memory size, a bitmap of non-zero pages, the
// non-zero pages, and a SHA-256 of everything before it.
func Write(w io.Writer, s *Snapshot) error {
	if len(s.Memory)%PageSize != 0 {
		return fmt.Errorf("snapshot: memory size %d is not a multiple of %d", len(s.Memory), PageSize)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	var hdr []byte
	hdr = append(hdr, magic[:]...)
	hdr = append(hdr, s.ModuleHash[:]...)
	for _, v := range []uint64{s.Tick, s.Step, uint64(s.LogPos.Segment), uint64(s.LogPos.Offset), s.LogPos.Tick, s.LogPos.Step, uint64(len(s.Globals))} {
		hdr = binary.AppendUvarint(hdr, v)
	}
	for _, g := range s.Globals {
		hdr = binary.LittleEndian.AppendUint64(hdr, g)
	}
	hdr = binary.AppendUvarint(hdr, uint64(len(s.Device)))
	hdr = append(hdr, s.Device...)
	hdr = binary.AppendUvarint(hdr, uint64(len(s.Memory)))
	pages := len(s.Memory) / PageSize
	bitmap := make([]byte, (pages+7)/8)
	for i := range pages {
		if !isZero(s.Memory[i*PageSize : (i+1)*PageSize]) {
			bitmap[i/8] |= 1 << (i % 8)
		}
	}
	hdr = append(hdr, bitmap...)
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	for i := range pages {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			if _, err := bw.Write(s.Memory[i*PageSize : (i+1)*PageSize]); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// WriteFile writes s to path atomically (a temporary file, then rename).
func WriteFile(path string, s *Snapshot) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = Write(f, s)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Decode parses a whole snapshot file's bytes. want all-zero accepts any
// module; name is used in error messages.
func Decode(b []byte, want recordlog.ModuleHash, name string) (*Snapshot, error) {
	if len(b) < len(magic)+32+sha256.Size {
		return nil, fmt.Errorf("%w: %s: %d bytes is too short", ErrCorrupt, name, len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, name)
	}
	d := &bindec.Decoder{B: body, Kind: ErrCorrupt}
	if !bytes.Equal(d.Bytes(8, "magic"), magic[:]) {
		return nil, fmt.Errorf("%w: %s: not a replaydesk snapshot (bad magic)", ErrCorrupt, name)
	}
	s := &Snapshot{}
	copy(s.ModuleHash[:], d.Bytes(32, "module hash"))
	if want != (recordlog.ModuleHash{}) && want != s.ModuleHash {
		return nil, &ModuleMismatchError{File: name, Want: want, Got: s.ModuleHash}
	}
	s.Tick = d.Uvarint("tick")
	s.Step = d.Uvarint("step")
	s.LogPos.Segment = uint32(d.Uvarint("log segment"))
	s.LogPos.Offset = int64(d.Uvarint("log offset"))
	s.LogPos.Tick = d.Uvarint("log tick")
	s.LogPos.Step = d.Uvarint("log step")
	ng := d.Uvarint("global count")
	if ng > MaxGlobals {
		d.Fail("too many globals")
	}
	gb := d.Bytes(ng*8, "globals")
	for i := 0; i+8 <= len(gb); i += 8 {
		s.Globals = append(s.Globals, binary.LittleEndian.Uint64(gb[i:]))
	}
	nd := d.Uvarint("device length")
	if nd > MaxDevice {
		d.Fail("device state too large")
	}
	s.Device = append([]byte(nil), d.Bytes(nd, "device state")...)
	size := d.Uvarint("memory size")
	if size > MaxMemory || size%PageSize != 0 {
		d.Fail(fmt.Sprintf("memory size %d", size))
	}
	if d.Err != nil {
		return nil, fmt.Errorf("%s: %w", name, d.Err)
	}
	pages := int(size / PageSize)
	bitmap := d.Bytes(uint64((pages+7)/8), "page bitmap")
	s.Memory = make([]byte, size)
	for i := 0; i < pages && d.Err == nil; i++ {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			copy(s.Memory[i*PageSize:], d.Bytes(PageSize, fmt.Sprintf("page %d", i)))
		}
	}
	if d.Err == nil && d.P != len(body) {
		d.Fail("trailing bytes")
	}
	if d.Err != nil {
		return nil, fmt.Errorf("%s: %w", name, d.Err)
	}
	return s, nil
}

// ReadFile reads and verifies a snapshot file.
func ReadFile(path string, want recordlog.ModuleHash) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(b, want, path)
}
