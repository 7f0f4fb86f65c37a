package session

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"replaydesk/shared/token"
	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// Issue 9, finding 4: every display client that joined got its own key
// frame, each routed through the relay's one connection, so a burst of
// joins queued a key frame per joiner ahead of everything else. A relay
// with CapMulticast gets one key frame for all its clients that asked
// meanwhile (and one without it, a Routed each, as before).
func TestKeyFramesCrossARelayOnce(t *testing.T) {
	h := start(t, filepath.Join(t.TempDir(), "mc"), -1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := wsconn.Dial(ctx, strings.Replace(h.srv.URL, "http", "ws", 1)+"/upstream/"+h.s.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	p := &peer{t: t, conn: conn, msgs: make(chan wire.Message, 100000), err: make(chan error, 1)}
	p.send(&wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapRelay | wire.CapMulticast,
		Token: sign(token.RoleRelay, h.s.ID(), time.Hour), Name: "multicast relay"})
	go func() {
		for {
			m, _, err := conn.Recv(context.Background())
			if err != nil {
				p.err <- err
				close(p.msgs)
				return
			}
			p.msgs <- m
		}
	}()
	p.expect("Welcome", is[*wire.Welcome])
	const n = 60
	for c := uint32(1); c <= n; c++ {
		p.routed(c, &wire.Hello{Major: wire.Major, Minor: wire.Minor, Caps: wire.CapDisplay | wire.CapJPEG | wire.CapZlib | wire.CapPalette,
			Token: sign(token.RoleDisplay, h.s.ID(), time.Hour), Name: fmt.Sprint("d", c)})
	}
	keyed := map[uint32]bool{}
	messages := 0
	deadline := time.After(20 * time.Second)
	for len(keyed) < n {
		select {
		case m, open := <-p.msgs:
			if !open {
				t.Fatalf("connection ended: %v", <-p.err)
			}
			switch v := m.(type) {
			case *wire.Routed:
				if f, ok := v.Msg.(*wire.DisplayFrame); ok && f.Key {
					messages++
					keyed[v.Client] = true
				}
			case *wire.Multicast:
				if f, ok := v.Msg.(*wire.DisplayFrame); ok && f.Key {
					messages++
					for _, c := range v.Clients {
						keyed[c] = true
					}
				}
			}
		case <-deadline:
			t.Fatalf("after 20 s, %d of %d clients had a key frame", len(keyed), n)
		}
	}
	if messages > n/4 {
		t.Fatalf("%d key-frame messages for %d joins on one relay: want a few, each for many", messages, n)
	}
}
