// Package player is the video player behind the video and stream guest
// images: it reads a header and an MPEG-1 file from a non-blocking byte
// source (a disk or a net stream), decodes it with package mpeg1 at the
// file's own frame rate on the guest's virtual clock, and draws each frame
// letterboxed above a bar with the progress, the elapsed and total time and
// the file's name. At the end it starts again.
//
// It is plain Go, tested natively with a fake host; the wasip1 programs in
// server/images/video and server/images/stream connect it to package guest.
// It must not know about the ABI's imports, wazero or how its source gets
// its bytes.
package player

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"io"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
	"replaydesk/shared/mpeg1"
)

// The screen: the video letterboxed in a 640x360 viewport, a 40-pixel bar
// below.
const (
	Width      = 640
	Height     = 400
	ViewHeight = 360
)

// Host is what the player needs from the machine it runs on.
type Host interface {
	Now() time.Time
	// Present shows img; damage is in img's coordinates, none = whole frame.
	Present(img *image.RGBA, damage []image.Rectangle)
	Console() io.Writer
	// PollInput appends pending input events to dst. The player has no
	// controls; it drains the queue so that input does not keep waking it.
	PollInput(dst []abi.Event) []abi.Event
}

// Source supplies the header and the file's bytes without blocking.
type Source interface {
	// Read copies the next bytes into p. It returns 0, nil when none are
	// there yet and io.EOF after the last.
	Read(p []byte) (int, error)
	// Rewind starts again from the first byte (the header).
	Rewind() error
}

// readChunk is how many bytes the player asks its source for at a time: it
// reads only what the decoder needs, so a net stream's log grows at the
// video's bitrate.
const readChunk = 16 << 10

// clockSlack allows for the virtual clock's rounding (see Step).
const clockSlack = 2

// maxCatchUp bounds the frames decoded in one step; a player further behind
// (its source stalled) moves its clock instead of racing.
const maxCatchUp = 4

// Player plays one video over and over.
type Player struct {
	host Host
	src  Source

	img  *image.RGBA
	buf  []byte
	hdr  []byte
	info Header
	have bool // header read
	fed  uint64
	dec  *mpeg1.Decoder

	start   time.Time
	started bool
	shown   int // frames shown in this pass
	eos     bool
	loops   int
	failed  error
	steps   int
	events  []abi.Event
	full    bool // the next present is of the whole screen
	size    image.Point
}

// New returns a player reading from src.
func New(host Host, src Source) *Player {
	p := &Player{
		host: host,
		src:  src,
		img:  image.NewRGBA(image.Rect(0, 0, Width, Height)),
		buf:  make([]byte, readChunk),
		full: true,
	}
	draw.Draw(p.img, p.img.Rect, image.Black, image.Point{}, draw.Src)
	p.restart()
	return p
}

func (p *Player) restart() {
	p.dec = mpeg1.NewPushDecoder()
	p.dec.MaxWidth, p.dec.MaxHeight = 1920, 1088
	p.hdr = p.hdr[:0]
	p.have = false
	p.fed = 0
	p.shown = 0
	p.eos = false
	p.started = false
}

// Loops is the number of times the video has been played to its end.
func (p *Player) Loops() int { return p.loops }

// Shown is the number of frames shown in the current pass.
func (p *Player) Shown() int { return p.shown }

// Image is the screen as last presented.
func (p *Player) Image() *image.RGBA { return p.img }

// Step runs one tick: it shows the frame due at the current virtual time
// (decoding the frames before it) and returns the guest's sleep value.
func (p *Player) Step() int32 {
	p.steps++
	p.events = p.host.PollInput(p.events[:0])
	now := p.host.Now()
	if p.failed != nil {
		return -1
	}
	if !p.started {
		p.start = now
		p.started = true
	}
	seq, ok := p.dec.Sequence()
	num, den := 25, 1
	if ok {
		num, den = seq.FrameRate()
	}
	// The frame due now. The host's clock reads whole nanoseconds rounded
	// down, so a frame due exactly at a tick may read a nanosecond or two
	// early: allow for that.
	due := int((int64(now.Sub(p.start)) + clockSlack) * int64(num) / (int64(den) * int64(time.Second)))
	var last *mpeg1.Frame
	decoded := 0
	for p.shown <= due && !p.eos {
		if decoded == maxCatchUp {
			// Behind (the source stalled): let the clock wait for the video.
			p.start = now.Add(-time.Duration(int64(p.shown) * int64(den) * int64(time.Second) / int64(num)))
			break
		}
		f := p.next()
		if f == nil {
			break
		}
		last = f
		p.shown++
		decoded++
	}
	if last != nil {
		p.render(last)
	}
	if p.failed != nil {
		fmt.Fprintf(p.host.Console(), "video: %v\n", p.failed)
		return -1
	}
	if p.eos {
		// The last frame stays up for its own frame time, then we loop.
		end := p.start.Add(time.Duration(int64(p.shown) * int64(den) * int64(time.Second) / int64(num)))
		if now.Add(clockSlack).Before(end) {
			return guest.SleepFor(end.Sub(now) - clockSlack)
		}
		p.loops++
		fmt.Fprintf(p.host.Console(), "video: %s played to the end (%d frames), loop %d\n", p.info.Name, p.shown, p.loops)
		if err := p.src.Rewind(); err != nil {
			p.failed = err
			fmt.Fprintf(p.host.Console(), "video: rewind: %v\n", err)
			return -1
		}
		p.restart()
		return 0
	}
	if p.shown <= due || !ok {
		return 0 // waiting for data
	}
	next := p.start.Add(time.Duration(int64(p.shown) * int64(den) * int64(time.Second) / int64(num)))
	return guest.SleepFor(next.Sub(now) - clockSlack)
}

