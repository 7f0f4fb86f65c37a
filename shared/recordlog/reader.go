package recordlog

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ReaderOptions tunes a Reader.
type ReaderOptions struct {
	// Follow tails a log that is still being written: at the end of an
	// unsealed log Next waits for more instead of returning ErrUnsealed.
	Follow bool
	// Poll is how often a following reader looks for new data; 0 means 20ms.
	Poll time.Duration
	// OnBlock, if set, is called for every block read (data, NEXT and SEAL)
	// with its position and its bytes exactly as in the file, valid only
	// during the call: a live server that rebuilds its machine from its own
	// log keeps these blocks for relays that connect after the restart.
	OnBlock func(pos Pos, block []byte)
}

// A reader reads at least this much at once, so small blocks cost no system
// call each; it starts small (segments of small logs are small) and doubles.
const (
	minReadChunk = 4 << 10
	maxReadChunk = 64 << 10
)

// headerGuess covers a segment header with up to ~400 bytes of Params in one
// read; longer ones take a second.
const headerGuess = 512

// segFile is one open segment file with a read-ahead buffer. The log only
// ever grows at its end and never changes bytes it wrote, so buffered bytes
// stay valid; a read that came up short is simply retried later.
type segFile struct {
	f      *os.File
	path   string
	seg    uint32
	hdr    Header
	hdrLen int64
	buf    []byte
	bufOff int64
	chunk  int // next read size
}

// at returns the n bytes at off, or fewer if the file ends sooner. The
// result is valid until the next call.
func (s *segFile) at(off int64, n int) ([]byte, error) {
	if off >= s.bufOff && off+int64(n) <= s.bufOff+int64(len(s.buf)) {
		return s.buf[off-s.bufOff : off-s.bufOff+int64(n)], nil
	}
	s.chunk = min(max(2*s.chunk, minReadChunk), maxReadChunk)
	size := max(n, s.chunk)
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	s.buf = s.buf[:size]
	m, err := s.f.ReadAt(s.buf, off)
	s.buf, s.bufOff = s.buf[:m], off
	if err != nil && err != io.EOF {
		return nil, err
	}
	return s.buf[:min(m, n)], nil
}

// Reader reads a log record by record. It is not safe for concurrent use.
type Reader struct {
	dir  string
	want ModuleHash // effective: the caller's, or segment 0's if that was zero
	opt  ReaderOptions
	hdr0 Header

	cur        *segFile
	off        int64 // offset of the next block in cur
	tick, step uint64

	payload  []byte // current block's payload; records' Data alias it
	bd       blockDecoder
	blockPos Pos

	sealed  bool   // the SEAL block was read
	nextSeg bool   // a NEXT block was read: continue in segment cur.seg+1
	err     error  // sticky: io.EOF, *CorruptError, *ModuleMismatchError
	spare   []byte // read buffer of the last segment closed
	closed  bool
}

// Open opens the log in dir for reading from its start. want is the module
// hash the log must have been recorded with; all-zero accepts any module
// (every segment must still agree with segment 0).
func Open(dir string, want ModuleHash, opt ReaderOptions) (*Reader, error) {
	if opt.Poll <= 0 {
		opt.Poll = 20 * time.Millisecond
	}
	r := &Reader{dir: dir, want: want, opt: opt}
	s, stall, err := r.openSegment(0)
	if err == nil {
		err = stall
	}
	if err != nil {
		return nil, err
	}
	r.hdr0 = s.hdr
	if r.want.IsZero() {
		r.want = s.hdr.ModuleHash
	}
	r.use(s, s.hdrLen, s.hdr.StartTick, s.hdr.StartStep)
	return r, nil
}

// openSegment opens segment n and checks its header against the log: stall
// is set when the file is missing or its header is incomplete (it may still
// be being written), err for anything that cannot become valid.
func (r *Reader) openSegment(n uint32) (s *segFile, stall, err error) {
	path := filepath.Join(r.dir, SegmentName(n))
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && n > 0 {
			return nil, &CorruptError{Segment: n - 1, File: filepath.Join(r.dir, SegmentName(n-1)), Offset: r.off,
				Reason: fmt.Sprintf("NEXT block but no segment %s", SegmentName(n))}, nil
		}
		return nil, nil, err
	}
	// Reuse the previous segment's read buffer: readers open many files.
	s = &segFile{f: f, path: path, seg: n, buf: r.spare[:0], bufOff: -1}
	r.spare = nil
	b, err := s.at(0, headerGuess)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	h, hl, err := parseHeader(b)
	if err == errShort && len(b) == headerGuess {
		if b, err = s.at(0, maxHeaderLen); err != nil {
			f.Close()
			return nil, nil, err
		}
		h, hl, err = parseHeader(b)
	}
	if err == errShort {
		f.Close()
		return nil, &UnsealedError{Segment: n, File: path, Offset: 0, Torn: true}, nil
	}
	bad := func(reason string) (*segFile, error, error) {
		f.Close()
		return nil, nil, &CorruptError{Segment: n, File: path, Offset: 0, Reason: reason}
	}
	if err != nil {
		return bad(err.Error())
	}
	want := r.want
	if n == 0 && want.IsZero() {
		want = h.ModuleHash
	}
	if h.ModuleHash != want {
		f.Close()
		return nil, nil, &ModuleMismatchError{File: path, Want: want, Got: h.ModuleHash}
	}
	if h.Segment != n {
		return bad(fmt.Sprintf("header says segment %d", h.Segment))
	}
	if n > 0 && !bytes.Equal(h.Params, r.hdr0.Params) {
		return bad("params differ from segment 0")
	}
	s.hdr, s.hdrLen = h, int64(hl)
	return s, nil, nil
}

