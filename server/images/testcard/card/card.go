package card

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"io"
	"slices"
	"time"
	"unicode/utf8"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// Size of the card.
const (
	Width  = 640
	Height = 360
)

// Tunables.
const (
	textRunes   = 40  // typed characters kept
	trailLen    = 24  // trail positions kept per user
	maxClicks   = 64  // click dots kept
	maxScan     = 255 // disk blocks 1..maxScan are checksummed at start
	maxInbuf    = 256 // bytes of an unfinished received line kept
	recvPerStep = 16  // net_recv calls per step at most
	echoName    = "echo"
)

// panel identifies a region of the card; each is redrawn as a whole when its
// state changes.
type panel int

const (
	pHeader panel = iota
	pNoise
	pDisk
	pNet
	pPointer
	pWheel
	pUsers
	pAnim
	pKeys
	numPanels
)

// panelRects are the panels' places; together they tile the card.
var panelRects = [numPanels]image.Rectangle{
	pHeader:  image.Rect(0, 0, 640, 20),
	pNoise:   image.Rect(0, 20, 200, 110),
	pDisk:    image.Rect(0, 110, 200, 190),
	pNet:     image.Rect(0, 190, 200, 280),
	pPointer: image.Rect(200, 20, 520, 200),
	pWheel:   image.Rect(520, 20, 640, 200),
	pUsers:   image.Rect(200, 200, 420, 280),
	pAnim:    image.Rect(420, 200, 640, 280),
	pKeys:    image.Rect(0, 280, 640, 360),
}

type user struct {
	id      uint16
	name    string
	present bool // false once the user left (kept for dots)
	x, y    int  // last position, framebuffer coordinates
	moved   bool
	buttons uint32 // bit b = button b held
	trail   []image.Point
	clicks  int
}

type click struct {
	user uint16
	p    image.Point
}

type heldKey struct {
	user uint16
	code abi.KeyCode
}

// Card is the testcard's state. The zero value is not usable; call New.
type Card struct {
	host  Host
	img   *image.RGBA // what is drawn
	shown *image.RGBA // what the host was last given, to compute damage
	dirty [numPanels]bool

	started   bool
	presented bool
	steps     uint64
	now       time.Time
	second    int64 // Unix second of the last per-second work
	seconds   int   // how many per-second rounds ran
	events    int   // input events applied
	sleep     int32 // last step result

	// random
	seed [32]byte

	// keyboard
	text      []rune
	typed     int    // runes typed in all
	textHash  uint32 // FNV-1a of all text typed
	lastKey   abi.Event
	haveKey   bool
	held      []heldKey
	keyEvents int

	// pointer
	users  []*user // sorted by id
	clicks []click
	wheelX int
	wheelY int
	wheels int

	// disk
	diskErr    error
	diskBlocks uint64
	diskMode   abi.DiskMode
	scanned    uint64
	checksum   uint64
	counter    uint64
	diskWrites int
	writeErr   error
	block      []byte

	// net
	conn     Conn
	netErr   error
	netEOF   bool
	msgs     int
	sent     int
	recvd    int
	pending  []byte // accepted for sending but not yet taken by the host
	inbuf    []byte
	lastLine string
	recvBuf  []byte

	// animation
	anim      bool
	animStart time.Time
	ball      image.Point

	evbuf []abi.Event
	line  []byte
}

// New returns a card that runs on host. It does not call the host; the first
// Step starts the devices.
func New(host Host) *Card {
	c := &Card{
		host:    host,
		img:     image.NewRGBA(image.Rect(0, 0, Width, Height)),
		shown:   image.NewRGBA(image.Rect(0, 0, Width, Height)),
		block:   make([]byte, abi.BlockSize),
		recvBuf: make([]byte, 512),
	}
	for p := range c.dirty {
		c.dirty[p] = true
	}
	return c
}

// Image returns the card's framebuffer (what was last drawn).
func (c *Card) Image() *image.RGBA { return c.img }

// Counter returns the click/Enter counter (the value kept in disk block 0).
func (c *Card) Counter() uint64 { return c.counter }

// Animating reports whether the bouncing ball is on (busy mode).
func (c *Card) Animating() bool { return c.anim }

