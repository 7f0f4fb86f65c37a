// Command client is the native replay client.
//
//	go run ./client URL             join a live session (its link: http://HOST:PORT/s/SESSION?t=TOKEN)
//	go run ./client replay DIR      replay a recorded session and check it
//
// See README.md. This file only parses flags; the work is in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"replaydesk/client/internal/live"
	"replaydesk/client/internal/localview"
	"replaydesk/client/internal/replayer"
	"replaydesk/shared/cli"
	"replaydesk/shared/inputscript"
	"replaydesk/shared/machine"
	"replaydesk/shared/wire"

	"github.com/rs/zerolog"
)

func main() {
	machine.RunPageServerIfChild() // this binary is also the lazy-restore page server
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "replay" {
		replayCmd(ctx, args[1:])
		return
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: client URL [--mode auto|display|replay] [--headless] [--stats FILE] [--name NAME] [--cache-dir DIR] [--lazy]\n       client replay DIR [--from-snapshot N] [--frames OUTDIR --every K]")
		os.Exit(cli.ExitError)
	}
	liveCmd(ctx, args)
}

func liveCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	mode := fs.String("mode", "auto", "auto (the mode controller decides), display or replay (pinned)")
	headless := fs.Bool("headless", false, "no local browser view (benchmarks with many clients)")
	statsPath := fs.String("stats", "", "write one JSON line of statistics a second to this file")
	name := fs.String("name", "", "the name others see (default: the user name)")
	cacheDir := fs.String("cache-dir", "", "page cache and kept modules (default: the user cache directory)")
	lazy := fs.Bool("lazy", false, "restore snapshots lazily (memory filled on first touch) where the host allows")
	listen := fs.String("listen", "127.0.0.1:0", "the local view's address")
	noOpen := fs.Bool("no-open", false, "print the local view's URL without opening a browser")
	input := fs.String("input", "", "send this input script (JSON Lines, as `server record --input`) as live input, timed from joining")
	level := fs.String("log-level", "info", "log level")
	cli.Parse(fs, args)
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "usage: client URL [flags]")
		os.Exit(cli.ExitError)
	}
	link := rest[0]
	cli.Parse(fs, rest[1:]) // flags after the URL too
	log := cli.Logger(*level)
	if fs.NArg() > 0 {
		cli.Fail(log, cli.ExitError, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	l, err := live.ParseLink(link)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	want, ok := map[string]wire.Mode{"auto": wire.ModeAuto, "display": wire.ModeDisplay, "replay": wire.ModeReplay}[*mode]
	if !ok {
		cli.Fail(log, cli.ExitError, fmt.Errorf("--mode %q: want auto, display or replay", *mode))
	}
	if *name == "" {
		if u, err := user.Current(); err == nil {
			*name = u.Username
		}
	}
	if len(*name) > wire.MaxName {
		*name = (*name)[:wire.MaxName]
	}
	o := live.Options{Link: l, Want: want, Name: *name, CacheDir: *cacheDir, Lazy: *lazy, Headless: *headless, Log: log}
	if *statsPath != "" {
		f, err := os.Create(*statsPath)
		if err != nil {
			cli.Fail(log, cli.ExitError, err)
		}
		defer f.Close()
		o.Stats = f
	}
	c, err := live.New(o)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	if !*headless {
		v, err := localview.Start(c, localview.Options{Addr: *listen, Session: l.Session, App: webApp(), Log: log})
		if err != nil {
			cli.Fail(log, cli.ExitError, fmt.Errorf("the local view: %w", err))
		}
		defer v.Close()
		fmt.Fprintln(os.Stderr, "local view:", v.URL())
		if !*noOpen {
			openBrowser(v.URL(), log)
		}
	}
	if *input != "" {
		evs, err := inputscript.ParseFile(*input)
		if err != nil {
			cli.Fail(log, cli.ExitError, err)
		}
		go playScript(ctx, c, evs, log)
	}
	if err := c.Run(ctx); err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
}

// openBrowser opens url with xdg-open where there is one; otherwise the
// printed URL is all.
func openBrowser(url string, log zerolog.Logger) {
	p, err := exec.LookPath("xdg-open")
	if err != nil {
		return
	}
	cmd := exec.Command(p, url)
	if err := cmd.Start(); err != nil {
		log.Debug().Err(err).Msg("xdg-open")
		return
	}
	go cmd.Wait()
}

func replayCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("client replay", flag.ContinueOnError)
	from := fs.Int("from-snapshot", 0, "start at snapshot N (1 is the first) instead of the beginning")
	lazy := fs.Bool("lazy", false, "with --from-snapshot, fill memory on first touch (userfaultfd page server) instead of copying it first")
	readahead := fs.Int("readahead", machine.DefaultReadahead, "with --lazy, pages filled after each faulting page")
	frames := fs.String("frames", "", "write frames as PNG into this directory")
	every := fs.Uint64("every", 1, "with --frames, write every K-th step's frame")
	console := fs.Bool("console", false, "show the guest's console output on stderr")
	cacheDir := fs.String("cache-dir", "", "for a session URL: where mirrored sessions and the page cache live (default: the user cache directory)")
	level := fs.String("log-level", "info", "log level")
	// Accept flags before and after DIR.
	cli.Parse(fs, args)
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "usage: client replay DIR|http://HOST/sessions/ID [--from-snapshot N [--lazy]] [--frames OUTDIR --every K]")
		os.Exit(cli.ExitError)
	}
	dir := rest[0]
	cli.Parse(fs, rest[1:])
	log := cli.Logger(*level)
	if fs.NArg() > 0 {
		cli.Fail(log, cli.ExitError, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	opt := replayer.Options{Dir: dir, CacheDir: *cacheDir, FromSnapshot: *from, Lazy: *lazy, Readahead: *readahead,
		FramesDir: *frames, FramesEvery: *every, Log: log,
		ProgressEvery: 5 * time.Second,
		Progress:      func(t uint64) { log.Info().Uint64("tick", t).Msg("replaying") },
	}
	if *console {
		opt.Console = os.Stderr
	}
	res, err := replayer.Run(ctx, opt)
	if err != nil {
		if res != nil {
			cli.PrintJSON(res)
		}
		code := cli.ExitCode(err) // a corrupt, truncated or foreign log or snapshot: 2
		var dv *machine.Divergence
		if errors.As(err, &dv) {
			code = cli.ExitDivergence
		}
		cli.Fail(log, code, err)
	}
	cli.PrintJSON(res)
	if res.Divergences > 0 {
		fmt.Fprintln(os.Stderr, "divergence:", res.Divergence)
		os.Exit(cli.ExitDivergence)
	}
}
