package dl

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// fakeHost is a deterministic machine: a virtual clock advanced per step, an
// input queue, an in-memory disk and a "files" endpoint (speaking the
// protocol of endpoints.FileServer) behind a link that delivers irregular
// chunks, and sometimes nothing.
type fakeHost struct {
	t      *testing.T
	tick   int64
	input  []abi.Event
	disk   []byte
	rng    *rand.Rand
	files  map[string]file
	frame  *image.RGBA // what a viewer updating only damage would see
	stepRx int         // bytes received in the current step
}

func newFakeHost(t *testing.T) *fakeHost {
	return &fakeHost{
		t:     t,
		disk:  make([]byte, DiskBlocks*abi.BlockSize),
		rng:   rand.New(rand.NewPCG(3, 4)),
		files: map[string]file{FileName: {FileSize, chacha}},
		frame: image.NewRGBA(image.Rect(0, 0, Width, Height)),
	}
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
	return uint64(len(h.disk) / abi.BlockSize), abi.DiskReplayed, nil
}
func (h *fakeHost) WriteBlock(n uint64, buf []byte) error {
	copy(h.disk[n*abi.BlockSize:(n+1)*abi.BlockSize], buf)
	return nil
}
func (h *fakeHost) Dial(name string) (Conn, error) {
	if name != Endpoint {
		h.t.Fatalf("dialed %q", name)
	}
	return &choppyConn{h: h, files: h.files}, nil
}
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	if len(damage) == 0 {
		damage = []image.Rectangle{img.Bounds()}
	}
	for _, r := range damage {
		if !r.In(img.Bounds()) || r.Empty() {
			h.t.Fatalf("bad damage %v", r)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			copy(h.frame.Pix[h.frame.PixOffset(r.Min.X, y):h.frame.PixOffset(r.Max.X, y)], img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)])
		}
	}
}

// choppyConn hands out at most a random number of bytes per call, and
// nothing at all on some calls.
type choppyConn struct {
	h     *fakeHost
	files map[string]file
	out   io.Reader // the answer, once the request has been sent
}

type file struct {
	size int64
	open func() io.Reader
}

func chacha() io.Reader { return io.LimitReader(rand.NewChaCha8(Seed), FileSize) }

func (c *choppyConn) Send(b []byte) (int, error) {
	if c.out != nil || string(b) != "GET "+FileName+"\n" {
		c.h.t.Fatalf("request %q", b)
	}
	f := c.files[FileName]
	c.out = io.MultiReader(strings.NewReader(fmt.Sprintf("SIZE %d\n", f.size)), f.open())
	return len(b), nil
}

func (c *choppyConn) Close() error { c.out = nil; return nil }

func (c *choppyConn) Recv(b []byte) (int, error) {
	if c.out == nil {
		return 0, nil
	}
	if len(b) > abi.MaxNetChunk {
		c.h.t.Fatalf("Recv of %d bytes, more than a net_recv call may ask", len(b))
	}
	if c.h.rng.IntN(8) == 0 {
		return 0, nil
	}
	n, err := c.out.Read(b[:1+c.h.rng.IntN(len(b))])
	c.h.stepRx += n
	return n, err
}

// run steps the app (honouring its sleep values) until cond or limit ticks.
func run(t *testing.T, h *fakeHost, a *App, limit int, cond func() bool) {
	t.Helper()
	for range limit {
		h.stepRx = 0
		sleep := a.Step()
		if h.stepRx > StepBudget {
			t.Fatalf("tick %d: received %d bytes in one step, budget %d", h.tick, h.stepRx, StepBudget)
		}
		if !bytes.Equal(h.frame.Pix, a.Image().Pix) {
			t.Fatalf("tick %d: the damage did not cover every changed pixel", h.tick)
		}
		if cond() {
			return
		}
		if sleep < 0 && len(h.input) == 0 {
			sleep = 0 // data would wake it: the fake link always has more
		}
		h.tick += 1 + int64(max(sleep, 0))
	}
	t.Fatalf("not done after %d steps", limit)
}

func TestExpectedDigest(t *testing.T) {
	sha := sha256.New()
	if _, err := io.Copy(sha, chacha()); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sha.Sum(nil)); got != ExpectedSHA256 {
		t.Fatalf("the served file's digest is %s; ExpectedSHA256 says %s", got, ExpectedSHA256)
	}
}

func TestDownload(t *testing.T) {
	h := newFakeHost(t)
	a := New(h)
	var last int64
	steps := 0
	run(t, h, a, 2000, func() bool {
		steps++
		got, total := a.Received()
		if got < last || (total != 0 && total != FileSize) {
			t.Fatalf("progress %d/%d after %d", got, total, last)
		}
		last = got
		done, _ := a.Done()
		return done
	})
	if _, ok := a.Done(); !ok || a.Sum() != ExpectedSHA256 {
		t.Fatalf("sum %s, verified %v", a.Sum(), ok)
	}
	if steps < FileSize/StepBudget {
		t.Fatalf("done in %d steps: the per-step budget was not respected", steps)
	}
	want := make([]byte, FileSize)
	rand.NewChaCha8(Seed).Read(want)
	if !bytes.Equal(h.disk[DataStart*abi.BlockSize:DataStart*abi.BlockSize+FileSize], want) {
		t.Fatal("the disk does not hold the file")
	}
	rec, err := DecodeRecord(h.disk[:abi.BlockSize])
	if err != nil || rec.Size != FileSize || hex.EncodeToString(rec.SHA256) != ExpectedSHA256 || rec.Runs != 1 {
		t.Fatalf("record %+v, %v", rec, err)
	}

	// Idle until R; R downloads again.
	if s := a.Step(); s != abi.SleepUntilEvent {
		t.Fatalf("finished app sleeps %d", s)
	}
	clear(h.disk)
	h.input = append(h.input, abi.Event{Type: abi.EvText, Text: "r"}, abi.Event{Type: abi.EvKey, Code: abi.CodeKeyR, Down: true})
	h.tick++
	a.Step()
	if got, _ := a.Received(); got == FileSize || (a.state != stHeader && a.state != stBody) {
		t.Fatalf("after R: state %d, %d bytes", a.state, got)
	}
	run(t, h, a, 2000, func() bool { d, _ := a.Done(); return d })
	rec, _ = DecodeRecord(h.disk[:abi.BlockSize])
	if _, ok := a.Done(); !ok || rec.Runs != 2 || !bytes.Equal(h.disk[abi.BlockSize:abi.BlockSize+FileSize], want) {
		t.Fatalf("second run: verified %v, record %+v", ok, rec)
	}
}

// A server that announces more than it sends is reported, not verified.
func TestShortFile(t *testing.T) {
	h := newFakeHost(t)
	h.files[FileName] = file{100_000, func() io.Reader { return bytes.NewReader(make([]byte, 50_000)) }}
	a := New(h)
	run(t, h, a, 500, func() bool { return a.state == stFailed })
	if d, ok := a.Done(); d || ok {
		t.Fatal("a short file counted as done")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Size: 12345, Runs: 7, SHA256: bytes.Repeat([]byte{0xab}, 32)}
	got, err := DecodeRecord(EncodeRecord(r))
	if err != nil || got.Size != r.Size || got.Runs != r.Runs || !bytes.Equal(got.SHA256, r.SHA256) {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeRecord(make([]byte, abi.BlockSize)); err == nil {
		t.Fatal("decoded a zero block")
	}
}
