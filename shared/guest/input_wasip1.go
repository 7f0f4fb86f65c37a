//go:build wasip1

package guest

import (
	"runtime"
	"unsafe"

	"replaydesk/shared/abi"
)

// pollChunk is how many events one input_poll call asks for.
const pollChunk = 64

var (
	inputBuf [pollChunk * abi.EventSize]byte
	badInput int
)

// PollInput appends every pending input event to dst and returns the result;
// typical use is events = guest.PollInput(events[:0]). It calls input_poll
// until the host has no more. Malformed events (which a correct host never
// sends) are dropped and counted by BadEvents.
func PollInput(dst []abi.Event) []abi.Event {
	for {
		n := hostInputPoll(unsafe.Pointer(&inputBuf[0]), pollChunk)
		runtime.KeepAlive(&inputBuf)
		if n <= 0 {
			return dst
		}
		if n > pollChunk {
			n = pollChunk // a host bug; never read past the buffer
		}
		for i := range int(n) {
			ev, err := abi.DecodeEvent(inputBuf[i*abi.EventSize : (i+1)*abi.EventSize])
			if err != nil {
				badInput++
				continue
			}
			dst = append(dst, ev)
		}
		if n < pollChunk {
			return dst
		}
	}
}

// BadEvents returns how many malformed input events PollInput has dropped.
func BadEvents() int { return badInput }
