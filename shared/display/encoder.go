package display

import (
	"bytes"
	"compress/zlib"
	"image"

	"replaydesk/shared/wire"
)

// Tile is one encoded rectangle of the screen. Its encodings are wire's:
//
//   - wire.EncSolid: 4 bytes RGBA filling the tile.
//   - wire.EncPalette: 1 byte n-1 (n = 2..16 colours), n*4 bytes RGBA palette,
//     then a zlib stream of the indices packed MSB first at 1, 2 or 4 bits per
//     pixel (n <= 2, <= 4, <= 16), each row padded to a whole byte.
//   - wire.EncZlib: a zlib stream of the W*H*4 raw RGBA bytes, rows top to bottom.
//   - wire.EncJPEG: a baseline JPEG of the tile (alpha becomes 255).
//   - wire.EncRaw and wire.EncPNG are accepted by the Decoder, not produced.
type Tile struct {
	X, Y, W, H int
	Encoding   wire.Encoding
	Data       []byte
}

// Wire converts t to its wire form (sharing Data).
func (t Tile) Wire() wire.Tile {
	return wire.Tile{X: uint32(t.X), Y: uint32(t.Y), W: uint32(t.W), H: uint32(t.H), Encoding: t.Encoding, Data: t.Data}
}

// FromWire converts a wire tile (sharing Data).
func FromWire(t wire.Tile) Tile {
	return Tile{X: int(t.X), Y: int(t.Y), W: int(t.W), H: int(t.H), Encoding: t.Encoding, Data: t.Data}
}

// Options configure an Encoder. Zero values take the defaults.
type Options struct {
	Quality  int  // JPEG quality 1..100 (libjpeg scale); default 79 (VNC quality level 6)
	Lossless bool // never use JPEG: tiles with > 16 colours go as zlib
	TileSize int  // tile grid size in pixels, a multiple of 8; default 64
}

// DefaultQuality is the libjpeg quality of VNC Tight "quality level 6".
const DefaultQuality = 79

// DefaultTileSize is the default tile grid.
const DefaultTileSize = 64

// Encoder encodes successive frames of one screen. It is not safe for
// concurrent use; one Encoder per session, its output shared by all viewers.
type Encoder struct {
	opt   Options
	jt    *jpegTables
	prev  []byte // previous frame, w*4 stride; nil before the first Encode
	w, h  int
	zbuf  bytes.Buffer
	zw    *zlib.Writer
	cells []bool
	cols  []uint32
	pack  []byte
}

// NewEncoder returns an Encoder with o's settings (defaults filled in).
func NewEncoder(o Options) *Encoder {
	if o.Quality <= 0 {
		o.Quality = DefaultQuality
	}
	o.Quality = min(o.Quality, 100)
	if o.TileSize <= 0 {
		o.TileSize = DefaultTileSize
	}
	o.TileSize = max(8, (o.TileSize+7)/8*8)
	e := &Encoder{opt: o, jt: newJPEGTables(o.Quality)}
	e.zw, _ = zlib.NewWriterLevel(&e.zbuf, zlib.DefaultCompression)
	return e
}

// Options returns the effective options.
func (e *Encoder) Options() Options { return e.opt }

// Reset forgets the previous frame: the next Encode sends the whole screen.
func (e *Encoder) Reset() { e.prev = nil }

// Key encodes the whole screen regardless of what was sent before (for key
// frames and late joiners) and remembers it as the previous frame.
func (e *Encoder) Key(fb []byte, w, h, stride int) []Tile {
	e.prev = nil
	return e.Encode(fb, w, h, stride, nil)
}

// Encode encodes the tiles of fb (w x h RGBA, rows stride bytes apart) that
// intersect damage and differ from the previous frame. The first call, and
// any call after a size change or Reset, encodes the whole screen. Tiles are
// aligned to the TileSize grid; runs of adjacent JPEG or zlib tiles in a grid
// row are merged into one wider tile to save per-tile headers. fb is only
// read; the returned Data do not alias fb.
func (e *Encoder) Encode(fb []byte, w, h, stride int, damage []image.Rectangle) []Tile {
	if w <= 0 || h <= 0 || stride < w*4 || len(fb) < (h-1)*stride+w*4 {
		return nil
	}
	ts := e.opt.TileSize
	gw, gh := (w+ts-1)/ts, (h+ts-1)/ts
	full := e.prev == nil || e.w != w || e.h != h
	if full {
		e.prev = make([]byte, w*h*4)
		e.w, e.h = w, h
	}
	if cap(e.cells) < gw*gh {
		e.cells = make([]bool, gw*gh)
	}
	cells := e.cells[:gw*gh]
	clear(cells)
	if full {
		for i := range cells {
			cells[i] = true
		}
	} else {
		screen := image.Rect(0, 0, w, h)
		for _, r := range damage {
			r = r.Intersect(screen)
			if r.Empty() {
				continue
			}
			for gy := r.Min.Y / ts; gy <= (r.Max.Y-1)/ts; gy++ {
				for gx := r.Min.X / ts; gx <= (r.Max.X-1)/ts; gx++ {
					cells[gy*gw+gx] = true
				}
			}
		}
	}

	var out []Tile
	for gy := range gh {
		y0 := gy * ts
		th := min(ts, h-y0)
		runX, runW := -1, 0 // pending run of bulk (jpeg/zlib) tiles
		flush := func() {
			if runX >= 0 {
				out = append(out, e.bulk(fb, stride, runX, y0, runW, th))
				runX = -1
			}
		}
		for gx := range gw {
			if !cells[gy*gw+gx] {
				flush()
				continue
			}
			x0 := gx * ts
			tw := min(ts, w-x0)
			if !full && e.same(fb, stride, x0, y0, tw, th) {
				flush()
				continue
			}
			e.remember(fb, stride, x0, y0, tw, th)
			if t, ok := e.small(fb, stride, x0, y0, tw, th); ok {
				flush()
				out = append(out, t)
				continue
			}
			if runX < 0 {
				runX, runW = x0, 0
			}
			runW += tw
		}
		flush()
	}
	return out
}

