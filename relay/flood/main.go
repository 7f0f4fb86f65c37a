// Command flood measures issue 9's finding 4 against real processes: it
// starts `server --image testcard` and a standalone relay from -bin (built
// binaries), opens -n WebSockets to the relay with the display link that
// say Hello and never read, and meanwhile and afterwards times an owner's
// Hello→Welcome; it prints the medians, both processes' RSS and the relay's
// counters. Loopback only; it stops by itself.
//
//	go build -o /tmp/rd/server ./server && go build -o /tmp/rd/relay ./relay
//	go run ./relay/flood -bin /tmp/rd -n 2000 [-relay-args '--conns-per-token 5000']
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

func rss(pid int) (string, string) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var r, hwm string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			r = strings.TrimSpace(l[6:])
		}
		if strings.HasPrefix(l, "VmHWM:") {
			hwm = strings.TrimSpace(l[6:])
		}
	}
	return r, hwm
}

func main() {
	bin := flag.String("bin", "", "dir with server and relay binaries")
	n := flag.Int("n", 2000, "hostile connections")
	relayArgs := flag.String("relay-args", "", "extra relay flags")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "flood")
	key := filepath.Join(dir, "key")
	srv := exec.Command(filepath.Join(*bin, "server"), "--image", "testcard", "--key-file", key, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	out, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer srv.Process.Kill()
	links := map[string]string{}
	var upstream string
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`^(\w+): http://[^/]+/s/([^?]+)\?t=(\S+)`)
	var session string
	for sc.Scan() {
		l := sc.Text()
		if m := re.FindStringSubmatch(l); m != nil {
			links[m[1]] = m[3]
			session = m[2]
		}
		if strings.HasPrefix(l, "upstream: ") {
			upstream = strings.Fields(l)[1]
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	rel := exec.Command(filepath.Join(*bin, "relay"), append([]string{"--upstream", upstream, "--key-file", key, "--listen", "127.0.0.1:18790", "--log-level", "warn"}, strings.Fields(*relayArgs)...)...)
	rel.Stderr = os.Stderr
	if err := rel.Start(); err != nil {
		panic(err)
	}
	defer rel.Process.Kill()
	time.Sleep(time.Second)
	url := "ws://127.0.0.1:18790/ws/" + session
	join := func(tok string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ws, err := wsconn.Dial(ctx, url)
		if err != nil {
			return 0, err
		}
		defer ws.CloseNow()
		t0 := time.Now()
		ws.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapDisplay | wire.CapJPEG | wire.CapZlib | wire.CapPalette | wire.CapPNG, Token: tok, Want: wire.ModeDisplay, Name: "owner"})
		for {
			m, _, err := ws.Recv(ctx)
			if err != nil {
				return time.Since(t0), err
			}
			switch m.(type) {
			case *wire.Welcome:
				return time.Since(t0), nil
			case *wire.Error:
				return time.Since(t0), m.(*wire.Error)
			}
		}
	}
	d, err := join(links["owner"])
	r0, _ := rss(rel.Process.Pid)
	fmt.Printf("idle owner join %v %v, relay RSS %s\n", d, err, r0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*wsconn.Conn
	refused := 0
	t0 := time.Now()
	sem := make(chan struct{}, 64)
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ws, err := wsconn.Dial(ctx, url)
			if err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			ws.Send(ctx, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapDisplay | wire.CapJPEG | wire.CapZlib | wire.CapPalette | wire.CapPNG, Token: links["display"], Want: wire.ModeDisplay, Name: "x"})
			mu.Lock()
			conns = append(conns, ws)
			mu.Unlock()
		}()
	}
	// Owner joins while the flood arrives, then after.
	var during []time.Duration
	for i := 0; i < 5; i++ {
		d, err := join(links["owner"])
		during = append(during, d)
		r, _ := rss(rel.Process.Pid)
		fmt.Printf("  owner join during flood: %v err=%v RSS %s\n", d.Round(time.Millisecond), err, r)
	}
	wg.Wait()
	fmt.Printf("%d hostile Hellos sent in %v (%d dials failed)\n", len(conns), time.Since(t0).Round(time.Millisecond), refused)
	var ds []time.Duration
	for i := 0; i < 7; i++ {
		time.Sleep(time.Second)
		d, err := join(links["owner"])
		ds = append(ds, d)
		r, h := rss(rel.Process.Pid)
		fmt.Printf("  owner join after: %v err=%v RSS %s peak %s\n", d.Round(time.Millisecond), err, r, h)
	}
	slices.Sort(ds)
	slices.Sort(during)
	r, h := rss(rel.Process.Pid)
	sr, sh := rss(srv.Process.Pid)
	fmt.Printf("RESULT owner Hello->Welcome median during flood %v, after %v (max %v); relay RSS %s peak %s; server RSS %s peak %s\n",
		during[len(during)/2].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), r, h, sr, sh)
	if resp, err := http.Get("http://127.0.0.1:18790/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "upstream_bytes") || strings.Contains(l, "sent_bytes") || strings.Contains(l, "relay_clients{") || strings.Contains(l, "refused") || strings.Contains(l, "dropped") {
				fmt.Println("  ", l)
			}
		}
	}
	for _, c := range conns {
		c.CloseNow()
	}
}
