package mpeg1

// decodeSlice decodes one slice (section 2.4.2.6): row is its
// slice_vertical_position - 1 and data the bits after its start code. A
// slice whose bits make no sense is abandoned where the error is found.
func (d *Decoder) decodeSlice(row int, data []byte) {
	if row >= d.mbh {
		d.errorCount++
		return
	}
	b := &d.b
	b.reset(data)
	d.qscale = int32(b.read(5))
	for b.read1() { // extra_information_slice
		b.skip(8)
		if b.overrun() {
			d.errorCount++
			return
		}
	}
	d.resetDC()
	d.mv = [2][2]int{}
	d.mbDir = mbForward // a B picture's first macroblock cannot be skipped; this is only a safe default
	mbCount := d.mbw * d.mbh
	addr := row*d.mbw - 1
	first := true
	for !b.atStartCode() {
		incr := 0
		for {
			v, ok := mbAddrIncr.decode(b)
			if !ok || b.overrun() {

				d.errorCount++
				return
			}
			if v == mbaStuffing {
				continue
			}
			if v == mbaEscape {
				incr += 33
				continue
			}
			incr += int(v)
			break
		}
		if addr+incr >= mbCount {
			d.errorCount++
			return
		}
		if !first {
			for a := addr + 1; a < addr+incr; a++ {
				d.skipped(a)
			}
		}
		addr += incr
		first = false
		if !d.macroblock(addr) || b.overrun() {
			d.errorCount++
			return
		}
	}
}

func (d *Decoder) resetDC() { d.dcPred = [3]int32{128, 128, 128} }

// skipped reconstructs a skipped macroblock (section 2.4.4.4 and 2.4.4.5).
func (d *Decoder) skipped(addr int) {
	d.resetDC()
	col, row := addr%d.mbw, addr/d.mbw
	switch d.ptype {
	case TypeP:
		d.mv[0] = [2]int{}
		d.predict(col, row, d.refs[1], 0, 0, false)
	case TypeB:
		d.predictB(col, row, d.mbDir)
	}
	// I and D pictures have no skipped macroblocks; a broken stream's
	// leave the buffer's old contents.
}

// macroblock decodes the macroblock at addr (section 2.4.2.7); it reports
// false for bits that are no valid macroblock.
func (d *Decoder) macroblock(addr int) bool {
	b := &d.b
	var typ int32
	var ok bool
	switch d.ptype {
	case TypeI:
		typ, ok = mbTypeI.decode(b)
	case TypeP:
		typ, ok = mbTypeP.decode(b)
	case TypeB:
		typ, ok = mbTypeB.decode(b)
	default:
		typ, ok = mbTypeD.decode(b)
	}
	if !ok {
		return false
	}
	if typ&mbQuant != 0 {
		d.qscale = int32(b.read(5))
	}
	intra := typ&mbIntra != 0
	if intra {
		d.mv = [2][2]int{}
	} else {
		if typ&mbForward != 0 {
			if !d.motionVector(0) {
				return false
			}
		} else if d.ptype == TypeP {
			d.mv[0] = [2]int{} // "No MC": a zero vector, and the predictor resets
		}
		if typ&mbBackward != 0 {
			if !d.motionVector(1) {
				return false
			}
		}
	}
	cbp := int32(0)
	if typ&mbPattern != 0 {
		if cbp, ok = codedBlockPattern.decode(b); !ok {
			return false
		}
	} else if intra {
		cbp = 63
	}

	col, row := addr%d.mbw, addr/d.mbw
	if intra {
		d.mbDir = 0
	} else {
		d.resetDC()
		if d.ptype == TypeP {
			d.predict(col, row, d.refs[1], d.mv[0][0], d.mv[0][1], d.fullPel[0])
		} else {
			d.mbDir = int(typ & (mbForward | mbBackward))
			d.predictB(col, row, d.mbDir)
		}
	}
	for i := 0; i < 6; i++ {
		if cbp&(1<<(5-i)) == 0 {
			continue
		}
		if !d.block(i, intra, col, row) {
			return false
		}
	}
	if d.ptype == TypeD && !b.read1() { // end_of_macroblock
		return false
	}
	return true
}

// motionVector decodes one motion vector (s = 0 forward, 1 backward) into
// the predictors d.mv[s] (section 2.4.4.2).
func (d *Decoder) motionVector(s int) bool {
	b := &d.b
	rsize := d.rsize[s]
	fscale := 1 << rsize
	for c := 0; c < 2; c++ {
		code, ok := motionCode.decode(b)
		if !ok {
			return false
		}
		delta := int(code)
		if code != 0 && fscale != 1 {
			r := int(b.read(rsize))
			a := int(code)
			if a < 0 {
				a = -a
			}
			delta = (a-1)<<rsize + r + 1
			if code < 0 {
				delta = -delta
			}
		}
		v := d.mv[s][c] + delta
		if v > fscale<<4-1 {
			v -= fscale << 5
		} else if v < -(fscale << 4) {
			v += fscale << 5
		}
		d.mv[s][c] = v
	}
	return true
}

