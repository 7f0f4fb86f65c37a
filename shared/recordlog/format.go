package recordlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	magic         = "RDLOG\x00"
	formatVersion = 1

	// MaxParams caps Header.Params so a reader never allocates from a
	// corrupt length.
	MaxParams = 64 << 10
	// MaxBlockPayload caps a block's payload, both as stored and after
	// decompression.
	MaxBlockPayload = 8 << 20

	blockHeaderLen = 9 // u32 length + u8 flags + u32 CRC
	// maxHeaderLen bounds a segment header: magic, version, hash, segment,
	// three uvarints, params, CRC.
	maxHeaderLen = len(magic) + 2 + 32 + 4 + 3*binary.MaxVarintLen64 + MaxParams + 4
	// maxBlockStart bounds the uvarints that open a block payload.
	maxBlockStart = 3 * binary.MaxVarintLen64
)

// Block flags.
const (
	flagCompressed = 1 << 0
	flagSeal       = 1 << 1
	flagNext       = 1 << 2
	flagsKnown     = flagCompressed | flagSeal | flagNext
)

// Record type bytes.
const (
	codeStep       = 0x01
	codeIdle       = 0x02
	codeCheckpoint = 0x03
	codeCall       = 0x40 // + Fn*4 + flags
	callArgsFlag   = 0x01
	callRetFlag    = 0x02
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SegmentName is the file name of segment n inside a log directory.
func SegmentName(n uint32) string { return fmt.Sprintf("%08d.seg", n) }

// appendHeader appends the encoded segment header of h to dst.
func appendHeader(dst []byte, h *Header) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint16(dst, formatVersion)
	dst = append(dst, h.ModuleHash[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, h.Segment)
	dst = binary.AppendUvarint(dst, h.StartTick)
	dst = binary.AppendUvarint(dst, h.StartStep)
	dst = binary.AppendUvarint(dst, uint64(len(h.Params)))
	dst = append(dst, h.Params...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// errShort means the bytes end before the structure does (a torn write, or a
// file still being written).
var errShort = errors.New("short")

// parseHeader decodes a segment header from the start of b. It returns the
// header's length, errShort if b ends inside it, or another error naming
// the defect. Params is copied.
func parseHeader(b []byte) (Header, int, error) {
	var h Header
	if len(b) < len(magic) {
		if bytes.HasPrefix([]byte(magic), b) {
			return h, 0, errShort
		}
		return h, 0, errors.New("bad magic")
	}
	if string(b[:len(magic)]) != magic {
		return h, 0, errors.New("bad magic")
	}
	p := len(magic)
	if len(b) < p+2 {
		return h, 0, errShort
	}
	if v := binary.LittleEndian.Uint16(b[p:]); v != formatVersion {
		return h, 0, fmt.Errorf("unsupported format version %d", v)
	}
	p += 2
	if len(b) < p+32+4 {
		return h, 0, errShort
	}
	copy(h.ModuleHash[:], b[p:])
	p += 32
	h.Segment = binary.LittleEndian.Uint32(b[p:])
	p += 4
	var vals [3]uint64
	for i := range vals {
		v, n := uvarint(b[p:])
		if n == 0 {
			return h, 0, errShort
		}
		if n < 0 {
			return h, 0, errors.New("bad varint in segment header")
		}
		vals[i] = v
		p += n
	}
	h.StartTick, h.StartStep = vals[0], vals[1]
	if vals[2] > MaxParams {
		return h, 0, fmt.Errorf("params length %d exceeds limit %d", vals[2], MaxParams)
	}
	np := int(vals[2])
	if len(b) < p+np+4 {
		return h, 0, errShort
	}
	if np > 0 {
		h.Params = bytes.Clone(b[p : p+np])
	}
	p += np
	if crc32.Checksum(b[:p], castagnoli) != binary.LittleEndian.Uint32(b[p:]) {
		return h, 0, errors.New("segment header checksum mismatch")
	}
	return h, p + 4, nil
}

// uvarint decodes a canonical (minimal-length) uvarint: n == 0 means b is too
// short, n < 0 means overflow or a non-minimal encoding. Insisting on minimal
// encodings keeps every valid log byte-for-byte reproducible by the writer.
func uvarint(b []byte) (uint64, int) {
	x, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -n
	}
	return x, n
}

func zigzag(d int64) uint64   { return uint64(d<<1) ^ uint64(d>>63) }
func unzigzag(z uint64) int64 { return int64(z>>1) ^ -int64(z&1) }

func validate(r *Record) error {
	switch r.Kind {
	case KindStep, KindCheckpoint:
	case KindIdle:
		if r.N == 0 {
			return errors.New("recordlog: idle record with N == 0")
		}
	case KindCall:
		if r.Fn > MaxFn {
			return fmt.Errorf("recordlog: call Fn %d exceeds %d", r.Fn, MaxFn)
		}
		if len(r.Args) > MaxArgs {
			return fmt.Errorf("recordlog: call has %d args, limit %d", len(r.Args), MaxArgs)
		}
		if len(r.Data) > MaxData {
			return fmt.Errorf("recordlog: call data is %d bytes, limit %d", len(r.Data), MaxData)
		}
	default:
		return fmt.Errorf("recordlog: invalid record kind %d", r.Kind)
	}
	return nil
}

// maxRecordLen bounds the encoded size of a valid record, so the writer can
// end a block before it would pass MaxBlockPayload.
func maxRecordLen(r *Record) int {
	if r.Kind != KindCall {
		return 1 + 8 + binary.MaxVarintLen64
	}
	return 1 + (1+MaxArgs)*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(r.Data)
}

// encoder builds one block payload. The per-Fn argument predictors live here
// and are reset with the block, so every block decodes on its own.
type encoder struct {
	recs       []byte // encoded records
	n          int    // record count
	tick, step uint64 // machine position at the block's start
	prev       [MaxFn + 1][]uint64
}

func (e *encoder) reset(tick, step uint64) {
	e.recs = e.recs[:0]
	e.n = 0
	e.tick, e.step = tick, step
	for i := range e.prev {
		e.prev[i] = e.prev[i][:0]
	}
}

// add encodes r, which must have passed validate.
func (e *encoder) add(r *Record) {
	e.n++
	b := e.recs
	switch r.Kind {
	case KindStep:
		b = append(b, codeStep)
	case KindIdle:
		b = append(b, codeIdle)
		b = binary.AppendUvarint(b, r.N)
	case KindCheckpoint:
		b = append(b, codeCheckpoint)
		b = binary.LittleEndian.AppendUint64(b, r.FBHash)
		b = binary.AppendUvarint(b, r.MemHash)
	case KindCall:
		pv := e.prev[r.Fn]
		same := equalArgs(r.Args, pv)
		c := byte(codeCall + int(r.Fn)*4)
		if !same {
			c |= callArgsFlag
		}
		if r.Ret != 0 {
			c |= callRetFlag
		}
		b = append(b, c)
		if !same {
			b = binary.AppendUvarint(b, uint64(len(r.Args)))
			for j, a := range r.Args {
				var p uint64
				if j < len(pv) {
					p = pv[j]
				}
				b = binary.AppendUvarint(b, zigzag(int64(a-p)))
			}
			e.prev[r.Fn] = append(pv[:0], r.Args...)
		}
		if r.Ret != 0 {
			b = binary.AppendUvarint(b, r.Ret)
		}
		b = binary.AppendUvarint(b, uint64(len(r.Data)))
		b = append(b, r.Data...)
	}
	e.recs = b
}

// size is the payload length so far, an upper bound for the block start.
func (e *encoder) size() int { return maxBlockStart + len(e.recs) }

// appendPayload appends the complete block payload to dst.
func (e *encoder) appendPayload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, e.tick)
	dst = binary.AppendUvarint(dst, e.step)
	dst = binary.AppendUvarint(dst, uint64(e.n))
	return append(dst, e.recs...)
}

