// Package attack is the hostile side of the abuse-and-soak suite (issue 9):
// each function runs one of the attacks against a live relay, with
// the project's own wire packages, and returns what it saw. Every attack is
// bounded (a count or the context's deadline, whichever ends first) and
// refuses any target that is not on the loopback interface, so the tool
// cannot be pointed at somebody else's machine by mistake.
//
// It knows the wire protocol and the relay's routes, nothing of how the
// server or the relay are built: what it reports is what a stranger sees.
package attack

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"nhooyr.io/websocket"

	"replaydesk/shared/abi"
	"replaydesk/shared/pagestore"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Caps are the capabilities the attack's clients announce: a display
// viewer's (the cheapest link to get, and the one the attacks use).
const Caps = wire.CapDisplay | wire.CapZlib | wire.CapPalette | wire.CapJPEG | wire.CapPNG

// CheckLoopback refuses a URL whose host is not a loopback address.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("attack: %s is not a loopback address: this tool only attacks this machine", host)
	}
	return nil
}

// Outcome is how one connection's Hello ended.
type Outcome struct {
	Welcome *wire.Welcome // nil if refused or failed
	Error   *wire.Error   // the wire Error it got instead
	Err     error         // dial, read or timeout failure
	Took    time.Duration // from dialling to the Welcome or Error
}

// String is a short reason for reports.
func (o Outcome) String() string {
	switch {
	case o.Welcome != nil:
		return fmt.Sprintf("welcome (user %d)", o.Welcome.User)
	case o.Error != nil:
		return fmt.Sprintf("error %d: %s", o.Error.Code, o.Error.Text)
	default:
		return fmt.Sprintf("failed: %v", o.Err)
	}
}

// Hello dials ws (a relay's /ws/SESSION), says Hello with tok and waits for
// the Welcome or an Error; the connection is returned open only on a
// Welcome (the caller closes it).
func Hello(ctx context.Context, ws, tok string, want wire.Mode, caps uint64, name string) (*wsconn.Conn, Outcome) {
	start := time.Now()
	if err := CheckLoopback(ws); err != nil {
		return nil, Outcome{Err: err}
	}
	c, err := wsconn.Dial(ctx, ws)
	if err != nil {
		return nil, Outcome{Err: err, Took: time.Since(start)}
	}
	if err := c.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: caps, Token: tok, Want: want, Name: name}); err != nil {
		c.CloseNow()
		return nil, Outcome{Err: err, Took: time.Since(start)}
	}
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			c.CloseNow()
			return nil, Outcome{Err: err, Took: time.Since(start)}
		}
		switch m := m.(type) {
		case *wire.Welcome:
			return c, Outcome{Welcome: m, Took: time.Since(start)}
		case *wire.Error:
			c.CloseNow()
			return nil, Outcome{Error: m, Took: time.Since(start)}
		}
	}
}

// JoinResult is what Joins saw.
type JoinResult struct {
	Accepted int            `json:"accepted"`
	Refused  map[string]int `json:"refused"` // by the Error's text (first 60 bytes)
	Failed   int            `json:"failed"`
	LastErr  string         `json:"last_err,omitempty"`
	MaxUser  uint16         `json:"max_user"` // the highest user number a Welcome gave
}

