package modes

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// step observes s once a second from From to To (inclusive; To 0 means just
// From). No transition may happen before the last observation; at the last
// one, transition Why must happen (or none if Why is 0); the state is then
// Want.
type step struct {
	From, To float64
	S        Sample
	Pin      *Pin // SetPin at From instead of observing
	Want     State
	Why      Reason
	Failed   bool
}

func pin(p Pin) *Pin { return &p }

var (
	heavyDisplay = Sample{DisplayBytes: 1500, ReplayBytes: 1000} // exactly 1.5x
	justUnder    = Sample{DisplayBytes: 1490, ReplayBytes: 1000} // 1.49x
	heavyReplay  = Sample{DisplayBytes: 1000, ReplayBytes: 1100} // exactly 1.1x
	replayOK     = Sample{DisplayBytes: 1000, ReplayBytes: 1090} // 1.09x
	quiet        = Sample{}                                      // nothing either way
	snap         = Sample{DisplayBytes: 1500, ReplayBytes: 1000, SnapshotAvailable: true}
	caughtUp     = Sample{DisplayBytes: 1500, ReplayBytes: 1000, CaughtUp: true}
	lagging      = Sample{ReplayBytes: 10, DisplayBytes: 1000, Lag: 501 * time.Millisecond}
	lagAtLimit   = Sample{ReplayBytes: 10, DisplayBytes: 1000, Lag: 500 * time.Millisecond}
	bufferFull   = Sample{ReplayBytes: 10, DisplayBytes: 1000, BufferBytes: 16<<20 + 1}
	bufferAtEdge = Sample{ReplayBytes: 10, DisplayBytes: 1000, BufferBytes: 16 << 20}
)

