package mpeg1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrNeedInput is returned by Next when a decoder made with NewPushDecoder
// has used up the bytes fed to it: Feed more (or call EndInput) and call
// Next again.
var ErrNeedInput = errors.New("mpeg1: need more input")

// ErrTooLarge is returned for a sequence whose picture size exceeds the
// decoder's MaxWidth or MaxHeight.
var ErrTooLarge = errors.New("mpeg1: picture size exceeds the decoder's limit")

// PictureType is a picture's coding type (section 2.4.3.4).
type PictureType uint8

const (
	TypeI PictureType = 1 // intra-coded
	TypeP PictureType = 2 // predicted from the previous I or P picture
	TypeB PictureType = 3 // predicted from the previous and next I or P pictures
	TypeD PictureType = 4 // DC-coded (intra, DC coefficients only)
)

func (t PictureType) String() string {
	if t >= TypeI && t <= TypeD {
		return string("?IPBD"[t])
	}
	return fmt.Sprintf("PictureType(%d)", uint8(t))
}

// Frame is one decoded picture in display order, YCbCr 4:2:0: Y is
// YStride bytes per row and at least Height rows, Cb and Cr CStride bytes
// per row and (Height+1)/2 rows. The planes belong to the decoder and stay
// valid until the next call of Next; Clone a frame to keep it.
type Frame struct {
	Width, Height    int
	Y, Cb, Cr        []byte
	YStride, CStride int
	Type             PictureType
	// TemporalReference is the picture's number within its group of
	// pictures, as coded.
	TemporalReference int
	// Index counts the frames the decoder has returned, from 0.
	Index int
}

// Clone returns a copy of f whose planes are its own.
func (f *Frame) Clone() *Frame {
	c := *f
	c.Y = bytes.Clone(f.Y)
	c.Cb = bytes.Clone(f.Cb)
	c.Cr = bytes.Clone(f.Cr)
	return &c
}

// Sequence describes the video, from its sequence header (section 2.4.3.2).
type Sequence struct {
	Width, Height int
	// AspectCode is pel_aspect_ratio (1 is square pels).
	AspectCode int
	// RateCode is picture_rate; FrameRate converts it.
	RateCode int
	// BitRate is in bits per second (0 when the stream says "variable").
	BitRate int
}

var frameRates = [9][2]int{{0, 1}, {24000, 1001}, {24, 1}, {25, 1}, {30000, 1001}, {30, 1}, {50, 1}, {60000, 1001}, {60, 1}}

// FrameRate returns the picture rate as a fraction num/den frames per
// second; a reserved code reads as 25/1.
func (s Sequence) FrameRate() (num, den int) {
	if s.RateCode >= 1 && s.RateCode <= 8 {
		return frameRates[s.RateCode][0], frameRates[s.RateCode][1]
	}
	return 25, 1
}

// picture is one frame buffer: planes cover whole macroblocks.
type picture struct {
	y, cb, cr []byte
	typ       PictureType
	tref      int
}

// Limits on what a (possibly hostile) stream can make the decoder hold.
const (
	DefaultMaxWidth  = 4096
	DefaultMaxHeight = 4096
	// maxUnit bounds the bytes of one picture (from its start code to the
	// next picture-level start code) the decoder buffers.
	maxUnitBase = 1 << 20
)

const (
	modeUnknown = iota
	modeES
	modePS
)

// Decoder decodes an MPEG-1 video elementary stream (.m1v) or the first
// video stream of an MPEG-1 (or MPEG-2) program stream (.mpg), whichever
// the input turns out to be. It pulls its input from an io.Reader
// (NewDecoder) or is fed bytes as they arrive (NewPushDecoder); either way
// Next returns the frames in display order.
type Decoder struct {
	// MaxWidth and MaxHeight bound the picture size a stream may ask for
	// (and so the memory it makes the decoder allocate); change them before
	// the first Next.
	MaxWidth, MaxHeight int

	r     io.Reader
	rbuf  []byte
	in    []byte // raw input not yet demultiplexed (program streams)
	es    []byte // elementary stream not yet decoded
	scan  int    // where in es to resume looking for the end of the current unit
	eof   bool
	mode  int
	video byte // the program stream's video stream id, 0 until chosen
	err   error

	seq     Sequence
	haveSeq bool
	mbw     int
	mbh     int
	intraQ  [64]uint8
	interQ  [64]uint8
	bufs    [3]*picture
	refs    [2]*picture // [0] older, [1] newer I or P picture
	nrefs   int
	out     *Frame
	outBuf  Frame
	nframes int

	// Picture and slice state.
	b          bitReader
	ptype      PictureType
	fullPel    [2]bool
	rsize      [2]int
	qscale     int32
	dcPred     [3]int32
	mv         [2][2]int // [forward/backward][horizontal/vertical] predictors
	mbDir      int       // previous macroblock's mbForward|mbBackward (B pictures)
	blk        [64]int32
	cur        *picture
	errorCount int

	probe    bool // Probe: count pictures instead of decoding them
	pictures int
}

