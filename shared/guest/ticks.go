package guest

import "time"

// TickRate is the number of ticks per second of virtual time.
const TickRate = 60

// Tick is the virtual time one tick takes (1/60 s, rounded down to whole
// nanoseconds).
const Tick = time.Second / TickRate

// TicksFor returns the number of ticks after which at least d of virtual
// time has passed: d rounded up to whole ticks, at least 1 and at most
// math.MaxInt32. The host's clock reads whole nanoseconds rounded down, so
// one tick advances it by 16666666 or 16666667 ns; TicksFor allows for that by
// rounding d-1ns up, which may wake a guest one tick early (never late) for
// deadlines that are not tick-aligned: check the time when woken and sleep
// again if needed.
func TicksFor(d time.Duration) int32 {
	d--
	if d <= 0 {
		return 1
	}
	// n = ceil(d * TickRate / 1s), computed without overflow.
	n := d / time.Second * TickRate
	rem := d % time.Second * TickRate
	n += (rem + time.Second - 1) / time.Second
	if n < 1 {
		return 1
	}
	if n > 1<<31-1 {
		return 1<<31 - 1
	}
	return int32(n)
}

// SleepFor returns the step result that has the host call step again once d
// of virtual time has passed: the host skips n ticks after a step that
// returns n, so this is TicksFor(d)-1 (0, "next tick", for d of at most one
// tick). Typical use, waking on the next whole second:
//
//	now := time.Now()
//	return guest.SleepFor(now.Truncate(time.Second).Add(time.Second).Sub(now))
func SleepFor(d time.Duration) int32 {
	return TicksFor(d) - 1
}