// use makes s the current segment, reading from off at the given position.
func (r *Reader) use(s *segFile, off int64, tick, step uint64) {
	if r.cur != nil && r.cur != s {
		r.cur.f.Close()
		r.spare = r.cur.buf
	}
	r.cur, r.off, r.tick, r.step = s, off, tick, step
	r.bd = blockDecoder{}
	r.payload = nil
	r.blockPos = Pos{Segment: s.seg, Offset: off, Tick: tick, Step: step}
	r.sealed, r.nextSeg, r.err = false, false, nil
}

// seekSegment positions the reader at the first block of segment n.
func (r *Reader) seekSegment(n uint32) error {
	s, stall, err := r.openSegment(n)
	if err == nil {
		err = stall
	}
	if err != nil {
		return err
	}
	r.use(s, s.hdrLen, s.hdr.StartTick, s.hdr.StartStep)
	return nil
}

// Header returns segment 0's header.
func (r *Reader) Header() Header {
	h := r.hdr0
	h.Params = bytes.Clone(h.Params)
	return h
}

// Next returns the next record. Its Args and Data are the caller's to keep
// (Data shares one never-reused buffer per block, so keeping one record's
// Data keeps its whole block in memory).
//
// At the end it returns io.EOF if the log is sealed. At the end of an
// unsealed log it waits for more with Follow (until ctx is done), and
// otherwise returns an *UnsealedError (errors.Is(err, ErrUnsealed)); calling
// Next again later picks up whatever was appended meanwhile. Damage is a
// *CorruptError and a wrong module a *ModuleMismatchError; both, like io.EOF,
// are returned again by every later call.
func (r *Reader) Next(ctx context.Context) (Record, error) {
	if r.closed {
		return Record{}, errors.New("recordlog: reader is closed")
	}
	var timer *time.Timer
	for {
		if r.bd.left > 0 {
			var rec Record
			if err := r.bd.next(&rec); err != nil {
				r.err = r.corrupt(r.blockPos.Offset, err.Error())
				r.bd.left = 0
				return Record{}, r.err
			}
			r.apply(&rec)
			return rec, nil
		}
		if r.err != nil {
			return Record{}, r.err
		}
		if r.sealed {
			r.err = io.EOF
			continue
		}
		stall, err := r.advance()
		if err != nil {
			var ce *CorruptError
			var me *ModuleMismatchError
			if errors.As(err, &ce) || errors.As(err, &me) {
				r.err = err
			}
			return Record{}, err
		}
		if stall == nil {
			continue
		}
		if !r.opt.Follow {
			return Record{}, stall
		}
		if timer == nil {
			timer = time.NewTimer(r.opt.Poll)
			defer timer.Stop()
		} else {
			timer.Reset(r.opt.Poll)
		}
		select {
		case <-ctx.Done():
			return Record{}, ctx.Err()
		case <-timer.C:
		}
	}
}

func (r *Reader) apply(rec *Record) {
	switch rec.Kind {
	case KindStep:
		r.tick++
		r.step++
	case KindIdle:
		r.tick += rec.N
	}
}

func (r *Reader) corrupt(off int64, reason string) *CorruptError {
	return &CorruptError{Segment: r.cur.seg, File: r.cur.path, Offset: off, Reason: reason}
}

// nextExists reports whether the segment after the current one exists.
func (r *Reader) nextExists() bool {
	_, err := os.Stat(filepath.Join(r.dir, SegmentName(r.cur.seg+1)))
	return err == nil
}