// next decodes the next frame, feeding the decoder from the source as
// needed; nil means the source has nothing more yet or the video ended.
func (p *Player) next() *mpeg1.Frame {
	for {
		f, err := p.dec.Next()
		switch {
		case err == nil:
			return f
		case errors.Is(err, io.EOF):
			p.eos = true
			return nil
		case !errors.Is(err, mpeg1.ErrNeedInput):
			p.failed = err
			return nil
		}
		if p.have && p.fed >= p.info.Length {
			p.dec.EndInput()
			continue
		}
		want := len(p.buf)
		if !p.have {
			want = HeaderSize - len(p.hdr)
		} else if rest := p.info.Length - p.fed; rest < uint64(want) {
			want = int(rest)
		}
		n, err := p.src.Read(p.buf[:want])
		if n > 0 {
			if !p.have {
				p.hdr = append(p.hdr, p.buf[:n]...)
				if len(p.hdr) == HeaderSize {
					h, err := ParseHeader(p.hdr)
					if err != nil {
						p.failed = err
						return nil
					}
					p.info, p.have = h, true
					if p.loops == 0 {
						fmt.Fprintf(p.host.Console(), "video: %s, %d bytes, %d pictures\n", h.Name, h.Length, h.Pictures)
					}
				}
				continue
			}
			p.dec.Feed(p.buf[:n])
			p.fed += uint64(n)
			continue
		}
		if errors.Is(err, io.EOF) {
			if !p.have {
				p.failed = errors.New("the source ended inside the header")
				return nil
			}
			p.dec.EndInput() // a short file: play what there is
			continue
		}
		if err != nil {
			p.failed = err
			return nil
		}
		return nil // nothing yet
	}
}

var (
	barColor   = color.RGBA{0x20, 0x22, 0x28, 0xff}
	trackColor = color.RGBA{0x50, 0x54, 0x5c, 0xff}
	fillColor  = color.RGBA{0xe0, 0x40, 0x40, 0xff}
	textColor  = color.RGBA{0xf0, 0xf0, 0xf0, 0xff}
)

// render draws frame f letterboxed into the viewport and the bar below.
func (p *Player) render(f *mpeg1.Frame) {
	// Fit the video into the viewport, keeping its (square-pel) aspect.
	w, h := Width, f.Height*Width/f.Width
	if h > ViewHeight {
		w, h = f.Width*ViewHeight/f.Height, ViewHeight
	}
	w, h = max(w&^1, 2), max(h&^1, 2)
	x0, y0 := (Width-w)/2, (ViewHeight-h)/2
	view := p.img.Rect
	view.Max.Y = ViewHeight
	inner := image.Rect(x0, y0, x0+w, y0+h)
	// Black bars around the picture (they stay black, but a new size may
	// uncover them).
	for _, r := range []image.Rectangle{
		image.Rect(0, 0, Width, y0), image.Rect(0, y0+h, Width, ViewHeight),
		image.Rect(0, y0, x0, y0+h), image.Rect(x0+w, y0, Width, y0+h),
	} {
		draw.Draw(p.img, r, image.Black, image.Point{}, draw.Src)
	}
	o := p.img.PixOffset(x0, y0)
	if w == f.Width && h == f.Height {
		f.RGBA(p.img.Pix[o:], p.img.Stride)
	} else {
		f.ScaledRGBA(p.img.Pix[o:], p.img.Stride, w, h)
	}

	// The bar: a progress track, then "elapsed / total", the file name and
	// the picture's size and rate.
	bar := image.Rect(0, ViewHeight, Width, Height)
	draw.Draw(p.img, bar, &image.Uniform{barColor}, image.Point{}, draw.Src)
	track := image.Rect(10, ViewHeight+6, Width-10, ViewHeight+11)
	draw.Draw(p.img, track, &image.Uniform{trackColor}, image.Point{}, draw.Src)
	seq, _ := p.dec.Sequence()
	num, den := seq.FrameRate()
	total := int(p.info.Pictures)
	if total > 0 {
		fill := track
		fill.Max.X = track.Min.X + track.Dx()*min(p.shown, total)/total
		draw.Draw(p.img, fill, &image.Uniform{fillColor}, image.Point{}, draw.Src)
	}
	elapsed := time.Duration(int64(p.shown-1) * int64(den) * int64(time.Second) / int64(num))
	length := time.Duration(int64(total) * int64(den) * int64(time.Second) / int64(num))
	rate := fmt.Sprintf("%.2f", float64(num)/float64(den))
	if den == 1 {
		rate = fmt.Sprint(num)
	}
	d := font.Drawer{Dst: p.img, Src: &image.Uniform{textColor}, Face: basicfont.Face7x13}
	d.Dot = fixed.P(10, Height-9)
	d.DrawString(clock(elapsed) + " / " + clock(length))
	right := fmt.Sprintf("%dx%d %s fps %c", f.Width, f.Height, rate, f.Type.String()[0])
	if p.loops > 0 {
		right += fmt.Sprintf("  loop %d", p.loops+1)
	}
	d.Dot = fixed.P(Width-10-d.MeasureString(right).Round(), Height-9)
	d.DrawString(right)
	name := p.info.Name
	nw := d.MeasureString(name).Round()
	d.Dot = fixed.P((Width-nw)/2, Height-9)
	d.DrawString(name)

	if p.full || p.size != image.Pt(w, h) {
		p.full, p.size = false, image.Pt(w, h)
		p.host.Present(p.img, nil)
		return
	}
	p.host.Present(p.img, []image.Rectangle{inner, bar})
}

// clock formats d as m:ss.
func clock(d time.Duration) string {
	s := max(int(d/time.Second), 0)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
