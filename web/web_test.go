package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandler: the page under /s/{session} with headers that keep the
// token in the URL from leaking, the modules as JavaScript, nothing else.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	r, body := get("/s/abc?t=secret")
	if r.StatusCode != 200 || !strings.Contains(body, `src="/web/app.js"`) {
		t.Fatalf("page: %d %q", r.StatusCode, body)
	}
	for h, want := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("page %s = %q, want %q", h, got, want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("page CSP %q does not confine connections to its own host", csp)
	}
	for _, f := range []string{"app.js", "wire.js", "display.js", "keycodes.js"} {
		r, body := get("/web/" + f)
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") || len(body) < 100 {
			t.Errorf("/web/%s: %d %s, %d bytes", f, r.StatusCode, r.Header.Get("Content-Type"), len(body))
		}
	}
	if r, _ := get("/web/app.css"); r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/css") {
		t.Errorf("/web/app.css: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/web/index.html", "/web/", "/web/nope.js", "/s/", "/s/a/b", "/", "/web/../go.mod"} {
		if r, _ := get(p); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
}
