package recordlog

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// DefaultSegmentBytes is the segment size used when WriterOptions leaves it 0.
const DefaultSegmentBytes = 64 << 20

// minCompress is the smallest payload worth trying to deflate: below it the
// 10 % saving the writer insists on is practically never reached.
const minCompress = 128

// WriterOptions tunes a Writer.
type WriterOptions struct {
	// SegmentBytes: after a block that takes the segment file to this size
	// or beyond, the writer rolls to a new segment. 0 means
	// DefaultSegmentBytes.
	SegmentBytes int64
	// Sync makes the writer fsync after every block (and the directory after
	// creating a segment), so a flushed block survives a power cut.
	Sync bool
	// OnBlock, if set, is called after every block is written (data, NEXT
	// and SEAL blocks) with the position where it starts and its bytes
	// exactly as in the file, valid only during the call: a live server
	// streams them to its viewers (Stream is the other end).
	OnBlock func(pos Pos, block []byte)
	// Log receives Resume's warnings about the bytes it cuts off (a torn
	// tail); nil means zerolog's global logger, so nothing is dropped
	// without a word.
	Log *zerolog.Logger
}

// Writer appends records to a log. It is not safe for concurrent use.
//
// Records are buffered into a block until Flush (or until the block would
// pass MaxBlockPayload, when the writer flushes by itself). Readers only
// ever see whole blocks.
type Writer struct {
	dir   string
	opt   WriterOptions
	hdr   Header // of the current segment
	f     *os.File
	off   int64 // size of the current segment file
	total int64 // bytes in all segments

	tick, step uint64 // after every appended record
	enc        encoder

	out []byte
	zw  *flate.Writer
	zb  bytes.Buffer

	err    error // sticky: after a failed write the file state is unknown
	closed bool
}

// Create starts a new log in dir (created if needed; it must not already
// hold segment files). h describes segment 0: h.Segment must be 0, and
// StartTick/StartStep may be non-zero for a log that starts mid-session.
func Create(dir string, h Header, opt WriterOptions) (*Writer, error) {
	if h.Segment != 0 {
		return nil, fmt.Errorf("recordlog: Create: header segment is %d, want 0", h.Segment)
	}
	if len(h.Params) > MaxParams {
		return nil, fmt.Errorf("recordlog: Create: params are %d bytes, limit %d", len(h.Params), MaxParams)
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		return nil, fmt.Errorf("recordlog: Create: %s already holds a log", dir)
	}
	h.Params = bytes.Clone(h.Params)
	w := newWriter(dir, h, opt)
	if err := w.startSegment(0); err != nil {
		return nil, err
	}
	return w, nil
}

func newWriter(dir string, h Header, opt WriterOptions) *Writer {
	if opt.SegmentBytes <= 0 {
		opt.SegmentBytes = DefaultSegmentBytes
	}
	w := &Writer{dir: dir, opt: opt, hdr: h, tick: h.StartTick, step: h.StartStep}
	w.enc.reset(w.tick, w.step)
	return w
}