// NewDecoder returns a decoder that reads its input from r.
func NewDecoder(r io.Reader) *Decoder {
	d := NewPushDecoder()
	d.r = r
	return d
}

// NewPushDecoder returns a decoder that is given its input with Feed.
func NewPushDecoder() *Decoder {
	return &Decoder{MaxWidth: DefaultMaxWidth, MaxHeight: DefaultMaxHeight}
}

// Feed appends input bytes; the decoder copies them.
func (d *Decoder) Feed(p []byte) {
	d.in = append(d.in, p...)
}

// EndInput says no more input follows: Next then returns the remaining
// frames and finally io.EOF instead of ErrNeedInput.
func (d *Decoder) EndInput() { d.eof = true }

// Buffered is the number of input bytes fed or read but not yet decoded.
func (d *Decoder) Buffered() int { return len(d.in) + len(d.es) }

// Sequence returns the current sequence header's facts; ok is false
// before the first sequence header.
func (d *Decoder) Sequence() (s Sequence, ok bool) { return d.seq, d.haveSeq }

// CorruptSlices counts the slices the decoder abandoned because their bits
// made no sense (the rest of such a picture keeps its prediction).
func (d *Decoder) CorruptSlices() int { return d.errorCount }

// Next returns the next frame in display order. At the end of the input it
// returns io.EOF; a push decoder returns ErrNeedInput when it needs more
// bytes before it can tell. ErrTooLarge and read errors are final.
func (d *Decoder) Next() (*Frame, error) {
	for {
		if d.err != nil {
			return nil, d.err
		}
		if f := d.out; f != nil {
			d.out = nil
			return f, nil
		}
		progress, err := d.decodeUnit()
		if err != nil {
			d.err = err
			return nil, err
		}
		if progress {
			continue
		}
		if d.eof {
			if d.flush() {
				continue
			}
			return nil, io.EOF
		}
		if d.r == nil {
			return nil, ErrNeedInput
		}
		if d.rbuf == nil {
			d.rbuf = make([]byte, 64<<10)
		}
		n, err := d.r.Read(d.rbuf)
		d.in = append(d.in, d.rbuf[:n]...)
		if err == io.EOF {
			d.eof = true
		} else if err != nil {
			d.err = err
			return nil, err
		}
	}
}

// flush outputs the newest reference picture, which waits for the next I or
// P picture before it is shown; it reports whether there was one.
func (d *Decoder) flush() bool {
	if d.nrefs == 0 {
		return false
	}
	p := d.refs[1]
	d.refs = [2]*picture{}
	d.nrefs = 0
	d.emit(p)
	return true
}

func (d *Decoder) emit(p *picture) {
	d.outBuf = Frame{
		Width: d.seq.Width, Height: d.seq.Height,
		Y: p.y, Cb: p.cb, Cr: p.cr,
		YStride: d.mbw * 16, CStride: d.mbw * 8,
		Type: p.typ, TemporalReference: p.tref, Index: d.nframes,
	}
	d.nframes++
	d.out = &d.outBuf
}

// maxUnit is the most bytes one picture may take.
func (d *Decoder) maxUnit() int {
	return maxUnitBase + d.MaxWidth*d.MaxHeight
}

var startCodePrefix = []byte{0, 0, 1}

