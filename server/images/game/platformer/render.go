package platformer

import (
	"fmt"
	"image"
	"image/color"
)

var (
	white  = color.RGBA{0xff, 0xff, 0xff, 0xff}
	gold   = color.RGBA{0xff, 0xd8, 0x40, 0xff}
	pink   = color.RGBA{0xff, 0x90, 0xa0, 0xff}
	mint   = color.RGBA{0x90, 0xf0, 0xb0, 0xff}
	paleBl = color.RGBA{0xc0, 0xd8, 0xff, 0xff}
)

// mark records a rectangle drawn with something that moves or changes, for
// the damage list.
func (g *Game) mark(r image.Rectangle) {
	if !r.Empty() {
		g.dyn = append(g.dyn, r)
	}
}

func (g *Game) render() {
	a, fb, cam := g.art, g.fb, g.cam
	copy(fb.Pix, a.sky)
	g.layer(a.clouds, cam/8, a.cloudsY)
	g.layer(a.mountains, cam/4, a.mountainsY)
	g.layer(a.hills, cam/2, a.hillsY)

	// Tiles, except those bouncing (drawn below as moving things).
	l := g.lvl
	for tx := cam / T; tx <= (cam+Width-1)/T && tx < l.W; tx++ {
		for ty := 0; ty < Rows; ty++ {
			t := l.at(tx, ty)
			if t == tEmpty || g.bumping(tx, ty) {
				continue
			}
			blit(fb, g.tileSprite(t, tx, ty), tx*T-cam, ty*T+OffY)
		}
	}
	for _, b := range g.bumps {
		off := b.t
		if off > 5 {
			off = 10 - off
		}
		x, y := b.x*T-cam, b.y*T+OffY
		blit(fb, g.tileSprite(l.at(b.x, b.y), b.x, b.y), x, y-off*2)
		g.mark(image.Rect(x, y-12, x+T, y+T).Intersect(fb.Rect))
	}

	f := l.flag
	g.mark(blit(fb, a.flag[(g.tick/16)%2], f.x*T-cam, (f.y+1)*T+OffY-96))
	for _, k := range g.coins {
		if !k.taken && k.x*T+T > cam && k.x*T < cam+Width {
			g.mark(blit(fb, a.coin[(int(g.tick/5)+k.x)%8], k.x*T+4-cam, k.y*T+4+OffY))
		}
	}
	for i := range g.enemies {
		e := &g.enemies[i]
		if e.gone || !e.active {
			continue
		}
		fr := int(g.tick/10) % 2
		if e.flat > 0 {
			fr = 2
		}
		left := 0
		if e.dir < 0 {
			left = 1
		}
		g.mark(blit(fb, a.enemy[left][fr], e.x/sub+e.w/2-16-cam, e.y/sub+e.h-32+OffY))
	}
	g.drawPlayer()
	for _, p := range g.particles {
		x, y := p.x/sub-cam, p.y/sub+OffY
		g.mark(fillRect(fb, image.Rect(x, y, x+p.size, y+p.size), color.RGBA{p.c[0], p.c[1], p.c[2], 0xff}))
	}
	for _, p := range g.popups {
		g.mark(hudFont.drawCentered(fb, p.text, p.x-cam, p.y+OffY-26, white))
	}
	g.drawHUD()
	g.drawOverlay()
}

// layer draws a parallax layer that repeats every layerW pixels.
func (g *Game) layer(s *Sprite, off, y int) {
	x := -(off % layerW)
	blit(g.fb, s, x, y)
	if x+layerW < Width {
		blit(g.fb, s, x+layerW, y)
	}
}

func (g *Game) bumping(x, y int) bool {
	for _, b := range g.bumps {
		if b.x == x && b.y == y {
			return true
		}
	}
	return false
}

func (g *Game) tileSprite(t tile, x, y int) *Sprite {
	switch t {
	case tGround:
		return g.art.ground[g.lvl.groundVariant(x, y)]
	case tBrick:
		return g.art.brick
	case tBonus:
		return g.art.bonus
	case tUsed:
		return g.art.used
	case tPlank:
		return g.art.plank
	default:
		return g.art.stone
	}
}

func (g *Game) drawPlayer() {
	p := &g.p
	if g.st == sOver || (p.invuln > 0 && (p.invuln/4)%2 == 1) {
		return
	}
	fr := frIdle
	switch {
	case g.st == sDying:
		fr = frDead
	case !p.onGround:
		fr = frJump
	case abs(p.vx) > 20:
		fr = frWalk + (p.walk/(9*sub))%3
	}
	left := 0
	if p.left {
		left = 1
	}
	g.mark(blit(g.fb, g.art.player[left][fr], p.x/sub+p.w/2-16-g.cam, p.y/sub+p.h-32+OffY))
}

