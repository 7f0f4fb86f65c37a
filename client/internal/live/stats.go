package live

import (
	"time"

	"replaydesk/shared/modes"
)

// Stats is one line of the --stats file: the client's state as of Time.
// Byte counters are cumulative since the client started.
type Stats struct {
	Time   time.Time `json:"time"`
	Mode   string    `json:"mode"`  // display, dual or replay: what the relay streams
	State  string    `json:"state"` // the controller's state (await-snapshot between display and dual)
	Pinned string    `json:"pinned"`
	Bytes  struct {
		Log     uint64 `json:"log"`     // LogBlock and SnapshotAnnounce messages
		Display uint64 `json:"display"` // DisplayFrame messages
		Pages   uint64 `json:"pages"`   // HTTP: pages, manifests, the module, disk blocks
		Other   uint64 `json:"other"`
	} `json:"bytes"`
	LagMs       float64  `json:"lag_ms"`
	LagTicks    uint64   `json:"lag_ticks"`
	BufferBytes uint64   `json:"buffer_bytes"`
	Switches    []Switch `json:"switches"` // since the previous line
	SwitchCount int64    `json:"switch_count"`
	Failures    int64    `json:"failures"` // replays that failed (divergence, bad block, fetch)
	LastFailure string   `json:"last_failure,omitempty"`
	ReplayTick  uint64   `json:"replay_tick"`
	ReplayFB    string   `json:"replay_fb_hash,omitempty"` // of the replay's newest copied frame
	ServerTick  uint64   `json:"server_tick"`              // estimate: newest tick heard of, or Welcome's extrapolated
	Checkpoints uint64   `json:"checkpoints"`              // verified by the replay since its snapshot
}

func wireMode(s modes.State) string {
	switch s {
	case modes.Dual:
		return "dual"
	case modes.Replay:
		return "replay"
	case modes.AwaitSnapshot:
		return "display" // the relay streams display until the snapshot comes
	}
	return "display"
}

func (c *Client) snapshotStats(now time.Time, lagTicks uint64, lag time.Duration, buffer uint64, rate uint32, newest uint64) *Stats {
	st := c.ctl.State()
	s := &Stats{Time: now.UTC(), Mode: wireMode(st), State: st.String(), Pinned: c.ctl.Pin().String(),
		LagMs: float64(lag.Microseconds()) / 1000, LagTicks: lagTicks, BufferBytes: buffer,
		Switches: c.switches, SwitchCount: c.allSwitches.Load(), Failures: c.failures.Load(), LastFailure: c.repErr}
	if s.Switches == nil {
		s.Switches = []Switch{}
	}
	c.switches = nil
	s.Bytes.Log, s.Bytes.Display, s.Bytes.Other = c.bytesLog.Load(), c.bytesDisp.Load(), c.bytesOther.Load()
	s.Bytes.Pages = uint64(c.fetch.BytesReceived())
	if r := c.rep; r != nil && r.ready.Load() {
		s.ReplayTick = r.ticks.Load()
		s.Checkpoints = r.checkpoints.Load()
		if h := r.fbHash.Load(); h != 0 {
			s.ReplayFB = hex16(h)
		}
	}
	c.mu.Lock()
	if c.hasWelcome && rate > 0 {
		est := c.welcome.Tick + uint64(now.Sub(c.welcomeAt).Seconds()*float64(rate))
		newest = max(newest, est)
	}
	c.mu.Unlock()
	s.ServerTick = newest
	return s
}

func hex16(h uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&15]
		h >>= 4
	}
	return string(b[:])
}

// LastStats is the newest stats line (nil before the first sample).
func (c *Client) LastStats() *Stats { return c.lastStats.Load() }