// fill moves demultiplexed (or, for an elementary stream, raw) input into
// d.es; it reports whether anything moved.
func (d *Decoder) fill() bool {
	if d.mode == modeUnknown {
		i := bytes.Index(d.in, startCodePrefix)
		if i < 0 || i+3 >= len(d.in) {
			if d.eof && len(d.in) > 0 {
				d.mode = modeES
			} else {
				if len(d.in) > 1<<16 { // no start code anywhere: drop all but a possible prefix
					d.in = append(d.in[:0], d.in[len(d.in)-3:]...)
				}
				return false
			}
		} else if c := d.in[i+3]; c == 0xBA || c == 0xBB {
			d.mode = modePS
		} else {
			d.mode = modeES
		}
	}
	if d.mode == modeES {
		if len(d.in) == 0 {
			return false
		}
		d.es = append(d.es, d.in...)
		d.in = d.in[:0]
		return true
	}
	return d.demux()
}

// decodeUnit decodes the next unit of the elementary stream (a header or a
// whole picture) if all of it is there; it reports whether it consumed
// anything.
func (d *Decoder) decodeUnit() (bool, error) {
	for {
		p := bytes.Index(d.es, startCodePrefix)
		if p < 0 || p+4 > len(d.es) {
			// Keep a possible partial prefix.
			if keep := min(len(d.es), 3); len(d.es) > keep {
				d.es = append(d.es[:0], d.es[len(d.es)-keep:]...)
				d.scan = 0
			}
			if d.fill() {
				continue
			}
			if d.eof {
				d.es = d.es[:0]
			}
			return false, nil
		}
		if p > 0 {
			d.es = d.es[p:]
			d.scan = 0
		}
		code := d.es[3]
		end := -1
		from := max(4, d.scan)
		for end < 0 {
			q := bytes.Index(d.es[from:], startCodePrefix)
			if q < 0 || from+q+4 > len(d.es) {
				break
			}
			q += from
			if c := d.es[q+3]; code != 0x00 || c == 0x00 || c >= 0xB3 && c != 0xB5 && c != 0xB2 {
				end = q
			}
			from = q + 3
		}
		if end < 0 {
			// Resume the search where it stopped: from the last prefix
			// whose code byte is missing, or the last bytes that could
			// begin one.
			had := len(d.es)
			if d.fill() {
				d.scan = max(4, min(from, had-3))
				continue
			}
			if !d.eof {
				d.scan = from
				if len(d.es) > d.maxUnit() { // a unit that never ends: drop it
					d.es = d.es[:0]
					d.scan = 0
					d.errorCount++
					return true, nil
				}
				return false, nil
			}
			end = len(d.es)
		}
		unit := d.es[:end]
		d.es = d.es[end:]
		d.scan = 0
		if err := d.unit(unit); err != nil {
			return true, err
		}
		return true, nil
	}
}

// unit handles one start code and what follows it up to the next one that
// ends it.
func (d *Decoder) unit(u []byte) error {
	switch code := u[3]; {
	case code == 0xB3:
		return d.sequenceHeader(u[4:])
	case code == 0xB7: // sequence_end_code
		d.flush()
	case code == 0x00:
		if d.probe {
			d.pictures++
			return nil
		}
		d.decodePicture(u)
	}
	return nil // group of pictures, user data, extensions and strays: nothing to do
}

func (d *Decoder) sequenceHeader(data []byte) error {
	b := &d.b
	b.reset(data)
	w := int(b.read(12))
	h := int(b.read(12))
	aspect := int(b.read(4))
	rate := int(b.read(4))
	bitrate := int(b.read(18))
	b.skip(1 + 10 + 1) // marker, vbv_buffer_size, constrained_parameters_flag
	var intraQ, interQ [64]uint8
	if b.read1() {
		for i := 0; i < 64; i++ {
			intraQ[zigzag[i]] = uint8(b.read(8))
		}
	} else {
		intraQ = defaultIntraMatrix
	}
	if b.read1() {
		for i := 0; i < 64; i++ {
			interQ[zigzag[i]] = uint8(b.read(8))
		}
	} else {
		for i := range interQ {
			interQ[i] = 16
		}
	}
	if b.overrun() || w == 0 || h == 0 {
		d.errorCount++
		return nil // a truncated or broken header: keep the old one
	}
	if w > d.MaxWidth || h > d.MaxHeight {
		return fmt.Errorf("%w: %dx%d (limit %dx%d)", ErrTooLarge, w, h, d.MaxWidth, d.MaxHeight)
	}
	if !d.probe && (!d.haveSeq || w != d.seq.Width || h != d.seq.Height) {
		d.flush()
		if d.out != nil {
			// The flushed frame's planes must survive the reallocation.
			d.outBuf = *d.outBuf.Clone()
			d.out = &d.outBuf
		}
		d.mbw, d.mbh = (w+15)/16, (h+15)/16
		ysize := d.mbw * d.mbh * 256
		for i := range d.bufs {
			d.bufs[i] = &picture{y: make([]byte, ysize), cb: make([]byte, ysize/4), cr: make([]byte, ysize/4)}
		}
		d.refs = [2]*picture{}
		d.nrefs = 0
	}
	d.seq = Sequence{Width: w, Height: h, AspectCode: aspect, RateCode: rate}
	if bitrate != 0x3FFFF {
		d.seq.BitRate = bitrate * 400
	}
	d.intraQ, d.interQ = intraQ, interQ
	d.haveSeq = true
	return nil
}

