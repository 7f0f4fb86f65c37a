package mpeg1

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kraft sums 2^-len over a table's codes: 1 for a complete prefix code.
func kraft(t *vlcTable) float64 {
	var s float64
	seen := map[int32]bool{}
	for i, e := range t.entries {
		n := int(e & 31)
		if n == 0 {
			continue
		}
		// Count each code once, at the first index of its range.
		if i&(1<<(t.bits-n)-1) == 0 && !seen[int32(i)] {
			seen[int32(i)] = true
			s += math.Ldexp(1, -n)
		}
	}
	return s
}

func TestVLCTables(t *testing.T) {
	// Tables that use the whole code space, and those with forbidden
	// patterns (how much of the code space they leave unused).
	for _, c := range []struct {
		name string
		t    *vlcTable
		want float64
	}{
		{"macroblock type I", mbTypeI, 0.75},
		{"macroblock type P", mbTypeP, 1 - 1.0/64},
		{"macroblock type B", mbTypeB, 1 - 1.0/64},
		{"dc size luma", dcSizeLuma, 1 - 1.0/128},
		{"dc size chroma", dcSizeChroma, 1 - 1.0/256},
		// 00000000 (forbidden in MPEG-1 4:2:0 and cbp 0) is unused.
		{"coded block pattern", codedBlockPattern, 1 - 1.0/256},
		// Codes start at 0000 0011: 0000 0000, 0000 0001 and 0000 0010
		// are unused.
		{"motion code", motionCode, 1 - 3.0/256},
	} {
		// (The DCT coefficient table, whose codes carry sign bits and
		// escapes, is checked by decoding below and by whole files.)
		got := kraft(c.t)
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: Kraft sum %v, want %v", c.name, got, c.want)
		}
	}
	// macroblock_address_increment: 33 codes, stuffing and escape; 0000
	// 0000, 0000 0010 and 0000 0001 other than 111 and 000 are unused.
	if got, want := kraft(mbAddrIncr), 1-2.0/256-6.0/2048; math.Abs(got-want) > 1e-12 {
		t.Errorf("macroblock address increment: Kraft sum %v, want %v", got, want)
	}
}

// bitsOf packs a string of '0' and '1' (spaces ignored) into bytes.
func bitsOf(s string) []byte {
	s = strings.ReplaceAll(s, " ", "")
	out := make([]byte, (len(s)+7)/8+8)
	for i, c := range s {
		if c == '1' {
			out[i/8] |= 0x80 >> (i % 8)
		}
	}
	return out
}

func TestVLCDecode(t *testing.T) {
	for _, c := range []struct {
		t     *vlcTable
		code  string
		value int32
	}{
		{mbAddrIncr, "1", 1},
		{mbAddrIncr, "0000 0011 000", 33},
		{mbAddrIncr, "0000 0001 000", mbaEscape},
		{mbTypeB, "0000 10", mbBackward | mbPattern | mbQuant},
		{codedBlockPattern, "111", 60},
		{codedBlockPattern, "0000 0001 0", 39},
		{motionCode, "011", -1},
		{motionCode, "0000 0011 000", 16},
		{dcSizeLuma, "1111 110", 8},
		{dcSizeChroma, "1111 1110", 8},
		{dctCoeff, "10", dctEOB},
		{dctCoeff, "0000 01", dctEscape},
		{dctCoeff, "0000 0000 0001 1011", rl(31, 1)},
		{dctCoeff, "0000 0000 0010 000", rl(0, 40)},
	} {
		var b bitReader
		b.reset(bitsOf(c.code + "1"))
		v, ok := c.t.decode(&b)
		if !ok || v != c.value || b.pos != len(strings.ReplaceAll(c.code, " ", "")) {
			t.Errorf("%s: got %d ok=%v after %d bits, want %d", c.code, v, ok, b.pos, c.value)
		}
	}
	// All-zero bits are no code in any table.
	var b bitReader
	b.reset(make([]byte, 8))
	for _, tab := range []*vlcTable{mbAddrIncr, codedBlockPattern, motionCode, dctCoeff} {
		if _, ok := tab.decode(&b); ok {
			t.Errorf("zeros decoded as a code")
		}
	}
}

func TestDequant(t *testing.T) {
	// Mismatch control makes every reconstructed coefficient odd, towards
	// zero, and saturation bounds it.
	if got := dequantIntra(1, 1, 16); got != 1 { // 2·1·1·16/16 = 2 → 1
		t.Errorf("dequantIntra(1,1,16) = %d", got)
	}
	if got := dequantIntra(-3, 5, 16); got != -29 { // -30 → -29
		t.Errorf("dequantIntra(-3,5,16) = %d", got)
	}
	if got := dequantNonIntra(1, 2, 16); got != 5 { // (2+1)·2·16/16 = 6 → 5
		t.Errorf("dequantNonIntra(1,2,16) = %d", got)
	}
	if got := dequantNonIntra(-255, 31, 255); got != -2048 {
		t.Errorf("dequantNonIntra saturates at %d", got)
	}
	if got := dequantIntra(255, 31, 255); got != 2047 {
		t.Errorf("dequantIntra saturates at %d", got)
	}
}

func TestIDCTAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	for n := 0; n < 2000; n++ {
		var blk [64]int32
		// Sparse and dense blocks, in the IEEE 1180 ranges.
		k := 1 + r.IntN(64)
		for i := 0; i < k; i++ {
			blk[r.IntN(64)] = int32(r.IntN(601) - 300)
		}
		if n%10 == 0 {
			blk[0] = int32(r.IntN(4096) - 2048)
		}
		want := referenceIDCT(&blk)
		got := blk
		idct(&got)
		for i := range got {
			d := math.Abs(float64(got[i]) - want[i])
			worst = max(worst, d)
			if d > 0.5+1e-9 {
				t.Fatalf("block %d, sample %d: %d, reference %.4f", n, i, got[i], want[i])
			}
		}
	}
	t.Logf("largest |rounded output - exact reference|: %.6f (at most 0.5 means correctly rounded)", worst)
}

func TestPushMatchesPull(t *testing.T) {
	for _, file := range mediaFiles(t)[:2] {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		data = data[:min(len(data), 300<<10)]
		pull := frameHashes(t, NewDecoder(bytes.NewReader(data)), nil)
		r := rand.New(rand.NewPCG(3, 4))
		d := NewPushDecoder()
		rest := data
		push := frameHashes(t, d, func() bool {
			if len(rest) == 0 {
				d.EndInput()
				return false
			}
			n := min(len(rest), 1+r.IntN(5000))
			d.Feed(rest[:n])
			rest = rest[n:]
			return true
		})
		if len(pull) < 10 || len(pull) != len(push) {
			t.Fatalf("%s: pull %d frames, push %d", filepath.Base(file), len(pull), len(push))
		}
		for i := range pull {
			if pull[i] != push[i] {
				t.Fatalf("%s: frame %d differs", filepath.Base(file), i)
			}
		}
	}
}

func frameHashes(t *testing.T, d *Decoder, feed func() bool) [][32]byte {
	var out [][32]byte
	for {
		f, err := d.Next()
		if errors.Is(err, ErrNeedInput) && feed != nil {
			feed()
			continue
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		h.Write(f.Y)
		h.Write(f.Cb)
		h.Write(f.Cr)
		out = append(out, [32]byte(h.Sum(nil)))
	}
}

func TestRGBA(t *testing.T) {
	f := &Frame{Width: 2, Height: 2, YStride: 2, CStride: 1,
		Y: []byte{16, 235, 126, 81}, Cb: []byte{128}, Cr: []byte{128}}
	dst := make([]byte, 16)
	f.RGBA(dst, 8)
	want := []byte{0, 0, 0, 255, 255, 255, 255, 255, 128, 128, 128, 255, 76, 76, 76, 255}
	if !bytes.Equal(dst, want) {
		t.Fatalf("grey ramp: %v, want %v", dst, want)
	}
	// Pure red in BT.601: Y 81, Cb 90, Cr 240.
	f = &Frame{Width: 1, Height: 1, YStride: 1, CStride: 1, Y: []byte{81}, Cb: []byte{90}, Cr: []byte{240}}
	f.RGBA(dst, 4)
	if dst[0] < 250 || dst[1] > 5 || dst[2] > 5 {
		t.Fatalf("red: %v", dst[:4])
	}
	f.ScaledRGBA(dst, 8, 2, 2)
	if !bytes.Equal(dst[:4], dst[4:8]) || !bytes.Equal(dst[:4], dst[8:12]) {
		t.Fatalf("scaled: %v", dst)
	}
}

func TestTooLarge(t *testing.T) {
	d := NewPushDecoder()
	d.MaxWidth, d.MaxHeight = 320, 240
	// A sequence header for 4095x4095.
	d.Feed([]byte{0, 0, 1, 0xB3, 0xFF, 0xFF, 0xFF, 0x13, 0xFF, 0xFF, 0xE0, 0x18, 0, 0, 1, 0xB7})
	d.EndInput()
	if _, err := d.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, file := range []string{"photos-240p.mpg", "testsrc2-272p.m1v"} {
		data, err := os.ReadFile(filepath.Join(mediaDir, file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 6<<10)])
	}
	f.Add([]byte{0, 0, 1, 0xB3, 0x01, 0x00, 0x10, 0x13})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		d.MaxWidth, d.MaxHeight = 512, 512
		for n := 0; ; n++ {
			_, err := d.Next()
			if err != nil {
				return
			}
			// Each frame costs at least a picture start code and a header.
			if n > len(data) {
				t.Fatalf("%d frames from %d bytes", n, len(data))
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"photos-240p.mpg", "photos-360p.mpg", "photos-480p.mpg"} {
		data, err := os.ReadFile(filepath.Join(mediaDir, name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			frames := 0
			for b.Loop() {
				d := NewDecoder(bytes.NewReader(data))
				for {
					if _, err := d.Next(); err != nil {
						break
					}
					frames++
				}
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

func TestProbe(t *testing.T) {
	f, err := os.Open(filepath.Join(mediaDir, "photos-360p.mpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seq, n, err := Probe(f)
	if err != nil {
		t.Fatal(err)
	}
	num, den := seq.FrameRate()
	if seq.Width != 640 || seq.Height != 360 || num != 30 || den != 1 || n != 600 {
		t.Fatalf("Probe: %+v, %d pictures", seq, n)
	}
}
