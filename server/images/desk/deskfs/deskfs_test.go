package deskfs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func newFS(t *testing.T, blocks int) (*FS, MemDevice) {
	t.Helper()
	dev := NewMemDevice(blocks)
	if err := Format(dev); err != nil {
		t.Fatal(err)
	}
	fs, err := Mount(dev)
	if err != nil {
		t.Fatal(err)
	}
	return fs, dev
}

func TestPersistsAcrossRemount(t *testing.T) {
	fs, dev := newFS(t, 2048)
	fs.Now = func() int64 { return 1234 }
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: uses the indirect block
	must(t, fs.MkdirAll("/notes/old"))
	must(t, fs.WriteFile("/notes/todo.txt", []byte("buy milk\n")))
	must(t, fs.WriteFile("/big.bin", big))
	must(t, fs.WriteFile("/a.txt", []byte("first")))
	must(t, fs.WriteFile("/a.txt", []byte("second version")))
	must(t, fs.Rename("/a.txt", "/notes/old/b.txt"))

	fs2, err := Mount(dev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs2.ReadFile("notes/todo.txt")
	if err != nil || string(got) != "buy milk\n" {
		t.Fatalf("todo = %q, %v", got, err)
	}
	if got, _ := fs2.ReadFile("/big.bin"); !bytes.Equal(got, big) {
		t.Fatalf("big file: %d bytes back, want %d", len(got), len(big))
	}
	if got, _ := fs2.ReadFile("/notes/old/b.txt"); string(got) != "second version" {
		t.Fatalf("renamed file = %q", got)
	}
	if _, err := fs2.Stat("/a.txt"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("old name still there: %v", err)
	}
	st, _ := fs2.Stat("/notes/todo.txt")
	if st.MTime != 1234 || st.Size != 9 || st.Dir {
		t.Fatalf("stat = %+v", st)
	}
	ents, _ := fs2.ReadDir("/")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if fmt.Sprint(names) != "[big.bin notes]" {
		t.Fatalf("root lists %v", names)
	}
	// Free space comes back after removals, and the remount agrees.
	b0, i0 := fs2.Free()
	must(t, fs2.Remove("/big.bin"))
	b1, i1 := fs2.Free()
	if b1 != b0+79+1 || i1 != i0+1 {
		t.Fatalf("free blocks %d -> %d, inodes %d -> %d", b0, b1, i0, i1)
	}
	fs3, err := Mount(dev)
	if err != nil {
		t.Fatal(err)
	}
	if b, i := fs3.Free(); b != b1 || i != i1 {
		t.Fatalf("after remount free %d/%d, want %d/%d", b, i, b1, i1)
	}
}

func TestErrors(t *testing.T) {
	fs, _ := newFS(t, 64)
	must(t, fs.Mkdir("/d"))
	must(t, fs.WriteFile("/d/f", []byte("x")))
	if err := fs.Remove("/d"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("remove non-empty dir: %v", err)
	}
	if err := fs.Mkdir("/d"); !errors.Is(err, ErrExist) {
		t.Fatalf("mkdir twice: %v", err)
	}
	if _, err := fs.ReadFile("/d"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("read dir: %v", err)
	}
	if err := fs.WriteFile("/nope/f", nil); !errors.Is(err, ErrNotExist) {
		t.Fatalf("write in missing dir: %v", err)
	}
	if err := fs.Rename("/d", "/d/e"); !errors.Is(err, ErrBusy) {
		t.Fatalf("move dir into itself: %v", err)
	}
	// 64 blocks minus metadata: a 300 KB file does not fit.
	if err := fs.WriteFile("/huge", make([]byte, 300000)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("huge file: %v", err)
	}
	if err := fs.WriteFile("/"+string(bytes.Repeat([]byte("n"), MaxName+1)), nil); !errors.Is(err, ErrName) {
		t.Fatalf("long name: %v", err)
	}
	if _, err := Mount(NewMemDevice(64)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mount of a blank disk: %v", err)
	}
}

func TestMountRejectsDoubleClaimedBlock(t *testing.T) {
	fs, dev := newFS(t, 64)
	must(t, fs.WriteFile("/a", []byte("a")))
	must(t, fs.WriteFile("/b", []byte("b")))
	// Point b's inode at a's block.
	ia, _ := fs.lookup("/a")
	ib, _ := fs.lookup("/b")
	fs.inodes[ib].direct[0] = fs.inodes[ia].direct[0]
	must(t, fs.writeInode(ib))
	if _, err := Mount(dev); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mount: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