func (g *Game) drawHUD() {
	fb, a := g.fb, g.art
	label := func(text string, x int) { g.mark(smallFont.draw(fb, text, x, 3, paleBl)) }
	label("SCORE", 12)
	g.mark(hudFont.draw(fb, g.hud[0].get("%06d", g.score), 12, 16, white))
	g.mark(blit(fb, a.coinIcon, 116, 16))
	g.mark(hudFont.draw(fb, g.hud[1].get("x%02d", g.coinsN%100), 142, 16, gold))
	g.mark(blit(fb, a.lifeIcon, 204, 10))
	g.mark(hudFont.draw(fb, g.hud[2].get("x%d", max(g.lives, 0)), 236, 16, white))
	label("WORLD", 300)
	g.mark(hudFont.draw(fb, g.hud[3].get("%d-%d", g.levelNo/len(levelPlans)+1, g.levelNo%len(levelPlans)+1), 300, 16, white))
	hi := g.score
	if len(g.scores) > 0 {
		hi = max(hi, g.scores[0].Points)
	}
	label("HI", 400)
	g.mark(hudFont.draw(fb, g.hud[4].get("%06d", hi), 400, 16, white))
	tc := white
	if g.timeLeft() <= 30 {
		tc = pink
	}
	label("TIME", 570)
	g.mark(hudFont.draw(fb, g.hud[5].get("%03d", max(g.timeLeft(), 0)), 570, 16, tc))
	if !g.human && g.st != sOver && (g.tick/30)%2 == 0 {
		g.mark(hudFont.drawCentered(fb, "DEMO - PRESS AN ARROW KEY", Width/2, 52, gold))
	}
}

func (g *Game) drawOverlay() {
	fb := g.fb
	switch {
	case g.st == sPlay && g.stT < 120 && g.p.invuln == 0:
		r := image.Rect(Width/2-150, 104, Width/2+150, 176)
		g.mark(shade(fb, r, 4))
		g.mark(bigFont.drawCentered(fb, g.hud[6].get("WORLD %d-%d", g.levelNo/len(levelPlans)+1, g.levelNo%len(levelPlans)+1), Width/2, 118, white))
	case g.st == sClear:
		r := image.Rect(Width/2-190, 96, Width/2+190, 204)
		g.mark(shade(fb, r, 4))
		g.mark(bigFont.drawCentered(fb, "LEVEL CLEAR!", Width/2, 108, mint))
		g.mark(hudFont.drawCentered(fb, g.hud[7].get("TIME BONUS %d", g.bonusLeft*10), Width/2, 168, white))
	case g.st == sOver:
		r := image.Rect(Width/2-220, 50, Width/2+220, 320)
		g.mark(shade(fb, r, 3))
		g.mark(bigFont.drawCentered(fb, "GAME OVER", Width/2, 62, pink))
		g.mark(hudFont.drawCentered(fb, "HIGH SCORES", Width/2, 124, gold))
		for i := range maxScores {
			line := fmt.Sprintf("%d. ------------ ------", i+1)
			if i < len(g.scores) {
				s := g.scores[i]
				line = fmt.Sprintf("%d. %-12s %06d W%d", i+1, s.Name, s.Points, s.Level)
			}
			g.mark(hudFont.draw(fb, line, Width/2-196, 150+i*24, white))
		}
		g.mark(smallFont.drawCentered(fb, g.diskNote, Width/2, 296, paleBl))
	}
}

// present hands the frame to the host. When the camera moved everything
// changed; otherwise only what moved this frame or the last one did.
func (g *Game) present() {
	if !g.presented || g.cam != g.shownCam {
		g.host.Present(g.fb, nil)
	} else {
		g.damage = append(append(g.damage[:0], g.lastDyn...), g.dyn...)
		g.host.Present(g.fb, g.damage)
	}
	g.presented, g.shownCam = true, g.cam
	g.lastDyn, g.dyn = g.dyn, g.lastDyn[:0]
}

// cachedText formats a line only when its numbers change, so that a steady
// HUD allocates nothing (garbage collections show up as slow steps).
type cachedText struct {
	a, b int
	ok   bool
	s    string
}

func (c *cachedText) get(format string, a int, b ...int) string {
	bv := -1
	if len(b) > 0 {
		bv = b[0]
	}
	if !c.ok || c.a != a || c.b != bv {
		c.a, c.b, c.ok = a, bv, true
		if len(b) > 0 {
			c.s = fmt.Sprintf(format, a, bv)
		} else {
			c.s = fmt.Sprintf(format, a)
		}
	}
	return c.s
}
