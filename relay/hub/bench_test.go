package hub

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/wire"
)

// BenchmarkFanout measures delivery lag through one relay: a scripted
// game-like upstream sends 60 LogBlocks a second of about 200 bytes (plus
// Presence and Estimates once a second and a snapshot announcement every
// 10 s) to N dual clients; lag is a block's send time at the upstream to
// its receipt by a client, on the same process clock. Each iteration is one
// block (1/60 s of real time).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	f := newFakeUp(b)
	f.setState(announce(1, pos0))
	_, srv := newRelay(b, Options{Upstream: f.srv.URL})
	var cs []*cl
	for range n {
		c, _ := join(b, srv, tok)
		c.dual(b)
		cs = append(cs, c)
	}
	up := f.conn(b)
	// Every client gets the announcement once its switch is through.
	for _, c := range cs {
		if _, ok := c.next(b).(*wire.SnapshotAnnounce); !ok {
			b.Fatal("no announcement")
		}
	}
	const endStep = 1 << 40
	lags := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, _, err := c.ws.Recv(context.Background())
				if err != nil {
					b.Errorf("client: %v", err)
					return
				}
				if lb, ok := m.(*wire.LogBlock); ok {
					if lb.Pos.Step == endStep {
						return
					}
					sent := int64(binary.LittleEndian.Uint64(lb.Block[17:]))
					lags[i] = append(lags[i], time.Duration(time.Now().UnixNano()-sent))
				}
			}
		}()
	}
	send := func(m wire.Message) {
		if err := up.ws.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	off := pos0.Offset
	tick := time.NewTicker(time.Second / 60)
	for i := range b.N {
		<-tick.C
		blk := block(uint64(i), off, 190)
		off += int64(len(blk.Block))
		send(blk)
		if i%60 == 59 {
			send(&wire.Estimates{LogBytesPerSec: 12000, DisplayBytesPerSec: 400000, WindowMillis: 1000, Tick: 1000 + uint64(i)})
			send(&wire.Presence{Control: wire.ControlShared, Epoch: 1, Users: []wire.PresenceUser{{User: 1, Name: "a", Role: wire.RoleOwner, Mode: wire.ModeReplay}}})
		}
		if i%600 == 599 {
			send(announce(uint64(i), recordlog.Pos{Offset: off, Tick: 1000 + uint64(i), Step: uint64(i)}))
		}
	}
	tick.Stop()
	last := block(0, off, 16)
	last.Pos.Step = endStep
	send(last)
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lags {
		all = append(all, l...)
	}
	if len(all) != n*b.N {
		b.Fatalf("%d deliveries, want %d", len(all), n*b.N)
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}