// Step runs one tick: it starts the devices on the first call, applies
// pending input, runs the per-second work when a new second of virtual time
// has begun, reads the network, redraws what changed and presents it. It
// returns the guest's sleep value: 0 while animating, otherwise the ticks to
// skip until the next whole second of virtual time (so the clock still
// updates once a second; 59 when woken on a whole second).
func (c *Card) Step() int32 {
	c.steps++
	c.now = c.host.Now()
	c.dirty[pHeader] = true // step number and clock
	if !c.started {
		c.started = true
		c.start()
	}

	c.evbuf = c.host.PollInput(c.evbuf[:0])
	for _, ev := range c.evbuf {
		c.Apply(ev)
	}

	if s := c.now.Unix(); s != c.second || c.seconds == 0 {
		c.second = s
		c.everySecond()
	}
	c.pollNet()

	if c.anim {
		c.moveBall()
	}

	c.redraw()
	c.present()

	switch {
	case c.anim:
		c.sleep = abi.SleepNone
	case len(c.pending) > 0:
		c.sleep = abi.SleepNone // retry the send next tick
	default:
		next := c.now.Truncate(time.Second).Add(time.Second)
		c.sleep = guest.SleepFor(next.Sub(c.now))
	}
	return c.sleep
}

// start reads the disk and dials the echo endpoint.
func (c *Card) start() {
	c.logf("testcard: start, %dx%d", Width, Height)
	c.startDisk()
	conn, err := c.host.Dial(echoName)
	if err != nil {
		c.netErr = err
		c.logf("net: dial %s: %v", echoName, err)
	} else {
		c.conn = conn
		c.logf("net: dialed %s", echoName)
	}
	c.dirty[pNet] = true
	c.dirty[pDisk] = true
}

func (c *Card) startDisk() {
	blocks, mode, err := c.host.DiskInfo()
	if err != nil {
		c.diskErr = err
		c.logf("disk: %v", err)
		return
	}
	c.diskBlocks, c.diskMode = blocks, mode
	if blocks == 0 {
		c.diskErr = errors.New("empty disk")
		return
	}
	if err := c.host.ReadBlock(0, c.block); err != nil {
		c.diskErr = fmt.Errorf("block 0: %w", err)
		c.logf("disk: read block 0: %v", err)
		return
	}
	c.counter = binary.LittleEndian.Uint64(c.block)
	h := fnv.New64a()
	n := min(blocks-1, maxScan)
	for b := uint64(1); b <= n; b++ {
		if err := c.host.ReadBlock(b, c.block); err != nil {
			c.diskErr = fmt.Errorf("block %d: %w", b, err)
			c.logf("disk: read block %d: %v", b, err)
			break
		}
		h.Write(c.block)
		c.scanned = b
	}
	c.checksum = h.Sum64()
	c.logf("disk: %s, %d blocks, fnv64a(1..%d) = %016x, counter %d", mode, blocks, c.scanned, c.checksum, c.counter)
}

// bump increments the counter and writes it back to block 0.
func (c *Card) bump(why string) {
	c.counter++
	c.dirty[pDisk] = true
	if c.diskErr != nil || c.diskBlocks == 0 {
		return
	}
	clear(c.block)
	binary.LittleEndian.PutUint64(c.block, c.counter)
	c.writeErr = c.host.WriteBlock(0, c.block)
	c.diskWrites++
	if c.writeErr != nil {
		c.logf("disk: write block 0 (%s): %v", why, c.writeErr)
	}
}

func (c *Card) everySecond() {
	c.seconds++
	c.host.Random(c.seed[:8]) // 8 bytes a second: enough to vary, cheap in the log
	c.dirty[pNoise] = true
	if c.conn != nil && !c.netEOF && c.netErr == nil {
		c.msgs++
		c.pending = fmt.Appendf(c.pending, "msg %d t=%d\n", c.msgs, c.second)
		c.dirty[pNet] = true
	}
	c.flushNet()
	c.logf("second %d: steps %d, events %d, counter %d, net sent %d recv %d, seed %x",
		c.second, c.steps, c.events, c.counter, c.sent, c.recvd, c.seed[:4])
}

func (c *Card) flushNet() {
	if c.conn == nil || len(c.pending) == 0 || c.netErr != nil {
		return
	}
	n, err := c.conn.Send(c.pending)
	c.sent += n
	c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	if err != nil {
		c.netErr = err
		c.logf("net: send: %v", err)
	}
	c.dirty[pNet] = true
}

func (c *Card) pollNet() {
	if c.conn == nil || c.netErr != nil || c.netEOF {
		return
	}
	c.flushNet()
	for range recvPerStep {
		n, err := c.conn.Recv(c.recvBuf)
		if n > 0 {
			c.recvd += n
			c.takeLines(c.recvBuf[:n])
			c.dirty[pNet] = true
		}
		if err == io.EOF {
			c.netEOF = true
			c.dirty[pNet] = true
			c.logf("net: closed by peer")
			return
		}
		if err != nil {
			c.netErr = err
			c.dirty[pNet] = true
			c.logf("net: recv: %v", err)
			return
		}
		if n == 0 {
			return
		}
	}
}

