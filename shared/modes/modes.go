// Package modes decides, for one viewer, whether it watches the server's
// screen (display mode) or replays the machine itself (replay mode), and
// manages the switch between them through the transient dual mode (the
// paper's section 3.3; DESIGN.md section 6). It is a pure state machine: the
// caller feeds it traffic and progress samples with the time they were taken
// and acts on the state it reports.
//
// Every threshold lives in Rules, with the paper's values as defaults.
//
// It must not know about transports, snapshots' contents, the machine or
// wire messages: "a snapshot is available", "caught up", lag and byte counts
// are facts the caller measures; asking the server for a snapshot, starting
// a replayer or subscribing to display frames are the caller's reactions to
// the state.
package modes

import (
	"fmt"
	"time"
)

// Rules are the switching thresholds. Zero fields take the defaults of
// DefaultRules, the paper's values.
type Rules struct {
	// Start is the state a viewer starts in: Display (the paper: a viewer
	// first sees the screen while a snapshot is not yet needed).
	Start State
	// ToDualFactor: display → dual when the display traffic over Window is
	// at least this multiple of the estimated replay traffic. 1.5 (the
	// paper's list of thresholds; its text once says "75 %", i.e. 1.33).
	ToDualFactor float64
	// ToDisplayFactor: replay → display when the replay traffic over
	// Window is at least this multiple of the estimated display traffic.
	// 1.1: leaving replay is cheap (< 50 ms), so it is quicker to decide.
	ToDisplayFactor float64
	// Window is the traffic window both factors are measured over, and the
	// time a viewer stays in display or replay before traffic may move it.
	// 20 s.
	Window time.Duration
	// DualTimeout: a viewer that has not caught up (replayed to the end of
	// the log it received) after this long in dual mode goes back to display;
	// the switch failed. 200 s.
	DualTimeout time.Duration
	// SnapshotTimeout: how long a decided switch waits for a snapshot before
	// it counts as failed. 120 s (the paper's snapshots took "up to tens of
	// seconds"; this is not one of its thresholds).
	SnapshotTimeout time.Duration
	// Backoff: after a failed switch, no new automatic attempt for this long.
	// 20 min.
	Backoff time.Duration
	// MaxLag: in replay, fall back to display when the replay is further
	// behind the server than this. 500 ms. (Dual mode allows any lag.)
	MaxLag time.Duration
	// MaxBuffer: in dual or replay, fall back to display when the received
	// but not yet replayed log exceeds this many bytes. 16 MiB (the paper's
	// socket buffers).
	MaxBuffer uint64
}

// DefaultRules returns the paper's thresholds.
func DefaultRules() Rules {
	return Rules{
		Start:           Display,
		ToDualFactor:    1.5,
		ToDisplayFactor: 1.1,
		Window:          20 * time.Second,
		DualTimeout:     200 * time.Second,
		SnapshotTimeout: 120 * time.Second,
		Backoff:         20 * time.Minute,
		MaxLag:          500 * time.Millisecond,
		MaxBuffer:       16 << 20,
	}
}

func (r Rules) withDefaults() Rules {
	d := DefaultRules()
	if r.Start != Replay {
		r.Start = d.Start
	}
	if r.ToDualFactor <= 0 {
		r.ToDualFactor = d.ToDualFactor
	}
	if r.ToDisplayFactor <= 0 {
		r.ToDisplayFactor = d.ToDisplayFactor
	}
	for _, p := range []struct{ v, d *time.Duration }{{&r.Window, &d.Window}, {&r.DualTimeout, &d.DualTimeout},
		{&r.SnapshotTimeout, &d.SnapshotTimeout}, {&r.Backoff, &d.Backoff}, {&r.MaxLag, &d.MaxLag}} {
		if *p.v <= 0 {
			*p.v = *p.d
		}
	}
	if r.MaxBuffer == 0 {
		r.MaxBuffer = d.MaxBuffer
	}
	return r
}

// State is where a viewer is in the switching cycle.
type State uint8

const (
	// Display: the viewer shows display frames.
	Display State = 1
	// AwaitSnapshot: a switch to replay was decided; the viewer still shows
	// display frames and the caller should get a snapshot taken.
	AwaitSnapshot State = 2
	// Dual: the viewer receives both streams and shows display frames
	// while its replay catches up in the background.
	Dual State = 3
	// Replay: the viewer shows its own replay; display frames stop.
	Replay State = 4
)