// predictB forms a B picture macroblock's prediction from the directions
// in dir (mbForward, mbBackward or both) and the current vectors.
func (d *Decoder) predictB(col, row, dir int) {
	switch dir {
	case mbBackward:
		d.predict(col, row, d.refs[1], d.mv[1][0], d.mv[1][1], d.fullPel[1])
	case mbForward | mbBackward:
		d.predict(col, row, d.refs[0], d.mv[0][0], d.mv[0][1], d.fullPel[0])
		d.predictAvg(col, row, d.refs[1], d.mv[1][0], d.mv[1][1], d.fullPel[1])
	default:
		d.predict(col, row, d.refs[0], d.mv[0][0], d.mv[0][1], d.fullPel[0])
	}
}

func (d *Decoder) predict(col, row int, ref *picture, h, v int, fullPel bool) {
	d.mc(col, row, ref, h, v, fullPel, false)
}

func (d *Decoder) predictAvg(col, row int, ref *picture, h, v int, fullPel bool) {
	d.mc(col, row, ref, h, v, fullPel, true)
}

// mc writes the motion-compensated prediction of the macroblock at
// (col,row) from ref into the current picture, or averages it with what is
// there (section 2.4.4.2/3). Vectors are in half pels, or in whole pels
// when fullPel.
func (d *Decoder) mc(col, row int, ref *picture, h, v int, fullPel, avg bool) {
	if fullPel {
		h, v = h*2, v*2
	}
	w := d.mbw * 16
	predBlock(d.cur.y, ref.y, w, d.mbh*16, col*16, row*16, 16, h, v, avg)
	// Chroma vectors are half the luma ones, truncated towards zero.
	predBlock(d.cur.cb, ref.cb, w/2, d.mbh*8, col*8, row*8, 8, h/2, v/2, avg)
	predBlock(d.cur.cr, ref.cr, w/2, d.mbh*8, col*8, row*8, 8, h/2, v/2, avg)
}

// predBlock predicts the size×size block at (x,y) of dst (a plane of width
// w = stride and height ht) from src displaced by (h,v) half pels. A vector
// pointing outside the picture, which the standard forbids, is clamped to
// it.
func predBlock(dst, src []byte, w, ht, x, y, size, h, v int, avg bool) {
	sx, sy := x+h>>1, y+v>>1
	hx, hy := h&1, v&1
	if w < size+hx {
		hx = 0
	}
	if ht < size+hy {
		hy = 0
	}
	sx = min(max(sx, 0), w-size-hx)
	sy = min(max(sy, 0), ht-size-hy)
	for j := 0; j < size; j++ {
		o := (y+j)*w + x
		dr := dst[o : o+size : o+size]
		so := (sy+j)*w + sx
		s := src[so : so+size+hx : so+size+hx]
		switch {
		case hx == 0 && hy == 0:
			if !avg {
				copy(dr, s)
				continue
			}
			s = s[:len(dr)]
			for i, v := range s {
				dr[i] = uint8((uint(dr[i]) + uint(v) + 1) >> 1)
			}
		case hy == 0:
			s1 := s[1 : len(dr)+1]
			s = s[:len(dr)]
			if avg {
				for i, v := range s {
					p := (uint(v) + uint(s1[i]) + 1) >> 1
					dr[i] = uint8((uint(dr[i]) + p + 1) >> 1)
				}
			} else {
				for i, v := range s {
					dr[i] = uint8((uint(v) + uint(s1[i]) + 1) >> 1)
				}
			}
		case hx == 0:
			s2 := src[so+w : so+w+size : so+w+size]
			s = s[:len(dr)]
			s2 = s2[:len(dr)]
			if avg {
				for i, v := range s {
					p := (uint(v) + uint(s2[i]) + 1) >> 1
					dr[i] = uint8((uint(dr[i]) + p + 1) >> 1)
				}
			} else {
				for i, v := range s {
					dr[i] = uint8((uint(v) + uint(s2[i]) + 1) >> 1)
				}
			}
		default:
			s2 := src[so+w : so+w+size+1 : so+w+size+1]
			s1 := s[1 : len(dr)+1]
			s21 := s2[1 : len(dr)+1]
			s = s[:len(dr)]
			s2 = s2[:len(dr)]
			if avg {
				for i, v := range s {
					p := (uint(v) + uint(s1[i]) + uint(s2[i]) + uint(s21[i]) + 2) >> 2
					dr[i] = uint8((uint(dr[i]) + p + 1) >> 1)
				}
			} else {
				for i, v := range s {
					dr[i] = uint8((uint(v) + uint(s1[i]) + uint(s2[i]) + uint(s21[i]) + 2) >> 2)
				}
			}
		}
	}
}

