package guest

import (
	"image"

	"replaydesk/shared/abi"
)

// appendRects converts damage rectangles, given in the coordinates of a frame
// whose bounds are frame, into the {x, y, w, h} int32 quadruples present
// takes, relative to frame.Min, appending them to dst. Rectangles are clipped
// to the frame and empty ones dropped. More than abi.MaxRects rectangles are
// replaced by their union.
//
// ok is false when damage was non-empty but nothing of it lies inside the
// frame: nothing visible changed and the frame need not be presented. An
// empty damage list means the whole frame and yields (dst, true) with nothing
// appended.
func appendRects(dst []int32, frame image.Rectangle, damage []image.Rectangle) (rects []int32, ok bool) {
	if len(damage) == 0 {
		return dst, true
	}
	start := len(dst)
	var union image.Rectangle
	n := 0
	for _, r := range damage {
		r = r.Intersect(frame)
		if r.Empty() {
			continue
		}
		union = union.Union(r)
		r = r.Sub(frame.Min)
		dst = append(dst, int32(r.Min.X), int32(r.Min.Y), int32(r.Dx()), int32(r.Dy()))
		n++
	}
	if n == 0 {
		return dst, false
	}
	if n > abi.MaxRects {
		u := union.Sub(frame.Min)
		dst = append(dst[:start], int32(u.Min.X), int32(u.Min.Y), int32(u.Dx()), int32(u.Dy()))
	}
	return dst, true
}
