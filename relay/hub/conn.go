package hub

import (
	"context"
	"sync"
	"time"

	"replaydesk/shared/wire"
	"replaydesk/shared/wsconn"
)

// cat is what a queued message is, so a slow client's queue can shed the
// right things (its log when forced to display, its deltas when it needs a
// key frame) and bytes sent are counted per category.
type cat uint8

const (
	catControl  cat = iota // anything else: Welcome, Pong, routed replies
	catLog                 // LogBlock and SnapshotAnnounce
	catDisplay             // DisplayFrame
	catClose               // a final Error: the writer closes after sending it
	catPresence            // Presence: a newer one replaces one still queued
)

type item struct {
	b   []byte
	cat cat
}

// down is one downstream WebSocket (a client or a child relay) with its
// bounded queue and its own writer goroutine: whoever enqueues never waits
// for the network.
type down struct {
	ws  *wsconn.Conn
	hub *Hub

	mu        sync.Mutex
	q         []item
	qbytes    int
	fullSince time.Time // when the queue last went over its bound; zero if under
	closing   bool      // a final Error is queued (or the conn is dead): no more items
	wake      chan struct{}
	done      chan struct{}   // closed when the writer has stopped
	ctx       context.Context // ends the writer when it is idle
	cancel    context.CancelFunc
}

func newDown(h *Hub, ws *wsconn.Conn) *down {
	ctx, cancel := context.WithCancel(context.Background())
	d := &down{ws: ws, hub: h, wake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go d.writer()
	return d
}

// push queues b unless the conn is closing. It never blocks. It reports the
// queue's size after the push.
func (d *down) push(b []byte, c cat) int {
	d.mu.Lock()
	if d.closing {
		n := d.qbytes
		d.mu.Unlock()
		return n
	}
	if c == catPresence {
		for i := range d.q {
			if d.q[i].cat == catPresence {
				d.qbytes += len(b) - len(d.q[i].b)
				d.q[i].b = b
				n := d.qbytes
				d.mu.Unlock()
				return n
			}
		}
	}
	d.q = append(d.q, item{b, c})
	d.qbytes += len(b)
	n := d.qbytes
	d.mu.Unlock()
	d.poke()
	return n
}

func (d *down) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// queued returns the queue's size in bytes.
func (d *down) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.qbytes
}

// drop removes queued items of the given categories and returns the bytes
// freed.
func (d *down) drop(cats ...cat) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	kept := d.q[:0]
	freed := 0
	for _, it := range d.q {
		if it.cat != catClose && contains(cats, it.cat) {
			freed += len(it.b)
			continue
		}
		kept = append(kept, it)
	}
	clear(d.q[len(kept):])
	d.q = kept
	d.qbytes -= freed
	return freed
}

func contains(cs []cat, c cat) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// finish queues a final Error: what was queued before it is still delivered,
// then the connection closes.
func (d *down) finish(code wire.ErrorCode, text string) {
	b, err := wire.Encode(&wire.Error{Code: code, Text: cutText(text)})
	if err != nil {
		b, _ = wire.Encode(&wire.Error{Code: wire.CodeInternal, Text: "error"})
	}
	d.finishBytes(b)
}

// finishBytes is finish with an encoded Error.
func (d *down) finishBytes(b []byte) {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return
	}
	d.q = append(d.q, item{b, catClose})
	d.qbytes += len(b)
	d.closing = true
	d.mu.Unlock()
	d.poke()
	// A peer that does not read would keep the writer blocked: bound the wait.
	time.AfterFunc(5*time.Second, func() { d.kill() })
}

// fail closes at once with an Error, dropping the queue (a client too slow
// to take what is queued).
func (d *down) fail(code wire.ErrorCode, text string) {
	d.mu.Lock()
	d.closing = true
	clear(d.q)
	d.q = nil
	d.qbytes = 0
	d.mu.Unlock()
	d.cancel()
	go d.ws.Fail(code, text)
	// A writer stuck on a peer that reads nothing holds the connection's
	// write lock, and the Error cannot go out: drop it a little later.
	time.AfterFunc(2*time.Second, d.ws.CloseNow)
}

// kill drops the connection now.
func (d *down) kill() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.cancel()
	d.ws.CloseNow()
}

func (d *down) writer() {
	defer close(d.done)
	for {
		d.mu.Lock()
		for len(d.q) == 0 {
			d.mu.Unlock()
			select {
			case <-d.wake:
			case <-d.ctx.Done():
				return
			}
			d.mu.Lock()
		}
		it := d.q[0]
		d.q[0] = item{}
		d.q = d.q[1:]
		d.qbytes -= len(it.b)
		d.mu.Unlock()
		// Not d.ctx: the library closes the connection when a write's
		// context ends, even just after the bytes went out. A write stuck
		// on a peer that reads nothing ends after writeTimeout, or sooner
		// by closing the connection (fail, kill).
		wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := d.ws.SendBytes(wctx, it.b)
		cancel()
		if err != nil {
			if wctx.Err() != nil {
				d.hub.m.refused("write_timeout")
			}
			d.kill()
			return
		}
		d.mu.Lock()
		if d.qbytes < d.hub.opts.QueueBytes {
			d.fullSince = time.Time{} // it keeps up again
		}
		d.mu.Unlock()
		d.hub.m.sent(it.cat, len(it.b))
		if it.cat == catClose {
			d.ws.Close("error sent")
			return
		}
	}
}

func cutText(s string) string {
	if len(s) <= wire.MaxText {
		return s
	}
	s = s[:wire.MaxText]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}
