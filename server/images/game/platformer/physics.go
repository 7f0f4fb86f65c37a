package platformer

import (
	"fmt"
	"image"
)

// fdiv is floor division (positions above the level are negative).
func fdiv(a, b int) int {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// moveX moves b horizontally by its speed, stopping at solid tiles; it
// reports whether it hit one.
func (l *Level) moveX(b *body) bool {
	nx := b.x + b.vx
	r0, r1 := fdiv(b.y/sub, T), fdiv((b.y+b.h*sub-1)/sub, T)
	hit := false
	if b.vx > 0 {
		tx := fdiv((nx+b.w*sub-1)/sub, T)
		for ty := r0; ty <= r1; ty++ {
			if l.at(tx, ty).solid() {
				nx, hit = (tx*T-b.w)*sub, true
				break
			}
		}
	} else if b.vx < 0 {
		tx := fdiv(fdiv(nx, sub), T)
		for ty := r0; ty <= r1; ty++ {
			if l.at(tx, ty).solid() {
				nx, hit = (tx+1)*T*sub, true
				break
			}
		}
	}
	b.x = nx
	if hit {
		b.vx = 0
	}
	return hit
}

// moveY moves b vertically, landing on or bumping into tiles. It returns the
// column of a tile bumped from below, or -1.
func (l *Level) moveY(b *body) int {
	ny := b.y + b.vy
	c0, c1 := fdiv(b.x/sub, T), fdiv((b.x+b.w*sub-1)/sub, T)
	b.onGround = false
	bumped := -1
	if b.vy > 0 {
		ty := fdiv((ny+b.h*sub-1)/sub, T)
		for tx := c0; tx <= c1; tx++ {
			if l.at(tx, ty).solid() && ty >= 0 {
				ny = (ty*T - b.h) * sub
				b.vy, b.onGround = 0, true
				break
			}
		}
	} else if b.vy < 0 {
		ty := fdiv(fdiv(ny, sub), T)
		mid := fdiv(b.x/sub+b.w/2, T)
		for tx := c0; tx <= c1; tx++ {
			if l.at(tx, ty).solid() && ty >= 0 {
				ny = (ty + 1) * T * sub
				b.vy = 0
				// The tile over the middle of the head is the one bumped.
				if bumped < 0 || tx == mid {
					bumped = tx
				}
			}
		}
	}
	b.y = ny
	return bumped
}

// update advances the world one tick.
func (g *Game) update(c controls) {
	dt := g.now.Sub(g.last)
	g.stT++
	switch g.st {
	case sPlay:
		if dt > 0 && dt < timeCap {
			g.elapsed += dt
		}
		g.updatePlayer(c)
		if g.timeLeft() <= 0 && g.st == sPlay {
			g.die()
		}
	case sDying:
		g.p.vy = min(g.p.vy+gravity/2, maxFall)
		g.p.y += g.p.vy
		if g.stT >= dyingTicks {
			if g.lives > 0 {
				g.respawn()
			} else {
				g.st, g.stT = sOver, 0
				g.saveScore()
			}
		}
	case sClear:
		// Count the time left into the score, then go on.
		if g.bonusLeft > 0 {
			n := min(g.bonusLeft, 2)
			g.bonusLeft -= n
			g.score += 10 * n
		} else if g.stT > 150 {
			g.levelNo++
			g.loadLevel()
		}
	case sOver:
		if g.stT >= overTicks {
			g.newGame()
		}
	}
	g.updateEnemies()
	g.updateParticles()
	g.cam = g.camFor()
}

// timeCap bounds one tick's contribution to the level timer, so that a
// jump of the clock cannot end a level at once.
const timeCap = 1e9

func (g *Game) timeLeft() int {
	return int((levelTime - g.elapsed + 999999999) / 1e9)
}

func (g *Game) updatePlayer(c controls) {
	p := &g.p
	accel := runAccel
	if !p.onGround {
		accel = airAccel
	}
	switch {
	case c.left && !c.right:
		p.vx -= accel
		if p.vx > 0 && p.onGround {
			p.vx -= accel // skid
		}
		p.left = true
	case c.right && !c.left:
		p.vx += accel
		if p.vx < 0 && p.onGround {
			p.vx += accel
		}
		p.left = false
	default:
		f := friction
		if !p.onGround {
			f /= 4
		}
		if p.vx > 0 {
			p.vx = max(0, p.vx-f)
		} else {
			p.vx = min(0, p.vx+f)
		}
	}
	p.vx = max(-maxRun, min(maxRun, p.vx))

	if p.onGround {
		p.coyote = coyoteTicks
		p.combo = 0
	} else if p.coyote > 0 {
		p.coyote--
	}
	if c.jump && p.coyote > 0 {
		p.vy = -jumpSpeed
		p.coyote = 0
		p.onGround = false
		g.jumpBuf = 0
	}
	grav := gravity
	if p.vy < 0 && c.jumpHeld {
		grav = gravityHeld
	}
	p.vy = min(p.vy+grav, maxFall)

	prevBottom := p.y/sub + p.h
	g.lvl.moveX(&p.body)
	if p.x < 0 {
		p.x, p.vx = 0, 0
	}
	if col := g.lvl.moveY(&p.body); col >= 0 {
		g.bumpTile(col, fdiv(p.y/sub, T)-1)
	}
	if p.onGround {
		if col := fdiv(p.x/sub+p.w/2, T); col > p.best {
			p.best = col
		}
		p.walk += abs(p.vx)
	}
	if p.invuln > 0 {
		p.invuln--
	}

	pr := p.rect()
	for i := range g.coins {
		k := &g.coins[i]
		if k.taken {
			continue
		}
		cr := image.Rect(k.x*T+6, k.y*T+6, k.x*T+T-6, k.y*T+T-6)
		if pr.Overlaps(cr) {
			k.taken = true
			g.collect(k.x*T+T/2, k.y*T+T/2)
		}
	}
	for i := range g.enemies {
		e := &g.enemies[i]
		if e.gone || e.flat > 0 || !e.active || !pr.Overlaps(e.rect()) {
			continue
		}
		if p.vy > 0 && prevBottom <= e.y/sub+10 {
			e.flat, e.vx = 40, 0
			p.vy = -1300
			if c.jumpHeld {
				p.vy = -jumpSpeed
			}
			pts := 100 << min(p.combo, 3)
			p.combo++
			g.score += pts
			g.popups = append(g.popups, popup{x: e.x/sub + e.w/2, y: e.y / sub, text: fmt.Sprint(pts), life: 50})
			g.burst(e.x/sub+e.w/2, e.y/sub+e.h, 8, [3]byte{0xee, 0xf4, 0xff})
			continue
		}
		if p.invuln == 0 {
			g.die()
			return
		}
	}
	if p.y/sub > Rows*T+8 {
		g.die()
		return
	}
	if f := g.lvl.flag; p.x/sub+p.w >= f.x*T+8 {
		g.st, g.stT = sClear, 0
		g.bonusLeft = g.timeLeft()
		g.logf("level %d clear, score %d", g.levelNo+1, g.score)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func (g *Game) collect(x, y int) {
	g.coinsN++
	g.score += 50
	if g.coinsN%50 == 0 {
		g.lives++
		g.popups = append(g.popups, popup{x: x, y: y - 10, text: "1UP", life: 70})
	}
	g.burst(x, y, 6, [3]byte{0xff, 0xf0, 0x90})
}

// burst throws n sparkles from (x, y), pixels, in random directions.
func (g *Game) burst(x, y, n int, c [3]byte) {
	for range n {
		g.particles = append(g.particles, particle{
			x: x * sub, y: y * sub,
			vx: g.rng.IntN(4*sub) - 2*sub, vy: -g.rng.IntN(4*sub) - sub/2,
			life: 18 + g.rng.IntN(14), size: 2 + g.rng.IntN(3), c: c,
		})
	}
}

func (g *Game) bumpTile(x, y int) {
	t := g.lvl.at(x, y)
	if t != tBonus && t != tBrick {
		return
	}
	g.bumps = append(g.bumps, bump{x: x, y: y})
	if t == tBonus {
		g.lvl.set(x, y, tUsed)
		g.collect(x*T+T/2, y*T-8)
		g.popups = append(g.popups, popup{x: x*T + T/2, y: y*T - 12, text: "+50", life: 40})
	}
	// Enemies standing on a bumped block are knocked out.
	for i := range g.enemies {
		e := &g.enemies[i]
		if e.flat == 0 && !e.gone && e.onGround && fdiv((e.y/sub)+e.h, T) == y && fdiv(e.x/sub+e.w/2, T) == x {
			e.flat = 40
			g.score += 100
		}
	}
}

func (g *Game) die() {
	g.st, g.stT = sDying, 0
	g.lives--
	g.p.vx, g.p.vy = 0, -7*sub
	if g.p.y/sub > Rows*T {
		g.p.vy = -10 * sub // from a pit: hop back into view
	}
	g.logf("lost a life at column %d, %d left", g.p.x/sub/T, g.lives)
}

func (g *Game) respawn() {
	col := g.lvl.respawn[0]
	for _, c := range g.lvl.respawn {
		if c <= g.p.best {
			col = c
		}
	}
	g.spawn(col)
	g.p.invuln = invulnTicks
	g.st, g.stT = sPlay, 0
}

func (g *Game) updateEnemies() {
	if g.st == sOver {
		return
	}
	for i := range g.enemies {
		e := &g.enemies[i]
		if e.gone {
			continue
		}
		if !e.active {
			// Enemies wake when they come into view.
			if e.x/sub < g.cam+Width+T {
				e.active = true
			}
			continue
		}
		if e.flat > 0 {
			if e.flat--; e.flat == 0 {
				e.gone = true
			}
			continue
		}
		// Turn at ledges, like a careful snowball.
		if e.onGround {
			fx := e.x/sub - 2
			if e.dir > 0 {
				fx = e.x/sub + e.w + 1
			}
			if !g.lvl.at(fdiv(fx, T), fdiv(e.y/sub+e.h+1, T)).solid() {
				e.dir = -e.dir
			}
		}
		e.vx = e.dir * e.speed
		e.vy = min(e.vy+gravity, maxFall)
		if g.lvl.moveX(&e.body) {
			e.dir = -e.dir
		}
		g.lvl.moveY(&e.body)
		if e.y/sub > Rows*T+T {
			e.gone = true
		}
	}
	// Enemies walking into each other turn round.
	for i := range g.enemies {
		a := &g.enemies[i]
		if a.gone || a.flat > 0 || !a.active {
			continue
		}
		for j := i + 1; j < len(g.enemies); j++ {
			b := &g.enemies[j]
			if b.gone || b.flat > 0 || !b.active || !a.rect().Overlaps(b.rect()) {
				continue
			}
			if (a.x < b.x) == (a.dir > 0) {
				a.dir = -a.dir
			}
			if (b.x < a.x) == (b.dir > 0) {
				b.dir = -b.dir
			}
		}
	}
}

func (g *Game) updateParticles() {
	out := g.particles[:0]
	for _, p := range g.particles {
		p.x += p.vx
		p.y += p.vy
		p.vy += gravity / 3
		if p.life--; p.life > 0 {
			out = append(out, p)
		}
	}
	g.particles = out
	pops := g.popups[:0]
	for _, p := range g.popups {
		if g.stT%2 == 0 {
			p.y--
		}
		if p.life--; p.life > 0 {
			pops = append(pops, p)
		}
	}
	g.popups = pops
	bumps := g.bumps[:0]
	for _, b := range g.bumps {
		if b.t++; b.t < 10 {
			bumps = append(bumps, b)
		}
	}
	g.bumps = bumps
	// Now and then a visible coin twinkles.
	if g.tick%12 == 0 {
		vis := g.visible[:0]
		for i, k := range g.coins {
			if !k.taken && k.x*T >= g.cam && k.x*T < g.cam+Width {
				vis = append(vis, i)
			}
		}
		g.visible = vis
		if len(vis) > 0 {
			k := g.coins[vis[g.rng.IntN(len(vis))]]
			g.particles = append(g.particles, particle{
				x: (k.x*T + 6 + g.rng.IntN(20)) * sub, y: (k.y*T + 4 + g.rng.IntN(20)) * sub,
				life: 10, size: 2, c: [3]byte{0xff, 0xff, 0xff},
			})
		}
	}
}

// camFor keeps the player between 35% and 50% of the screen width.
func (g *Game) camFor() int {
	px := g.p.x / sub
	cam := g.cam
	if px-cam > Width/2 {
		cam = px - Width/2
	}
	if px-cam < Width*35/100 {
		cam = px - Width*35/100
	}
	return max(0, min(cam, g.lvl.W*T-Width))
}
