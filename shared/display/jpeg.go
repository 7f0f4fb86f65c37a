package display

// A baseline (SOF0) JPEG encoder with 4:4:4 sampling: every component is
// sampled 1x1, so an MCU is one 8x8 block of Y, one of Cb and one of Cr.
// Tables are the standard ones of ITU T.81 Annex K; the quality scaling is
// libjpeg's (q < 50: 5000/q, else 200 - 2q). The DCT is the float AAN
// algorithm of libjpeg's jfdctflt.c, its scale factors folded into the
// quantizer divisors.

// zigzag[k] is the natural (row-major) index of the k-th zig-zag coefficient.
var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// Annex K.1 and K.2 quantization tables, natural order.
var baseQuant = [2][64]int{
	{
		16, 11, 10, 16, 24, 40, 51, 61,
		12, 12, 14, 19, 26, 58, 60, 55,
		14, 13, 16, 24, 40, 57, 69, 56,
		14, 17, 22, 29, 51, 87, 80, 62,
		18, 22, 37, 56, 68, 109, 103, 77,
		24, 35, 55, 64, 81, 104, 113, 92,
		49, 64, 78, 87, 103, 121, 120, 101,
		72, 92, 95, 98, 112, 100, 103, 99,
	},
	{
		17, 18, 24, 47, 99, 99, 99, 99,
		18, 21, 26, 66, 99, 99, 99, 99,
		24, 26, 56, 99, 99, 99, 99, 99,
		47, 66, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
	},
}

type huffSpec struct {
	count [16]byte
	value []byte
}

