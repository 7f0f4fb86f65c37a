// Package platformer is the game image's logic: a side-scrolling platformer
// (levels, physics, enemies, an attract-mode AI, drawing and the high-score
// table) in plain Go, so that it builds and is tested natively. The wasip1
// program in the parent directory only connects it to the real host through
// package guest; tests connect it to a fake host.
//
// It must not know about the SDK, wazero, record logs or sessions: everything
// non-deterministic (clock, random seed, input, disk) comes through Host, and
// everything else is a pure function of it, which is what makes a recorded
// game replay bit for bit.
package platformer

import (
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"time"

	"replaydesk/shared/abi"
)

// Screen size.
const (
	Width  = 640
	Height = 360
)

// Tunables. Positions and speeds are in sub-pixels (sub per pixel) so that
// physics is integer arithmetic.
const (
	sub          = 256
	gravity      = 154 // 0.6 px/tick²
	gravityHeld  = 77  // rising with jump held: higher jumps
	maxFall      = 9 * sub
	jumpSpeed    = 2100 // 8.2 px/tick
	runAccel     = 64
	airAccel     = 46
	maxRun       = 896 // 3.5 px/tick
	friction     = 48
	jumpBuffer   = 6 // ticks a jump press is remembered before landing
	coyoteTicks  = 5 // ticks after leaving a ledge when a jump still works
	invulnTicks  = 120
	startLives   = 3
	levelTime    = 150 * time.Second
	idleTakeover = 6 * time.Second // no input for this long: the AI plays
	overTicks    = 6 * 60
	dyingTicks   = 110
)

// Host is what the game needs from the machine it runs on; its methods mirror
// package guest. All are called only from Step.
type Host interface {
	Now() time.Time
	// Random fills b with random bytes.
	Random(b []byte)
	// PollInput appends all pending input events to dst.
	PollInput(dst []abi.Event) []abi.Event
	DiskInfo() (blocks uint64, mode abi.DiskMode, err error)
	ReadBlock(n uint64, buf []byte) error
	WriteBlock(n uint64, buf []byte) error
	// Present shows img; damage is in img's coordinates, none = whole frame.
	Present(img *image.RGBA, damage []image.Rectangle)
	// Console receives a line per level and per game.
	Console() io.Writer
}

type state int

const (
	sPlay state = iota
	sDying
	sClear
	sOver
)

type body struct {
	x, y     int // top left of the hitbox, sub-pixels
	vx, vy   int
	w, h     int // pixels
	onGround bool
}

func (b *body) rect() image.Rectangle {
	return image.Rect(b.x/sub, b.y/sub, b.x/sub+b.w, b.y/sub+b.h)
}

type player struct {
	body
	left   bool // facing
	coyote int
	walk   int // distance walked, for the animation
	invuln int
	combo  int
	best   int // furthest column reached on the ground
}

type enemy struct {
	body
	dir    int
	speed  int
	active bool
	flat   int // ticks left squashed; 0 = alive
	gone   bool
}

type coin struct {
	x, y  int // tile
	taken bool
}

type particle struct {
	x, y, vx, vy int // sub-pixels
	life         int
	size         int
	c            [3]byte
}

type popup struct {
	x, y int // pixels, world
	text string
	life int
}

type bump struct {
	x, y, t int
}

type heldKey struct {
	user uint16
	code abi.KeyCode
}

// controls is one tick's intent, from people or the AI.
type controls struct {
	left, right, jumpHeld, jump bool
}

