// Package web is the browser app: the page a link /s/{session}?t=TOKEN opens
// and its static JavaScript modules (display mode over WebSocket: tiles on a
// canvas, keyboard and mouse input, presence and control). The files are
// embedded with go:embed so the relay and the native client's local view
// serve the same app without a build step.
//
// It must not know about relays, servers, tokens or sessions: it serves
// bytes. The page talks to /ws/{session} on whatever host served it, and
// whoever mounts Handler owns that route.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Files returns the app's static files (index.html, *.js, app.css).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Handler serves GET /s/{session} (the app page; the token stays in the
// page's query string) and GET /web/{file} (its modules and stylesheet).
func Handler() http.Handler {
	files := Files()
	page, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /s/{session}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		// The token is in this page's URL: keep it out of Referer headers.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' blob: data:; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	})
	assets := http.StripPrefix("/web/", http.FileServerFS(files))
	mux.HandleFunc("GET /web/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" {
			http.NotFound(w, r) // the page is only served under /s/
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
	return mux
}
