// Command relay fans a replaydesk session out to many clients: one upstream
// connection per session (to a server or a parent relay), a bounded queue
// per client, a pull-through page cache, and /metrics.
//
//	go run ./relay --upstream http://127.0.0.1:8080 --listen 127.0.0.1:8090
//
// See README.md. This file only parses flags; the work is in relay/hub.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"replaydesk/relay/hub"
	"replaydesk/shared/cli"
	"replaydesk/shared/metrics"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	upstream := fs.String("upstream", "", "base URL of the server or parent relay, e.g. http://127.0.0.1:8080 (required)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve clients on")
	keyFile := fs.String("key-file", "", "the server's token key file (raw, as the server writes it, or hex); clients' tokens are checked here")
	keyHex := fs.String("key", "", "the token key in hex (prefer --key-file: flags are visible to other users)")
	tok := fs.String("token", "", "relay token for the upstream (default: signed with the key)")
	var origins multi
	fs.Var(&origins, "allow-origin", "host pattern (e.g. 'example.com:*') whose pages may connect; repeatable")
	maxClients := fs.Int("max-clients", 5000, "most downstream connections")
	connsPerToken := fs.Int("conns-per-token", 500, "most connections open at once with one token (a link may be shared)")
	joinsPerMinute := fs.Int("joins-per-minute", 600, "most Hellos a minute with one token")
	tokenMsgRate := fs.Int("token-msg-rate", 4000, "most messages a second from all the connections of one token")
	cacheDir := fs.String("cache-dir", "", "keep cached pages on disk here too (default: memory only)")
	level := fs.String("log-level", "info", "log level")
	cli.Parse(fs, os.Args[1:]) // a bad flag exits 1 (bad usage), not flag's 2
	log := cli.Logger(*level)
	if *upstream == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: relay --upstream http://HOST:PORT (--key-file F | --key HEX) [--listen ADDR] [--token T] [--allow-origin P]... [--max-clients N] [--cache-dir DIR]")
		os.Exit(cli.ExitError)
	}
	key, err := readKey(*keyFile, *keyHex)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	if key == nil {
		// Without the key the relay cannot check a token, and would stream
		// the log (every key typed) to anyone who connects.
		cli.Fail(log, cli.ExitError, errors.New("no token key: give --key-file F (the server's key file) or --key HEX; a relay must check every client's token"))
	}
	reg := metrics.NewRegistry()
	h, err := hub.New(hub.Options{
		Upstream: *upstream, Key: key, UpstreamToken: *tok, AllowOrigins: origins,
		MaxClients: *maxClients, ConnsPerToken: *connsPerToken, JoinsPerMinute: *joinsPerMinute, TokenMsgRate: *tokenMsgRate,
		CacheDir: *cacheDir, Log: log, Metrics: reg,
	})
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	mux.Handle("/", h.Handler())
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		cli.Fail(log, cli.ExitError, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		h.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info().Str("listen", "http://"+ln.Addr().String()).Str("upstream", *upstream).Msg("relay serving")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		cli.Fail(log, cli.ExitError, err)
	}
}

func readKey(file, hexKey string) ([]byte, error) {
	if file != "" && hexKey != "" {
		return nil, errors.New("give --key-file or --key, not both")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		// The server's --key-file holds the raw key; a hex text file works too.
		if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) >= 16 {
			return k, nil
		}
		if len(b) < 16 {
			return nil, fmt.Errorf("--key-file %s: %d bytes is too short for a key", file, len(b))
		}
		return b, nil
	}
	if hexKey == "" {
		return nil, nil
	}
	k, err := hex.DecodeString(hexKey)
	if err != nil || len(k) < 16 {
		return nil, errors.New("the token key must be at least 16 bytes in hex")
	}
	return k, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