// Game is the whole game. The zero value is not usable; call New.
type Game struct {
	host   Host
	art    *Art
	fb     *image.RGBA
	rng    *rand.Rand
	events []abi.Event

	started   bool
	tick      uint64
	now, last time.Time

	// who plays
	held      []heldKey
	jumpBuf   int
	lastInput time.Time
	human     bool
	names     map[uint16]string
	lastUser  uint16
	ai        aiState

	// the game in progress
	st          state
	stT         int
	levelNo     int // 0-based, keeps counting past the last plan
	lvl         *Level
	p           player
	enemies     []enemy
	coins       []coin
	particles   []particle
	popups      []popup
	bumps       []bump
	score       int
	coinsN      int
	lives       int
	elapsed     time.Duration
	humanPlayed bool
	bonusLeft   int

	// high scores
	scores   []Score
	hasDisk  bool
	diskNote string
	block    []byte

	// drawing
	cam, shownCam int
	presented     bool
	dyn, lastDyn  []image.Rectangle
	damage        []image.Rectangle
	hud           [8]cachedText
	visible       []int // scratch: coins on screen
}

// New returns a game that will run on h. It draws all art (once per
// process) but calls no Host method: those wait for the first Step.
func New(h Host) *Game {
	return &Game{
		host:  h,
		art:   loadArt(),
		fb:    image.NewRGBA(image.Rect(0, 0, Width, Height)),
		names: map[uint16]string{},
		block: make([]byte, abi.BlockSize),
	}
}

// Frame is the framebuffer (read only).
func (g *Game) Frame() *image.RGBA { return g.fb }

// Score is the current game's score.
func (g *Game) Score() int { return g.score }

func (g *Game) logf(format string, args ...any) {
	fmt.Fprintf(g.host.Console(), format+"\n", args...)
}

// Step runs one tick: input, the world, drawing, present. It always returns
// 0: the game animates every tick.
func (g *Game) Step() int32 {
	g.now = g.host.Now()
	if !g.started {
		g.start()
	}
	g.events = g.host.PollInput(g.events[:0])
	for _, ev := range g.events {
		g.input(ev)
	}
	if g.human && len(g.held) == 0 && g.now.Sub(g.lastInput) > idleTakeover {
		g.human = false
		g.logf("no input for %v: the AI plays", idleTakeover)
	}
	var c controls
	if g.human {
		c = g.keyControls()
	} else {
		c = g.aiControls()
	}
	g.update(c)
	g.render()
	g.present()
	g.last = g.now
	g.tick++
	return 0
}

