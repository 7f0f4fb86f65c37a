package platformer

import "strings"

// Tile kinds.
type tile byte

const (
	tEmpty tile = iota
	tGround
	tBrick
	tBonus
	tUsed
	tStone
	tPlank
)

func (t tile) solid() bool { return t != tEmpty }

// Level geometry.
const (
	T         = 32              // tile size in pixels
	Rows      = 11              // level height in tiles
	OffY      = Height - Rows*T // screen y of the level's top row
	groundRow = 9               // the usual surface row
)

// Chunks are hand-designed pieces of level, 11 rows each; a level strings
// them together. Legend: '#' ground, 'B' brick, '?' bonus block, 'S' stone,
// '-' plank, 'o' coin, 'e' enemy, 'P' start, 'F' goal flag. Every chunk
// starts with two columns of flat ground, which is where a player who lost
// a life comes back.
var chunks = map[string][]string{
	"start": {
		"....................",
		"....................",
		"....................",
		"....................",
		"....................",
		"..........?B?.......",
		"....................",
		"....................",
		"..P.....oo....oo....",
		"####################",
		"####################",
	},
	"gap": {
		"..............",
		"..............",
		"..............",
		"..............",
		"......oo......",
		".....o..o.....",
		"..............",
		"..............",
		"..oo..........",
		"#####...######",
		"#####...######",
	},
	"stairs": {
		"................",
		"................",
		"................",
		"................",
		"..........oo....",
		".........SS.....",
		"........SSS.....",
		".......SSSS.....",
		"......SSSSS....e",
		"################",
		"################",
	},
	"enemies": {
		"..................",
		"..................",
		"..................",
		"..................",
		"..................",
		".....?B?B?........",
		"..................",
		"..................",
		"........e.....e...",
		"##################",
		"##################",
	},
	"steps": {
		"......................",
		"......................",
		"......................",
		"......................",
		"......................",
		".............ooo......",
		".............---......",
		"........o.............",
		".......---............",
		"####............######",
		"####............######",
	},
	"hill": {
		"....................",
		"....................",
		"....................",
		"....................",
		"........ooo.........",
		"....................",
		".......#####........",
		"......#######.......",
		"....e#########..e...",
		"####################",
		"####################",
	},
	"pits": {
		"......................",
		"......................",
		"......................",
		"......................",
		"......o.......o.......",
		"......................",
		"......................",
		"......................",
		"..................e...",
		"#####...####...#######",
		"#####...####...#######",
	},
	"bricks": {
		"......................",
		"......................",
		"......................",
		"........oooo..........",
		"......................",
		".......BB??BB.........",
		"......................",
		"......................",
		"...e.........e....e...",
		"######################",
		"######################",
	},
	"pipes": {
		"....................",
		"....................",
		"....................",
		"....................",
		".......o.......o....",
		"....................",
		"......SS.......SS...",
		"......SS.......SS...",
		"......SS...e...SS...",
		"####################",
		"####################",
	},
	"goal": {
		"......................",
		"......................",
		"......................",
		"......................",
		"......................",
		"......................",
		"......................",
		"......................",
		"..........F...........",
		"######################",
		"######################",
	},
}

// levelPlans are the levels, as chunk sequences; after the last the game
// starts again at the first with faster enemies.
var levelPlans = [][]string{
	{"start", "gap", "enemies", "stairs", "steps", "hill", "pits", "bricks", "gap", "goal"},
	{"start", "bricks", "pits", "pipes", "steps", "enemies", "hill", "gap", "stairs", "pits", "goal"},
	{"start", "pits", "hill", "enemies", "steps", "pipes", "bricks", "stairs", "gap", "enemies", "goal"},
}

// Level is one level's tiles and the things placed on them.
type Level struct {
	W       int // columns
	tiles   []tile
	coins   []pt // tile coordinates
	enemies []pt
	start   pt
	flag    pt
	respawn []int // columns where a player may come back, ascending
}

type pt struct{ x, y int }

func buildLevel(n int) *Level {
	plan := levelPlans[n%len(levelPlans)]
	var rows [Rows]strings.Builder
	l := &Level{}
	for _, name := range plan {
		c := chunks[name]
		l.respawn = append(l.respawn, rows[0].Len())
		for y := range Rows {
			rows[y].WriteString(c[y])
		}
	}
	l.W = rows[0].Len()
	l.tiles = make([]tile, l.W*Rows)
	for y := range Rows {
		s := rows[y].String()
		for x := 0; x < l.W; x++ {
			t := tEmpty
			switch s[x] {
			case '#':
				t = tGround
			case 'B':
				t = tBrick
			case '?':
				t = tBonus
			case 'S':
				t = tStone
			case '-':
				t = tPlank
			case 'o':
				l.coins = append(l.coins, pt{x, y})
			case 'e':
				l.enemies = append(l.enemies, pt{x, y})
			case 'P':
				l.start = pt{x, y}
			case 'F':
				l.flag = pt{x, y}
			}
			l.tiles[y*l.W+x] = t
		}
	}
	return l
}

// at returns the tile at column x, row y; outside the level is empty, except
// that the left and right edges are walls.
func (l *Level) at(x, y int) tile {
	if x < 0 || x >= l.W {
		return tStone
	}
	if y < 0 || y >= Rows {
		return tEmpty
	}
	return l.tiles[y*l.W+x]
}

func (l *Level) set(x, y int, t tile) { l.tiles[y*l.W+x] = t }

// groundVariant picks the ground tile picture from which sides are open.
func (l *Level) groundVariant(x, y int) int {
	v := 0
	if l.at(x, y-1) != tGround {
		v |= 1
	}
	if x > 0 && l.at(x-1, y) != tGround {
		v |= 2
	}
	if x < l.W-1 && l.at(x+1, y) != tGround {
		v |= 4
	}
	return v
}
