package web

import (
	"testing"
)

// outcomeTB records how a helper ends a test instead of ending it.
type outcomeTB struct {
	testing.TB
	fatal, skip string
}

func (o *outcomeTB) Helper()                   {}
func (o *outcomeTB) Fatal(args ...any)         { o.fatal = args[0].(string) }
func (o *outcomeTB) Skip(args ...any)          { o.skip = args[0].(string) }
func (o *outcomeTB) Fatalf(f string, _ ...any) { o.fatal = f }

// TestChromiumMissing: without Chromium the browser tests fail under CI and
// skip (saying why) elsewhere.
func TestChromiumMissing(t *testing.T) {
	saved := chromiumCandidates
	t.Cleanup(func() { chromiumCandidates = saved })
	chromiumCandidates = []string{"/nonexistent/chromium-for-this-test"}
	t.Setenv("REPLAYDESK_CHROMIUM", "")

	t.Setenv("CI", "true")
	o := &outcomeTB{TB: t}
	chromiumPath(o)
	if o.fatal == "" || o.skip != "" {
		t.Fatalf("with CI set: fatal %q, skip %q; want a failure", o.fatal, o.skip)
	}
	t.Setenv("CI", "")
	o = &outcomeTB{TB: t}
	chromiumPath(o)
	if o.skip == "" || o.fatal != "" {
		t.Fatalf("without CI: fatal %q, skip %q; want a skip", o.fatal, o.skip)
	}
}
