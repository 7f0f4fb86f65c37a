package mpeg1

// BT.601 limited-range YCbCr to RGB in 16.16 fixed point:
//
//	R = 1.164(Y-16) + 1.596(Cr-128)
//	G = 1.164(Y-16) - 0.392(Cb-128) - 0.813(Cr-128)
//	B = 1.164(Y-16) + 2.017(Cb-128)
const (
	cY  = 76284  // 1.164 · 65536
	cRV = 104595 // 1.596
	cGU = 25625  // 0.391
	cGV = 53281  // 0.813
	cBU = 132252 // 2.018
)

func clampByte(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// RGBA converts the frame to RGBA (BT.601, limited range; alpha 255) into
// dst, stride bytes per row, which must hold Height rows of Width pixels.
func (f *Frame) RGBA(dst []byte, stride int) {
	for y := 0; y < f.Height; y++ {
		yr := f.Y[y*f.YStride : y*f.YStride+f.Width]
		cb := f.Cb[(y>>1)*f.CStride:]
		cr := f.Cr[(y>>1)*f.CStride:]
		out := dst[y*stride : y*stride+4*f.Width]
		for x := range yr {
			yy := (int32(yr[x]) - 16) * cY
			u := int32(cb[x>>1]) - 128
			v := int32(cr[x>>1]) - 128
			o := out[4*x : 4*x+4 : 4*x+4]
			o[0] = clampByte((yy + cRV*v + 1<<15) >> 16)
			o[1] = clampByte((yy - cGU*u - cGV*v + 1<<15) >> 16)
			o[2] = clampByte((yy + cBU*u + 1<<15) >> 16)
			o[3] = 255
		}
	}
}

// ScaledRGBA converts the frame to RGBA like RGBA while scaling it to
// w×h pixels by nearest-neighbour sampling, for showing a video in a window
// of another size.
func (f *Frame) ScaledRGBA(dst []byte, stride, w, h int) {
	if w <= 0 || h <= 0 {
		return
	}
	xs := make([]int32, w)
	for x := range xs {
		xs[x] = int32((2*x + 1) * f.Width / (2 * w))
	}
	for y := 0; y < h; y++ {
		sy := (2*y + 1) * f.Height / (2 * h)
		yr := f.Y[sy*f.YStride:]
		cb := f.Cb[(sy>>1)*f.CStride:]
		cr := f.Cr[(sy>>1)*f.CStride:]
		out := dst[y*stride : y*stride+4*w]
		for x, sx := range xs {
			yy := (int32(yr[sx]) - 16) * cY
			u := int32(cb[sx>>1]) - 128
			v := int32(cr[sx>>1]) - 128
			o := out[4*x : 4*x+4 : 4*x+4]
			o[0] = clampByte((yy + cRV*v + 1<<15) >> 16)
			o[1] = clampByte((yy - cGU*u - cGV*v + 1<<15) >> 16)
			o[2] = clampByte((yy + cBU*u + 1<<15) >> 16)
			o[3] = 255
		}
	}
}
