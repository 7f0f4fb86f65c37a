// Package cli holds what the project's commands share: structured logging
// set-up, printing one JSON result, and exit codes. It must not know any
// command's work.
//
// Every command (server, server record, server serve, server end, client
// LINK, client replay, relay) exits with one of these codes:
//
//	0  ExitOK          the work is done (or the command was asked to stop)
//	1  ExitError       bad usage, an unreadable input, a refusal, anything else
//	2  ExitCorrupt     a corrupt, truncated or foreign log or snapshot (or the
//	                   session directory that indexes them)
//	3  ExitDivergence  a replay did not match its log
//
// and prints on stderr a line naming the problem. ExitCode maps an error to
// its code: errors that mean damaged data say so by a Corrupt method, so
// this package needs no other package's error types.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// Exit codes of every replaydesk command.
const (
	ExitOK         = 0
	ExitError      = 1 // bad usage, unreadable input, anything else
	ExitCorrupt    = 2 // a corrupt, truncated or foreign log or snapshot
	ExitDivergence = 3 // a replay did not match its log
)

// Corrupter is implemented by errors that mean a log or snapshot is
// corrupt, truncated or foreign (recordlog's and snapshot's errors,
// sessiondir's). Corrupt reports true for those.
type Corrupter interface {
	error
	Corrupt() bool
}

// ExitCode is the exit code for err: ExitOK for nil, ExitCorrupt when an
// error in its chain is a Corrupter saying so, ExitError otherwise. A
// command that replays checks for a divergence itself (ExitDivergence)
// before falling back to this.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if IsCorrupt(err) {
		return ExitCorrupt
	}
	return ExitError
}

// IsCorrupt reports whether some error in err's chain is a Corrupter that
// says its data is corrupt.
func IsCorrupt(err error) bool {
	var c Corrupter
	return errors.As(err, &c) && c.Corrupt()
}

// Parse parses args into fs, which must have been made with
// flag.ContinueOnError, and exits the contract's way: 0 for -h/-help, 1
// (ExitError, bad usage) for a bad flag, after the flag package printed the
// problem and the usage. (flag.ExitOnError would exit 2, which means
// corrupt data here.)
func Parse(fs *flag.FlagSet, args []string) {
	err := fs.Parse(args)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(ExitOK)
	default:
		os.Exit(ExitError)
	}
}

// Logger returns a zerolog logger on stderr: human-readable on a terminal,
// JSON lines otherwise (for machines and CI logs). level is a zerolog level
// name ("info", "debug", ...). It also becomes zerolog's global logger,
// which libraries without a logger of their own write to (recordlog.Resume's
// warnings about what it cuts).
func Logger(level string) zerolog.Logger {
	var w io.Writer = os.Stderr
	if isatty.IsTerminal(os.Stderr.Fd()) {
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}
	}
	lv, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lv = zerolog.InfoLevel
	}
	l := zerolog.New(w).Level(lv).With().Timestamp().Logger()
	zlog.Logger = l
	return l
}

// PrintJSON writes v as one JSON object on a line of stdout.
func PrintJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "internal error: encoding result:", err)
		os.Exit(ExitError)
	}
	os.Stdout.Write(append(b, '\n'))
}

// Fail prints an error the way every command does and exits with code.
func Fail(log zerolog.Logger, code int, err error) {
	log.Error().Err(err).Msg("failed")
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(code)
}
