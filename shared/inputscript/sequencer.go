package inputscript

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"replaydesk/shared/abi"
)

// Sequencer hands out events as virtual time passes. It numbers users 1, 2,
// ... in order of first appearance and, before a user's first event, emits an
// abi.EvUser event with Down=true and Text=name at that event's time. Events
// come out in order of At; events with equal At keep their order in the
// input. A Sequencer is not safe for concurrent use.
type Sequencer struct {
	pending []timedEvent
	next    int
	users   map[string]uint16
}

type timedEvent struct {
	at time.Duration
	ev abi.Event
}

// NewSequencer prepares evs (which it does not modify) for playing. They need
// not be sorted: NewSequencer sorts a copy stably by At. An empty User means
// DefaultUser. It panics if evs name more than MaxUsers users, which Parse
// never returns.
func NewSequencer(evs []Timed) *Sequencer {
	sorted := slices.Clone(evs)
	slices.SortStableFunc(sorted, func(a, b Timed) int { return cmp.Compare(a.At, b.At) })
	s := &Sequencer{users: make(map[string]uint16)}
	s.pending = make([]timedEvent, 0, len(sorted))
	for _, e := range sorted {
		name := e.User
		if name == "" {
			name = DefaultUser
		}
		n, ok := s.users[name]
		if !ok {
			if len(s.users) >= MaxUsers {
				panic(fmt.Sprintf("inputscript: more than %d users", MaxUsers))
			}
			n = uint16(len(s.users) + 1)
			s.users[name] = n
			s.pending = append(s.pending, timedEvent{e.At, abi.Event{Type: abi.EvUser, Down: true, User: n, Text: name}})
		}
		ev := e.Ev
		ev.User = n
		s.pending = append(s.pending, timedEvent{e.At, ev})
	}
	return s
}

// Due returns, in order, all events not yet returned whose time is at or
// before now, with User set; nil if there are none.
func (s *Sequencer) Due(now time.Duration) []abi.Event {
	var out []abi.Event
	for s.next < len(s.pending) && s.pending[s.next].at <= now {
		out = append(out, s.pending[s.next].ev)
		s.next++
	}
	return out
}

// Next returns the time of the next event Due has not returned yet, and
// false when there are none left.
func (s *Sequencer) Next() (time.Duration, bool) {
	if s.next >= len(s.pending) {
		return 0, false
	}
	return s.pending[s.next].at, true
}

// Users returns a copy of the numbering of all the users of the events,
// including those whose events are not due yet.
func (s *Sequencer) Users() map[string]uint16 {
	return maps.Clone(s.users)
}
