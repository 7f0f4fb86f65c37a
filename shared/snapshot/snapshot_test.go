package snapshot

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"replaydesk/shared/recordlog"
)

func sample() *Snapshot {
	mem := make([]byte, 64*PageSize)
	r := rand.New(rand.NewPCG(1, 2))
	for p := 0; p < 64; p += 3 { // a third of the pages non-zero
		for i := 0; i < PageSize; i += 7 {
			mem[p*PageSize+i] = byte(r.Uint32())
		}
	}
	return &Snapshot{
		ModuleHash: recordlog.ModuleHash{1, 2, 3},
		Tick:       1000, Step: 400,
		LogPos:  recordlog.Pos{Segment: 2, Offset: 4096, Tick: 1000, Step: 400},
		Globals: []uint64{1, 1 << 63, 42},
		Device:  []byte(`{"tick":1000}`),
		Memory:  mem,
	}
}

func encode(t testing.TB, s *Snapshot) []byte {
	var b bytes.Buffer
	if err := Write(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTripElidesZeroPages(t *testing.T) {
	s := sample()
	b := encode(t, s)
	if len(b) > len(s.Memory)/2 {
		t.Errorf("%d bytes for %d of memory, two thirds zero: zero pages are not elided", len(b), len(s.Memory))
	}
	got, err := Decode(b, s.ModuleHash, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Memory, s.Memory) || got.Tick != s.Tick || got.Step != s.Step || got.LogPos != s.LogPos ||
		!bytes.Equal(got.Device, s.Device) || len(got.Globals) != 3 || got.Globals[1] != 1<<63 {
		t.Fatalf("round trip changed the snapshot: %+v", got.LogPos)
	}
	p := filepath.Join(t.TempDir(), "s.snap")
	if err := WriteFile(p, s); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p, s.ModuleHash); err != nil {
		t.Fatal(err)
	}
}

func TestEveryDamageIsDetected(t *testing.T) {
	s := sample()
	b := encode(t, s)
	for i := 0; i < len(b); i += max(1, len(b)/3000) {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		if _, err := Decode(c, s.ModuleHash, "x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at byte %d: %v", i, err)
		}
	}
	for _, n := range []int{0, 10, len(b) / 2, len(b) - 1} {
		if _, err := Decode(b[:n], s.ModuleHash, "x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func TestOtherModuleIsRefused(t *testing.T) {
	s := sample()
	_, err := Decode(encode(t, s), recordlog.ModuleHash{9}, "x.snap")
	var mm *ModuleMismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "0900") || !strings.Contains(err.Error(), "010203") {
		t.Fatalf("want a mismatch naming both hashes, got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	s := sample()
	s.Memory = s.Memory[:4*PageSize]
	f.Add(encode(f, s))
	f.Add([]byte("RDSNAP\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b, recordlog.ModuleHash{}, "fuzz")
		if err == nil && len(got.Memory)%PageSize != 0 {
			t.Fatal("decoded memory is not whole pages")
		}
	})
}