// takeLines appends received bytes and keeps the last complete line.
func (c *Card) takeLines(b []byte) {
	c.inbuf = append(c.inbuf, b...)
	for {
		i := slices.Index(c.inbuf, '\n')
		if i < 0 {
			break
		}
		c.lastLine = string(c.inbuf[:i])
		c.inbuf = c.inbuf[:copy(c.inbuf, c.inbuf[i+1:])]
	}
	if len(c.inbuf) > maxInbuf {
		c.lastLine = string(c.inbuf)
		c.inbuf = c.inbuf[:0]
	}
}

// Apply applies one input event to the card's state.
func (c *Card) Apply(ev abi.Event) {
	c.events++
	c.logf("input %d: %s", c.events, describe(ev))
	switch ev.Type {
	case abi.EvUser:
		u := c.user(ev.User)
		if ev.Down {
			u.name = ev.Text
			u.present = true
		} else {
			u.present = false
			u.buttons = 0
			c.held = slices.DeleteFunc(c.held, func(k heldKey) bool { return k.user == ev.User })
			c.dirty[pKeys] = true
		}
		c.dirty[pPointer], c.dirty[pUsers] = true, true
	case abi.EvMove:
		u := c.user(ev.User)
		u.x, u.y, u.moved = int(ev.X), int(ev.Y), true
		u.trail = append(u.trail, image.Pt(u.x, u.y))
		if len(u.trail) > trailLen {
			u.trail = u.trail[:copy(u.trail, u.trail[1:])]
		}
		c.dirty[pPointer], c.dirty[pUsers] = true, true
	case abi.EvButton:
		u := c.user(ev.User)
		bit := uint32(1) << min(ev.Button, 31)
		if ev.Down {
			u.buttons |= bit
			u.clicks++
			c.clicks = append(c.clicks, click{ev.User, image.Pt(u.x, u.y)})
			if len(c.clicks) > maxClicks {
				c.clicks = c.clicks[:copy(c.clicks, c.clicks[1:])]
			}
			c.bump("click")
		} else {
			u.buttons &^= bit
		}
		c.dirty[pPointer], c.dirty[pUsers] = true, true
	case abi.EvWheel:
		c.user(ev.User)
		c.wheelX += int(ev.X)
		c.wheelY += int(ev.Y)
		c.wheels++
		c.dirty[pWheel] = true
	case abi.EvText:
		c.user(ev.User)
		for _, r := range ev.Text {
			c.text = append(c.text, r)
			c.typed++
		}
		c.textHash = fnv1a(c.textHash, ev.Text)
		if len(c.text) > textRunes {
			c.text = c.text[:copy(c.text, c.text[len(c.text)-textRunes:])]
		}
		c.dirty[pKeys] = true
	case abi.EvKey:
		c.user(ev.User)
		c.keyEvents++
		c.lastKey, c.haveKey = ev, true
		k := heldKey{ev.User, ev.Code}
		i, found := slices.BinarySearchFunc(c.held, k, cmpHeld)
		switch {
		case ev.Down && !found:
			c.held = slices.Insert(c.held, i, k)
		case !ev.Down && found:
			c.held = slices.Delete(c.held, i, i+1)
		}
		if ev.Down && !ev.Repeat {
			switch ev.Code {
			case abi.CodeEnter, abi.CodeNumpadEnter:
				c.bump("enter")
			case abi.CodeSpace:
				c.toggleAnim()
			case abi.CodeBackspace:
				if len(c.text) > 0 {
					c.text = c.text[:len(c.text)-1]
				}
			}
		}
		c.dirty[pKeys] = true
	}
}

