// Command server hosts replaydesk sessions.
//
//	go run ./server                 run the default session (the product)
//	go run ./server record ...      record a session into a directory
//	go run ./server serve DIR...    serve recorded sessions to replay clients
//	go run ./server end DIR         seal a stopped live session: a finished recording
//
// See README.md. This file only parses flags; the work is in internal/.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/relay/hub"
	"replaydesk/server/images"
	"replaydesk/server/internal/recorder"
	"replaydesk/server/internal/session"
	"replaydesk/server/internal/sessionhttp"
	"replaydesk/shared/abi"
	"replaydesk/shared/cli"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/machine"
	"replaydesk/shared/metrics"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/sessiondir"
	"replaydesk/shared/token"
	"replaydesk/web"
)

func main() {
	machine.RunPageServerIfChild() // this binary is also the lazy-restore page server
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "record" {
		recordCmd(ctx, args[1:])
		return
	}
	if len(args) > 0 && args[0] == "serve" {
		serveSessionsCmd(ctx, args[1:])
		return
	}
	if len(args) > 0 && args[0] == "end" {
		endCmd(args[1:])
		return
	}
	serveCmd(ctx, args)
}

func recordCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("server record", flag.ContinueOnError)
	image := fs.String("image", "testcard", "guest image to record: "+strings.Join(images.Names(), ", "))
	duration := fs.Duration("duration", 30*time.Second, "virtual time to record")
	input := fs.String("input", "", "input script (JSON Lines); empty: no scripted input")
	randomRate := fs.Float64("random-input", 0, "add random input at about this many events per second")
	seed := fs.Uint64("seed", 1, "seed of --random-input")
	out := fs.String("out", "", "session directory to create (required)")
	snapEvery := fs.Duration("snapshot-every", 0, "take a snapshot each period of virtual time (0: none)")
	realtime := fs.Bool("realtime", false, "tick at real time with the real clock (default: virtual time, as fast as possible)")
	diskMode := fs.String("disk-mode", "snapshotted", "how the disk reaches replayers: snapshotted or replayed")
	checkpoint := fs.Uint64("checkpoint-every", 0, "ticks between framebuffer checkpoints (0: the default, 60)")
	console := fs.Bool("console", false, "copy the guest's console to stderr")
	level := fs.String("log-level", "info", "log level")
	cli.Parse(fs, args)
	log := cli.Logger(*level)
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: server record --image NAME --duration 30s [--input FILE] --out DIR")
		os.Exit(cli.ExitError)
	}
	img, err := images.Lookup(*image)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	dm, ok := abi.ParseDiskMode(*diskMode)
	if !ok || dm == abi.DiskNone {
		cli.Fail(log, cli.ExitError, fmt.Errorf("--disk-mode %q: want snapshotted or replayed", *diskMode))
	}
	var evs []inputscript.Timed
	if *input != "" {
		if evs, err = inputscript.ParseFile(*input); err != nil {
			cli.Fail(log, cli.ExitError, err)
		}
	}
	if *randomRate > 0 {
		evs = append(evs, inputscript.Random(*seed, *duration, *randomRate, []string{"alice", "bob"}, img.Width, img.Height)...)
		slices.SortStableFunc(evs, func(a, b inputscript.Timed) int { return cmp.Compare(a.At, b.At) })
	}
	opt := recorder.Options{
		Image: img, Out: *out, Duration: *duration, Input: evs, SnapshotEvery: *snapEvery,
		Realtime: *realtime, DiskMode: dm, CheckpointEvery: *checkpoint, Log: log,
		ProgressEvery: 5 * time.Second,
		Progress: func(p recorder.Progress) {
			log.Info().Uint64("tick", p.Ticks).Uint64("of", p.TotalTicks).Int64("log_bytes", p.LogBytes).
				Str("done", fmt.Sprintf("%.0f%%", 100*float64(p.Ticks)/float64(max(p.TotalTicks, 1)))).Msg("recording")
		},
	}
	if *console {
		opt.Console = os.Stderr
	}
	res, err := recorder.Run(ctx, opt)
	if err != nil {
		cli.Fail(log, exitCode(err), err)
	}
	log.Info().Str("out", res.Out).Uint64("steps", res.Steps).Int64("log_bytes", res.LogBytes).Msg("recorded")
	cli.PrintJSON(res)
}