// Annex K.3 tables: luminance DC, luminance AC, chrominance DC, chrominance AC.
var huffSpecs = [4]huffSpec{
	{[16]byte{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
		[]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	{[16]byte{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125},
		[]byte{
			0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
			0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
			0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
			0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
			0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
			0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
			0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
			0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
			0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
			0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		}},
	{[16]byte{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
		[]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	{[16]byte{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119},
		[]byte{
			0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
			0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
			0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
			0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
			0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
			0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
			0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
			0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
			0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
			0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
			0xf9, 0xfa,
		}},
}

// huffCode[t][v] = code<<8 | length, for table t and symbol v.
var huffCode [4][256]uint32

func init() {
	for t, s := range huffSpecs {
		code, k := uint32(0), 0
		for l := 1; l <= 16; l++ {
			for range int(s.count[l-1]) {
				huffCode[t][s.value[k]] = code<<8 | uint32(l)
				code++
				k++
			}
			code <<= 1
		}
	}
}

var aanScale = [8]float64{1.0, 1.387039845, 1.306562965, 1.175875602, 1.0, 0.785694958, 0.541196100, 0.275899379}

// jpegTables are the quantizers of one quality: q for DQT (natural order),
// div the reciprocal divisors applied after the AAN DCT.
type jpegTables struct {
	quality int
	q       [2][64]byte
	div     [2][64]float32
}

func newJPEGTables(quality int) *jpegTables {
	quality = min(max(quality, 1), 100)
	scale := 200 - 2*quality
	if quality < 50 {
		scale = 5000 / quality
	}
	t := &jpegTables{quality: quality}
	for c := range 2 {
		for i, b := range baseQuant[c] {
			v := min(max((b*scale+50)/100, 1), 255)
			t.q[c][i] = byte(v)
			t.div[c][i] = float32(1 / (float64(v) * aanScale[i/8] * aanScale[i%8] * 8))
		}
	}
	return t
}

// fdct is libjpeg's jfdctflt: in-place, output scaled by aanScale[u]*aanScale[v]*8.
func fdct(d *[64]float32) {
	for p := 0; p < 64; p += 8 {
		r := d[p : p+8 : p+8]
		t0, t7 := r[0]+r[7], r[0]-r[7]
		t1, t6 := r[1]+r[6], r[1]-r[6]
		t2, t5 := r[2]+r[5], r[2]-r[5]
		t3, t4 := r[3]+r[4], r[3]-r[4]
		t10, t13 := t0+t3, t0-t3
		t11, t12 := t1+t2, t1-t2
		r[0], r[4] = t10+t11, t10-t11
		z1 := (t12 + t13) * 0.707106781
		r[2], r[6] = t13+z1, t13-z1
		t10, t11, t12 = t4+t5, t5+t6, t6+t7
		z5 := (t10 - t12) * 0.382683433
		z2 := 0.541196100*t10 + z5
		z4 := 1.306562965*t12 + z5
		z3 := t11 * 0.707106781
		z11, z13 := t7+z3, t7-z3
		r[5], r[3] = z13+z2, z13-z2
		r[1], r[7] = z11+z4, z11-z4
	}
	for c := range 8 {
		t0, t7 := d[c]+d[56+c], d[c]-d[56+c]
		t1, t6 := d[8+c]+d[48+c], d[8+c]-d[48+c]
		t2, t5 := d[16+c]+d[40+c], d[16+c]-d[40+c]
		t3, t4 := d[24+c]+d[32+c], d[24+c]-d[32+c]
		t10, t13 := t0+t3, t0-t3
		t11, t12 := t1+t2, t1-t2
		d[c], d[32+c] = t10+t11, t10-t11
		z1 := (t12 + t13) * 0.707106781
		d[16+c], d[48+c] = t13+z1, t13-z1
		t10, t11, t12 = t4+t5, t5+t6, t6+t7
		z5 := (t10 - t12) * 0.382683433
		z2 := 0.541196100*t10 + z5
		z4 := 1.306562965*t12 + z5
		z3 := t11 * 0.707106781
		z11, z13 := t7+z3, t7-z3
		d[40+c], d[24+c] = z13+z2, z13-z2
		d[8+c], d[56+c] = z11+z4, z11-z4
	}
}

// bitWriter appends entropy-coded bits with 0xFF byte stuffing.
type bitWriter struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (w *bitWriter) emit(bits uint32, n uint) {
	w.acc = w.acc<<n | bits&(1<<n-1)
	w.nacc += n
	for w.nacc >= 8 {
		w.nacc -= 8
		b := byte(w.acc >> w.nacc)
		w.out = append(w.out, b)
		if b == 0xff {
			w.out = append(w.out, 0)
		}
	}
}

func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.emit(0x7f, 8-w.nacc) // pad with ones
	}
	w.acc, w.nacc = 0, 0
}

func (w *bitWriter) huff(t int, v int) {
	c := huffCode[t][v]
	w.emit(c>>8, uint(c&0xff))
}

// category returns the JPEG magnitude category of v and its value bits.
func category(v int32) (uint, uint32) {
	a := v
	if a < 0 {
		a = -a
		v--
	}
	n := uint(0)
	for a != 0 {
		n++
		a >>= 1
	}
	return n, uint32(v)
}

func (w *bitWriter) block(d *[64]float32, div *[64]float32, dcTable int, prevDC int32) int32 {
	var q [64]int32
	for k := range 64 {
		z := zigzag[k]
		f := d[z] * div[z]
		var v int32
		if f >= 0 {
			v = int32(f + 0.5)
		} else {
			v = -int32(-f + 0.5)
		}
		q[k] = min(max(v, -1023), 1023)
	}
	n, bits := category(q[0] - prevDC)
	w.huff(dcTable, int(n))
	if n > 0 {
		w.emit(bits, n)
	}
	acTable := dcTable + 1
	run := 0
	for k := 1; k < 64; k++ {
		if q[k] == 0 {
			run++
			continue
		}
		for run > 15 {
			w.huff(acTable, 0xf0)
			run -= 16
		}
		n, bits := category(q[k])
		w.huff(acTable, run<<4|int(n))
		w.emit(bits, n)
		run = 0
	}
	if run > 0 {
		w.huff(acTable, 0x00)
	}
	return q[0]
}

// appendJPEG appends a baseline 4:4:4 JPEG of the w x h RGBA image at pix
// (rows stride bytes apart) to dst. Alpha is dropped.
func appendJPEG(dst []byte, pix []byte, stride, w, h int, t *jpegTables) []byte {
	dst = append(dst, 0xff, 0xd8)
	// DQT: two 8-bit tables, zig-zag order.
	dst = append(dst, 0xff, 0xdb, 0, 132)
	for c := range 2 {
		dst = append(dst, byte(c))
		for k := range 64 {
			dst = append(dst, t.q[c][zigzag[k]])
		}
	}
	// SOF0: 8-bit, h x w, 3 components each 1x1.
	dst = append(dst, 0xff, 0xc0, 0, 17, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 3,
		1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1)
	// DHT.
	n := 2
	for _, s := range huffSpecs {
		n += 17 + len(s.value)
	}
	dst = append(dst, 0xff, 0xc4, byte(n>>8), byte(n))
	for i, s := range huffSpecs {
		dst = append(dst, byte(i%2)<<4|byte(i/2))
		dst = append(dst, s.count[:]...)
		dst = append(dst, s.value...)
	}
	// SOS.
	dst = append(dst, 0xff, 0xda, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0)

	bw := bitWriter{out: dst}
	var yb, cbb, crb [64]float32
	var dcY, dcCb, dcCr int32
	for by := 0; by < h; by += 8 {
		for bx := 0; bx < w; bx += 8 {
			for j := range 8 {
				y := min(by+j, h-1)
				row := pix[y*stride:]
				for i := range 8 {
					x := min(bx+i, w-1)
					p := row[4*x : 4*x+3 : 4*x+3]
					r, g, b := float32(p[0]), float32(p[1]), float32(p[2])
					k := j*8 + i
					yb[k] = 0.299*r + 0.587*g + 0.114*b - 128
					cbb[k] = -0.168735892*r - 0.331264108*g + 0.5*b
					crb[k] = 0.5*r - 0.418687589*g - 0.081312411*b
				}
			}
			fdct(&yb)
			fdct(&cbb)
			fdct(&crb)
			dcY = bw.block(&yb, &t.div[0], 0, dcY)
			dcCb = bw.block(&cbb, &t.div[1], 2, dcCb)
			dcCr = bw.block(&crb, &t.div[1], 2, dcCr)
		}
	}
	bw.flush()
	return append(bw.out, 0xff, 0xd9)
}
