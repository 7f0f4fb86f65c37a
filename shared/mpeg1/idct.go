package mpeg1

import "math"

// zigzag maps scan position to the natural (row-major) coefficient index
// (the standard's scan[][] of section 2.4.4.1).
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// defaultIntraMatrix is the default intra quantiser matrix in natural order
// (section 2.4.3.2); the default non-intra matrix is all 16.
var defaultIntraMatrix = [64]uint8{
	8, 16, 19, 22, 26, 27, 29, 34,
	16, 16, 22, 24, 27, 29, 34, 37,
	19, 22, 26, 27, 29, 34, 34, 38,
	22, 22, 26, 27, 29, 34, 37, 40,
	22, 26, 27, 29, 32, 35, 40, 48,
	26, 27, 29, 32, 35, 40, 48, 58,
	26, 27, 29, 34, 38, 46, 56, 69,
	27, 29, 35, 38, 46, 56, 69, 83,
}

// idctCos[x*8+u] = C(u)/2 · cos((2x+1)uπ/16), C(0) = 1/√2, C(u) = 1
// otherwise: the 1-D inverse DCT's basis, so that applying it to rows and
// then columns is the standard's 2-D inverse DCT (Annex A).
var idctCos = func() (t [64]float64) {
	for x := 0; x < 8; x++ {
		for u := 0; u < 8; u++ {
			c := 1.0
			if u == 0 {
				c = 1 / math.Sqrt2
			}
			t[x*8+u] = c / 2 * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16)
		}
	}
	return t
}()

// idct computes the separable inverse DCT of blk (coefficients in natural
// order, row v holding vertical frequency v) in double precision, rounds to
// the nearest integer and stores the result back into blk. It is exact to
// within double-precision rounding, well inside the IEEE 1180 accuracy the
// standard asks for (Annex A).
func idct(blk *[64]int32) {
	var tmp [64]float64
	var rows uint8 // bit v set: row v of tmp is non-zero
	for v := 0; v < 8; v++ {
		r := blk[v*8 : v*8+8 : v*8+8]
		if r[0]|r[1]|r[2]|r[3]|r[4]|r[5]|r[6]|r[7] == 0 {
			continue
		}
		rows |= 1 << v
		f0, f1, f2, f3 := float64(r[0]), float64(r[1]), float64(r[2]), float64(r[3])
		f4, f5, f6, f7 := float64(r[4]), float64(r[5]), float64(r[6]), float64(r[7])
		for x := 0; x < 8; x++ {
			c := idctCos[x*8 : x*8+8 : x*8+8]
			tmp[v*8+x] = c[0]*f0 + c[1]*f1 + c[2]*f2 + c[3]*f3 + c[4]*f4 + c[5]*f5 + c[6]*f6 + c[7]*f7
		}
	}
	for x := 0; x < 8; x++ {
		var col [8]float64
		for v := 0; v < 8; v++ {
			if rows&(1<<v) != 0 {
				col[v] = tmp[v*8+x]
			}
		}
		for y := 0; y < 8; y++ {
			c := idctCos[y*8 : y*8+8 : y*8+8]
			s := c[0]*col[0] + c[1]*col[1] + c[2]*col[2] + c[3]*col[3] + c[4]*col[4] + c[5]*col[5] + c[6]*col[6] + c[7]*col[7]
			blk[y*8+x] = int32(math.Floor(s + 0.5))
		}
	}
}

// referenceIDCT is the 2-D inverse DCT straight from its definition, for
// tests.
func referenceIDCT(in *[64]int32) (out [64]float64) {
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			var s float64
			for v := 0; v < 8; v++ {
				for u := 0; u < 8; u++ {
					cu, cv := 1.0, 1.0
					if u == 0 {
						cu = 1 / math.Sqrt2
					}
					if v == 0 {
						cv = 1 / math.Sqrt2
					}
					s += cu * cv * float64(in[v*8+u]) *
						math.Cos(float64(2*x+1)*float64(u)*math.Pi/16) *
						math.Cos(float64(2*y+1)*float64(v)*math.Pi/16)
				}
			}
			out[y*8+x] = s / 4
		}
	}
	return out
}