// serveCmd runs the product: each image live as a session (recorded into a
// session directory, continued if --data already holds one), the sessions'
// relay endpoint on a loopback port of its own, and the embedded relay on
// --listen with one link per role.
func serveCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	image := fs.String("image", "desk", "guest image to run, or several comma-separated (one session each): "+strings.Join(images.Names(), ", "))
	data := fs.String("data", "", "session directory: recorded into, or continued if it already holds a session; with several images, the directory holding one per image (default: a new one under the user cache directory)")
	displayMode := fs.String("display", "lossy", "display mode tiles: lossy (JPEG q79 4:4:4) or lossless")
	controlMode := fs.String("control", "shared", "control mode: shared (owners and controllers type at once) or exclusive (one holder; request, grant, revoke)")
	keyFile := fs.String("key-file", "", "token signing key (created if missing); default: a new key each run, so old links stop working")
	level := fs.String("log-level", "info", "log level")
	cli.Parse(fs, args)
	log := cli.Logger(*level)
	if fs.NArg() > 0 {
		cli.Fail(log, cli.ExitError, fmt.Errorf("unknown command %q (commands: record, serve, end; no command runs the server)", fs.Arg(0)))
	}
	if *controlMode != "shared" && *controlMode != "exclusive" {
		cli.Fail(log, cli.ExitError, fmt.Errorf("--control %q: want shared or exclusive", *controlMode))
	}
	if *displayMode != "lossy" && *displayMode != "lossless" {
		cli.Fail(log, cli.ExitError, fmt.Errorf("--display %q: want lossy or lossless", *displayMode))
	}
	var imgs []images.Image
	for _, name := range strings.Split(*image, ",") {
		img, err := images.Lookup(strings.TrimSpace(name))
		if err != nil {
			cli.Fail(log, cli.ExitError, err)
		}
		imgs = append(imgs, img)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := *data
	if dir == "" {
		dir = filepath.Join(base, "replaydesk", "sessions", time.Now().UTC().Format("20060102-150405"))
	}
	key, err := loadKey(*keyFile)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	store, err := pagestore.OpenDir(filepath.Join(base, "replaydesk", "pagestore"))
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil && !flagSet(fs, "listen") {
		// The default port is taken: any free port will do.
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	reg := metrics.NewRegistry()
	// The sessions' own endpoint (relays' upstream, page service) stays on
	// loopback: people reach it through a relay. Pages and manifests come
	// from the one page store every session publishes into.
	imux := http.NewServeMux()
	imux.Handle("/metrics", reg.Handler())
	var sessions []*session.Session
	for _, img := range imgs {
		sdir, sreg := dir, reg
		if len(imgs) > 1 {
			sdir = filepath.Join(dir, img.Name)
			sreg = reg.With(`session="` + img.Name + `"`)
		}
		if err := verifyToContinue(sdir); err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		sess, err := session.Open(ctx, session.Options{
			Image: img, Dir: sdir, Key: key, Store: store, Lossless: *displayMode == "lossless",
			Exclusive: *controlMode == "exclusive", Metrics: sreg, Log: log,
		})
		if err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		h := sess.Handler()
		imux.Handle("/upstream/"+sess.ID(), h)
		imux.Handle("/sessions/"+sess.ID()+"/", h)
		if len(sessions) == 0 {
			imux.Handle("/", h) // /pages, /manifests: the shared store
		}
		sessions = append(sessions, sess)
	}
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	isrv := &http.Server{Handler: imux, ReadHeaderTimeout: 10 * time.Second}
	go isrv.Serve(iln)
	defer isrv.Close()
	upstream := "http://" + iln.Addr().String()
	log.Info().Str("upstream", upstream).Int("sessions", len(sessions)).Msg("session endpoint")

	stopRelay, err := startEmbeddedRelay(ln, upstream, key, reg, log)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	defer stopRelay()

	exp := time.Now().Add(7 * 24 * time.Hour)
	ended := make(chan struct{}, len(sessions))
	for _, sess := range sessions {
		running := sess.Ready().Dir.Meta.Image // a continued session runs its own image
		fmt.Printf("replaydesk: session %q (%s) is live\n", sess.ID(), running)
		for _, role := range token.Roles {
			t := token.Sign(key, token.Claims{Session: sess.ID(), Role: role, Expiry: exp})
			fmt.Printf("%s: http://%s/s/%s?t=%s\n", role, ln.Addr(), sess.ID(), t)
		}
		go func() { <-sess.Done(); ended <- struct{}{} }()
	}
	fmt.Printf("upstream: %s (for `go run ./relay --upstream`; loopback only)\n", upstream)
	log.Info().Str("listen", ln.Addr().String()).Str("recording", dir).Msg("serving")
	select {
	case <-ctx.Done():
	case <-ended:
	}
	// The sessions stop first (their last blocks and a shutdown Error go to
	// the relay); the deferred relay stop then drains them to the clients.
	failed := false
	for _, sess := range sessions {
		res, err := sess.Close()
		if err != nil {
			log.Error().Err(err).Str("session", sess.ID()).Msg("stopping the session")
			failed = true
			continue
		}
		log.Info().Str("session", sess.ID()).Uint64("steps", res.Steps).Int("input_events", res.InputEvents).
			Int64("log_bytes", res.LogBytes).Msg("session stopped; continue it with --data " + dir)
	}
	if failed {
		stopRelay()
		os.Exit(cli.ExitError)
	}
}

// startEmbeddedRelay serves people on ln: a relay (relay/hub) whose
// upstream is this process's session endpoint, with the web app for
// browsers and the metrics of both.
func startEmbeddedRelay(ln net.Listener, upstream string, key []byte, reg *metrics.Registry, log zerolog.Logger) (stop func(), err error) {
	h, err := hub.New(hub.Options{Upstream: upstream, Key: key, Web: web.Handler(), Metrics: reg,
		Log: log.With().Str("part", "relay").Logger()})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	mux.Handle("/", h.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error().Err(err).Msg("serving")
		}
	}()
	return func() {
		// The sessions have stopped: let their last blocks and shutdown
		// Errors reach the clients before the relay goes.
		h.Drain(2 * time.Second)
		h.Close()
		srv.Close()
	}, nil
}