func (e *Encoder) same(fb []byte, stride, x, y, w, h int) bool {
	for j := range h {
		a := fb[(y+j)*stride+x*4:][:w*4]
		b := e.prev[((y+j)*e.w+x)*4:][:w*4]
		if !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

func (e *Encoder) remember(fb []byte, stride, x, y, w, h int) {
	for j := range h {
		copy(e.prev[((y+j)*e.w+x)*4:][:w*4], fb[(y+j)*stride+x*4:][:w*4])
	}
}

func px(p []byte) uint32 { return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24 }

// small encodes the tile as solid or palette if it has at most 16 colours.
func (e *Encoder) small(fb []byte, stride, x, y, w, h int) (Tile, bool) {
	cols := e.cols[:0]
	last, lastIdx := uint32(0), -1
	for j := range h {
		row := fb[(y+j)*stride+x*4:][:w*4]
		for i := 0; i < len(row); i += 4 {
			c := px(row[i:])
			if lastIdx >= 0 && c == last {
				continue
			}
			k := 0
			for k < len(cols) && cols[k] != c {
				k++
			}
			if k == len(cols) {
				if len(cols) == 16 {
					e.cols = cols
					return Tile{}, false
				}
				cols = append(cols, c)
			}
			last, lastIdx = c, k
		}
	}
	e.cols = cols
	t := Tile{X: x, Y: y, W: w, H: h}
	if len(cols) == 1 {
		c := cols[0]
		t.Encoding = wire.EncSolid
		t.Data = []byte{byte(c), byte(c >> 8), byte(c >> 16), byte(c >> 24)}
		return t, true
	}
	bits := 4
	switch {
	case len(cols) <= 2:
		bits = 1
	case len(cols) <= 4:
		bits = 2
	}
	rowBytes := (w*bits + 7) / 8
	pack := e.pack[:0]
	for j := range h {
		row := fb[(y+j)*stride+x*4:][:w*4]
		start := len(pack)
		for range rowBytes {
			pack = append(pack, 0)
		}
		last, lastIdx = 0, -1
		for i := range w {
			c := px(row[i*4:])
			if lastIdx < 0 || c != last {
				k := 0
				for cols[k] != c {
					k++
				}
				last, lastIdx = c, k
			}
			bit := i * bits
			pack[start+bit/8] |= byte(lastIdx) << (8 - bits - bit%8)
		}
	}
	e.pack = pack
	data := make([]byte, 0, 1+4*len(cols)+len(pack)/4+16)
	data = append(data, byte(len(cols)-1))
	for _, c := range cols {
		data = append(data, byte(c), byte(c>>8), byte(c>>16), byte(c>>24))
	}
	t.Encoding = wire.EncPalette
	t.Data = e.deflate(data, pack)
	return t, true
}

func (e *Encoder) deflate(dst, src []byte) []byte {
	e.zbuf.Reset()
	e.zw.Reset(&e.zbuf)
	e.zw.Write(src)
	e.zw.Close()
	return append(dst, e.zbuf.Bytes()...)
}

// bulk encodes a many-coloured rectangle: JPEG, or zlib of raw RGBA when lossless.
func (e *Encoder) bulk(fb []byte, stride, x, y, w, h int) Tile {
	t := Tile{X: x, Y: y, W: w, H: h}
	pix := fb[y*stride+x*4:]
	if !e.opt.Lossless {
		t.Encoding = wire.EncJPEG
		t.Data = appendJPEG(make([]byte, 0, 1024+w*h/2), pix, stride, w, h, e.jt)
		return t
	}
	e.zbuf.Reset()
	e.zw.Reset(&e.zbuf)
	for j := range h {
		e.zw.Write(pix[j*stride:][:w*4])
	}
	e.zw.Close()
	t.Encoding = wire.EncZlib
	t.Data = bytes.Clone(e.zbuf.Bytes())
	return t
}
