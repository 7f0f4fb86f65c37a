package platformer

// aiState is the attract-mode player's memory.
type aiState struct {
	hold     bool // keep the jump key down
	lastX    int  // for noticing that it is stuck
	stuck    int
	cooldown int
}

// aiControls plays the game deterministically from what is on screen: run
// right, jump at gaps, walls and enemies ahead, and under bonus blocks.
func (g *Game) aiControls() controls {
	c := controls{right: true}
	p := &g.p
	l := g.lvl
	px, py := p.x/sub, p.y/sub
	front := px + p.w
	feetRow := fdiv(py+p.h, T)
	if g.ai.cooldown > 0 {
		g.ai.cooldown--
	}
	if p.onGround && g.ai.cooldown == 0 {
		jump := false
		// A gap: no ground just ahead of the front foot.
		if !l.at(fdiv(front+4, T), feetRow).solid() {
			jump = true
		}
		// A wall ahead at body height.
		for ty := fdiv(py, T); ty <= fdiv(py+p.h-1, T); ty++ {
			if l.at(fdiv(front+10, T), ty).solid() {
				jump = true
			}
		}
		// An enemy coming up.
		for i := range g.enemies {
			e := &g.enemies[i]
			if e.gone || e.flat > 0 || !e.active {
				continue
			}
			ex, ey := e.x/sub, e.y/sub
			if ex+e.w > px && ex-front < 56 && abs(ey+e.h-(py+p.h)) < 24 {
				jump = true
			}
		}
		// A bonus block overhead that is worth a coin.
		col := fdiv(px+p.w/2, T)
		for r := feetRow - 2; r >= feetRow-4; r-- {
			if t := l.at(col, r); t == tBonus {
				jump = true
				break
			} else if t.solid() {
				break
			}
		}
		if jump {
			c.jump, g.ai.hold = true, true
			g.ai.cooldown = 4
		}
	}
	if !p.onGround && p.vy >= 0 {
		g.ai.hold = false
	}
	// Stuck against something: jump anyway.
	if px <= g.ai.lastX {
		g.ai.stuck++
	} else {
		g.ai.stuck = 0
	}
	g.ai.lastX = px
	if g.ai.stuck > 30 && p.onGround {
		c.jump, g.ai.hold, g.ai.stuck = true, true, 0
	}
	c.jumpHeld = g.ai.hold || c.jump
	return c
}
