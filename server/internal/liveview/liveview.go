// Package liveview serves one live session to browsers on this machine over
// plain HTTP: the newest frame as a PNG (long-polled) and keyboard and mouse
// input posted back. It is the product's first face, until the WebSocket
// web app with display and replay modes takes its place (DESIGN.md, web/).
//
// It must not know how frames are made or how input is recorded: it takes
// frames from a callback and hands input events to a channel.
package liveview

import (
	"bytes"
	"context"
	_ "embed"
	"image"
	"image/png"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/abi"
	"replaydesk/shared/inputscript"
)

//go:embed index.html
var indexHTML []byte

// View is the HTTP face of one session.
type View struct {
	log   zerolog.Logger
	input chan<- abi.Event

	mu    sync.Mutex
	cond  *sync.Cond
	seq   uint64
	img   *image.RGBA
	png   []byte // encoded lazily, once per frame
	users map[string]uint16
}

// New returns a view that sends input events (stamped with their user) to
// input.
func New(input chan<- abi.Event, log zerolog.Logger) *View {
	v := &View{log: log, input: input, users: map[string]uint16{}}
	v.cond = sync.NewCond(&v.mu)
	return v
}

// Frame stores a new frame; pixels are w*4 bytes per row at stride.
func (v *View) Frame(w, h, stride int, pixels []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.img == nil || v.img.Rect.Dx() != w || v.img.Rect.Dy() != h {
		v.img = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	for y := 0; y < h; y++ {
		row := v.img.Pix[y*v.img.Stride : y*v.img.Stride+w*4]
		copy(row, pixels[y*stride:])
		for x := 3; x < len(row); x += 4 {
			row[x] = 255
		}
	}
	v.seq++
	v.png = nil
	v.cond.Broadcast()
}

// Handler serves the page, frames and input.
func (v *View) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("GET /frame", v.serveFrame)
	mux.HandleFunc("POST /input", v.serveInput)
	return mux
}

// serveFrame waits (up to 20 s) for a frame newer than ?after=N.
func (v *View) serveFrame(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	// Wake the wait below when the request ends or times out.
	stop := context.AfterFunc(ctx, func() {
		v.mu.Lock()
		v.cond.Broadcast()
		v.mu.Unlock()
	})
	defer stop()
	v.mu.Lock()
	for v.seq <= after && ctx.Err() == nil {
		v.cond.Wait()
	}
	if v.seq <= after || v.img == nil {
		v.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if v.png == nil {
		var buf bytes.Buffer
		(&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, v.img)
		v.png = buf.Bytes()
	}
	body, seq := v.png, v.seq
	v.mu.Unlock()
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Seq", strconv.FormatUint(seq, 10))
	w.Write(body)
}

// maxInputBody bounds one POST of input events.
const maxInputBody = 64 << 10

// serveInput takes JSON Lines in the input-script format (t is ignored: the
// event happens now) and queues the events.
func (v *View) serveInput(w http.ResponseWriter, r *http.Request) {
	evs, err := inputscript.Parse(http.MaxBytesReader(w, r.Body, maxInputBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v.mu.Lock()
	var out []abi.Event
	for _, e := range evs {
		n, ok := v.users[e.User]
		if !ok {
			n = uint16(len(v.users) + 1)
			v.users[e.User] = n
			out = append(out, abi.Event{Type: abi.EvUser, Down: true, User: n, Text: e.User})
		}
		e.Ev.User = n
		out = append(out, e.Ev)
	}
	v.mu.Unlock()
	for _, e := range out {
		select {
		case v.input <- e:
		default:
			http.Error(w, "input queue full; slow down", http.StatusTooManyRequests)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
