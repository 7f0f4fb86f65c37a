package live

import (
	"context"
	"errors"

	"replaydesk/shared/wire"
)

// Screen is a copy of what the user sees: the replay's frame in replay
// mode, the decoded display frames otherwise. Pix is tightly packed RGBA.
type Screen struct {
	Pix     []byte
	W, H    int
	Tick    uint64
	Replay  bool   // the picture is the client's own replay
	Version uint64 // bumped whenever the screen changes
}

// Screen copies the current screen into dst (reusing its buffer); false if
// there is nothing to show yet.
func (c *Client) Screen(dst *Screen) bool {
	dst.Version = c.version.Load()
	if c.showReplay.Load() {
		if r := c.currentReplay(); r != nil {
			r.mu.Lock()
			ok := copyScreen(dst, &r.frame)
			r.mu.Unlock()
			if ok {
				dst.Replay = true
				return true
			}
			// A replay restarted from a newer snapshot has no frame yet:
			// the display frames are the best there is meanwhile.
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dst.Replay = false
	return copyScreen(dst, &c.dfb)
}

func copyScreen(dst *Screen, s *screen) bool {
	if s.w == 0 || s.h == 0 {
		return false
	}
	dst.Pix = append(dst.Pix[:0], s.pix...)
	dst.W, dst.H, dst.Tick = s.w, s.h, s.tick
	return true
}

// Changed returns a channel closed at the next change of the screen.
func (c *Client) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wake
}

func (c *Client) changed() {
	c.version.Add(1)
	c.mu.Lock()
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// Welcome is the session's Welcome to this client (false before the first).
func (c *Client) Welcome() (wire.Welcome, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome, c.hasWelcome
}

// Subscribe returns the presence and control messages the session sends
// this client (Presence, Control*, InputRefused), for the local view to
// pass on. The newest Presence heard so far comes first, so a late
// subscriber knows who is there and the control epoch at once. A slow reader
// misses messages rather than holding the client back. cancel ends the
// subscription.
func (c *Client) Subscribe() (<-chan wire.Message, func()) {
	ch := make(chan wire.Message, 64)
	c.mu.Lock()
	if c.presence != nil {
		ch <- c.presence
	}
	id := c.nextSub
	c.nextSub++
	c.subs[id] = ch
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
	}
}

func (c *Client) publish(m wire.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := m.(*wire.Presence); ok {
		c.presence = p
	}
	for _, ch := range c.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// ErrNotConnected: Send found no connection (the client is reconnecting).
var ErrNotConnected = errors.New("not connected to the session")

// Send sends m (the local page's Input and control messages) to the
// session as this client's.
func (c *Client) Send(ctx context.Context, m wire.Message) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(ctx, m)
}

// currentReplay is read by other goroutines; the pointer changes only on
// Run's goroutine.
func (c *Client) currentReplay() *replay { return c.repPtr.Load() }

// Frame is Screen for the local view (localview.Source).
func (c *Client) Frame(dst []byte) ([]byte, int, int, uint64, bool) {
	s := Screen{Pix: dst}
	ok := c.Screen(&s)
	return s.Pix, s.W, s.H, s.Tick, ok
}