func (g *Game) start() {
	g.started = true
	var seed [16]byte
	g.host.Random(seed[:])
	g.rng = rand.New(rand.NewPCG(leU64(seed[:8]), leU64(seed[8:])))
	g.last = g.now
	g.lastInput = g.now
	g.loadScores()
	g.newGame()
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func (g *Game) loadScores() {
	blocks, _, err := g.host.DiskInfo()
	switch {
	case err != nil:
		g.diskNote = "no disk: scores are not kept"
		return
	case blocks == 0:
		g.diskNote = "empty disk: scores are not kept"
		return
	}
	if err := g.host.ReadBlock(0, g.block); err != nil {
		g.diskNote = "disk read failed: " + err.Error()
		return
	}
	g.hasDisk = true
	g.scores = decodeScores(g.block)
}

func (g *Game) saveScore() {
	name := "CPU"
	if g.humanPlayed {
		name = g.names[g.lastUser]
		if name == "" {
			name = fmt.Sprintf("P%d", g.lastUser)
		}
		if len(name) > nameLen {
			name = name[:nameLen]
		}
	}
	var ok bool
	g.scores, ok = insertScore(g.scores, Score{Name: name, Points: g.score, Level: g.levelNo + 1})
	g.logf("game over: %s scored %d on level %d", name, g.score, g.levelNo+1)
	if !ok || !g.hasDisk {
		return
	}
	encodeScores(g.scores, g.block)
	if err := g.host.WriteBlock(0, g.block); err != nil {
		g.diskNote = "high scores not saved: " + err.Error()
		return
	}
	g.diskNote = "high scores saved to disk"
}

func (g *Game) newGame() {
	g.score, g.coinsN, g.lives = 0, 0, startLives
	g.humanPlayed = g.human
	g.levelNo = 0
	g.loadLevel()
}

func (g *Game) loadLevel() {
	g.lvl = buildLevel(g.levelNo)
	g.coins = g.coins[:0]
	for _, c := range g.lvl.coins {
		g.coins = append(g.coins, coin{x: c.x, y: c.y})
	}
	g.enemies = g.enemies[:0]
	loop := g.levelNo / len(levelPlans)
	for _, e := range g.lvl.enemies {
		en := enemy{dir: -1, speed: 240 + g.rng.IntN(96) + 48*min(loop, 4)}
		en.w, en.h = 26, 24
		en.x = (e.x*T + (T-en.w)/2) * sub
		en.y = ((e.y+1)*T - en.h) * sub
		g.enemies = append(g.enemies, en)
	}
	g.particles, g.popups, g.bumps = g.particles[:0], g.popups[:0], g.bumps[:0]
	g.p = player{}
	g.p.best = g.lvl.start.x
	g.spawn(g.lvl.start.x)
	g.st, g.stT = sPlay, 0
	g.logf("level %d (%d columns)", g.levelNo+1, g.lvl.W)
}

// spawn puts the player on the ground at column col.
func (g *Game) spawn(col int) {
	best := g.p.best
	g.p = player{best: best}
	g.p.w, g.p.h = 20, 28
	g.p.x = (col*T + 6) * sub
	row := 0
	for row < Rows && !g.lvl.at(col, row).solid() {
		row++
	}
	g.p.y = (row*T - g.p.h) * sub
	g.elapsed = 0
	g.ai = aiState{}
	g.cam = g.camFor()
}

// input applies one event.
func (g *Game) input(ev abi.Event) {
	switch ev.Type {
	case abi.EvUser:
		if ev.Down {
			g.names[ev.User] = ev.Text
		} else {
			g.releaseUser(ev.User)
		}
	case abi.EvKey:
		if !ev.Down {
			g.release(ev.User, ev.Code)
			return
		}
		g.lastInput = g.now
		g.lastUser = ev.User
		if !g.isHeld(ev.User, ev.Code) {
			g.held = append(g.held, heldKey{ev.User, ev.Code})
		}
		if !g.human {
			g.takeOver()
		}
		g.humanPlayed = true
		if !ev.Repeat && isJump(ev.Code) {
			g.jumpBuf = jumpBuffer
		}
	}
}

// takeOver gives the game to the people at the keyboard. A game the AI
// started is a demo: they get a fresh one.
func (g *Game) takeOver() {
	g.human = true
	g.logf("a player takes over")
	if !g.humanPlayed || g.st == sOver {
		g.newGame()
	}
}

func (g *Game) isHeld(u uint16, c abi.KeyCode) bool {
	for _, h := range g.held {
		if h.user == u && h.code == c {
			return true
		}
	}
	return false
}

func (g *Game) release(u uint16, c abi.KeyCode) {
	for i, h := range g.held {
		if h.user == u && h.code == c {
			g.held = append(g.held[:i], g.held[i+1:]...)
			return
		}
	}
}

func (g *Game) releaseUser(u uint16) {
	out := g.held[:0]
	for _, h := range g.held {
		if h.user != u {
			out = append(out, h)
		}
	}
	g.held = out
}

func isJump(c abi.KeyCode) bool {
	return c == abi.CodeArrowUp || c == abi.CodeSpace || c == abi.CodeKeyW
}

// keyControls merges every person's held keys: the keyboard is shared.
func (g *Game) keyControls() controls {
	var c controls
	for _, h := range g.held {
		switch {
		case h.code == abi.CodeArrowLeft || h.code == abi.CodeKeyA:
			c.left = true
		case h.code == abi.CodeArrowRight || h.code == abi.CodeKeyD:
			c.right = true
		case isJump(h.code):
			c.jumpHeld = true
		}
	}
	if g.jumpBuf > 0 {
		c.jump = true
		g.jumpBuf--
	}
	return c
}
