package platformer

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// The high-score table lives in disk block 0:
//
//	0  "RDHS" magic
//	4  version (1), entry count
//	8  entries, 20 bytes each: name (12 bytes, zero-padded), points u32, level u32
//	8+20*maxScores  CRC-32 (IEEE) of everything before it
//
// A block that does not match (a fresh, zeroed disk) is an empty table.

const (
	maxScores  = 5
	nameLen    = 12
	entrySize  = nameLen + 8
	scoresSize = 8 + entrySize*maxScores
)

// Score is one line of the high-score table.
type Score struct {
	Name   string
	Points int
	Level  int // 1-based
}

func decodeScores(b []byte) []Score {
	if len(b) < scoresSize+4 || string(b[:4]) != "RDHS" || b[4] != 1 || b[5] > maxScores {
		return nil
	}
	if crc32.ChecksumIEEE(b[:scoresSize]) != binary.LittleEndian.Uint32(b[scoresSize:]) {
		return nil
	}
	var out []Score
	for i := range int(b[5]) {
		e := b[8+i*entrySize:]
		name := e[:nameLen]
		if n := slices.Index(name, 0); n >= 0 {
			name = name[:n]
		}
		out = append(out, Score{
			Name:   string(name),
			Points: int(binary.LittleEndian.Uint32(e[nameLen:])),
			Level:  int(binary.LittleEndian.Uint32(e[nameLen+4:])),
		})
	}
	return out
}

func encodeScores(s []Score, b []byte) {
	clear(b)
	copy(b, "RDHS")
	b[4] = 1
	b[5] = byte(len(s))
	for i, sc := range s {
		e := b[8+i*entrySize:]
		copy(e[:nameLen], sc.Name)
		binary.LittleEndian.PutUint32(e[nameLen:], uint32(sc.Points))
		binary.LittleEndian.PutUint32(e[nameLen+4:], uint32(sc.Level))
	}
	binary.LittleEndian.PutUint32(b[scoresSize:], crc32.ChecksumIEEE(b[:scoresSize]))
}

// insertScore adds s if it makes the table and reports whether it did.
func insertScore(table []Score, s Score) ([]Score, bool) {
	if s.Points <= 0 {
		return table, false
	}
	i := 0
	for i < len(table) && table[i].Points >= s.Points {
		i++
	}
	if i >= maxScores {
		return table, false
	}
	table = slices.Insert(table, i, s)
	if len(table) > maxScores {
		table = table[:maxScores]
	}
	return table, true
}