// startSegment creates segment n, starting at the current tick and step.
func (w *Writer) startSegment(n uint32) error {
	w.hdr.Segment, w.hdr.StartTick, w.hdr.StartStep = n, w.tick, w.step
	f, err := os.OpenFile(filepath.Join(w.dir, SegmentName(n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		w.err = err
		return err
	}
	w.f, w.off = f, 0
	if err := w.write(appendHeader(w.out[:0], &w.hdr)); err != nil {
		return err
	}
	if w.opt.Sync {
		// The new name must survive a crash too, or the NEXT block before it
		// points nowhere.
		if err := syncDir(w.dir); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// write writes b to the current segment in one call, so readers tailing the
// file see a block appear whole or as a prefix, never interleaved.
func (w *Writer) write(b []byte) error {
	n, err := w.f.Write(b)
	w.off += int64(n)
	w.total += int64(n)
	if err == nil && w.opt.Sync {
		err = w.f.Sync()
	}
	if err != nil {
		w.err = err
	}
	return err
}

// Append adds r to the current block. It validates r (Kind, Fn range, caps,
// Idle N >= 1); fields that do not belong to r.Kind are ignored and not
// stored. r's slices are not retained.
func (w *Writer) Append(r Record) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := validate(&r); err != nil {
		return err
	}
	if w.enc.n > 0 && w.enc.size()+maxRecordLen(&r) > MaxBlockPayload {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.enc.add(&r)
	switch r.Kind {
	case KindStep:
		w.tick++
		w.step++
	case KindIdle:
		w.tick += r.N
	}
	return nil
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// Flush ends the current block and writes it; it does nothing when no record
// is buffered. If the segment has then reached SegmentBytes, Flush rolls to
// a new segment.
func (w *Writer) Flush() error {
	if err := w.usable(); err != nil {
		return err
	}
	wrote := w.enc.n > 0
	if err := w.flushBlock(); err != nil {
		return err
	}
	if wrote && w.off >= w.opt.SegmentBytes {
		return w.roll()
	}
	return nil
}

func (w *Writer) flushBlock() error {
	if w.enc.n == 0 {
		return nil
	}
	// Encode straight after room for the block header, to write it in one go.
	out := append(w.out[:0], make([]byte, blockHeaderLen)...)
	out = w.enc.appendPayload(out)
	err := w.writeBlock(out, 0)
	w.out = out[:0]
	w.enc.reset(w.tick, w.step)
	return err
}

// writeBlock compresses (when that saves at least 10 %), frames and writes
// the payload in out[blockHeaderLen:].
func (w *Writer) writeBlock(out []byte, flags byte) error {
	payload := out[blockHeaderLen:]
	if len(payload) >= minCompress {
		if w.zw == nil {
			w.zw, _ = flate.NewWriter(&w.zb, flate.BestSpeed) // level is valid: no error
		}
		w.zb.Reset()
		w.zw.Reset(&w.zb)
		w.zw.Write(payload) // writes to a bytes.Buffer cannot fail
		w.zw.Close()
		if w.zb.Len() <= len(payload)-len(payload)/10 {
			out = append(out[:blockHeaderLen], w.zb.Bytes()...)
			payload = out[blockHeaderLen:]
			flags |= flagCompressed
		}
	}
	binary.LittleEndian.PutUint32(out[0:], uint32(len(payload)))
	out[4] = flags
	binary.LittleEndian.PutUint32(out[5:], crc32.Update(crc32.Update(0, castagnoli, out[4:5]), castagnoli, payload))
	pos := Pos{Segment: w.hdr.Segment, Offset: w.off, Tick: w.enc.tick, Step: w.enc.step}
	if err := w.write(out); err != nil {
		return err
	}
	if w.opt.OnBlock != nil {
		w.opt.OnBlock(pos, out)
	}
	return nil
}

// Pos is the block boundary where the next block will start: the segment
// and file offset it will be written at, and the tick and step at its start.
// Records buffered but not yet flushed will be the first records of that
// block, so a snapshot taken after those records must Flush before Pos.
func (w *Writer) Pos() Pos {
	return Pos{Segment: w.hdr.Segment, Offset: w.off, Tick: w.enc.tick, Step: w.enc.step}
}

// Roll flushes, ends the current segment with a NEXT block and starts the
// next segment file.
func (w *Writer) Roll() error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.flushBlock(); err != nil {
		return err
	}
	return w.roll()
}

func (w *Writer) roll() error {
	if err := w.writeBlock(append(w.out[:0], make([]byte, blockHeaderLen)...), flagNext); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		w.err = err
		return err
	}
	return w.startSegment(w.hdr.Segment + 1)
}

// Close flushes, writes the SEAL block and closes the file. After Close the
// log is complete and immutable.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.err != nil {
		w.f.Close()
		return w.err
	}
	err := w.flushBlock()
	if err == nil {
		err = w.writeBlock(append(w.out[:0], make([]byte, blockHeaderLen)...), flagSeal)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Detach flushes and closes the file WITHOUT sealing the log: a live
// server that stops (to be restarted) leaves its log open for Resume, so
// positions that relays and clients hold stay valid. After Detach the
// writer is closed.
func (w *Writer) Detach() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.err != nil {
		w.f.Close()
		return w.err
	}
	err := w.flushBlock()
	if err == nil && w.opt.Sync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Bytes is the total size of the log on disk: every segment, headers
// included (for a resumed log, the bytes that were already there too).
func (w *Writer) Bytes() int64 { return w.total }

// Tick is the machine tick after every record appended so far.
func (w *Writer) Tick() uint64 { return w.tick }

// Step is the machine step count after every record appended so far.
func (w *Writer) Step() uint64 { return w.step }

// Resume reopens an unsealed log for appending, after a crash: a torn block
// at the end of the last segment is cut off (as is a last segment whose
// header was torn while rolling), and appending continues after the last
// complete block; what is cut is logged (WriterOptions.Log) with its file,
// offset and size. A block that is complete but whose length field was
// damaged to point past the end is not a torn tail: it is a *CorruptError
// and nothing is cut. A sealed log gives ErrSealed; damage anywhere but the
// torn tail gives the reader's error (*CorruptError, *ModuleMismatchError).
//
// Only the last segment's blocks are decoded (to recover tick and step);
// earlier segments are trusted as far as their headers. The caller must make
// sure no other writer still appends to the log.
func Resume(dir string, want ModuleHash, opt WriterOptions) (*Writer, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("recordlog: Resume: no log in %s", dir)
	}
	for i, s := range segs {
		if s != uint32(i) {
			return nil, &CorruptError{Segment: uint32(i), File: filepath.Join(dir, SegmentName(uint32(i))), Reason: "segment file missing"}
		}
	}
	last := uint32(len(segs) - 1)
	tornLast := false
	if last > 0 {
		// A crash while rolling can leave the new segment with a partial
		// header: then resume from the previous segment, which must end with
		// a NEXT block, and roll again.
		b, err := os.ReadFile(filepath.Join(dir, SegmentName(last)))
		if err != nil {
			return nil, err
		}
		if _, _, err := parseHeader(b); err == errShort {
			tornLast = true
			last--
		}
	}
	r, err := Open(dir, want, ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.seekSegment(last); err != nil {
		return nil, err
	}
	w := newWriter(dir, r.cur.hdr, opt)
	for {
		stall, err := r.advance()
		if err != nil {
			return nil, err
		}
		if r.sealed {
			return nil, ErrSealed
		}
		if stall != nil {
			break
		}
		var rec Record
		for r.bd.left > 0 {
			if err := r.bd.next(&rec); err != nil {
				return nil, r.corrupt(r.blockPos.Offset, err.Error())
			}
			r.apply(&rec)
		}
	}
	for i := uint32(0); i < r.cur.seg; i++ {
		fi, err := os.Stat(filepath.Join(dir, SegmentName(i)))
		if err != nil {
			return nil, err
		}
		w.total += fi.Size()
	}
	w.tick, w.step = r.tick, r.step
	w.enc.reset(w.tick, w.step)
	if r.nextSeg {
		// The crash came between the NEXT block and a complete next segment.
		if tornLast {
			torn := filepath.Join(dir, SegmentName(r.cur.seg+1))
			fi, err := os.Stat(torn)
			if err != nil {
				return nil, err
			}
			if err := os.Remove(torn); err != nil {
				return nil, err
			}
			opt.logger().Warn().Str("file", torn).Uint32("segment", r.cur.seg+1).Int64("bytes", fi.Size()).
				Msg("record log: removed a segment whose header was torn by a crash while rolling (no record lost)")
		}
		w.total += r.off
		if err := w.startSegment(r.cur.seg + 1); err != nil {
			return nil, err
		}
		return w, nil
	}
	if tornLast {
		// Unreachable in a well-formed log: the reader reports a segment
		// that follows one without a NEXT block as corrupt.
		return nil, r.corrupt(r.off, "torn segment header after a segment without NEXT block")
	}
	f, err := os.OpenFile(r.cur.path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	// r.off is the end of the last complete block: cut a torn one off.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if cut := fi.Size() - r.off; cut > 0 {
		opt.logger().Warn().Str("file", r.cur.path).Uint32("segment", r.cur.seg).Int64("offset", r.off).
			Int64("bytes", cut).Uint64("tick", r.tick).
			Msg("record log: cutting off a torn tail (a block a crash left incomplete)")
	}
	if err := f.Truncate(r.off); err == nil {
		_, err = f.Seek(r.off, io.SeekStart)
	}
	if err == nil && opt.Sync {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	w.f, w.off = f, r.off
	w.total += r.off
	return w, nil
}

func (o *WriterOptions) logger() *zerolog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return &zlog.Logger
}

// listSegments returns the segment numbers in dir, sorted.
func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint32
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		var n uint32
		if _, err := fmt.Sscanf(name, "%08d.seg", &n); err != nil || name != SegmentName(n) {
			return nil, fmt.Errorf("recordlog: unexpected file %s in log directory", name)
		}
		segs = append(segs, n)
	}
	return segs, nil // ReadDir sorts by name, and names are zero-padded
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
