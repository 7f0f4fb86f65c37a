package starter

import (
	"bytes"
	"testing"

	"replaydesk/server/images/desk/deskfs"
)

func TestDisk(t *testing.T) {
	d := Disk()
	if len(d) != Blocks*deskfs.BlockSize || !bytes.Equal(d, Disk()) {
		t.Fatal("the disk has the wrong size or is not deterministic")
	}
	fs, err := deskfs.Mount(deskfs.MemDevice(d))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range Files {
		got, err := fs.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s: %v", p, err)
		}
	}
	ents, _ := fs.ReadDir("/")
	if len(ents) != 3 || ents[0].Name != "README.txt" || !ents[1].Dir {
		t.Fatalf("root: %+v", ents)
	}
}
