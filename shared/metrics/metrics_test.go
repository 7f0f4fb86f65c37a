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

func TestLabels(t *testing.T) {
	r := NewRegistry()
	r.Gauge(`relay_clients{mode="replay"}`, "Clients by mode.").Set(2)
	r.Gauge(`relay_clients{mode="display"}`, "Clients by mode.").Set(5)
	r.Counter("relay_a_total", "A.").Add(1)
	r.Gauge(`relay_lag{client="7"}`, "Lag.").Set(3)
	r.Remove(`relay_lag{client="7"}`)
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "# HELP relay_a_total A.\n# TYPE relay_a_total counter\nrelay_a_total 1\n" +
		"# HELP relay_clients Clients by mode.\n# TYPE relay_clients gauge\n" +
		"relay_clients{mode=\"display\"} 5\nrelay_clients{mode=\"replay\"} 2\n"
	if got := b.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLabelledViews(t *testing.T) {
	r := NewRegistry()
	a, b := r.With(`session="a"`), r.With(`session="b"`)
	a.Counter("ticks_total", "Ticks.").Add(1)
	b.Counter("ticks_total", "Ticks.").Add(2)
	b.With(`mode="replay"`).Gauge("clients", "Clients.").Set(3)
	a.Gauge(`clients{mode="display"}`, "Clients.").Set(4)
	var out strings.Builder
	r.Write(&out)
	want := `# HELP clients Clients.
# TYPE clients gauge
clients{mode="display",session="a"} 4
clients{session="b",mode="replay"} 3
# HELP ticks_total Ticks.
# TYPE ticks_total counter
ticks_total{session="a"} 1
ticks_total{session="b"} 2
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	b.Remove("ticks_total")
	if strings.Contains(func() string { var o strings.Builder; r.Write(&o); return o.String() }(), `ticks_total{session="b"}`) {
		t.Fatal("Remove through a view left the series")
	}
}