// advance reads the next block (or moves to the next segment). stall means
// there is nothing more yet: the error to report if not following.
func (r *Reader) advance() (stall, err error) {
	if r.nextSeg {
		s, stall, err := r.openSegment(r.cur.seg + 1)
		if err != nil || stall != nil {
			return stall, err
		}
		if s.hdr.StartTick != r.tick || s.hdr.StartStep != r.step {
			s.f.Close()
			return nil, &CorruptError{Segment: s.seg, File: s.path, Reason: fmt.Sprintf(
				"segment starts at tick %d step %d, previous segment ended at tick %d step %d",
				s.hdr.StartTick, s.hdr.StartStep, r.tick, r.step)}
		}
		r.use(s, s.hdrLen, r.tick, r.step)
		return nil, nil
	}
	off := r.off
	b, complete, err := r.block(off)
	if err != nil {
		return nil, err
	}
	if !complete {
		// A writer only creates the next segment after finishing this one,
		// so once the next file exists, this one is final: read it again.
		if !r.nextExists() {
			if !r.opt.Follow && len(b) >= blockHeaderLen {
				// The file ends before the block's length says. A crash
				// mid-append leaves a prefix of a block; a complete block
				// whose length was damaged leaves the whole block. Tell them
				// apart before anyone cuts it off as a torn tail.
				if l, ok := r.completeBlockIn(b); ok {
					return nil, r.corrupt(off, fmt.Sprintf(
						"block length says %d bytes, past the end of the file, but the %d bytes there hold a complete %d-byte block: its length is damaged (not a torn tail)",
						binary.LittleEndian.Uint32(b), len(b)-blockHeaderLen, l))
				}
			}
			return &UnsealedError{Segment: r.cur.seg, File: r.cur.path, Offset: off, Torn: len(b) > 0}, nil
		}
		if b, complete, err = r.block(off); err != nil {
			return nil, err
		}
		if !complete {
			if len(b) == 0 {
				return nil, r.corrupt(off, "segment ends without a NEXT block, but a later segment exists")
			}
			return nil, r.corrupt(off, "incomplete block followed by a later segment")
		}
	}
	flags := b[4]
	stored := b[blockHeaderLen:]
	if crc32.Update(crc32.Update(0, castagnoli, b[4:5]), castagnoli, stored) != binary.LittleEndian.Uint32(b[5:]) {
		return nil, r.corrupt(off, "block checksum mismatch")
	}
	end := off + int64(len(b))
	switch {
	case len(stored) == 0:
		if flags&(flagSeal|flagNext) == 0 || flags&flagCompressed != 0 {
			return nil, r.corrupt(off, "empty block")
		}
		r.payload = nil
	case flags&flagCompressed != 0:
		if r.payload, err = inflate(stored); err != nil {
			return nil, r.corrupt(off, err.Error())
		}
	default:
		// A private copy: records' Data alias it, and b is the read buffer.
		r.payload = bytes.Clone(stored)
	}
	if len(r.payload) > 0 {
		tick, step, err := r.bd.init(r.payload)
		if err != nil {
			return nil, r.corrupt(off, err.Error())
		}
		if tick != r.tick || step != r.step {
			r.bd.left = 0
			return nil, r.corrupt(off, fmt.Sprintf("block starts at tick %d step %d, expected tick %d step %d",
				tick, step, r.tick, r.step))
		}
		r.blockPos = Pos{Segment: r.cur.seg, Offset: off, Tick: tick, Step: step}
	}
	if r.opt.OnBlock != nil {
		// r.tick and r.step are still where this block starts.
		r.opt.OnBlock(Pos{Segment: r.cur.seg, Offset: off, Tick: r.tick, Step: r.step}, b)
	}
	r.off = end
	if flags&(flagSeal|flagNext) != 0 {
		// Nothing may follow the end of a segment.
		t, err := r.cur.at(end, 1)
		if err != nil {
			return nil, err
		}
		if len(t) > 0 {
			r.bd.left = 0
			return nil, r.corrupt(end, "data after the segment's last block")
		}
		if flags&flagSeal != 0 {
			if r.nextExists() {
				r.bd.left = 0
				return nil, r.corrupt(off, "SEAL block, but a later segment exists")
			}
			r.sealed = true
		} else {
			r.nextSeg = true
		}
	}
	return nil, nil
}

// completeBlockIn reports whether b (a block header and every byte the file
// holds after it, fewer than its length says) starts with a complete, valid
// block under another length: one whose checksum matches and whose payload
// decodes exactly, starting where the reader is. It returns that length.
// Requiring the payload to decode too, not only the CRC to match, keeps a
// genuinely torn block from passing for a damaged one by chance.
func (r *Reader) completeBlockIn(b []byte) (int, bool) {
	flags := b[4]
	want := binary.LittleEndian.Uint32(b[5:])
	stored := b[blockHeaderLen:]
	c := crc32.Update(0, castagnoli, b[4:5])
	for l := 0; ; l++ {
		if c == want && r.validBlock(flags, stored[:l]) {
			return l, true
		}
		if l == len(stored) {
			return 0, false
		}
		c = crc32.Update(c, castagnoli, stored[l:l+1])
	}
}