// freeBuffer returns a frame buffer that is not a reference picture.
func (d *Decoder) freeBuffer() *picture {
	for _, p := range d.bufs {
		if p != d.refs[0] && p != d.refs[1] {
			return p
		}
	}
	panic("mpeg1: no free frame buffer") // three buffers, at most two references
}

func (d *Decoder) decodePicture(u []byte) {
	if !d.haveSeq {
		return
	}
	b := &d.b
	b.reset(u[4:])
	tref := int(b.read(10))
	ptype := PictureType(b.read(3))
	b.skip(16) // vbv_delay
	if ptype == TypeP || ptype == TypeB {
		d.fullPel[0] = b.read1()
		f := int(b.read(3))
		if f == 0 {
			d.errorCount++
			return
		}
		d.rsize[0] = f - 1
	}
	if ptype == TypeB {
		d.fullPel[1] = b.read1()
		f := int(b.read(3))
		if f == 0 {
			d.errorCount++
			return
		}
		d.rsize[1] = f - 1
	}
	for b.read1() { // extra_information_picture
		b.skip(8)
		if b.overrun() {
			d.errorCount++
			return
		}
	}
	switch ptype {
	case TypeI, TypeD:
	case TypeP:
		if d.nrefs < 1 {
			return // nothing to predict from (a stream cut before an I picture)
		}
	case TypeB:
		if d.nrefs < 2 {
			return
		}
	default:
		d.errorCount++
		return
	}
	d.ptype = ptype
	d.cur = d.freeBuffer()
	d.cur.typ, d.cur.tref = ptype, tref

	// Slices follow, each from its start code to the next start code.
	for off := 4 + (b.pos+7)>>3; off < len(u); {
		i := bytes.Index(u[off:], startCodePrefix)
		if i < 0 || off+i+4 > len(u) {
			break
		}
		s := off + i
		end := len(u)
		if j := bytes.Index(u[s+4:], startCodePrefix); j >= 0 {
			end = s + 4 + j
		}
		if code := int(u[s+3]); code >= 0x01 && code <= 0xAF {
			d.decodeSlice(code-1, u[s+4:end])
		}
		off = end
	}

	switch ptype {
	case TypeI, TypeP:
		if d.nrefs == 2 || d.nrefs == 1 {
			d.emit(d.refs[1])
		}
		d.refs[0], d.refs[1] = d.refs[1], d.cur
		d.nrefs = min(d.nrefs+1, 2)
	default: // B and D pictures are shown at once and predict nothing
		d.emit(d.cur)
	}
}

// Probe reads a whole stream without decoding its pictures and returns its
// (first) sequence header and how many pictures it holds: a cheap way to
// learn a file's duration, pictures divided by the frame rate.
func Probe(r io.Reader) (Sequence, int, error) {
	d := NewDecoder(r)
	d.probe = true
	first := Sequence{}
	for {
		_, err := d.Next()
		if first == (Sequence{}) && d.haveSeq {
			first = d.seq
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return first, d.pictures, err
		}
	}
	if !d.haveSeq {
		return first, d.pictures, errors.New("mpeg1: no sequence header")
	}
	return first, d.pictures, nil
}
