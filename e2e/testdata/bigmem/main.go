//go:build wasip1

// Bigmem is a benchmark guest whose memory is about 64 MiB: a 62 MiB world,
// half its pages filled, sixteen random pages rewritten each step. It is for
// measuring snapshot capture and restore, nothing else.
package main

import (
	"math/rand/v2"
	"unsafe"
)

//go:wasmimport replaydesk_v1 present
func present(fb unsafe.Pointer, w, h, stride, format int32, rects unsafe.Pointer, n int32)

const worldBytes = 62 << 20

var (
	world = make([]byte, worldBytes)
	fb    [64 * 64 * 4]byte
	rng   = rand.New(rand.NewPCG(1, 2))
)

func init() {
	for p := 0; p < worldBytes; p += 8192 {
		for i := p; i < p+4096; i += 64 {
			world[i] = byte(i >> 12)
		}
	}
}

//go:wasmexport step
func step() int32 {
	for range 16 {
		p := rng.IntN(worldBytes/4096) * 4096
		world[p+rng.IntN(4096)]++
	}
	fb[rng.IntN(len(fb))]++
	present(unsafe.Pointer(&fb[0]), 64, 64, 256, 0, nil, 0)
	return 0
}

func main() {}
