package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium on the real product: the web app, served by the server's
// embedded relay, shows the session from its display and controller links;
// the controller's keys are recorded, the display viewer's page sends none.

// liveChromium finds Chromium as web/browser_test.go does: without it the
// test fails when CI is set and skips, saying why, on a developer machine.
func liveChromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REPLAYDESK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium not found (CI is set): install it (apt-get install chromium) or set REPLAYDESK_CHROMIUM")
	}
	t.Skip("Chromium not found: this test needs it (apt-get install chromium, or set REPLAYDESK_CHROMIUM)")
	return ""
}

// liveTab starts a Chromium (stopped with the test) and returns its tab.
func liveTab(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(liveChromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,NetworkTimeServiceQuerying"),
		// Nothing but the loopback server is reachable.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1200, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// browse runs a browser action with a deadline.
func browse[T any](t testing.TB, tab context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// pageWait polls a page expression until it is truthy.
func pageWait(t testing.TB, tab context.Context, d time.Duration, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, d)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(tab, chromedp.Evaluate[string](`(window.replaydesk ? window.replaydesk.state + " / " + window.replaydesk.lastError : "no app") + " / " + document.body.innerText`))
		t.Fatalf("waiting for %s: %v (page: %s)", js, err, state)
	}
}

// canvasShowsSomething: the canvas has its size and is not one flat
// colour (the test card has bars, text and noise).
const canvasShowsSomething = `(() => {
	const c = document.getElementById("screen");
	if (!c || c.width < 100 || c.height < 100) return false;
	const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
	const seen = new Set();
	for (let i = 0; i < d.length; i += 4 * 97) {
		if (d[i + 3] === 0) continue;
		seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
		if (seen.size > 8) return true;
	}
	return false;
})()`

func TestLiveBrowserDisplayAndController(t *testing.T) {
	srv := startLiveServer(t, "--image", "testcard")
	tab := liveTab(t)

	// The display link: pixels only.
	browse(t, tab, chromedp.Navigate(srv.links["display"]))
	pageWait(t, tab, 60*time.Second, `window.replaydesk && window.replaydesk.screen.frames > 0`)
	pageWait(t, tab, 30*time.Second, canvasShowsSomething)
	before := mustMetric(t, srv.base, "replaydesk_input_events_total")
	browse(t, tab, chromedp.Evaluate[chromedp.Void](`document.getElementById("screen").focus()`))
	browse(t, tab, chromedp.KeyEvent("q"))
	pageWait(t, tab, 10*time.Second, `document.getElementById("msg").textContent.startsWith("view only")`)
	refused := mustMetric(t, srv.base, "replaydesk_input_refused_total")

	// The controller link: what it types is recorded.
	browse(t, tab, chromedp.Navigate(srv.links["controller"]))
	pageWait(t, tab, 60*time.Second, `window.replaydesk && window.replaydesk.screen.frames > 0 && window.replaydesk.canType()`)
	pageWait(t, tab, 30*time.Second, canvasShowsSomething)
	// The display viewer's page sent nothing: no input recorded or refused
	// (the controller's join may have added its user event since).
	if v := mustMetric(t, srv.base, "replaydesk_input_refused_total"); v != refused || refused != 0 {
		t.Fatalf("input_refused_total %v then %v: the display page sent input", refused, v)
	}
	joined := mustMetric(t, srv.base, "replaydesk_input_events_total")
	if joined > before+2 { // at most the controller's join (and the viewer's leaving)
		t.Fatalf("input_events_total went %v → %v with only a display viewer typing", before, joined)
	}
	browse(t, tab, chromedp.Evaluate[chromedp.Void](`document.getElementById("screen").focus()`))
	browse(t, tab, chromedp.KeyEvent("hello"))
	// Five keys: a down, an up and a text event each.
	waitFor(t, 30*time.Second, "the controller's keys recorded", func() bool {
		v, _ := metric(srv.base, "replaydesk_input_events_total")
		return v >= joined+15
	})
	if v := mustMetric(t, srv.base, "replaydesk_input_refused_total"); v != 0 {
		t.Fatalf("the controller's input was refused (%v)", v)
	}
}