// fnv1a continues a 32-bit FNV-1a hash (h = 0 starts one) over s.
func fnv1a(h uint32, s string) uint32 {
	if h == 0 {
		h = 2166136261
	}
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func cmpHeld(a, b heldKey) int {
	if a.user != b.user {
		return int(a.user) - int(b.user)
	}
	return int(a.code) - int(b.code)
}

// user returns the user with this number, creating it if it is new.
func (c *Card) user(id uint16) *user {
	i, found := slices.BinarySearchFunc(c.users, id, func(u *user, id uint16) int { return int(u.id) - int(id) })
	if found {
		return c.users[i]
	}
	u := &user{id: id, name: fmt.Sprintf("user %d", id), present: true}
	c.users = slices.Insert(c.users, i, u)
	c.dirty[pUsers], c.dirty[pPointer] = true, true
	return u
}

func (c *Card) toggleAnim() {
	c.anim = !c.anim
	c.animStart = c.now
	c.dirty[pAnim] = true
	if c.anim {
		c.moveBall()
	}
}

// ball speed in pixels per second, and radius.
const (
	ballVX = 150
	ballVY = 90
	ballR  = 8
)

// moveBall places the ball for the current virtual time.
func (c *Card) moveBall() {
	r := panelRects[pAnim]
	ms := c.now.Sub(c.animStart).Milliseconds()
	x := bounce(ms*ballVX/1000, r.Dx()-2*ballR-4)
	y := bounce(ms*ballVY/1000, r.Dy()-2*ballR-18)
	p := image.Pt(r.Min.X+2+ballR+x, r.Min.Y+16+ballR+y)
	if p != c.ball {
		c.ball = p
	}
	c.dirty[pAnim] = true
}

// bounce folds p into [0, n] like a ball bouncing between two walls.
func bounce(p int64, n int) int {
	if n <= 0 {
		return 0
	}
	m := p % int64(2*n)
	if m < 0 {
		m += int64(2 * n)
	}
	if m > int64(n) {
		m = int64(2*n) - m
	}
	return int(m)
}

// logf writes one line to the console, prefixed with the virtual time.
func (c *Card) logf(format string, args ...any) {
	c.line = c.now.UTC().AppendFormat(c.line[:0], "15:04:05.000 ")
	c.line = fmt.Appendf(c.line, format, args...)
	c.line = append(c.line, '\n')
	c.host.Console().Write(c.line)
}

func describe(ev abi.Event) string {
	switch ev.Type {
	case abi.EvKey:
		s := fmt.Sprintf("user %d key %s %s", ev.User, ev.Code, upDown(ev.Down))
		if ev.Repeat {
			s += " repeat"
		}
		return s
	case abi.EvText:
		return fmt.Sprintf("user %d text %q", ev.User, ev.Text)
	case abi.EvMove:
		return fmt.Sprintf("user %d move %d,%d", ev.User, ev.X, ev.Y)
	case abi.EvButton:
		return fmt.Sprintf("user %d button %d %s", ev.User, ev.Button, upDown(ev.Down))
	case abi.EvWheel:
		return fmt.Sprintf("user %d wheel %d,%d", ev.User, ev.X, ev.Y)
	case abi.EvUser:
		if ev.Down {
			return fmt.Sprintf("user %d joined as %q", ev.User, ev.Text)
		}
		return fmt.Sprintf("user %d left", ev.User)
	}
	return fmt.Sprintf("event type %d", ev.Type)
}

func upDown(down bool) string {
	if down {
		return "down"
	}
	return "up"
}

// present computes the damage of the panels just redrawn (the bounding box of
// the pixels that differ from what the host was last given) and presents it.
func (c *Card) present() {
	if !c.presented {
		c.presented = true
		copy(c.shown.Pix, c.img.Pix)
		c.host.Present(c.img, nil)
		return
	}
	var damage []image.Rectangle
	for p := range numPanels {
		if d := c.diff(panelRects[p]); !d.Empty() {
			damage = append(damage, d)
		}
	}
	if len(damage) > 0 {
		c.host.Present(c.img, damage)
	}
}

// diff returns the bounding box of the pixels in r that differ between img
// and shown, and copies them to shown.
func (c *Card) diff(r image.Rectangle) image.Rectangle {
	var box image.Rectangle
	for y := r.Min.Y; y < r.Max.Y; y++ {
		a := c.img.Pix[c.img.PixOffset(r.Min.X, y):c.img.PixOffset(r.Max.X, y)]
		b := c.shown.Pix[c.shown.PixOffset(r.Min.X, y):c.shown.PixOffset(r.Max.X, y)]
		if string(a) == string(b) {
			continue
		}
		lo, hi := 0, len(a)/4
		for lo < hi && string(a[4*lo:4*lo+4]) == string(b[4*lo:4*lo+4]) {
			lo++
		}
		for hi > lo && string(a[4*hi-4:4*hi]) == string(b[4*hi-4:4*hi]) {
			hi--
		}
		box = box.Union(image.Rect(r.Min.X+lo, y, r.Min.X+hi, y+1))
		copy(b, a)
	}
	return box
}

// textOf renders the typed text, replacing runes the font lacks.
func textOf(rs []rune) string {
	b := make([]byte, 0, len(rs))
	for _, r := range rs {
		if r < 0x20 || r >= 0x7f {
			r = '?'
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
