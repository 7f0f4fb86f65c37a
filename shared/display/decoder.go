package display

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"

	"replaydesk/shared/wire"
)

// ErrTile reports a tile that cannot be painted: out of the framebuffer,
// of an unknown encoding, or with malformed data.
var ErrTile = errors.New("display: bad tile")

// Decoder paints tiles into a framebuffer. It reuses buffers between calls;
// the zero value is ready to use. Memory use is bounded by the tile area,
// which must lie inside the framebuffer, whatever the tile data claims.
type Decoder struct {
	buf []byte
	zr  io.ReadCloser
}

// Apply paints tiles into fb (w x h RGBA, rows stride bytes apart) with a
// zero Decoder.
func Apply(tiles []Tile, fb []byte, w, h, stride int) error {
	var d Decoder
	return d.Apply(tiles, fb, w, h, stride)
}

// Apply paints tiles in order into fb. It stops at the first bad tile; the
// tiles before it are painted.
func (d *Decoder) Apply(tiles []Tile, fb []byte, w, h, stride int) error {
	if w <= 0 || h <= 0 || stride < w*4 || len(fb) < (h-1)*stride+w*4 {
		return fmt.Errorf("%w: framebuffer %dx%d stride %d len %d", ErrTile, w, h, stride, len(fb))
	}
	for i, t := range tiles {
		if err := d.tile(t, fb, w, h, stride); err != nil {
			return fmt.Errorf("tile %d (%d,%d %dx%d enc %d): %w", i, t.X, t.Y, t.W, t.H, t.Encoding, err)
		}
	}
	return nil
}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrTile}, a...)...)
}

func (d *Decoder) tile(t Tile, fb []byte, w, h, stride int) error {
	if t.X < 0 || t.Y < 0 || t.W <= 0 || t.H <= 0 || t.W > w-t.X || t.H > h-t.Y {
		return bad("outside the %dx%d framebuffer", w, h)
	}
	rowLen := t.W * 4
	switch t.Encoding {
	case wire.EncRaw:
		if len(t.Data) != rowLen*t.H {
			return bad("raw needs %d bytes, has %d", rowLen*t.H, len(t.Data))
		}
		d.rows(t, t.Data, fb, stride)
	case wire.EncSolid:
		if len(t.Data) != 4 {
			return bad("solid needs 4 bytes, has %d", len(t.Data))
		}
		for j := range t.H {
			row := fb[(t.Y+j)*stride+t.X*4:][:rowLen]
			for i := 0; i < rowLen; i += 4 {
				copy(row[i:i+4], t.Data)
			}
		}
	case wire.EncZlib:
		raw, err := d.inflate(t.Data, rowLen*t.H)
		if err != nil {
			return err
		}
		d.rows(t, raw, fb, stride)
	case wire.EncPalette:
		if len(t.Data) < 1 {
			return bad("empty palette tile")
		}
		n := int(t.Data[0]) + 1
		if n < 2 || n > 16 || len(t.Data) < 1+4*n {
			return bad("palette of %d colours in %d bytes", n, len(t.Data))
		}
		pal := t.Data[1 : 1+4*n]
		bits := 4
		switch {
		case n <= 2:
			bits = 1
		case n <= 4:
			bits = 2
		}
		rowBytes := (t.W*bits + 7) / 8
		idx, err := d.inflate(t.Data[1+4*n:], rowBytes*t.H)
		if err != nil {
			return err
		}
		mask := byte(1<<bits - 1)
		for j := range t.H {
			src := idx[j*rowBytes:]
			row := fb[(t.Y+j)*stride+t.X*4:][:rowLen]
			for i := range t.W {
				bit := i * bits
				k := int(src[bit/8]>>(8-bits-bit%8)) & int(mask)
				if k >= n {
					return bad("palette index %d of %d colours", k, n)
				}
				copy(row[i*4:i*4+4], pal[k*4:k*4+4])
			}
		}
	case wire.EncJPEG, wire.EncPNG:
		decodeConfig, decode := jpeg.DecodeConfig, jpeg.Decode
		if t.Encoding == wire.EncPNG {
			decodeConfig, decode = png.DecodeConfig, png.Decode
		}
		cfg, err := decodeConfig(bytes.NewReader(t.Data))
		if err != nil {
			return bad("%v", err)
		}
		if cfg.Width != t.W || cfg.Height != t.H {
			return bad("image is %dx%d, tile is %dx%d", cfg.Width, cfg.Height, t.W, t.H)
		}
		img, err := decode(bytes.NewReader(t.Data))
		if err != nil {
			return bad("%v", err)
		}
		dst := &image.RGBA{Pix: fb, Stride: stride, Rect: image.Rect(0, 0, w, h)}
		draw.Draw(dst, image.Rect(t.X, t.Y, t.X+t.W, t.Y+t.H), img, img.Bounds().Min, draw.Src)
		if t.Encoding == wire.EncJPEG {
			for j := range t.H { // JPEG has no alpha
				row := fb[(t.Y+j)*stride+t.X*4:][:rowLen]
				for i := 3; i < rowLen; i += 4 {
					row[i] = 0xff
				}
			}
		}
	default:
		return bad("unknown encoding %d", t.Encoding)
	}
	return nil
}

func (d *Decoder) rows(t Tile, src, fb []byte, stride int) {
	rowLen := t.W * 4
	for j := range t.H {
		copy(fb[(t.Y+j)*stride+t.X*4:][:rowLen], src[j*rowLen:][:rowLen])
	}
}

// inflate decompresses exactly n bytes, rejecting short or long streams.
func (d *Decoder) inflate(data []byte, n int) ([]byte, error) {
	var err error
	br := bytes.NewReader(data)
	if d.zr == nil {
		d.zr, err = zlib.NewReader(br)
	} else {
		err = d.zr.(zlib.Resetter).Reset(br, nil)
	}
	if err != nil {
		d.zr = nil
		return nil, bad("zlib: %v", err)
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	buf := d.buf[:n]
	if _, err := io.ReadFull(d.zr, buf); err != nil {
		return nil, bad("zlib: %v", err)
	}
	var one [1]byte
	if m, _ := d.zr.Read(one[:]); m != 0 {
		return nil, bad("zlib: more than %d bytes", n)
	}
	return buf, nil
}