// block decodes block i (0-3 luma, 4 Cb, 5 Cr) of the macroblock at
// (col,row) and adds it to (non-intra) or stores it in (intra) the picture
// (sections 2.4.2.8 and 2.4.4).
func (d *Decoder) block(i int, intra bool, col, row int) bool {
	b := &d.b
	blk := &d.blk
	*blk = [64]int32{}
	qs := d.qscale
	n := 0 // scan position of the last coefficient
	var quant *[64]uint8
	if intra {
		quant = &d.intraQ
		var size int32
		var ok bool
		p := 0
		if i < 4 {
			size, ok = dcSizeLuma.decode(b)
		} else {
			p = i - 3
			size, ok = dcSizeChroma.decode(b)
		}
		if !ok {
			return false
		}
		diff := int32(0)
		if size > 0 {
			diff = int32(b.read(int(size)))
			if diff&(1<<(size-1)) == 0 {
				diff += 1 - 1<<size
			}
		}
		d.dcPred[p] += diff
		blk[0] = d.dcPred[p] * 8
		if d.ptype == TypeD {
			goto reconstruct
		}
	} else {
		quant = &d.interQ
		n = -1
		// The first coefficient: "1s" is run 0, level ±1.
		if b.peek(1) == 1 {
			b.skip(1)
			level := int32(1)
			if b.read1() {
				level = -1
			}
			n = 0
			blk[0] = dequantNonIntra(level, qs, int32(quant[0]))
		}
	}
	for {
		e, ok := dctCoeff.decode(b)
		if !ok {
			return false
		}
		var run, level int32
		switch e {
		case dctEOB:
			if n < 0 {
				return false // no EOB before the first coefficient
			}
			goto reconstruct
		case dctEscape:
			run = int32(b.read(6))
			level = int32(b.read(8))
			switch {
			case level == 0:
				level = int32(b.read(8))
			case level == 128:
				level = int32(b.read(8)) - 256
			case level > 128:
				level -= 256
			}
		default:
			run, level = e>>8, e&0xFF
			if b.read1() {
				level = -level
			}
		}
		n += int(run) + 1
		if n > 63 || b.overrun() {
			return false
		}
		pos := zigzag[n]
		if intra {
			blk[pos] = dequantIntra(level, qs, int32(quant[pos]))
		} else {
			blk[pos] = dequantNonIntra(level, qs, int32(quant[pos]))
		}
	}

reconstruct:
	var dst []byte
	var stride, x, y int
	if i < 4 {
		dst, stride = d.cur.y, d.mbw*16
		x, y = col*16+(i&1)*8, row*16+(i>>1)*8
	} else {
		dst, stride = d.cur.cb, d.mbw*8
		if i == 5 {
			dst = d.cur.cr
		}
		x, y = col*8, row*8
	}
	o := y*stride + x
	if n <= 0 {
		// Only the DC coefficient: every sample is round(F/8).
		v := (blk[0] + 4) >> 3
		if intra {
			c := uint8(clamp255(v))
			for j := 0; j < 8; j++ {
				r := dst[o+j*stride : o+j*stride+8 : o+j*stride+8]
				for k := range r {
					r[k] = c
				}
			}
		} else if v != 0 {
			for j := 0; j < 8; j++ {
				r := dst[o+j*stride : o+j*stride+8 : o+j*stride+8]
				for k := range r {
					r[k] = uint8(clamp255(int32(r[k]) + v))
				}
			}
		}
		return true
	}
	idct(blk)
	for j := 0; j < 8; j++ {
		r := dst[o+j*stride : o+j*stride+8 : o+j*stride+8]
		c := blk[j*8 : j*8+8 : j*8+8]
		if intra {
			for k := range r {
				r[k] = uint8(clamp255(c[k]))
			}
		} else {
			for k := range r {
				r[k] = uint8(clamp255(int32(r[k]) + c[k]))
			}
		}
	}
	return true
}

func clamp255(v int32) int32 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return v
}

// dequantIntra reconstructs an intra AC coefficient (section 2.4.4.1):
// scale, make odd towards zero (mismatch control), saturate.
func dequantIntra(level, qs, w int32) int32 {
	v := (2 * level * qs * w) / 16
	return oddSaturate(v)
}

// dequantNonIntra reconstructs a non-intra coefficient (section 2.4.4.2).
func dequantNonIntra(level, qs, w int32) int32 {
	sign := int32(1)
	if level < 0 {
		sign = -1
	}
	v := ((2*level + sign) * qs * w) / 16
	return oddSaturate(v)
}

func oddSaturate(v int32) int32 {
	if v&1 == 0 {
		if v > 0 {
			v--
		} else if v < 0 {
			v++
		}
	}
	return min(max(v, -2048), 2047)
}