func equalArgs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// blockDecoder decodes a block payload one record at a time, so a block of
// millions of tiny records never turns into millions of Records in memory.
// Data slices alias the payload (callers hand it a buffer they never reuse);
// Args are carved from slabs that are never reused either. Every defect is
// an error, never a panic, and no allocation depends on an unchecked length.
type blockDecoder struct {
	d    []byte // undecoded rest of the payload
	left uint64 // records still to decode
	i    uint64 // index of the next record, for messages
	prev [MaxFn + 1][]uint64
	slab []uint64
}

// init starts decoding payload p and returns the block's start position.
func (bd *blockDecoder) init(p []byte) (tick, step uint64, err error) {
	*bd = blockDecoder{slab: bd.slab}
	d := p
	var hdr [3]uint64
	for i := range hdr {
		v, n := uvarint(d)
		if n <= 0 {
			return 0, 0, errors.New("bad block start varint")
		}
		hdr[i] = v
		d = d[n:]
	}
	if hdr[2] == 0 {
		return 0, 0, errors.New("block payload with no records")
	}
	if hdr[2] > uint64(len(d)) { // every record is at least one byte
		return 0, 0, fmt.Errorf("record count %d exceeds payload", hdr[2])
	}
	bd.d, bd.left = d, hdr[2]
	return hdr[0], hdr[1], nil
}

