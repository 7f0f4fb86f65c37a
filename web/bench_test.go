package web

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"testing"

	"replaydesk/shared/display"
)

// BenchmarkPaintKeyFrame measures display.js painting a whole 300x200 key
// frame (decode every tile, copy to the canvas) in Chromium, per frame.
func BenchmarkPaintKeyFrame(b *testing.B) {
	for _, lossless := range []bool{true, false} {
		name := "jpeg"
		if lossless {
			name = "lossless"
		}
		b.Run(name, func(b *testing.B) {
			modulesPage(b)
			tiles := display.NewEncoder(display.Options{Lossless: lossless}).Key(desktop(0), scrW, scrH, scrW*4)
			type jt struct {
				X, Y, W, H, E int
				D             string
			}
			var js []jt
			bytes := 0
			for _, tl := range tiles {
				js = append(js, jt{tl.X, tl.Y, tl.W, tl.H, int(tl.Encoding), base64.StdEncoding.EncodeToString(tl.Data)})
				bytes += len(tl.Data)
			}
			arg, _ := json.Marshal(js)
			eval[bool](b, `(() => {
				const unb64 = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
				window.__frame = {key: true, width: `+strconv.Itoa(scrW)+`, height: `+strconv.Itoa(scrH)+`,
					tiles: `+string(arg)+`.map(t => ({x: t.X, y: t.Y, w: t.W, h: t.H, encoding: t.E, data: unb64(t.D)}))};
				window.__screen = new __display.Screen(document.createElement("canvas"));
				return true;
			})()`)
			b.SetBytes(int64(bytes))
			b.ResetTimer()
			eval[bool](b, `(async () => {
				for (let i = 0; i < `+strconv.Itoa(b.N)+`; i++) await __screen.apply(__frame);
				return true;
			})()`)
			b.ReportMetric(float64(len(tiles)), "tiles/frame")
		})
	}
}
