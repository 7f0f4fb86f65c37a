package srctree

import (
	"bytes"
	"strings"
	"testing"
)

func TestBuildRoundTrip(t *testing.T) {
	paths, contents := Generate(200_000)
	if len(paths) < 5 {
		t.Fatalf("%d files", len(paths))
	}
	disk, entries, err := Build(paths, contents)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk)%BS != 0 {
		t.Fatal("disk is not whole blocks")
	}
	s, err := DecodeSuper(disk[:BS])
	if err != nil || s.Files != uint32(len(paths)) || int(s.Blocks)*BS != len(disk) {
		t.Fatalf("%+v %v", s, err)
	}
	for i := range paths {
		off := int(s.TableStart)*BS + i*EntrySize
		e, err := DecodeEntry(s, disk[off:off+EntrySize])
		if err != nil || e != entries[i] || e.Path != paths[i] {
			t.Fatalf("entry %d: %+v %v, want %+v", i, e, err, entries[i])
		}
		src := disk[int(e.DataBlock)*BS : int(e.DataBlock)*BS+int(e.Size)]
		if !bytes.Equal(src, contents[i]) {
			t.Fatalf("%s: contents differ", e.Path)
		}
		if i > 0 && e.DataBlock < entries[i-1].DataBlock+Blocks(entries[i-1].Size) {
			t.Fatalf("%s overlaps the previous file", e.Path)
		}
	}
	// Corruption is detected.
	bad := bytes.Clone(disk[:BS])
	bad[20]++
	if _, err := DecodeSuper(bad); err == nil {
		t.Fatal("accepted an inconsistent superblock")
	}
	ent := make([]byte, EntrySize)
	PutEntry(ent, Entry{Path: "x.c", Size: 10, DataBlock: s.Blocks, OutBlock: s.OutStart, OutBlocks: 5})
	if _, err := DecodeEntry(s, ent); err == nil {
		t.Fatal("accepted an entry outside the data area")
	}
	if _, _, err := Build([]string{strings.Repeat("a", MaxPath+1)}, [][]byte{nil}); err == nil {
		t.Fatal("accepted an over-long path")
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	p1, c1 := Generate(100_000)
	p2, c2 := Generate(100_000)
	if strings.Join(p1, ",") != strings.Join(p2, ",") || !bytes.Equal(bytes.Join(c1, nil), bytes.Join(c2, nil)) {
		t.Fatal("two generations differ")
	}
	if !bytes.Contains(c1[0], []byte("#include <linux/")) || !bytes.Contains(c1[0], []byte("spin_lock_irqsave")) {
		t.Fatalf("does not look like C:\n%s", c1[0][:300])
	}
}
