package live

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/client/internal/live/livetest"
	"replaydesk/shared/machine"
)

var (
	recOnce sync.Once
	rec     *livetest.Session
	recErr  error
	// engineCache keeps compiled guest code across the package's tests.
	engineCache string
)

func TestMain(m *testing.M) {
	machine.RunPageServerIfChild()
	dir, err := os.MkdirTemp("", "live-test")
	if err != nil {
		panic(err)
	}
	engineCache = filepath.Join(dir, "engine")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func recording(t *testing.T) *livetest.Session {
	t.Helper()
	recOnce.Do(func() { rec, recErr = livetest.Record(engineCache) })
	if recErr != nil {
		t.Fatal(recErr)
	}
	return rec
}

// runClient starts a client against u; the returned stop cancels it and
// waits for Run.
func runClient(t *testing.T, u *livetest.Upstream, o Options) (*Client, func() error) {
	t.Helper()
	o.Link = Link{Base: u.Srv.URL, Session: livetest.SessionID, Token: u.Token}
	o.CacheDir = t.TempDir()
	o.EngineCacheDir = engineCache
	if o.SampleEvery == 0 {
		o.SampleEvery = 50 * time.Millisecond
	}
	o.MinBackoff = 20 * time.Millisecond
	o.Log = zerolog.New(zerolog.NewConsoleWriter(zerolog.ConsoleTestWriter(t))).With().Timestamp().Logger()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return c, stop
}

// waitStats waits for a stats line satisfying ok.
func waitStats(t *testing.T, c *Client, what string, ok func(*Stats) bool) *Stats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if s := c.LastStats(); s != nil && ok(s) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: last stats %+v", what, c.LastStats())
	return nil
}
