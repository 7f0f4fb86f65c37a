package wasmrw

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A hand-assembled module: one imported global, two defined globals (one
// mutable i64, one immutable i32), one export.
var tiny = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	// import section: "env" "g" global i32 const
	0x02, 0x0a, 0x01, 0x03, 'e', 'n', 'v', 0x01, 'g', 0x03, 0x7f, 0x00,
	// global section: 2 globals
	0x06, 0x0b, 0x02,
	0x7e, 0x01, 0x42, 0x05, 0x0b, // i64 mut = 5
	0x7f, 0x00, 0x41, 0x7f, 0x0b, // i32 const = -1
	// export section: "x" global 1
	0x07, 0x05, 0x01, 0x01, 'x', 0x03, 0x01,
}

func TestExportsOnlyDefinedMutableGlobals(t *testing.T) {
	out, gs, err := ExportMutableGlobals(tiny)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Index != 1 || gs[0].Type != 0x7e || gs[0].Export != "__rd_global_1" {
		t.Fatalf("globals %+v; want only the mutable i64 at absolute index 1", gs)
	}
	if !bytes.Contains(out, []byte("__rd_global_1")) || !bytes.Contains(out, []byte{0x01, 'x', 0x03, 0x01}) {
		t.Fatal("the rewritten module lost the old export or lacks the new one")
	}
	// Rewriting is idempotent in what it finds.
	_, gs2, err := ExportMutableGlobals(out)
	if err != nil || len(gs2) != 1 {
		t.Fatalf("second pass: %v %v", gs2, err)
	}
}

func TestGoGuest(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "g.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../../testdata/probe")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	bin, _ := os.ReadFile(out)
	rewritten, gs, err := ExportMutableGlobals(bin)
	if err != nil {
		t.Fatal(err)
	}
	// Go's wasm port keeps SP, CTXT, g, RET0..3 and PAUSE in globals.
	if len(gs) < 6 {
		t.Fatalf("found %d mutable globals in a Go guest", len(gs))
	}
	if len(rewritten) <= len(bin) {
		t.Fatal("nothing was added")
	}
}

func TestMalformed(t *testing.T) {
	for i := 0; i < len(tiny); i++ {
		_, _, err := ExportMutableGlobals(tiny[:i])
		if err == nil && i < 8 {
			t.Fatalf("accepted %d bytes", i)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v is not ErrMalformed", i, err)
		}
	}
}

func FuzzExportMutableGlobals(f *testing.F) {
	f.Add(tiny)
	f.Fuzz(func(t *testing.T, b []byte) {
		out, gs, err := ExportMutableGlobals(b)
		if err != nil {
			return
		}
		// What it accepted once it accepts again, finding the same globals.
		_, gs2, err := ExportMutableGlobals(out)
		if err != nil || len(gs2) != len(gs) {
			t.Fatalf("rewritten module: %v, %d globals then %d", err, len(gs), len(gs2))
		}
	})
}