// validBlock reports whether stored, under flags, is a block the reader
// would accept at its current position (checksum aside).
func (r *Reader) validBlock(flags byte, stored []byte) bool {
	if len(stored) == 0 {
		return flags&(flagSeal|flagNext) != 0 && flags&flagCompressed == 0
	}
	p := stored
	if flags&flagCompressed != 0 {
		var err error
		if p, err = inflate(stored); err != nil {
			return false
		}
	}
	var bd blockDecoder
	tick, step, err := bd.init(p)
	if err != nil || tick != r.tick || step != r.step {
		return false
	}
	var rec Record
	for bd.left > 0 {
		if bd.next(&rec) != nil {
			return false
		}
	}
	return true
}

// block returns the block at off, whole when complete; an incomplete one is
// what the file holds (empty at a clean end). Impossible lengths and flags
// are corruption even before the block is complete.
func (r *Reader) block(off int64) (b []byte, complete bool, err error) {
	h, err := r.cur.at(off, blockHeaderLen)
	if err != nil || len(h) < blockHeaderLen {
		return h, false, err
	}
	n := binary.LittleEndian.Uint32(h)
	if n > MaxBlockPayload {
		return nil, false, r.corrupt(off, fmt.Sprintf("block length %d exceeds limit %d", n, MaxBlockPayload))
	}
	flags := h[4]
	if flags&^flagsKnown != 0 {
		return nil, false, r.corrupt(off, fmt.Sprintf("unknown block flags 0x%02x", flags))
	}
	if flags&flagSeal != 0 && flags&flagNext != 0 {
		return nil, false, r.corrupt(off, "block flagged both SEAL and NEXT")
	}
	b, err = r.cur.at(off, blockHeaderLen+int(n))
	return b, err == nil && len(b) == blockHeaderLen+int(n), err
}

// inflaters recycles flate decompressors (~40 KB each) across blocks and
// readers: replay tools open a reader per seek.
var inflaters sync.Pool

// inflate decompresses a stored payload into a fresh buffer, refusing more
// than MaxBlockPayload bytes (a deflate bomb) and trailing garbage.
func inflate(stored []byte) ([]byte, error) {
	br := bytes.NewReader(stored)
	fr, _ := inflaters.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(br)
	} else if err := fr.(flate.Resetter).Reset(br, nil); err != nil {
		return nil, err
	}
	defer inflaters.Put(fr)
	// Guess the size to avoid regrowing; the limit still bounds it.
	buf := bytes.NewBuffer(make([]byte, 0, min(4*len(stored)+512, MaxBlockPayload+1)))
	_, err := buf.ReadFrom(io.LimitReader(fr, MaxBlockPayload+1))
	out := buf.Bytes()
	switch {
	case err != nil:
		return nil, fmt.Errorf("bad compressed payload: %v", err)
	case len(out) > MaxBlockPayload:
		return nil, fmt.Errorf("decompressed payload exceeds %d bytes", MaxBlockPayload)
	case len(out) == 0:
		return nil, errors.New("compressed payload is empty")
	case br.Len() != 0:
		return nil, errors.New("trailing bytes after compressed payload")
	}
	return out, nil
}

// Seek moves the reader to p, a block boundary from Writer.Pos or
// Reader.BlockPos; the next record is the first of that block. An offset
// that is not a block boundary shows up as a *CorruptError from Next.
func (r *Reader) Seek(p Pos) error {
	if r.closed {
		return errors.New("recordlog: reader is closed")
	}
	s, stall, err := r.openSegment(p.Segment)
	if err == nil {
		err = stall
	}
	if err != nil {
		return err
	}
	if p.Offset < s.hdrLen ||
		(p.Offset == s.hdrLen && (p.Tick != s.hdr.StartTick || p.Step != s.hdr.StartStep)) {
		s.f.Close()
		return fmt.Errorf("recordlog: %+v is not a block boundary of segment %s", p, SegmentName(p.Segment))
	}
	r.use(s, p.Offset, p.Tick, p.Step)
	return nil
}

// BlockPos is the start of the block the last record came from (before the
// first record: where reading starts). Seeking there replays that block.
func (r *Reader) BlockPos() Pos { return r.blockPos }

// Tick is the machine tick after the records read so far.
func (r *Reader) Tick() uint64 { return r.tick }

// Step is the machine step count after the records read so far.
func (r *Reader) Step() uint64 { return r.step }

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.cur != nil {
		return r.cur.f.Close()
	}
	return nil
}