// room makes space for n more arguments in a slab no record shares yet.
func (bd *blockDecoder) room(n int) {
	if cap(bd.slab)-len(bd.slab) < n {
		bd.slab = make([]uint64, 0, 256)
	}
}

// next decodes the next record into r; bd.left must be > 0.
func (bd *blockDecoder) next(r *Record) error {
	i := bd.i
	bd.i++
	bd.left--
	*r = Record{}
	d := bd.d
	if len(d) == 0 {
		return fmt.Errorf("record %d: truncated", i)
	}
	c := d[0]
	d = d[1:]
	switch {
	case c == codeStep:
		r.Kind = KindStep
	case c == codeIdle:
		v, n := uvarint(d)
		if n <= 0 {
			return fmt.Errorf("record %d: bad idle count", i)
		}
		if v == 0 {
			return fmt.Errorf("record %d: idle count 0", i)
		}
		d = d[n:]
		r.Kind, r.N = KindIdle, v
	case c == codeCheckpoint:
		if len(d) < 8 {
			return fmt.Errorf("record %d: truncated checkpoint", i)
		}
		r.Kind = KindCheckpoint
		r.FBHash = binary.LittleEndian.Uint64(d)
		d = d[8:]
		v, n := uvarint(d)
		if n <= 0 {
			return fmt.Errorf("record %d: bad checkpoint memory hash", i)
		}
		d = d[n:]
		r.MemHash = v
	case c < codeCall:
		return fmt.Errorf("record %d: reserved record type 0x%02x", i, c)
	default:
		fn := (c - codeCall) >> 2
		r.Kind, r.Fn = KindCall, fn
		pv := bd.prev[fn]
		if c&callArgsFlag != 0 {
			argc, n := uvarint(d)
			if n <= 0 || argc > MaxArgs {
				return fmt.Errorf("record %d: bad argument count", i)
			}
			d = d[n:]
			bd.room(int(argc))
			start := len(bd.slab)
			for j := 0; j < int(argc); j++ {
				z, n := uvarint(d)
				if n <= 0 {
					return fmt.Errorf("record %d: bad argument %d", i, j)
				}
				d = d[n:]
				var pj uint64
				if j < len(pv) {
					pj = pv[j]
				}
				bd.slab = append(bd.slab, pj+uint64(unzigzag(z)))
			}
			r.Args = bd.slab[start:len(bd.slab):len(bd.slab)]
			if equalArgs(r.Args, pv) {
				return fmt.Errorf("record %d: arguments flagged changed but equal", i)
			}
			bd.prev[fn] = r.Args
		} else if len(pv) > 0 {
			// A private copy: the caller may modify one record's Args.
			bd.room(len(pv))
			start := len(bd.slab)
			bd.slab = append(bd.slab, pv...)
			r.Args = bd.slab[start:len(bd.slab):len(bd.slab)]
		}
		if c&callRetFlag != 0 {
			v, n := uvarint(d)
			if n <= 0 || v == 0 {
				return fmt.Errorf("record %d: bad result", i)
			}
			d = d[n:]
			r.Ret = v
		}
		l, n := uvarint(d)
		if n <= 0 || l > MaxData || l > uint64(len(d)-n) {
			return fmt.Errorf("record %d: bad data length", i)
		}
		d = d[n:]
		if l > 0 {
			r.Data = d[:l:l]
			d = d[l:]
		}
	}
	bd.d = d
	if bd.left == 0 && len(d) != 0 {
		return fmt.Errorf("%d trailing bytes after the last record", len(d))
	}
	return nil
}
