// Package cli holds what the project's commands share: structured logging
// set-up, printing one JSON result, and exit codes. It must not know any
// command's work.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Exit codes of every replaydesk command.
const (
	ExitOK         = 0
	ExitError      = 1 // bad usage, unreadable input, anything else
	ExitCorrupt    = 2 // a corrupt, truncated or foreign log or snapshot
	ExitDivergence = 3 // a replay did not match its log
)

// Logger returns a zerolog logger on stderr: human-readable on a terminal,
// JSON lines otherwise (for machines and CI logs). level is a zerolog level
// name ("info", "debug", ...).
func Logger(level string) zerolog.Logger {
	var w io.Writer = os.Stderr
	if isatty.IsTerminal(os.Stderr.Fd()) {
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}
	}
	lv, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lv = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lv).With().Timestamp().Logger()
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
