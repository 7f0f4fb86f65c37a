package dl

import (
	"fmt"
	"image"
	"image/color"
	"time"

	"replaydesk/server/images/internal/ui"
)

// Size of the frame.
const (
	Width  = 640
	Height = 400
)

var (
	desk1    = color.RGBA{0x2b, 0x4c, 0x7e, 0xff}
	desk2    = color.RGBA{0x12, 0x22, 0x3c, 0xff}
	title1   = color.RGBA{0x3a, 0x6e, 0xc0, 0xff}
	title2   = color.RGBA{0x22, 0x4c, 0x94, 0xff}
	paneBG   = color.RGBA{0xee, 0xee, 0xec, 0xff}
	border   = color.RGBA{0x8a, 0x8a, 0x88, 0xff}
	textC    = color.RGBA{0x20, 0x20, 0x24, 0xff}
	dimC     = color.RGBA{0x6a, 0x6a, 0x70, 0xff}
	white    = color.RGBA{0xff, 0xff, 0xff, 0xff}
	barBG    = color.RGBA{0xfa, 0xfa, 0xfa, 0xff}
	bar1     = color.RGBA{0x5c, 0xa8, 0xf0, 0xff}
	bar2     = color.RGBA{0x1e, 0x6c, 0xc8, 0xff}
	doneBar1 = color.RGBA{0x7c, 0xd0, 0x7c, 0xff}
	doneBar2 = color.RGBA{0x2e, 0x96, 0x3e, 0xff}
	okC      = color.RGBA{0x1c, 0x8a, 0x2c, 0xff}
	badC     = color.RGBA{0xc0, 0x24, 0x24, 0xff}
	shadow   = color.RGBA{0x0a, 0x14, 0x24, 0xff}
)

// Places.
var (
	window  = image.Rect(70, 50, 570, 350)
	titleR  = image.Rect(window.Min.X, window.Min.Y, window.Max.X, window.Min.Y+24)
	dynamic = image.Rect(window.Min.X+20, window.Min.Y+96, window.Max.X-20, window.Max.Y-44)
	barR    = image.Rect(dynamic.Min.X, dynamic.Min.Y+4, dynamic.Max.X, dynamic.Min.Y+26)
)

// drawAll paints the whole frame: the desktop, the window, and its contents.
func (a *App) drawAll() {
	ui.VGradient(a.img, a.img.Bounds(), desk1, desk2)
	ui.Text(a.img, 10, Height-10, "replaydesk  -  download image", color.RGBA{0x9a, 0xb0, 0xd0, 0xff})
	ui.Fill(a.img, window.Add(image.Pt(4, 4)), shadow)
	ui.Fill(a.img, window, paneBG)
	ui.Frame(a.img, window, border)
	ui.VGradient(a.img, titleR, title1, title2)
	ui.Text(a.img, titleR.Min.X+10, titleR.Min.Y+16, "File Transfer", white)
	// The close box.
	box := image.Rect(titleR.Max.X-22, titleR.Min.Y+5, titleR.Max.X-8, titleR.Min.Y+19)
	ui.Frame(a.img, box, color.RGBA{0xc8, 0xd8, 0xf0, 0xff})
	ui.Text(a.img, box.Min.X+4, box.Min.Y+11, "x", white)

	// A document icon.
	icon := image.Rect(window.Min.X+20, window.Min.Y+38, window.Min.X+52, window.Min.Y+78)
	ui.Fill(a.img, icon, white)
	ui.Frame(a.img, icon, border)
	ui.Fill(a.img, image.Rect(icon.Min.X+5, icon.Min.Y+26, icon.Max.X-5, icon.Max.Y-5), bar2)
	for i := range 4 {
		y := icon.Min.Y + 6 + i*5
		ui.Fill(a.img, image.Rect(icon.Min.X+5, y, icon.Max.X-5-(i%2)*6, y+2), color.RGBA{0xb0, 0xb0, 0xb8, 0xff})
	}
	ui.BigText(a.img, icon.Max.X+14, icon.Min.Y+20, 2, FileName, textC)
	ui.Text(a.img, icon.Max.X+14, icon.Min.Y+38, "from "+Endpoint+"://"+FileName+"  to the disk, blocks 1-3072", dimC)

	// Buttons.
	a.button(image.Rect(window.Max.X-200, window.Max.Y-34, window.Max.X-110, window.Max.Y-10), "Restart (R)")
	a.button(image.Rect(window.Max.X-100, window.Max.Y-34, window.Max.X-20, window.Max.Y-10), "Close")
	a.drawDynamic()
}

func (a *App) button(r image.Rectangle, label string) {
	ui.VGradient(a.img, r, color.RGBA{0xfc, 0xfc, 0xfc, 0xff}, color.RGBA{0xdc, 0xdc, 0xdc, 0xff})
	ui.Frame(a.img, r, border)
	ui.Text(a.img, r.Min.X+(r.Dx()-ui.Width(label))/2, r.Min.Y+16, label, textC)
}

