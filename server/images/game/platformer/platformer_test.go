package platformer

import (
	"bytes"
	"errors"
	"hash/fnv"
	"image"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

// fakeHost is a deterministic machine: a tick clock, seeded random bytes,
// scripted input and an in-memory disk.
type fakeHost struct {
	tick    int64
	seed    uint64
	pending []abi.Event
	script  map[int64][]abi.Event
	disk    []byte // nil: no disk
	writes  int
	frames  int
	damage  []image.Rectangle
	prev    []byte // the previous presented frame
	t       *testing.T
	console bytes.Buffer
}

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func (h *fakeHost) Now() time.Time { return epoch.Add(time.Duration(h.tick * int64(time.Second) / 60)) }
func (h *fakeHost) Random(b []byte) {
	r := rand.New(rand.NewPCG(h.seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}
func (h *fakeHost) PollInput(dst []abi.Event) []abi.Event {
	dst = append(dst, h.script[h.tick]...)
	dst = append(dst, h.pending...)
	h.pending = nil
	return dst
}
func (h *fakeHost) DiskInfo() (uint64, abi.DiskMode, error) {
	if h.disk == nil {
		return 0, abi.DiskNone, errors.New("ENODEV")
	}
	return uint64(len(h.disk) / abi.BlockSize), abi.DiskSnapshotted, nil
}
func (h *fakeHost) ReadBlock(n uint64, buf []byte) error {
	copy(buf, h.disk[n*abi.BlockSize:(n+1)*abi.BlockSize])
	return nil
}
func (h *fakeHost) WriteBlock(n uint64, buf []byte) error {
	h.writes++
	copy(h.disk[n*abi.BlockSize:], buf[:abi.BlockSize])
	return nil
}
func (h *fakeHost) Console() io.Writer { return &h.console }

// Present checks the damage: no pixel outside it may differ from the
// previous frame.
func (h *fakeHost) Present(img *image.RGBA, damage []image.Rectangle) {
	h.frames++
	if h.prev != nil && len(damage) > 0 && h.t != nil {
		for y := 0; y < Height; y++ {
			for x := 0; x < Width; x++ {
				o := img.PixOffset(x, y)
				if bytes.Equal(img.Pix[o:o+3], h.prev[o:o+3]) {
					continue
				}
				covered := false
				for _, r := range damage {
					if image.Pt(x, y).In(r) {
						covered = true
						break
					}
				}
				if !covered {
					h.t.Fatalf("frame %d: pixel (%d,%d) changed outside the damage %v", h.frames, x, y, damage)
				}
			}
		}
	}
	h.damage = damage
	h.prev = append(h.prev[:0], img.Pix...)
}

func newFake(seed uint64) *fakeHost {
	return &fakeHost{seed: seed, script: map[int64][]abi.Event{}, disk: make([]byte, 16*abi.BlockSize)}
}

func (h *fakeHost) key(tick int64, code abi.KeyCode, down bool) {
	h.script[tick] = append(h.script[tick], abi.Event{Type: abi.EvKey, Code: code, Down: down, User: 1})
}

func steps(g *Game, h *fakeHost, n int) {
	for range n {
		g.Step()
		h.tick++
	}
}

func frameHash(g *Game) uint64 {
	f := fnv.New64a()
	f.Write(g.Frame().Pix)
	return f.Sum64()
}

func TestJumpLandsOnTile(t *testing.T) {
	h := newFake(1)
	g := New(h)
	h.key(2, abi.CodeArrowUp, true) // a human, standing still, jumps
	steps(g, h, 2)
	y0 := g.p.y
	if !g.p.onGround {
		t.Fatal("player does not start on the ground")
	}
	steps(g, h, 3)
	if g.p.onGround || g.p.y >= y0 {
		t.Fatalf("jump did not leave the ground: y %d -> %d", y0/sub, g.p.y/sub)
	}
	top := g.p.y
	for range 90 {
		steps(g, h, 1)
		top = min(top, g.p.y)
	}
	if !g.p.onGround || g.p.y != y0 {
		t.Fatalf("did not land where it started: onGround %v y %d, want %d", g.p.onGround, g.p.y/sub, y0/sub)
	}
	if rise := (y0 - top) / sub; rise < 40 {
		t.Fatalf("rose only %d px", rise)
	}
	// Held jump goes higher than a tap.
	h.key(100, abi.CodeArrowUp, false)
	h.key(110, abi.CodeArrowUp, true)
	h.key(112, abi.CodeArrowUp, false)
	steps(g, h, 15)
	minTap := g.p.y
	for range 40 {
		steps(g, h, 1)
		minTap = min(minTap, g.p.y)
	}
	h.key(int64(h.tick)+2, abi.CodeArrowUp, true)
	steps(g, h, 3)
	minHeld := g.p.y
	for range 60 {
		steps(g, h, 1)
		minHeld = min(minHeld, g.p.y)
	}
	if tap, held := (y0-minTap)/sub, (y0-minHeld)/sub; held <= tap+20 {
		t.Fatalf("held jump rose %d px, a tap %d px", held, tap)
	}
}

func TestWallsBlock(t *testing.T) {
	l := &Level{W: 10, tiles: make([]tile, 10*Rows)}
	for x := range 10 {
		l.set(x, groundRow, tGround)
	}
	l.set(5, groundRow-1, tStone)
	b := body{w: 20, h: 28}
	b.x, b.y = (3*T)*sub, (groundRow*T-28)*sub
	for range 100 {
		b.vx = 3 * sub
		b.vy += gravity
		l.moveX(&b)
		l.moveY(&b)
	}
	if right := b.x/sub + b.w; right != 5*T {
		t.Fatalf("walked to x=%d, want to stop at the wall at %d", right, 5*T)
	}
	if !b.onGround || b.y/sub != groundRow*T-28 {
		t.Fatalf("not standing on the ground: %+v", b)
	}
	for range 100 {
		b.vx = -3 * sub
		b.vy += gravity
		l.moveX(&b)
		l.moveY(&b)
	}
	if b.x != 0 {
		t.Fatalf("walking left stopped at %d, want the level's left edge 0", b.x/sub)
	}
}

func TestStompScores(t *testing.T) {
	h := newFake(2)
	g := New(h)
	steps(g, h, 1)
	g.human = true
	// Put an enemy on the ground ahead and drop the player onto it.
	g.enemies = g.enemies[:0]
	e := enemy{dir: -1, speed: 0, active: true}
	e.w, e.h = 26, 24
	e.x, e.y = g.p.x, (groundRow*T-e.h)*sub
	g.enemies = append(g.enemies, e)
	g.p.y -= 80 * sub
	score := g.score
	steps(g, h, 30)
	if g.enemies[0].flat == 0 && !g.enemies[0].gone {
		t.Fatal("the enemy was not stomped")
	}
	if g.score < score+100 || g.st != sPlay || g.lives != startLives {
		t.Fatalf("score %d (was %d), state %d, lives %d", g.score, score, g.st, g.lives)
	}

	// Walking into one from the side costs a life.
	e.flat, e.gone = 0, false
	e.x = g.p.x + 40*sub
	e.y = (groundRow*T - e.h) * sub
	g.enemies = append(g.enemies[:0], e)
	g.p.invuln = 0
	h.key(int64(h.tick)+1, abi.CodeArrowRight, true)
	steps(g, h, 60)
	if g.lives != startLives-1 {
		t.Fatalf("lives %d after running into an enemy, want %d", g.lives, startLives-1)
	}
}

func TestAttractModeFinishesLevels(t *testing.T) {
	h := newFake(3)
	h.t = t // also checks damage rectangles on every frame
	g := New(h)
	const steps = 60 * 90
	for range steps {
		g.Step()
		h.tick++
		if g.levelNo >= 2 {
			break
		}
	}
	if g.human {
		t.Fatal("a human is playing in attract mode")
	}
	if g.levelNo < 2 {
		t.Fatalf("after %d steps the AI is on level %d at column %d of %d with %d lives; log:\n%s",
			steps, g.levelNo+1, g.p.x/sub/T, g.lvl.W, g.lives, h.console.String())
	}
	if g.score == 0 || g.coinsN == 0 {
		t.Fatalf("score %d, coins %d", g.score, g.coinsN)
	}
}

func TestAllLevelsPlayable(t *testing.T) {
	for n := range levelPlans {
		l := buildLevel(n)
		if l.flag.x == 0 || l.start.x == 0 {
			t.Fatalf("level %d: no start or flag", n)
		}
		for _, c := range l.respawn {
			for x := c; x < c+2; x++ {
				if !l.at(x, groundRow).solid() {
					t.Fatalf("level %d: respawn column %d has no ground at %d", n, c, x)
				}
				for y := 0; y < groundRow; y++ {
					if l.at(x, y).solid() {
						t.Fatalf("level %d: respawn column %d is blocked", n, c)
					}
				}
			}
		}
	}
	for name, c := range chunks {
		for i, r := range c {
			if len(r) != len(c[0]) || len(c) != Rows {
				t.Fatalf("chunk %s row %d is %d wide, want %d (and %d rows)", name, i, len(r), len(c[0]), Rows)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	play := func() []uint64 {
		h := newFake(9)
		for i := int64(0); i < 600; i += 37 {
			h.key(60+i, abi.CodeArrowRight, true)
			h.key(60+i+20, abi.CodeSpace, true)
			h.key(60+i+30, abi.CodeSpace, false)
		}
		g := New(h)
		var hashes []uint64
		for range 800 {
			g.Step()
			h.tick++
			if h.tick%50 == 0 {
				hashes = append(hashes, frameHash(g))
			}
		}
		return hashes
	}
	a, b := play(), play()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("frame %d differs between two runs with the same input", i*50)
		}
	}
}

func TestHighScorePersists(t *testing.T) {
	h := newFake(4)
	g := New(h)
	h.script[1] = []abi.Event{{Type: abi.EvUser, User: 7, Down: true, Text: "alice"}}
	h.key(2, abi.CodeArrowLeft, true)
	steps(g, h, 5)
	g.score = 4321
	for g.lives > 0 || g.st != sOver {
		if g.st == sPlay {
			g.die()
		}
		steps(g, h, 1)
	}
	if h.writes != 1 {
		t.Fatalf("%d disk writes at game over, want 1", h.writes)
	}
	// A new machine with the same disk reads the table back.
	h2 := newFake(5)
	h2.disk = h.disk
	g2 := New(h2)
	steps(g2, h2, 1)
	if len(g2.scores) != 1 || g2.scores[0].Points != 4321 || g2.scores[0].Name != "P1" {
		t.Fatalf("scores after restart: %+v", g2.scores)
	}

	// Without a disk the game still ends and restarts.
	h3 := newFake(6)
	h3.disk = nil
	g3 := New(h3)
	steps(g3, h3, 1)
	g3.score = 10
	g3.lives = 1
	g3.die()
	steps(g3, h3, dyingTicks+overTicks+5)
	if g3.st != sPlay || g3.lives != startLives || len(g3.scores) != 1 {
		t.Fatalf("without a disk: state %d lives %d scores %v", g3.st, g3.lives, g3.scores)
	}
}

func TestScoreTable(t *testing.T) {
	var tab []Score
	for i, p := range []int{50, 300, 10, 300, 999, 1, 70} {
		tab, _ = insertScore(tab, Score{Name: string(rune('a' + i)), Points: p, Level: 1})
	}
	b := make([]byte, abi.BlockSize)
	encodeScores(tab, b)
	got := decodeScores(b)
	want := []int{999, 300, 300, 70, 50}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i].Points != want[i] {
			t.Fatalf("%+v", got)
		}
	}
	b[10] ^= 1
	if decodeScores(b) != nil {
		t.Fatal("a corrupt block decoded")
	}
	if decodeScores(make([]byte, abi.BlockSize)) != nil {
		t.Fatal("a zero block decoded")
	}
}
