//go:build wasip1

package guest

import "replaydesk/shared/abi"

var stepFunc func() int32

// Run registers the program's step function. Call it from an init function of
// package main; the host calls step once per tick while the guest is awake.
// step returns a sleep value: 0 (abi.SleepNone) to run again next tick, n > 0
// to sleep n ticks, or -1 (abi.SleepUntilEvent) to sleep until input or
// network data arrives; input and network data also end a timed sleep early.
// Calling Run again replaces the function.
func Run(step func() int32) {
	stepFunc = step
}

// step is the guest's step export. Without a registered function the guest
// sleeps until an event, which is harmless and cheap.
//
//go:wasmexport step
func step() int32 {
	if stepFunc == nil {
		return abi.SleepUntilEvent
	}
	r := stepFunc()
	if r < abi.SleepUntilEvent {
		r = abi.SleepUntilEvent
	}
	return r
}
