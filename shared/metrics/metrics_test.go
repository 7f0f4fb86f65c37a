package metrics

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("replaydesk_steps_total", "Guest steps run.")
	g := r.Gauge("replaydesk_viewers", "Viewers connected.")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add(1)
			}
		}()
	}
	wg.Wait()
	g.Set(2.5)
	if r.Counter("replaydesk_steps_total", "") != c {
		t.Fatal("the same name gave another metric")
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := "# HELP replaydesk_steps_total Guest steps run.\n# TYPE replaydesk_steps_total counter\nreplaydesk_steps_total 8000\n" +
		"# HELP replaydesk_viewers Viewers connected.\n# TYPE replaydesk_viewers gauge\nreplaydesk_viewers 2.5\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatal(rec.Header())
	}
}