// loadKey reads the token key from path, creating it there if missing; an
// empty path makes a fresh key.
func loadKey(path string) ([]byte, error) {
	if path == "" {
		return token.NewKey(), nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := token.NewKey()
		return k, os.WriteFile(path, k, 0o600)
	}
	if err != nil {
		return nil, err
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("--key-file %s: %d bytes is too short for a key", path, len(b))
	}
	return b, nil
}

// endCmd seals stopped live sessions (a stopped session is left open so
// that `server --data DIR` continues it). Sealing is for good, so every
// directory is verified first, snapshots included: a damaged one is refused
// (exit 2) and nothing is sealed.
func endCmd(args []string) {
	log := cli.Logger("info")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: server end SESSION_DIR...")
		os.Exit(cli.ExitError)
	}
	for _, dir := range args {
		d, err := sessiondir.Open(dir)
		if err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		sealed, err := d.Verify()
		if err != nil {
			cli.Fail(log, exitCode(err), fmt.Errorf("not sealing %s: %w", dir, err))
		}
		if sealed {
			cli.Fail(log, cli.ExitError, fmt.Errorf("%s has already ended (its log is sealed)", dir))
		}
	}
	for _, dir := range args {
		if err := recorder.Seal(dir); err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		log.Info().Str("session", dir).Msg("sealed: replay it with: go run ./client replay " + dir)
	}
}

// verifyToContinue reads the whole log of a session directory the server is
// about to continue (nothing to do for a new one): the restart replays only
// from the newest snapshot, and damage before it must not go unnoticed.
func verifyToContinue(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "session.json")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	d, err := sessiondir.Open(dir)
	if err != nil {
		return err
	}
	_, err = d.VerifyLog()
	return err
}

// exitCode is shared/cli's contract for err, a divergence included.
func exitCode(err error) int {
	var dv *machine.Divergence
	if errors.As(err, &dv) {
		return cli.ExitDivergence
	}
	return cli.ExitCode(err)
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// serveSessionsCmd serves recorded session directories over HTTP: their
// files, log segments and snapshot pages (the page service), for
// `client replay http://ADDR/sessions/ID`.
func serveSessionsCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("server serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	storeDir := fs.String("store", "", "page store directory (default: under the user cache directory)")
	level := fs.String("log-level", "info", "log level")
	cli.Parse(fs, args)
	log := cli.Logger(*level)
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: server serve [--listen ADDR] [--store DIR] SESSION_DIR...")
		os.Exit(cli.ExitError)
	}
	if *storeDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		*storeDir = filepath.Join(base, "replaydesk", "pagestore")
	}
	store, err := pagestore.OpenDir(*storeDir)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	srv := sessionhttp.New(store, log)
	var ids []string
	for _, dir := range fs.Args() {
		t0 := time.Now()
		// Replayers check what they fetch, but a session served damaged
		// would fail every one of them: refuse it here (exit 2).
		d, err := sessiondir.Open(dir)
		if err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		sealed, err := d.VerifyLog() // the snapshots are read (and checked) by Add
		if err != nil {
			cli.Fail(log, exitCode(err), fmt.Errorf("not serving %s: %w", dir, err))
		}
		if !sealed {
			log.Warn().Str("dir", dir).Msg("the session's log is not sealed (a stopped live session?): replays end with exit 2; seal it with `server end`")
		}
		id, err := srv.Add(dir)
		if err != nil {
			cli.Fail(log, exitCode(err), err)
		}
		log.Info().Str("session", id).Str("dir", dir).Dur("publish", time.Since(t0)).Msg("published")
		ids = append(ids, id)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	for _, id := range ids {
		fmt.Printf("session %s: http://%s/sessions/%s\n", id, ln.Addr(), id)
	}
	<-ctx.Done()
	hs.Close()
}
