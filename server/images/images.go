// Package images is the registry of guest images the server can run: each
// image's WebAssembly module (built by `go run ./server/images/build` and
// embedded), its initial disk, the network endpoints it may open and its
// screen size.
//
// It must not know about wazero, sessions or record logs; it only hands out
// bytes and facts about them.
package images

import (
	"fmt"
	"sort"
	"strings"

	"replaydesk/shared/endpoints"
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
	// Sources are the host ends of the image's own endpoints (a LAN video
	// source, a file server); names in Endpoints without one here must be
	// built into endpoints.Host ("echo").
	Sources map[string]endpoints.Factory
	// Width and Height are the size of the frames the image presents.
	Width, Height int
	// About is one line for people choosing an image.
	About string
}

// entry is how an image registers itself (see register).
type entry struct {
	wasm      *string
	disk      func() []byte
	endpoints []string
	sources   map[string]endpoints.Factory
	w, h      int
	about     string
}

var registry = map[string]entry{}

// register adds an image; each image's file calls it from init, next to its
// go:embed of the module.
func register(name string, e entry) {
	if _, dup := registry[name]; dup {
		panic("images: " + name + " registered twice")
	}
	registry[name] = e
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
		Sources:   e.sources,
		Width:     e.w,
		Height:    e.h,
		About:     e.about,
	}
	if e.disk != nil {
		img.Disk = e.disk()
	}
	return img, nil
}