// Joins is finding 1: n joins with one link (a display link is enough),
// parallel at a time, each leaving right after its Welcome. Every join the
// server answers with a fresh user number brings the session closer to the
// last one (65,535), after which nobody gets in.
func Joins(ctx context.Context, ws, tok string, n, parallel int) JoinResult {
	res := JoinResult{Refused: map[string]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c, o := Hello(hctx, ws, tok, wire.ModeDisplay, Caps, "joiner")
				cancel()
				if c != nil {
					c.Close("bye")
				}
				mu.Lock()
				switch {
				case o.Welcome != nil:
					res.Accepted++
					res.MaxUser = max(res.MaxUser, o.Welcome.User)
				case o.Error != nil:
					res.Refused[cut(o.Error.Text, 60)]++
				default:
					res.Failed++
					res.LastErr = o.Err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}

// PageResult is what Pages saw.
type PageResult struct {
	Requests int         `json:"requests"`
	Status   map[int]int `json:"status"` // HTTP status → count
	Failed   int         `json:"failed"`
	LastErr  string      `json:"last_err,omitempty"`
}

// Pages is finding 2: n GETs under n distinct URLs, half the zero page
// with a varying query (/pages/ZERO?i=N&pad=<pad bytes>), half distinct
// canonical names of pages that exist nowhere, parallel at a time, with tok
// as a bearer token unless it is empty. A cache keyed by the raw URL, or
// one that keeps misses, stores each as a new entry.
func Pages(ctx context.Context, base, tok string, n, pad, parallel int) PageResult {
	res := PageResult{Status: map[int]int{}}
	if err := CheckLoopback(base); err != nil {
		res.LastErr = err.Error()
		return res
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	padding := strings.Repeat("p", pad)
	zero := pagestore.ZeroHash.String()
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				// Half vary the query string of a page that exists (the
				// original attack), half name distinct canonical pages that
				// exist nowhere (a cache must not keep misses either).
				url := fmt.Sprintf("%s/pages/%s?i=%d&pad=%s", base, zero, i, padding)
				if i%2 == 0 {
					url = fmt.Sprintf("%s/pages/%x", base, sha256.Sum256(fmt.Append(nil, i)))
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				r, err := hc.Do(req)
				mu.Lock()
				res.Requests++
				if err != nil {
					res.Failed++
					res.LastErr = err.Error()
				} else {
					res.Status[r.StatusCode]++
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	hc.CloseIdleConnections()
	return res
}

// KeylessResult is what a relay Hello with no token got.
type KeylessResult struct {
	Welcome   bool   `json:"welcome"`
	Snapshots int    `json:"snapshots"`  // SnapshotAnnounce messages
	LogBlocks int    `json:"log_blocks"` // LogBlock messages
	LogBytes  int    `json:"log_bytes"`
	Error     string `json:"error,omitempty"` // the wire Error, or why the connection ended
}

// KeylessRelay is finding 3: Hello{caps: CapRelay, token: ""} on
// base/upstream/SESSION, then reads for listen: a relay that serves it
// streams the session's log (every keystroke) to anyone.
func KeylessRelay(ctx context.Context, base, session string, listen time.Duration) KeylessResult {
	var res KeylessResult
	ws := strings.Replace(base, "http", "ws", 1) + "/upstream/" + session
	if err := CheckLoopback(ws); err != nil {
		res.Error = err.Error()
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, listen)
	defer cancel()
	c, err := wsconn.Dial(ctx, ws)
	if err != nil {
		res.Error = "dial: " + err.Error()
		return res
	}
	defer c.CloseNow()
	if err := c.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapRelay | wire.CapReplay | wire.CapDisplay, Token: "", Name: "keyless"}); err != nil {
		res.Error = "send: " + err.Error()
		return res
	}
	for {
		m, _, err := c.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil {
				res.Error = err.Error()
			}
			return res
		}
		switch m := m.(type) {
		case *wire.Welcome:
			res.Welcome = true
		case *wire.SnapshotAnnounce:
			res.Snapshots++
		case *wire.LogBlock:
			res.LogBlocks++
			res.LogBytes += len(m.Block)
		case *wire.Error:
			res.Error = fmt.Sprintf("error %d: %s", m.Code, m.Text)
			return res
		}
	}
}

// Forged says Hello with each token of cases (name → token) and returns
// each outcome.
func Forged(ctx context.Context, ws string, cases map[string]string) map[string]Outcome {
	out := map[string]Outcome{}
	for name, tok := range cases {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, o := Hello(hctx, ws, tok, wire.ModeDisplay, Caps, "forger")
		cancel()
		if c != nil {
			c.Close("bye")
		}
		out[name] = o
	}
	return out
}

// HostileResult is what Silent and Flood saw.
type HostileResult struct {
	Connected int            `json:"connected"` // dialled and said Hello
	DialErr   int            `json:"dial_errors"`
	LastErr   string         `json:"last_err,omitempty"`
	Sent      int64          `json:"inputs_sent"`    // Flood: Input messages written
	Refused   int64          `json:"inputs_refused"` // Flood: InputRefused received
	Closed    map[string]int `json:"closed"`         // Flood: connections the peer ended, by reason
}

// Silent is finding 4: n display connections that say Hello and then never
// read a byte (a 4 KiB receive buffer, so the relay, not the kernel, holds
// what they do not read). They stay open until ctx ends.
func Silent(ctx context.Context, ws, tok string, n, parallel int, ready func()) HostileResult {
	res := HostileResult{Closed: map[string]int{}}
	if err := CheckLoopback(ws); err != nil {
		res.LastErr = err.Error()
		return res
	}
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	hello, _ := wire.Encode(&wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: Caps, Token: tok, Want: wire.ModeDisplay, Name: "silent"})
	var mu sync.Mutex
	var conns []*websocket.Conn
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				c, _, err := websocket.Dial(dctx, ws, &websocket.DialOptions{HTTPClient: hc})
				if err == nil {
					err = c.Write(dctx, websocket.MessageBinary, hello)
				}
				cancel()
				mu.Lock()
				if err != nil {
					res.DialErr++
					res.LastErr = err.Error()
				} else {
					res.Connected++
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	for _, c := range conns {
		c.CloseNow()
	}
	return res
}

// FloodInput is the Input a flooder sends: events text events of text.
func FloodInput(events int, text string) []byte {
	in := &wire.Input{Seq: 1, Epoch: 1, Events: make([]abi.Event, min(events, wire.MaxEvents))}
	for i := range in.Events {
		in.Events[i] = abi.Event{Type: abi.EvText, Text: text}
	}
	b, _ := wire.Encode(in)
	return b
}

// Flood is finding 5: m display connections, each sending the same Input
// (FloodInput) rate times a second, just under the relay's per-connection
// message limit, until ctx ends. They read what they are sent (they are
// not silent), count refusals and note why the peer closed them.
func Flood(ctx context.Context, ws, tok string, m int, rate float64, msg []byte, ready func()) HostileResult {
	res := HostileResult{Closed: map[string]int{}}
	if err := CheckLoopback(ws); err != nil {
		res.LastErr = err.Error()
		return res
	}
	var mu sync.Mutex
	var sent, refused atomic.Int64
	var joined sync.WaitGroup
	var wg sync.WaitGroup
	joined.Add(m)
	for i := range m {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, o := Hello(ctx, ws, tok, wire.ModeDisplay, Caps, fmt.Sprintf("flood%d", i))
			mu.Lock()
			if c == nil {
				res.DialErr++
				res.LastErr = o.String()
			} else {
				res.Connected++
			}
			mu.Unlock()
			joined.Done()
			if c == nil {
				return
			}
			defer c.CloseNow()
			closed := make(chan string, 1)
			go func() {
				for {
					m, _, err := c.Recv(ctx)
					if err != nil {
						closed <- cut(err.Error(), 60)
						return
					}
					switch m := m.(type) {
					case *wire.InputRefused:
						refused.Add(1)
					case *wire.Error:
						closed <- cut(fmt.Sprintf("error %d: %s", m.Code, m.Text), 60)
						return
					}
				}
			}()
			// Bursts every 50 ms: a timer per message would cost the
			// attacker more than the target.
			const every = 50 * time.Millisecond
			t := time.NewTicker(every)
			defer t.Stop()
			owed := 0.0
			for {
				select {
				case <-ctx.Done():
					return
				case why := <-closed:
					if ctx.Err() == nil {
						mu.Lock()
						res.Closed[why]++
						mu.Unlock()
					}
					return
				case <-t.C:
				}
				for owed += rate * every.Seconds(); owed >= 1; owed-- {
					if err := c.SendBytes(ctx, msg); err != nil {
						if ctx.Err() == nil {
							mu.Lock()
							res.Closed[cut("write: "+err.Error(), 60)]++
							mu.Unlock()
						}
						return
					}
					sent.Add(1)
				}
			}
		}()
	}
	joined.Wait()
	if ready != nil {
		ready()
	}
	wg.Wait()
	res.Sent, res.Refused = sent.Load(), refused.Load()
	return res
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
