// Package images is the registry of guest images the server can run: each
// image's WebAssembly module (built by `go run ./server/images/build` and
// embedded), its initial disk, the network endpoints it may open and its
// screen size.
//
// It must not know about wazero, sessions or record logs; it only hands out
// bytes and facts about them.
package images

import (
	_ "embed"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"replaydesk/server/images/testcard/card"
	"replaydesk/shared/abi"
)

// Image is one guest image.
type Image struct {
	Name string
	// Wasm is the guest module. Lookup returns a fresh copy.
	Wasm []byte
	// Disk is the initial disk contents, a multiple of abi.BlockSize bytes;
	// nil means the image has no disk. Lookup returns a fresh copy.
	Disk []byte
	// Endpoints are the net endpoint names the image may open, such as "echo".
	Endpoints []string
	// Width and Height are the size of the frames the image presents.
	Width, Height int
}

type entry struct {
	wasm      *string
	disk      func() []byte
	endpoints []string
	w, h      int
}

//go:embed testcard/testcard.wasm
var testcardWasm string

var registry = map[string]entry{
	"testcard": {
		wasm:      &testcardWasm,
		disk:      TestcardDisk,
		endpoints: []string{"echo"},
		w:         card.Width,
		h:         card.Height,
	},
}

// Names returns the names of all images, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the image called name. The Wasm and Disk slices are the
// caller's to keep and modify.
func Lookup(name string) (Image, error) {
	e, ok := registry[name]
	if !ok {
		return Image{}, fmt.Errorf("images: unknown image %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	img := Image{
		Name:      name,
		Wasm:      []byte(*e.wasm),
		Endpoints: append([]string(nil), e.endpoints...),
		Width:     e.w,
		Height:    e.h,
	}
	if e.disk != nil {
		img.Disk = e.disk()
	}
	return img, nil
}

// TestcardBlocks is the size of the testcard's disk in blocks.
const TestcardBlocks = 256

// TestcardDisk returns the testcard's initial disk: block 0 holds the
// click/Enter counter (a little-endian u64, initially 0, the rest zero), and
// blocks 1..255 are bytes from a ChaCha8 generator with a fixed seed, whose
// checksum the testcard shows.
func TestcardDisk() []byte {
	d := make([]byte, TestcardBlocks*abi.BlockSize)
	var seed [32]byte
	copy(seed[:], "replaydesk testcard disk v1")
	rand.NewChaCha8(seed).Read(d[abi.BlockSize:])
	return d
}
