// Command client is the native replay client.
//
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
	"os/signal"
	"syscall"
	"time"

	"replaydesk/client/internal/replayer"
	"replaydesk/shared/cli"
	"replaydesk/shared/machine"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

func main() {
	machine.RunPageServerIfChild() // this binary is also the lazy-restore page server
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprintln(os.Stderr, "usage: client replay DIR [--from-snapshot N] [--frames OUTDIR --every K]")
		os.Exit(cli.ExitError)
	}
	replayCmd(ctx, args[1:])
}

func replayCmd(ctx context.Context, args []string) {
	fs := flag.NewFlagSet("client replay", flag.ExitOnError)
	from := fs.Int("from-snapshot", 0, "start at snapshot N (1 is the first) instead of the beginning")
	lazy := fs.Bool("lazy", false, "with --from-snapshot, fill memory on first touch (userfaultfd page server) instead of copying it first")
	readahead := fs.Int("readahead", machine.DefaultReadahead, "with --lazy, pages filled after each faulting page")
	frames := fs.String("frames", "", "write frames as PNG into this directory")
	every := fs.Uint64("every", 1, "with --frames, write every K-th step's frame")
	console := fs.Bool("console", false, "show the guest's console output on stderr")
	cacheDir := fs.String("cache-dir", "", "for a session URL: where mirrored sessions and the page cache live (default: the user cache directory)")
	level := fs.String("log-level", "info", "log level")
	// Accept flags before and after DIR.
	fs.Parse(args)
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(os.Stderr, "usage: client replay DIR|http://HOST/sessions/ID [--from-snapshot N [--lazy]] [--frames OUTDIR --every K]")
		os.Exit(cli.ExitError)
	}
	dir := rest[0]
	fs.Parse(rest[1:])
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
		code := cli.ExitError
		var ce *recordlog.CorruptError
		var lm *recordlog.ModuleMismatchError
		var sm *snapshot.ModuleMismatchError
		if errors.As(err, &ce) || errors.As(err, &lm) || errors.As(err, &sm) ||
			errors.Is(err, recordlog.ErrUnsealed) || errors.Is(err, snapshot.ErrCorrupt) {
			code = cli.ExitCorrupt
		}
		if res != nil {
			cli.PrintJSON(res)
		}
		cli.Fail(log, code, err)
	}
	cli.PrintJSON(res)
	if res.Divergences > 0 {
		fmt.Fprintln(os.Stderr, "divergence:", res.Divergence)
		os.Exit(cli.ExitDivergence)
	}
}