// refresh redraws the dynamic part when something shown there changed and
// presents just it.
func (a *App) refresh() {
	sec := int64(a.h.Now().Sub(a.start) / (time.Second / 2))
	if a.got == a.lastShown && a.state == a.lastState && (sec == a.lastSecond || a.state == stDone || a.state == stFailed) {
		return
	}
	a.lastShown, a.lastState, a.lastSecond = a.got, a.state, sec
	a.drawDynamic()
	a.h.Present(a.img, []image.Rectangle{dynamic})
}

// drawDynamic paints the progress bar and the lines under it; it draws only
// inside the dynamic rectangle.
func (a *App) drawDynamic() {
	img := a.img.SubImage(dynamic).(*image.RGBA) // clips every stroke
	ui.Fill(img, dynamic, paneBG)
	// The bar.
	ui.Fill(img, barR, barBG)
	ui.Frame(img, barR, border)
	inner := barR.Inset(2)
	if a.total > 0 && a.got > 0 {
		w := int(int64(inner.Dx()) * a.got / a.total)
		c1, c2 := bar1, bar2
		if a.state == stDone {
			c1, c2 = doneBar1, doneBar2
		}
		ui.VGradient(img, image.Rect(inner.Min.X, inner.Min.Y, inner.Min.X+w, inner.Max.Y), c1, c2)
	}
	pct := 0
	if a.total > 0 {
		pct = int(a.got * 100 / a.total)
	}
	label := fmt.Sprintf("%d%%", pct)
	lx := barR.Min.X + (barR.Dx()-ui.Width(label))/2
	ui.Fill(img, image.Rect(lx-4, barR.Min.Y+5, lx+ui.Width(label)+4, barR.Max.Y-5), barBG)
	ui.Text(img, lx, barR.Min.Y+15, label, textC)

	x, y := dynamic.Min.X, barR.Max.Y+20
	now := a.h.Now()
	el := now.Sub(a.start)
	if a.state == stDone {
		el = a.elapsed
	}
	rate := 0.0
	if el > 0 {
		rate = float64(a.got) / el.Seconds()
	}
	switch a.state {
	case stHeader:
		ui.Text(img, x, y, "Connecting to "+Endpoint+" ...", textC)
	case stBody:
		ui.Text(img, x, y, fmt.Sprintf("%s of %s", ui.Size(a.got), ui.Size(a.total)), textC)
		ui.TextRight(img, dynamic.Max.X, y, "Speed: "+rateStr(rate), textC)
		left := "Time left: estimating..."
		if rate > 0 {
			eta := time.Duration(float64(a.total-a.got) / rate * float64(time.Second))
			left = "Time left: " + clock(eta)
		}
		ui.Text(img, x, y+18, left, dimC)
		ui.TextRight(img, dynamic.Max.X, y+18, "Elapsed: "+clock(el), dimC)
	case stDone:
		ui.Text(img, x, y, fmt.Sprintf("Done: %s in %.2f s (%s)", ui.Size(a.total), el.Seconds(), rateStr(rate)), textC)
		ui.Text(img, x, y+22, "SHA-256", dimC)
		ui.Text(img, x, y+38, a.sum, textC)
		if a.ok {
			check(img, x, y+52)
			ui.Text(img, x+18, y+62, "Verified: the digest matches", okC)
			ui.Text(img, x+19, y+62, "Verified", okC)
		} else {
			ui.Text(img, x, y+62, "MISMATCH: expected "+ExpectedSHA256[:16]+"...", badC)
		}
	case stFailed:
		ui.Text(img, x, y, "Download failed", badC)
		ui.Text(img, x, y+18, a.errMsg, textC)
		ui.Text(img, x, y+36, "Press R to try again.", dimC)
	}
	foot := fmt.Sprintf("Download #%d", a.runs)
	switch {
	case a.diskErr != "":
		foot += "  -  " + a.diskErr
	case a.state == stDone:
		foot += fmt.Sprintf("  -  %s stored on the %s disk", ui.Size(a.written), a.diskMode)
	default:
		foot += fmt.Sprintf("  -  writing to the %s disk", a.diskMode)
	}
	ui.Text(img, x, dynamic.Max.Y-6, foot, dimC)
}

// check draws a green tick in a 14×14 box at (x, y).
func check(img *image.RGBA, x, y int) {
	for i := range 5 {
		ui.Fill(img, image.Rect(x+1+i, y+7+i, x+3+i, y+9+i), okC)
	}
	for i := range 9 {
		ui.Fill(img, image.Rect(x+5+i, y+11-i, x+7+i, y+13-i), okC)
	}
}

func rateStr(bps float64) string {
	switch {
	case bps >= 1<<20:
		return fmt.Sprintf("%.1f MB/s", bps/(1<<20))
	case bps >= 1<<10:
		return fmt.Sprintf("%.1f KB/s", bps/(1<<10))
	default:
		return fmt.Sprintf("%.0f B/s", bps)
	}
}

func clock(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	s := int64(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
