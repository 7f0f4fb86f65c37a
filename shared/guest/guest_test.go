package guest

import (
	"errors"
	"image"
	"slices"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

func TestErrnoNames(t *testing.T) {
	for _, c := range []struct {
		e    Errno
		name string
	}{
		{ErrNodev, "ENODEV"}, {ErrPipe, "EPIPE"}, {ErrRofs, "EROFS"}, {ErrInval, "EINVAL"},
		{ErrAcces, "EACCES"}, {ErrAgain, "EAGAIN"}, {ErrBadf, "EBADF"}, {ErrNoent, "ENOENT"},
	} {
		if c.e.Name() != c.name {
			t.Errorf("Errno(%d).Name() = %q, want %q", int32(c.e), c.e.Name(), c.name)
		}
		if got := c.e.Error(); len(got) <= len(c.name)+2 || got[:len(c.name)] != c.name {
			t.Errorf("Errno(%d).Error() = %q, want %q plus a description", int32(c.e), got, c.name)
		}
	}
	if got := Errno(999).Error(); got != "errno 999" {
		t.Errorf("unknown errno: %q", got)
	}
	if errnoErr(abi.ErrnoSuccess) != nil {
		t.Error("errnoErr(0) != nil")
	}
	if err := errnoErr(abi.ErrnoNodev); !errors.Is(err, ErrNodev) {
		t.Errorf("errnoErr(ENODEV) = %v", err)
	}
}

func TestAppendRects(t *testing.T) {
	frame := image.Rect(0, 0, 100, 50)
	got, ok := appendRects(nil, frame, nil)
	if !ok || len(got) != 0 {
		t.Fatalf("no damage: %v %v, want whole frame (empty, true)", got, ok)
	}
	got, ok = appendRects(nil, frame, []image.Rectangle{image.Rect(10, 20, 30, 25), image.Rect(90, 40, 120, 60), image.Rect(5, 5, 5, 9)})
	if want := []int32{10, 20, 20, 5, 90, 40, 10, 10}; !ok || !slices.Equal(got, want) {
		t.Fatalf("clipped: %v %v, want %v", got, ok, want)
	}
	if _, ok = appendRects(nil, frame, []image.Rectangle{image.Rect(200, 0, 210, 10)}); ok {
		t.Fatal("damage entirely outside the frame: ok = true, want false (nothing to present)")
	}
	// Frame with a non-zero origin (a sub-image): rectangles become relative.
	got, _ = appendRects(nil, image.Rect(50, 60, 150, 110), []image.Rectangle{image.Rect(40, 70, 60, 80)})
	if want := []int32{0, 10, 10, 10}; !slices.Equal(got, want) {
		t.Fatalf("offset frame: %v, want %v", got, want)
	}
	// Too many rectangles collapse into their union.
	var many []image.Rectangle
	for i := range abi.MaxRects + 1 {
		many = append(many, image.Rect(i%100, i%50, i%100+1, i%50+1))
	}
	got, ok = appendRects([]int32{7}, frame, many)
	if want := []int32{7, 0, 0, 100, 50}; !ok || !slices.Equal(got, want) {
		t.Fatalf("too many: %v, want %v", got, want)
	}
}

func TestTicksFor(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int32
	}{
		{-time.Second, 1}, {0, 1}, {1, 1}, {Tick, 1}, {Tick + 1, 1}, {Tick + 2, 2},
		{time.Second, 60}, {time.Second - 1, 60}, {time.Second + 1, 60}, {time.Second + 2, 61},
		{500 * time.Millisecond, 30}, {time.Duration(1<<63 - 1), 1<<31 - 1},
	} {
		if got := TicksFor(c.d); got != c.want {
			t.Errorf("TicksFor(%v) = %d, want %d", c.d, got, c.want)
		}
		if got := SleepFor(c.d); got != c.want-1 {
			t.Errorf("SleepFor(%v) = %d, want %d", c.d, got, c.want-1)
		}
	}
}

// TestTicksForWholeSeconds checks, against a clock that reads
// floor(tick × 10⁹ / 60) ns, that sleeping to the next whole second from
// every tick wakes exactly on the tick where the second begins.
func TestTicksForWholeSeconds(t *testing.T) {
	clock := func(tick int64) time.Duration { return time.Duration(tick * int64(time.Second) / TickRate) }
	for tick := int64(0); tick < 10*TickRate; tick++ {
		now := clock(tick)
		next := now.Truncate(time.Second) + time.Second
		wake := tick + 1 + int64(SleepFor(next-now))
		if got := clock(wake).Truncate(time.Second); got != next || clock(wake-1) >= next {
			t.Fatalf("from tick %d (%v) woke at tick %d (%v), want the first tick at or after %v", tick, now, wake, clock(wake), next)
		}
	}
}
