package kb

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"image"
	"io"
	"testing"
	"time"

	"replaydesk/server/images/kbuild/srctree"
	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// fakeHost is a deterministic machine with an in-memory block device; it
// counts the source bytes read per step and keeps the picture a viewer
// updating only the damage would see.
type fakeHost struct {
	t      *testing.T
	tick   int64
	input  []abi.Event
	disk   []byte
	reads  int
	frame  *image.RGBA
	frames int
}

func newFakeHost(t *testing.T, disk []byte) *fakeHost {
	return &fakeHost{t: t, disk: disk, frame: image.NewRGBA(image.Rect(0, 0, Width, Height))}
}

func (h *fakeHost) Now() time.Time {
	return time.Unix(1900000000, 0).Add(time.Duration(h.tick * int64(time.Second) / guest.TickRate))
}
func (h *fakeHost) PollInput(dst []abi.Event) []abi.Event {
	dst = append(dst, h.input...)
	h.input = h.input[:0]
	return dst
}
func (h *fakeHost) DiskInfo() (uint64, abi.DiskMode, error) {
	return uint64(len(h.disk) / abi.BlockSize), abi.DiskSnapshotted, nil
}
func (h *fakeHost) ReadBlock(n uint64, buf []byte) error {
	if (n+1)*abi.BlockSize > uint64(len(h.disk)) {
		return guest.ErrInval
	}
	h.reads++
	copy(buf, h.disk[n*abi.BlockSize:])
	return nil
}
func (h *fakeHost) WriteBlock(n uint64, buf []byte) error {
	copy(h.disk[n*abi.BlockSize:(n+1)*abi.BlockSize], buf)
	return nil
}
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	h.frames++
	if len(damage) == 0 {
		damage = []image.Rectangle{img.Bounds()}
	}
	for _, r := range damage {
		if r.Empty() || !r.In(img.Bounds()) {
			h.t.Fatalf("bad damage %v", r)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			copy(h.frame.Pix[h.frame.PixOffset(r.Min.X, y):h.frame.PixOffset(r.Max.X, y)], img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)])
		}
	}
}

func testTree(t *testing.T, size int) ([]byte, []srctree.Entry, [][]byte) {
	paths, contents := srctree.Generate(size)
	disk, entries, err := srctree.Build(paths, contents)
	if err != nil {
		t.Fatal(err)
	}
	return disk, entries, contents
}

// build runs a whole build with the given budget and returns the disk, the
// number of steps, and the host.
func build(t *testing.T, disk []byte, budget int) (*fakeHost, *App, int) {
	h := newFakeHost(t, disk)
	a := New(h)
	a.Budget = budget
	for steps := 1; steps < 100000; steps++ {
		h.reads = 0
		sleep := a.Step()
		if steps > 1 && h.reads*abi.BlockSize > budget+abi.BlockSize {
			t.Fatalf("step %d read %d blocks with a budget of %d bytes", steps, h.reads, budget)
		}
		if !bytes.Equal(h.frame.Pix, a.Image().Pix) {
			t.Fatalf("step %d: a changed pixel lies outside the damage", steps)
		}
		if msg := a.Failed(); msg != "" {
			t.Fatal(msg)
		}
		if done, _ := a.Done(); done {
			if sleep != abi.SleepUntilEvent {
				t.Fatalf("finished build sleeps %d", sleep)
			}
			return h, a, steps
		}
		if sleep != abi.SleepNone {
			t.Fatalf("building app sleeps %d", sleep)
		}
		h.tick++
	}
	t.Fatal("never finished")
	return nil, nil, 0
}

func TestBuildOutputs(t *testing.T) {
	disk, entries, contents := testTree(t, 300_000)
	h, _, steps := build(t, bytes.Clone(disk), 20_000)
	if steps < 300_000/20_000 {
		t.Fatalf("built in %d steps: the budget was not respected", steps)
	}
	for i, e := range entries {
		hdr := h.disk[int(e.OutBlock)*abi.BlockSize:]
		if string(hdr[:8]) != ObjMagic || binary.LittleEndian.Uint32(hdr[12:]) != e.Size {
			t.Fatalf("%s: bad object header", e.Path)
		}
		n := binary.LittleEndian.Uint32(hdr[8:])
		obj := h.disk[int(e.OutBlock+1)*abi.BlockSize:][:n]
		if sum := sha256.Sum256(obj); !bytes.Equal(sum[:], hdr[16:48]) {
			t.Fatalf("%s: object digest differs", e.Path)
		}
		src, err := io.ReadAll(flate.NewReader(bytes.NewReader(obj)))
		if err != nil || !bytes.Equal(src, contents[i]) {
			t.Fatalf("%s: object does not decompress to the source: %v", e.Path, err)
		}
		if int(n) >= len(src)/2 {
			t.Fatalf("%s: %d -> %d bytes: hardly compressed", e.Path, len(src), n)
		}
	}
}

// The result does not depend on where the steps cut the work: a build that
// stops mid-file every few blocks writes the same disk as one with a large
// budget, and so does a second build of the same tree.
func TestBudgetResumes(t *testing.T) {
	disk, _, _ := testTree(t, 200_000)
	hSmall, _, stepsSmall := build(t, bytes.Clone(disk), 5000)
	hBig, _, stepsBig := build(t, bytes.Clone(disk), 1<<20)
	if stepsSmall <= stepsBig {
		t.Fatalf("small budget took %d steps, big %d", stepsSmall, stepsBig)
	}
	if !bytes.Equal(hSmall.disk, hBig.disk) {
		t.Fatal("the outputs depend on the per-step budget")
	}
	if bytes.Equal(hSmall.disk, disk) {
		t.Fatal("the build wrote nothing")
	}
}

func TestRebuildOnKey(t *testing.T) {
	disk, entries, _ := testTree(t, 100_000)
	h, a, _ := build(t, disk, DefaultBudget)
	before := bytes.Clone(h.disk)
	h.input = append(h.input, abi.Event{Type: abi.EvKey, Code: abi.CodeSpace, Down: true})
	h.tick++
	if s := a.Step(); s != abi.SleepNone {
		t.Fatalf("after a key: sleep %d", s)
	}
	if done, _ := a.Done(); done {
		t.Fatal("a key did not restart the build")
	}
	for {
		h.tick++
		a.Step()
		if done, n := a.Done(); done {
			if n != len(entries) || a.runs != 2 {
				t.Fatalf("second build: %d files, run %d", n, a.runs)
			}
			break
		}
	}
	if !bytes.Equal(before, h.disk) {
		t.Fatal("the second build wrote different outputs")
	}
}

func TestBadDisk(t *testing.T) {
	h := newFakeHost(t, make([]byte, 8*abi.BlockSize))
	a := New(h)
	if s := a.Step(); s != abi.SleepUntilEvent || a.Failed() == "" {
		t.Fatalf("a disk without a tree: sleep %d, failure %q", s, a.Failed())
	}
}
