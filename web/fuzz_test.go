package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"replaydesk/shared/display"
	"replaydesk/shared/wire"
)

// The fuzz targets run wire.js and display.js in the shared tab on a blank
// page of a static server that lives as long as the test process.
var (
	modulesOnce sync.Once
	modulesURL  string
)

func modulesPage(t testing.TB) {
	t.Helper()
	modulesOnce.Do(func() {
		mux := http.NewServeMux()
		mux.Handle("/", Handler())
		mux.HandleFunc("GET /blank", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<!doctype html><title>modules</title>"))
		})
		modulesURL = httptest.NewServer(mux).URL
	})
	if eval[bool](t, `typeof window.__wire === "object" && location.href.startsWith(`+jsString(modulesURL)+`)`) {
		return
	}
	run(t, chromedp.Navigate(modulesURL+"/blank"))
	eval[bool](t, `(async () => {
		window.__wire = await import("/web/wire.js");
		window.__display = await import("/web/display.js");
		return true;
	})()`)
}

func jsString(s string) string { return `"` + s + `"` } // only for URLs of httptest servers

// FuzzWireJS: wire.js accepts exactly what shared/wire accepts and refuses
// the rest at the same field and byte offset, without throwing anything but
// a WireError.
func FuzzWireJS(f *testing.F) {
	for _, m := range wireSamples() {
		b, err := wire.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0f, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		modulesPage(t)
		type res struct {
			OK     bool
			Wire   bool
			Field  string
			Offset int
			Kind   string
			Err    string
		}
		r := eval[res](t, `(() => {
			const b = Uint8Array.from(atob("`+base64.StdEncoding.EncodeToString(b)+`"), c => c.charCodeAt(0));
			try { __wire.decode(b); return {OK: true, Wire: true}; } catch (e) {
				return {OK: false, Wire: e instanceof __wire.WireError, Field: e.field ?? "", Offset: e.offset ?? -1, Kind: e.kind ?? "", Err: String(e)};
			}
		})()`)
		_, gerr := wire.Decode(b)
		if !r.Wire {
			t.Fatalf("% x: wire.js threw %s, not a WireError", b, r.Err)
		}
		if (gerr == nil) != r.OK {
			t.Fatalf("% x: Go says %v, wire.js ok=%v %s", b, gerr, r.OK, r.Err)
		}
		var de *wire.DecodeError
		if errors.As(gerr, &de) && (de.Field != r.Field || de.Offset != r.Offset || errKind(de) != r.Kind) {
			t.Fatalf("% x: Go refuses %q at %d (%v, %s), wire.js %q at %d (%s, %s)", b, de.Field, de.Offset, gerr, errKind(de), r.Field, r.Offset, r.Err, r.Kind)
		}
	})
}

// FuzzTilesJS: display.js paints any tile data without throwing anything but
// its TileError, and where both it and shared/display accept a lossless
// tile, the pixels are the same.
func FuzzTilesJS(f *testing.F) {
	enc := display.NewEncoder(display.Options{Lossless: true, TileSize: 32})
	for _, tl := range enc.Key(desktop(0), scrW, scrH, scrW*4) {
		if tl.W <= 32 && tl.H <= 32 {
			f.Add(byte(tl.Encoding), byte(tl.W), byte(tl.H), tl.Data)
		}
	}
	f.Add(byte(wire.EncRaw), byte(1), byte(2), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(byte(wire.EncPalette), byte(3), byte(1), []byte{1, 0, 0, 0, 255, 255, 255, 255, 255, 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Add(byte(wire.EncPNG), byte(1), byte(1), []byte{0x89, 'P', 'N', 'G'})
	f.Add(byte(wire.EncJPEG), byte(8), byte(8), []byte{0xff, 0xd8, 0xff})
	f.Fuzz(func(t *testing.T, e, w, h byte, data []byte) {
		if w == 0 || h == 0 || w > 64 || h > 64 || len(data) == 0 || e < 1 || e > 6 {
			return // the wire decoder refuses these before any tile decoder sees them
		}
		modulesPage(t)
		type res struct {
			OK, Tile bool
			B64, Err string
		}
		r := eval[res](t, `(async () => {
			const data = Uint8Array.from(atob("`+base64.StdEncoding.EncodeToString(data)+`"), c => c.charCodeAt(0));
			const s = new __display.Screen(document.createElement("canvas"));
			const f = {key: true, width: `+itoa(int(w))+`, height: `+itoa(int(h))+`, tiles: [{x: 0, y: 0, w: `+itoa(int(w))+`, h: `+itoa(int(h))+`, encoding: `+itoa(int(e))+`, data}]};
			try { await s.apply(f); } catch (e) { return {OK: false, Tile: e instanceof __display.TileError, Err: String(e)}; }
			return {OK: true, Tile: true, B64: btoa(String.fromCharCode(...s.pixels()))};
		})()`)
		if !r.Tile {
			t.Fatalf("enc %d %dx%d % x: display.js threw %s, not a TileError", e, w, h, data, r.Err)
		}
		fb := make([]byte, int(w)*int(h)*4)
		gerr := display.Apply([]display.Tile{{W: int(w), H: int(h), Encoding: wire.Encoding(e), Data: data}}, fb, int(w), int(h), int(w)*4)
		if !r.OK || gerr != nil || e == byte(wire.EncJPEG) || e == byte(wire.EncPNG) {
			return // refusals may differ (Go's zlib reader ignores a bad checksum); images are the browser's
		}
		got, _ := base64.StdEncoding.DecodeString(r.B64)
		if !bytes.Equal(got, fb) {
			t.Fatalf("enc %d %dx%d % x: display.js paints % x, shared/display % x", e, w, h, data, got, fb)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
