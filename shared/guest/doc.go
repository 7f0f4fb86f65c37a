// Package guest is the SDK that replaydesk guest programs import: a thin,
// typed layer over guest ABI v1 (the "replaydesk_v1" import module, described
// in docs/abi.md and package abi).
//
// A guest is a Go program built as a WebAssembly reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o prog.wasm ./prog
//
// The host calls the reactor's _initialize export once (which runs the package
// init functions, not main) and then the step export once per 60 Hz tick while
// the guest is awake. This package owns the step export; a program registers
// its step function from init with Run:
//
//	package main
//
//	import (
//		"image"
//		"image/color"
//
//		"replaydesk/shared/abi"
//		"replaydesk/shared/guest"
//	)
//
//	var (
//		fb     = image.NewRGBA(image.Rect(0, 0, 320, 200))
//		events []abi.Event
//	)
//
//	func init() { guest.Run(step) }
//
//	func main() {} // required, never called
//
//	func step() int32 {
//		events = guest.PollInput(events[:0])
//		for _, ev := range events {
//			if ev.Type == abi.EvMove {
//				fb.Set(int(ev.X), int(ev.Y), color.White)
//				guest.PresentRGBA(fb, image.Rect(int(ev.X), int(ev.Y), int(ev.X)+1, int(ev.Y)+1))
//			}
//		}
//		return abi.SleepUntilEvent // nothing animates: sleep until input
//	}
//
// The clock and randomness come through WASI: use time.Now, crypto/rand and
// math/rand/v2 as usual. The host's clock is virtual and advances exactly one
// tick (1/60 s) per tick, whether the guest was awake or asleep.
//
// Rules for step functions: return promptly and never block (no time.Sleep,
// no waiting on channels fed by other goroutines — other goroutines do not
// run between steps), and do not use files, arguments or environment
// variables. Call the functions of this package only from step, never from
// init: a restored machine does not run init again, and the host records the
// results of imports per step.
//
// This package knows only package abi and the host's imports. It must not
// know about wazero, record logs, sessions or any particular guest program.
//
// The functions that call the host exist only when GOOS=wasip1; the errno
// names and the tick arithmetic are plain Go and build everywhere.
package guest
