//go:build wasip1

package guest

import (
	"image"
	"runtime"
	"unsafe"

	"replaydesk/shared/abi"
)

// rectBuf is reused between calls to hold the {x, y, w, h} array.
var rectBuf []int32

// Present shows a w×h RGBA8888 framebuffer whose rows are stride bytes apart.
// damage lists the rectangles, in framebuffer coordinates, that changed since
// the previous Present; an empty list means the whole frame changed. Damage
// is clipped to the frame; if none of it lies inside, nothing is presented.
//
// Present panics if the arguments describe memory fb does not hold or exceed
// the ABI limits: that is a bug in the caller, not a runtime condition.
func Present(fb []byte, w, h, stride int, damage []image.Rectangle) {
	present(fb, w, h, stride, image.Point{}, damage)
}

// PresentRGBA presents img. Damage rectangles are in img's coordinates (those
// of img.Bounds()); none means the whole image changed.
func PresentRGBA(img *image.RGBA, damage ...image.Rectangle) {
	b := img.Bounds()
	present(img.Pix, b.Dx(), b.Dy(), img.Stride, b.Min, damage)
}

// present shows fb; damage is in a coordinate space where the frame's top
// left corner is origin.
func present(fb []byte, w, h, stride int, origin image.Point, damage []image.Rectangle) {
	if w <= 0 || h <= 0 || w > abi.MaxWidth || h > abi.MaxHeight || stride < 4*w || stride > 1<<30 {
		panic("guest: present: bad frame geometry")
	}
	if len(fb) < stride*(h-1)+4*w {
		panic("guest: present: framebuffer smaller than w, h and stride say")
	}
	frame := image.Rectangle{Min: origin, Max: origin.Add(image.Pt(w, h))}
	rects, ok := appendRects(rectBuf[:0], frame, damage)
	rectBuf = rects
	if !ok {
		return // the damage lies outside the frame: nothing visible changed
	}
	var rp unsafe.Pointer
	if len(rects) > 0 {
		rp = unsafe.Pointer(&rects[0])
	}
	hostPresent(unsafe.Pointer(&fb[0]), int32(w), int32(h), int32(stride), abi.FormatRGBA8888, rp, int32(len(rects)/4))
	runtime.KeepAlive(fb)
	runtime.KeepAlive(rects)
}
