package player

import (
	"bytes"
	"image"
	"io"
	"os"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
	"replaydesk/shared/mpeg1"
)

// fakeHost runs the player on a virtual clock like the real host's.
type fakeHost struct {
	start    time.Time
	tick     int64
	presents int
	lastPres int64 // tick of the last present
	console  bytes.Buffer
	img      *image.RGBA
}

func (h *fakeHost) Now() time.Time {
	return h.start.Add(time.Duration(h.tick * int64(time.Second) / guest.TickRate))
}
func (h *fakeHost) Console() io.Writer                    { return &h.console }
func (h *fakeHost) PollInput(dst []abi.Event) []abi.Event { return dst }
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	h.presents++
	h.lastPres = h.tick
	h.img = img
	for _, r := range damage {
		if r.Empty() || !r.In(img.Rect) {
			panic("bad damage rectangle")
		}
	}
}

// run steps the player for ticks ticks, honouring its sleep values, and
// returns how many steps ran.
func run(p *Player, h *fakeHost, ticks int64) int {
	steps := 0
	for end := h.tick + ticks; h.tick < end; {
		s := p.Step()
		steps++
		if s < 0 {
			return steps
		}
		h.tick += 1 + int64(s)
	}
	return steps
}

type memDisk struct{ data []byte }

func (d memDisk) DiskInfo() (uint64, abi.DiskMode, error) {
	return uint64(len(d.data) / abi.BlockSize), abi.DiskSnapshotted, nil
}
func (d memDisk) ReadBlock(n uint64, buf []byte) error {
	copy(buf, d.data[n*abi.BlockSize:])
	return nil
}

// clip returns a header and the start of a test video, cut after the
// frames of about two seconds, as a disk image.
func clip(t *testing.T) ([]byte, int) {
	data, err := os.ReadFile("../media/photos-240p.mpg")
	if err != nil {
		t.Fatal(err)
	}
	data = data[:300<<10]
	_, n, err := mpeg1.Probe(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s := append(Header{Length: uint64(len(data)), Pictures: uint32(n), Name: "clip.mpg"}.Encode(), data...)
	d := make([]byte, (len(s)+abi.BlockSize-1)/abi.BlockSize*abi.BlockSize)
	copy(d, s)
	return d, n
}

func TestPlayerTimingAndLoop(t *testing.T) {
	disk, pictures := clip(t)
	h := &fakeHost{start: time.Unix(1e9, 0)}
	p := New(h, NewDiskSource(memDisk{disk}))
	// 25 fps on a 60 Hz clock: 2 seconds show 50 frames; the player sleeps
	// between them (fewer steps than ticks).
	steps := run(p, h, 120)
	if p.Shown() != 50 && p.Shown() != 51 || pictures < 60 {
		t.Fatalf("after 2 s: %d frames shown, want 50 (clip of %d)", p.Shown(), pictures)
	}
	if steps > 60 || h.presents != p.Shown() {
		t.Fatalf("%d steps, %d presents for %d frames", steps, h.presents, p.Shown())
	}
	// Play on past the end: it loops.
	run(p, h, int64(pictures)*60/25+30)
	if p.Loops() != 1 {
		t.Fatalf("loops = %d after the clip's length; console:\n%s", p.Loops(), h.console.String())
	}
	// The picture is not flat, and the bar says the name.
	if flat(h.img, image.Rect(0, 0, Width, ViewHeight)) {
		t.Fatal("the video viewport is flat")
	}
	if !bytes.Contains(h.console.Bytes(), []byte("clip.mpg")) {
		t.Fatalf("console: %s", h.console.String())
	}
}

func flat(img *image.RGBA, r image.Rectangle) bool {
	c := img.RGBAAt(r.Min.X+r.Dx()/2, r.Min.Y+r.Dy()/2)
	for y := r.Min.Y; y < r.Max.Y; y += 7 {
		for x := r.Min.X; x < r.Max.X; x += 7 {
			if img.RGBAAt(x, y) != c {
				return false
			}
		}
	}
	return true
}

// slowConn hands out at most n bytes per Recv and nothing every other call.
type slowConn struct {
	data []byte
	n    int
	odd  bool
}

func (c *slowConn) Recv(b []byte) (int, error) {
	c.odd = !c.odd
	if c.odd {
		return 0, nil
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(b[:min(len(b), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}
func (c *slowConn) Close() error { return nil }

func TestPlayerStreamSameFrames(t *testing.T) {
	disk, _ := clip(t)
	// From the disk and from a trickling stream the player shows the same
	// frames (the stream only later).
	h1 := &fakeHost{start: time.Unix(1e9, 0)}
	p1 := New(h1, NewDiskSource(memDisk{disk}))
	run(p1, h1, 60)
	want := bytes.Clone(h1.img.Pix[:Width*4*ViewHeight])

	dials := 0
	h2 := &fakeHost{start: time.Unix(1e9, 0)}
	p2 := New(h2, NewStreamSource(func() (Conn, error) {
		dials++
		return &slowConn{data: disk, n: 20000}, nil
	}))
	for p2.Shown() < p1.Shown() && h2.tick < 6000 {
		run(p2, h2, 1)
	}
	if dials != 1 || p2.Shown() != p1.Shown() {
		t.Fatalf("%d dials, %d frames shown, want %d", dials, p2.Shown(), p1.Shown())
	}
	if !bytes.Equal(h2.img.Pix[:Width*4*ViewHeight], want) {
		t.Fatal("the stream's frame differs from the disk's")
	}
}

func TestHeader(t *testing.T) {
	h := Header{Length: 123456789, Pictures: 600, Name: "photos-360p.mpg"}
	b := h.Encode()
	if len(b) != HeaderSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, err := ParseHeader(b)
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b[0] = 'X'
	if _, err := ParseHeader(b); err == nil {
		t.Fatal("bad magic accepted")
	}
	if _, err := ParseHeader(b[:10]); err == nil {
		t.Fatal("short header accepted")
	}
}