// toReplay brings a controller from display to replay: the window fills at
// 20 s, a snapshot is there at 25 s, the replay catches up at 40 s.
var toReplay = []step{
	{From: 0, To: 20, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
	{From: 21, To: 25, S: Sample{SnapshotAvailable: false}, Want: AwaitSnapshot},
	{From: 26, S: snap, Want: Dual, Why: ReasonSnapshotReady},
	{From: 27, To: 40, S: Sample{}, Want: Dual},
	{From: 41, S: caughtUp, Want: Replay, Why: ReasonCaughtUp},
}

func with(prefix []step, more ...step) []step { return append(append([]step{}, prefix...), more...) }

func TestRules(t *testing.T) {
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"starts in display and waits for a full window", []step{
			{From: 0, To: 19, S: heavyDisplay, Want: Display},
			{From: 20, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
		}},
		{"1.49x never switches", []step{{From: 0, To: 300, S: justUnder, Want: Display}}},
		{"no traffic never switches", []step{{From: 0, To: 300, S: quiet, Want: Display}}},
		{"display with no replay traffic switches", []step{
			{From: 0, To: 20, S: Sample{DisplayBytes: 1}, Want: AwaitSnapshot, Why: ReasonDisplayCostly}}},
		{"a snapshot already there goes straight to dual", []step{
			{From: 0, To: 20, S: snap, Want: Dual, Why: ReasonDisplayCostly}}},
		{"the whole way to replay", toReplay},
		{"dual times out after 200 s and backs off", []step{
			{From: 0, To: 20, S: snap, Want: Dual, Why: ReasonDisplayCostly},
			{From: 21, To: 219, S: heavyDisplay, Want: Dual},
			{From: 220, S: heavyDisplay, Want: Display, Why: ReasonDualTimeout, Failed: true},
			// 20 minutes of display-heavy traffic without an attempt…
			{From: 221, To: 220 + 20*60 - 1, S: snap, Want: Display},
			// …then the next attempt.
			{From: 220 + 20*60, S: snap, Want: Dual, Why: ReasonDisplayCostly},
		}},
		{"dual ignores lag", []step{
			{From: 0, To: 20, S: snap, Want: Dual, Why: ReasonDisplayCostly},
			{From: 21, To: 100, S: Sample{Lag: time.Minute}, Want: Dual},
		}},
		{"dual buffer overflow fails the switch", []step{
			{From: 0, To: 20, S: snap, Want: Dual, Why: ReasonDisplayCostly},
			{From: 21, To: 30, S: bufferAtEdge, Want: Dual},
			{From: 31, S: bufferFull, Want: Display, Why: ReasonBuffer, Failed: true},
			{From: 32, To: 600, S: snap, Want: Display},
		}},
		{"snapshot failure backs off", []step{
			{From: 0, To: 20, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
			{From: 21, S: Sample{SnapshotFailed: true}, Want: Display, Why: ReasonSnapshotFailed, Failed: true},
			{From: 22, To: 21 + 20*60 - 1, S: heavyDisplay, Want: Display},
			{From: 21 + 20*60, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
		}},
		{"snapshot timeout backs off", []step{
			{From: 0, To: 20, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
			{From: 21, To: 139, S: heavyDisplay, Want: AwaitSnapshot},
			{From: 140, S: heavyDisplay, Want: Display, Why: ReasonSnapshotTimeout, Failed: true},
			{From: 141, To: 1000, S: heavyDisplay, Want: Display},
		}},
		{"replay back to display at 1.1x after a full window", with(toReplay,
			step{From: 42, To: 60, S: heavyReplay, Want: Replay},
			step{From: 61, S: heavyReplay, Want: Display, Why: ReasonReplayCostly},
			// not a failure: a new window, and the switch may come again
			step{From: 62, To: 80, S: heavyDisplay, Want: Display},
			step{From: 81, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
		)},
		{"replay stays below 1.1x", with(toReplay, step{From: 42, To: 500, S: replayOK, Want: Replay})},
		{"replay stays when nothing is sent", with(toReplay, step{From: 42, To: 500, S: quiet, Want: Replay})},
		{"replay falls back on lag and backs off", with(toReplay,
			step{From: 42, To: 50, S: lagAtLimit, Want: Replay},
			step{From: 51, S: lagging, Want: Display, Why: ReasonLag, Failed: true},
			step{From: 52, To: 51 + 20*60 - 1, S: heavyDisplay, Want: Display},
			step{From: 51 + 20*60, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
		)},
		{"replay falls back on a full buffer", with(toReplay,
			step{From: 42, To: 50, S: bufferAtEdge, Want: Replay},
			step{From: 51, S: bufferFull, Want: Display, Why: ReasonBuffer, Failed: true},
		)},
		{"pin display leaves replay and holds", with(toReplay,
			step{From: 42, Pin: pin(PinDisplay), Want: Display, Why: ReasonPinned},
			step{From: 43, To: 500, S: snap, Want: Display},
			// Unpinned, the window of display traffic is already full.
			step{From: 501, Pin: pin(PinAuto), Want: Display},
			step{From: 502, S: snap, Want: Dual, Why: ReasonDisplayCostly},
		)},
		{"pin display leaves dual", []step{
			{From: 0, To: 20, S: snap, Want: Dual, Why: ReasonDisplayCostly},
			{From: 21, Pin: pin(PinDisplay), Want: Display, Why: ReasonPinned},
		}},
		{"pin display leaves a wait for a snapshot", []step{
			{From: 0, To: 20, S: heavyDisplay, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
			{From: 21, Pin: pin(PinDisplay), Want: Display, Why: ReasonPinned},
			{From: 22, S: snap, Want: Display},
		}},
		{"pin replay ignores traffic", []step{
			{From: 0, Pin: pin(PinReplay), Want: AwaitSnapshot, Why: ReasonPinned},
			{From: 1, S: Sample{SnapshotAvailable: true}, Want: Dual, Why: ReasonSnapshotReady},
			{From: 2, S: Sample{CaughtUp: true}, Want: Replay, Why: ReasonCaughtUp},
			{From: 3, To: 500, S: Sample{ReplayBytes: 1000, DisplayBytes: 1}, Want: Replay},
		}},
		{"pin replay ignores the back-off and retries after a lag fallback", with(toReplay,
			step{From: 42, S: lagging, Want: Display, Why: ReasonLag, Failed: true},
			step{From: 43, Pin: pin(PinReplay), Want: AwaitSnapshot, Why: ReasonPinned},
			step{From: 44, S: snap, Want: Dual, Why: ReasonSnapshotReady},
			step{From: 45, S: caughtUp, Want: Replay, Why: ReasonCaughtUp},
			step{From: 46, S: lagging, Want: Display, Why: ReasonLag, Failed: true},
			step{From: 47, S: quiet, Want: AwaitSnapshot, Why: ReasonPinned},
		)},
		{"pin replay while replaying changes nothing", with(toReplay,
			step{From: 42, Pin: pin(PinReplay), Want: Replay},
		)},
		{"window slides: an old burst expires", []step{
			{From: 0, S: Sample{DisplayBytes: 1 << 20}, Want: Display},
			{From: 1, To: 19, S: Sample{ReplayBytes: 1000}, Want: Display},
			// at 20 the burst at 0 is out of the window (0, 20]
			{From: 20, To: 100, S: Sample{ReplayBytes: 1000}, Want: Display},
		}},
		{"window slides: a burst inside it counts", []step{
			{From: 0, To: 9, S: Sample{ReplayBytes: 1000}, Want: Display},
			{From: 10, S: Sample{DisplayBytes: 30000}, Want: Display},
			{From: 11, To: 19, S: Sample{ReplayBytes: 1000}, Want: Display},
			{From: 20, S: Sample{ReplayBytes: 1000}, Want: AwaitSnapshot, Why: ReasonDisplayCostly},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(Rules{})
			for i, st := range c.steps {
				to := st.To
				if to == 0 {
					to = st.From
				}
				for sec := st.From; sec <= to; sec++ {
					var tr Transition
					var ok bool
					if st.Pin != nil {
						tr, ok = m.SetPin(at(sec), *st.Pin)
					} else {
						tr, ok = m.Observe(at(sec), st.S)
					}
					last := sec+1 > to
					switch {
					case ok && !last:
						t.Fatalf("step %d at %vs: early %v", i, sec, tr)
					case last && ok != (st.Why != 0):
						t.Fatalf("step %d at %vs: transition %v (%v), want %v", i, sec, ok, tr, st.Why)
					case last && ok && (tr.Reason != st.Why || tr.To != st.Want || tr.Failed != st.Failed || !tr.At.Equal(at(sec))):
						t.Fatalf("step %d at %vs: %v, want → %v (%v, failed %v)", i, sec, tr, st.Want, st.Why, st.Failed)
					}
				}
				if m.State() != st.Want {
					t.Fatalf("step %d: state %v, want %v", i, m.State(), st.Want)
				}
			}
		})
	}
}

func TestWindowSums(t *testing.T) {
	m := New(Rules{Window: 10 * time.Second})
	for sec := 0; sec <= 1000; sec++ {
		m.Observe(at(float64(sec)), Sample{DisplayBytes: uint64(sec), ReplayBytes: 1})
	}
	d, r, full := m.Window(at(1000))
	// (990, 1000]: 991 + … + 1000
	if d != 9955 || r != 10 || !full {
		t.Fatalf("window = %d, %d, %v", d, r, full)
	}
	if len(m.window) != 10 {
		t.Fatalf("%d samples kept", len(m.window))
	}
	// Reading the window later expires what fell out of it.
	if d, r, _ := m.Window(at(1005)); d != 996+997+998+999+1000 || r != 5 {
		t.Fatalf("window at 1005 = %d, %d", d, r)
	}
	if _, _, full := New(Rules{}).Window(at(0)); full {
		t.Fatal("a fresh controller's window is full")
	}
}

func TestRulesDefaults(t *testing.T) {
	d := DefaultRules()
	if d.Start != Display || d.ToDualFactor != 1.5 || d.ToDisplayFactor != 1.1 || d.Window != 20*time.Second ||
		d.DualTimeout != 200*time.Second || d.Backoff != 20*time.Minute || d.MaxLag != 500*time.Millisecond ||
		d.MaxBuffer != 16<<20 || d.SnapshotTimeout != 120*time.Second {
		t.Fatalf("defaults %+v", d)
	}
	if got := New(Rules{}).Rules(); got != d {
		t.Fatalf("zero rules = %+v", got)
	}
	custom := New(Rules{ToDualFactor: 3, Window: time.Second, Start: Replay})
	if custom.State() != Replay || custom.Rules().ToDualFactor != 3 || custom.Rules().Backoff != d.Backoff {
		t.Fatalf("custom %+v", custom.Rules())
	}
	// A custom factor is used.
	for sec := 0; sec <= 5; sec++ {
		if _, ok := New(Rules{ToDualFactor: 3, Window: time.Second}).Observe(at(float64(sec)), heavyDisplay); ok {
			t.Fatal("switched at 1.5x with a 3x rule")
		}
	}
}

func TestLagOf(t *testing.T) {
	if LagOf(30, 60) != 500*time.Millisecond || LagOf(31, 60) <= 500*time.Millisecond || LagOf(5, 0) != 0 {
		t.Fatal(LagOf(30, 60), LagOf(31, 60))
	}
}

func TestStats(t *testing.T) {
	m := New(Rules{})
	for _, st := range toReplay {
		to := st.To
		if to == 0 {
			to = st.From
		}
		for sec := st.From; sec <= to; sec++ {
			m.Observe(at(sec), st.S)
		}
	}
	m.Observe(at(100), lagging)
	s := m.Stats(at(110))
	if s.State != Display || s.Transitions != 4 || s.Switches != 1 || s.Failures != 1 ||
		!s.BackoffUntil.Equal(at(100).Add(20*time.Minute)) || s.Last.Reason != ReasonLag || !s.Since.Equal(at(100)) {
		t.Fatalf("stats %+v", s)
	}
	want := map[State]time.Duration{Display: 30 * time.Second, AwaitSnapshot: 6 * time.Second, Dual: 15 * time.Second, Replay: 59 * time.Second}
	for k, v := range want {
		if s.TimeIn[k] != v {
			t.Errorf("time in %v = %v, want %v", k, s.TimeIn[k], v)
		}
	}
	if s.Last.String() != "replay → display (lag, failed: lag 501ms > 500ms)" {
		t.Errorf("transition text %q", s.Last.String())
	}
	if !Replay.ShowsReplay() || Dual.ShowsReplay() || !Dual.NeedsLog() || !Dual.NeedsDisplay() || Replay.NeedsDisplay() || Display.NeedsLog() {
		t.Error("state predicates")
	}
	if State(9).String() != "state(9)" || Reason(99).String() != "reason(99)" || PinReplay.String() != "replay" {
		t.Error("names")
	}
}

func TestForce(t *testing.T) {
	c := New(Rules{})
	if _, ok := c.Force(at(0), "already display"); ok {
		t.Fatal("Force in display made a transition")
	}
	c.SetPin(at(0), PinReplay)
	c.Observe(at(1), snap)
	if c.State() != Dual {
		t.Fatalf("state %v, want dual", c.State())
	}
	tr, ok := c.Force(at(2), "too slow")
	if !ok || tr.From != Dual || tr.To != Display || tr.Reason != ReasonForced || !tr.Failed || tr.Reason.String() != "forced" {
		t.Fatalf("Force: %+v %v", tr, ok)
	}
	if !c.BackoffUntil().Equal(at(2).Add(DefaultRules().Backoff)) {
		t.Fatalf("back-off until %v", c.BackoffUntil())
	}
	// The pin to replay still applies: the next observation starts again.
	if tr, ok := c.Observe(at(3), quiet); !ok || tr.To != AwaitSnapshot {
		t.Fatalf("after Force with a replay pin: %+v %v", tr, ok)
	}
}