var stateNames = [...]string{"", "display", "await-snapshot", "dual", "replay"}

func (s State) String() string {
	if s >= Display && s <= Replay {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ShowsReplay reports whether the user sees the replay (only in Replay);
// in every other state the screen is the display stream.
func (s State) ShowsReplay() bool { return s == Replay }

// NeedsLog reports whether the viewer needs the live record log.
func (s State) NeedsLog() bool { return s == Dual || s == Replay }

// NeedsDisplay reports whether the viewer needs display frames.
func (s State) NeedsDisplay() bool { return s != Replay }

// Pin is a mode chosen by hand.
type Pin uint8

const (
	PinAuto    Pin = 0 // the rules decide
	PinDisplay Pin = 1 // stay in display (also: a viewer not allowed or able to replay)
	PinReplay  Pin = 2 // replay whatever the traffic; lag and buffer limits still apply
)

func (p Pin) String() string {
	switch p {
	case PinAuto:
		return "auto"
	case PinDisplay:
		return "display"
	case PinReplay:
		return "replay"
	}
	return fmt.Sprintf("pin(%d)", uint8(p))
}

// Reason says why a transition happened.
type Reason uint8

const (
	ReasonDisplayCostly   Reason = 1  // display traffic ≥ ToDualFactor × replay traffic
	ReasonReplayCostly    Reason = 2  // replay traffic ≥ ToDisplayFactor × display traffic
	ReasonSnapshotReady   Reason = 3  // the awaited snapshot exists: start dual mode
	ReasonCaughtUp        Reason = 4  // dual mode reached the end of the received log
	ReasonDualTimeout     Reason = 5  // dual mode lasted DualTimeout without catching up
	ReasonSnapshotFailed  Reason = 6  // the server could not take a snapshot
	ReasonSnapshotTimeout Reason = 7  // no snapshot within SnapshotTimeout
	ReasonLag             Reason = 8  // replay lag beyond MaxLag
	ReasonBuffer          Reason = 9  // received log beyond MaxBuffer
	ReasonPinned          Reason = 10 // the user pinned a mode
	ReasonForced          Reason = 11 // the server or relay ordered it, or the replay failed
)

var reasonNames = [...]string{"", "display-costly", "replay-costly", "snapshot-ready", "caught-up",
	"dual-timeout", "snapshot-failed", "snapshot-timeout", "lag", "buffer-full", "pinned", "forced"}

func (r Reason) String() string {
	if r >= 1 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Sample is what a viewer measured since its previous Observe.
type Sample struct {
	// DisplayBytes and ReplayBytes are the bytes each mode's stream cost (or
	// would have cost) since the previous sample: measured for the streams
	// the viewer receives, the server's estimates for the others.
	DisplayBytes, ReplayBytes uint64
	// Lag is how far the replay is behind the server (LagOf converts ticks).
	Lag time.Duration
	// BufferBytes is the log received but not yet replayed.
	BufferBytes uint64
	// CaughtUp: the replay reached the end of the log received so far.
	CaughtUp bool
	// SnapshotAvailable: a snapshot the viewer can start replaying from
	// exists (taken since the switch was decided, or recent enough).
	SnapshotAvailable bool
	// SnapshotFailed: the server gave up taking the awaited snapshot.
	SnapshotFailed bool
}

// LagOf converts a lag in ticks at hz ticks per second to a duration.
func LagOf(ticks uint64, hz uint32) time.Duration {
	if hz == 0 {
		return 0
	}
	return time.Duration(float64(ticks) / float64(hz) * float64(time.Second))
}

// Transition is one change of state, for logs and the --stats file.
type Transition struct {
	At       time.Time
	From, To State
	Reason   Reason
	// Failed marks a failed switch to replay: automatic attempts back off.
	Failed bool
	Detail string // the numbers behind the decision
}

func (t Transition) String() string {
	s := fmt.Sprintf("%s → %s (%s", t.From, t.To, t.Reason)
	if t.Failed {
		s += ", failed"
	}
	if t.Detail != "" {
		s += ": " + t.Detail
	}
	return s + ")"
}

// Stats summarizes a controller's life so far.
type Stats struct {
	State        State
	Pin          Pin
	Since        time.Time // when State was entered
	TimeIn       map[State]time.Duration
	Transitions  int
	Switches     int // successful display → replay switches
	Failures     int // failed switches and forced fallbacks (each starts a back-off)
	BackoffUntil time.Time
	Last         Transition // zero if none yet
}

type sample struct {
	at              time.Time
	display, replay uint64
}

// Controller is one viewer's mode state machine. Create it with New.
type Controller struct {
	rules   Rules
	state   State
	pin     Pin
	started bool
	since   time.Time // when state was entered
	fill    time.Time // when the traffic window started filling
	window  []sample  // samples within Window, oldest first
	sumD    uint64
	sumR    uint64
	backoff time.Time // no automatic attempt before this
	stats   Stats
}

// New returns a controller in r.Start, unpinned.
func New(r Rules) *Controller {
	r = r.withDefaults()
	return &Controller{rules: r, state: r.Start, stats: Stats{TimeIn: map[State]time.Duration{}}}
}

// Rules returns the rules in force (defaults filled in).
func (c *Controller) Rules() Rules { return c.rules }

// State is the current state.
func (c *Controller) State() State { return c.state }

// Pin is the current pin.
func (c *Controller) Pin() Pin { return c.pin }

// WantsSnapshot reports whether the caller should get a snapshot taken.
func (c *Controller) WantsSnapshot() bool { return c.state == AwaitSnapshot }

// BackoffUntil is when automatic switch attempts resume (zero if never
// backed off).
func (c *Controller) BackoffUntil() time.Time { return c.backoff }

// Window returns the display and replay bytes in the traffic window ending
// at the last sample, and whether the window is full (it has been filling
// for at least Rules.Window).
func (c *Controller) Window(now time.Time) (display, replay uint64, full bool) {
	c.expire(now)
	return c.sumD, c.sumR, c.started && now.Sub(c.fill) >= c.rules.Window
}

func (c *Controller) start(now time.Time) {
	if !c.started {
		c.started, c.since, c.fill = true, now, now
	}
}

// expire drops samples at or before now − Window: the window is (now − W, now].
func (c *Controller) expire(now time.Time) {
	cut := now.Add(-c.rules.Window)
	i := 0
	for ; i < len(c.window) && !c.window[i].at.After(cut); i++ {
		c.sumD -= c.window[i].display
		c.sumR -= c.window[i].replay
	}
	c.window = c.window[i:]
}

func (c *Controller) resetWindow(now time.Time) {
	c.window, c.sumD, c.sumR, c.fill = nil, 0, 0, now
}

func (c *Controller) move(now time.Time, to State, why Reason, failed bool, detail string) Transition {
	t := Transition{At: now, From: c.state, To: to, Reason: why, Failed: failed, Detail: detail}
	c.stats.TimeIn[c.state] += now.Sub(c.since)
	c.state, c.since = to, now
	// Traffic means something else in the new state (what is measured and
	// what is estimated swap), so a decision waits for a window of it.
	if to == Display || to == Replay {
		c.resetWindow(now)
	}
	if failed {
		c.backoff = now.Add(c.rules.Backoff)
		c.stats.Failures++
	}
	if why == ReasonCaughtUp {
		c.stats.Switches++
	}
	c.stats.Transitions++
	c.stats.Last = t
	return t
}

// beginSwitch leaves display for replay: straight to dual when a snapshot is
// there already, else to wait for one.
func (c *Controller) beginSwitch(now time.Time, s Sample, why Reason, detail string) Transition {
	if s.SnapshotAvailable {
		return c.move(now, Dual, why, false, detail)
	}
	return c.move(now, AwaitSnapshot, why, false, detail)
}

// Force leaves dual or replay for display at once: the server or relay
// ordered it (a forced ModeSwitch), or the replay failed (a divergence,
// a damaged block). It counts as a failed switch, so automatic attempts
// back off; a pin to replay still applies at the next Observe.
func (c *Controller) Force(now time.Time, detail string) (Transition, bool) {
	c.start(now)
	if c.state == Display {
		return Transition{}, false
	}
	return c.move(now, Display, ReasonForced, true, detail), true
}

// Observe feeds one sample taken at now (times must not go backwards) and
// applies the rules. It returns the transition it made, if any; at most one
// per call.
func (c *Controller) Observe(now time.Time, s Sample) (Transition, bool) {
	c.start(now)
	c.window = append(c.window, sample{now, s.DisplayBytes, s.ReplayBytes})
	c.sumD += s.DisplayBytes
	c.sumR += s.ReplayBytes
	c.expire(now)
	full := now.Sub(c.fill) >= c.rules.Window
	r := &c.rules

	if c.pin == PinDisplay && c.state != Display {
		return c.move(now, Display, ReasonPinned, false, "pinned to display"), true
	}
	switch c.state {
	case Display:
		switch {
		case c.pin == PinReplay:
			return c.beginSwitch(now, s, ReasonPinned, "pinned to replay"), true
		case c.pin == PinDisplay || now.Before(c.backoff) || !full || c.sumD == 0:
		case float64(c.sumD) >= r.ToDualFactor*float64(c.sumR):
			return c.beginSwitch(now, s, ReasonDisplayCostly, c.traffic()), true
		}
	case AwaitSnapshot:
		switch {
		case s.SnapshotFailed:
			return c.move(now, Display, ReasonSnapshotFailed, true, ""), true
		case s.SnapshotAvailable:
			return c.move(now, Dual, ReasonSnapshotReady, false, ""), true
		case now.Sub(c.since) >= r.SnapshotTimeout:
			return c.move(now, Display, ReasonSnapshotTimeout, true, fmt.Sprintf("no snapshot after %v", now.Sub(c.since))), true
		}
	case Dual:
		switch {
		case s.CaughtUp:
			return c.move(now, Replay, ReasonCaughtUp, false, fmt.Sprintf("after %v in dual", now.Sub(c.since))), true
		case s.BufferBytes > r.MaxBuffer:
			return c.move(now, Display, ReasonBuffer, true, fmt.Sprintf("%d bytes buffered > %d", s.BufferBytes, r.MaxBuffer)), true
		case now.Sub(c.since) >= r.DualTimeout:
			return c.move(now, Display, ReasonDualTimeout, true, fmt.Sprintf("not caught up after %v", now.Sub(c.since))), true
		}
	case Replay:
		switch {
		case s.Lag > r.MaxLag:
			return c.move(now, Display, ReasonLag, true, fmt.Sprintf("lag %v > %v", s.Lag, r.MaxLag)), true
		case s.BufferBytes > r.MaxBuffer:
			return c.move(now, Display, ReasonBuffer, true, fmt.Sprintf("%d bytes buffered > %d", s.BufferBytes, r.MaxBuffer)), true
		case c.pin == PinReplay || !full || c.sumR == 0:
		case float64(c.sumR) >= r.ToDisplayFactor*float64(c.sumD):
			return c.move(now, Display, ReasonReplayCostly, false, c.traffic()), true
		}
	}
	return Transition{}, false
}

func (c *Controller) traffic() string {
	return fmt.Sprintf("display %d B, replay %d B over %v", c.sumD, c.sumR, c.rules.Window)
}

// SetPin pins a mode by hand (PinAuto unpins). Pinning display leaves dual
// or replay at once; pinning replay starts a switch at once (the back-off
// does not apply to what the user asked for); the next Observe goes on from
// there.
func (c *Controller) SetPin(now time.Time, p Pin) (Transition, bool) {
	c.start(now)
	c.pin = p
	switch {
	case p == PinDisplay && c.state != Display:
		return c.move(now, Display, ReasonPinned, false, "pinned to display"), true
	case p == PinReplay && c.state == Display:
		return c.move(now, AwaitSnapshot, ReasonPinned, false, "pinned to replay"), true
	}
	return Transition{}, false
}

// Stats returns the controller's statistics as of now.
func (c *Controller) Stats(now time.Time) Stats {
	s := c.stats
	s.State, s.Pin, s.Since, s.BackoffUntil = c.state, c.pin, c.since, c.backoff
	s.TimeIn = make(map[State]time.Duration, len(c.stats.TimeIn)+1)
	for k, v := range c.stats.TimeIn {
		s.TimeIn[k] = v
	}
	if c.started {
		s.TimeIn[c.state] += now.Sub(c.since)
	}
	return s
}
