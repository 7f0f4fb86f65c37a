// Command attack runs the hostile load of the abuse-and-soak suite (issue 9)
// against a relay on this machine: connections that say Hello and never
// read, display connections flooding Input, joins with one link, and page
// GETs under distinct URLs, all at once, for a bounded time. It refuses
// targets off the loopback interface and stops by itself.
//
//	attack -ws ws://127.0.0.1:PORT/ws/SESSION -base http://127.0.0.1:PORT -token DISPLAYTOKEN \
//	    [-silent 2000] [-flood 200 -rate 385 -events 256] [-joins 2000] \
//	    [-pages 100000 -page-token VIEWERTOKEN] [-duration 60s]
//
// It prints "attack: ready" once the silent and flooding connections are
// open, and a JSON summary of what it saw when it stops.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"replaydesk/e2e/internal/attack"
)

// summary is what the command prints at the end.
type summary struct {
	Silent *attack.HostileResult `json:"silent,omitempty"`
	Flood  *attack.HostileResult `json:"flood,omitempty"`
	Joins  *attack.JoinResult    `json:"joins,omitempty"`
	Pages  *attack.PageResult    `json:"pages,omitempty"`
	WallS  float64               `json:"wall_s"`
}

func main() {
	ws := flag.String("ws", "", "the relay's WebSocket URL for the session (ws://127.0.0.1:PORT/ws/SESSION)")
	base := flag.String("base", "", "the relay's base URL, for page GETs (http://127.0.0.1:PORT)")
	tok := flag.String("token", "", "the link's token (a display link is enough)")
	silent := flag.Int("silent", 0, "connections that say Hello and never read (finding 4)")
	flood := flag.Int("flood", 0, "display connections flooding Input (finding 5)")
	rate := flag.Float64("rate", 385, "Input messages a second per flooding connection")
	events := flag.Int("events", 256, "text events per flooding Input")
	text := flag.String("text", "floodtxt", "each flooding text event's text")
	joins := flag.Int("joins", 0, "joins with the link, each leaving after its Welcome (finding 1)")
	joinPar := flag.Int("join-parallel", 8, "joins in flight at once")
	pages := flag.Int("pages", 0, "page GETs under distinct URLs, no token (finding 2)")
	pad := flag.Int("pad", 8000, "bytes of padding in each page URL")
	pageTok := flag.String("page-token", "", "bearer token of the page GETs (empty: none)")
	dur := flag.Duration("duration", 60*time.Second, "how long the silent and flooding connections stay (the joins and GETs stop then too)")
	flag.Parse()
	for _, u := range []string{*ws, *base} {
		if u == "" {
			continue
		}
		if err := attack.CheckLoopback(u); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *ws == "" && (*silent > 0 || *flood > 0 || *joins > 0) || *base == "" && *pages > 0 {
		fmt.Fprintln(os.Stderr, "attack: -ws (and -base for -pages) required")
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	var s summary
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	if *silent > 0 {
		ready.Add(1)
		run(func() {
			r := attack.Silent(ctx, *ws, *tok, *silent, 32, ready.Done)
			s.Silent = &r
		})
	}
	if *flood > 0 {
		ready.Add(1)
		msg := attack.FloodInput(*events, *text)
		run(func() {
			r := attack.Flood(ctx, *ws, *tok, *flood, *rate, msg, ready.Done)
			s.Flood = &r
		})
	}
	if *joins > 0 {
		run(func() {
			r := attack.Joins(ctx, *ws, *tok, *joins, *joinPar)
			s.Joins = &r
		})
	}
	if *pages > 0 {
		run(func() {
			r := attack.Pages(ctx, *base, *pageTok, *pages, *pad, 16)
			s.Pages = &r
		})
	}
	go func() {
		ready.Wait()
		fmt.Printf("attack: ready after %.1f s\n", time.Since(start).Seconds())
	}()
	wg.Wait()
	s.WallS = time.Since(start).Seconds()
	b, _ := json.Marshal(s)
	fmt.Println(strings.TrimSpace(string(b)))
}
