// Package control is the input arbiter of one session: who is in it, in which
// role, who may send input right now, and the order of control hand-overs. It
// is a pure state machine with an injected clock (neko's control lease is the
// model): every method is a decision taken now, returning sentinel errors
// whose text can be shown to the user, and recording an audit entry.
//
// Control is shared (every owner and controller types at once; the server
// interleaves their input in arrival order) or exclusive (one holder;
// Request queues, Grant hands over, Revoke and Release free it, and the owner
// can always ForceTake it). An epoch is bumped on every change of holder and
// of control mode, so input a client sent under an old epoch is refused
// rather than typed into someone else's turn.
//
// It does NOT know about sessions, connections or transports (an adapter maps
// wire messages to these calls and errors back to wire refusals), nor about
// the machine: Accept only stamps events with their user; putting them into
// the machine and the record log, which is the audit of what was typed, is
// the caller's job. It is not safe for concurrent use: the session serializes
// calls, which is also what orders input.
package control

import (
	"fmt"
	"slices"
	"time"

	"replaydesk/shared/abi"
)

// Role is what a user may do (DESIGN.md section 7).
type Role uint8

const (
	RoleOwner         Role = 1 // controls, grants, revokes, can always take control back
	RoleController    Role = 2 // may control when control is shared or granted
	RoleViewer        Role = 3 // watches (may replay); never types
	RoleDisplayViewer Role = 4 // watches pixels only; never types
)

func (r Role) String() string {
	switch r {
	case RoleOwner:
		return "owner"
	case RoleController:
		return "controller"
	case RoleViewer:
		return "viewer"
	case RoleDisplayViewer:
		return "display viewer"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

func (r Role) mayControl() bool { return r == RoleOwner || r == RoleController }

// Mode is how input from several people is arbitrated.
type Mode uint8

const (
	Exclusive Mode = 1 // one holder at a time
	Shared    Mode = 2 // every owner and controller at once
)

func (m Mode) String() string {
	switch m {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Options are the arbiter's knobs; zero values take the defaults.
type Options struct {
	// Mode to start in. Default Exclusive: nobody types into someone else's
	// work until the owner shares control.
	Mode Mode
	// Now is the clock for audit entries. Default time.Now.
	Now func() time.Time
	// MaxQueue bounds the queue of requesters. Default 64.
	MaxQueue int
	// MaxAudit bounds the audit entries kept until Drain; beyond it the
	// oldest are dropped (and counted). Default 4096.
	MaxAudit int
}

// Refusal is the type of the sentinel errors: Code is stable for programs
// (and maps onto wire refusal reasons), Reason is shown to the user.
type Refusal struct {
	Code   string
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Sentinel errors; compare with errors.Is (or ==).
var (
	ErrNoSuchUser    = &Refusal{"no-such-user", "you are not in this session"}
	ErrViewerOnly    = &Refusal{"viewer-only", "you joined as a viewer: only the owner and controllers can type"}
	ErrNotController = &Refusal{"not-controller", "someone else has control: ask for it and wait until it is granted"}
	ErrStaleEpoch    = &Refusal{"stale-epoch", "control changed hands while your input was on its way; it was dropped"}
	ErrBadEvent      = &Refusal{"bad-event", "that kind of input event cannot be sent"}
	ErrNotOwner      = &Refusal{"not-owner", "only the session's owner can do that"}
	ErrNotHolder     = &Refusal{"not-holder", "you do not have control"}
	ErrNoHolder      = &Refusal{"no-holder", "nobody has control"}
	ErrCannotGrant   = &Refusal{"cannot-grant", "only the owner or whoever has control can hand it over"}
	ErrQueueFull     = &Refusal{"queue-full", "too many people are waiting for control; try again later"}
	ErrSharedMode    = &Refusal{"shared-mode", "control is shared: every controller can type, there is nothing to hand over"}
	ErrUserExists    = &Refusal{"user-exists", "that user number is already in the session"}
	ErrBadUser       = &Refusal{"bad-user", "user 0 is the host itself"}
	ErrBadRole       = &Refusal{"bad-role", "no such role, or the owner's role cannot be changed"}
)

// Kind says what an audit Decision was.
type Kind uint8

const (
	KindJoin      Kind = 1
	KindLeave     Kind = 2
	KindRequest   Kind = 3 // User asked for control and was queued
	KindWithdraw  Kind = 4 // User withdrew a queued request
	KindGrant     Kind = 5 // By (0: the queue advancing) gave control to User
	KindRevoke    Kind = 6 // By (the owner) took control away from User
	KindRelease   Kind = 7 // User gave control up
	KindForceTake Kind = 8 // By (the owner) took control from User (0: nobody had it)
	KindSetRole   Kind = 9
	KindSetMode   Kind = 10
)

var kindNames = [...]string{"", "join", "leave", "request", "withdraw", "grant", "revoke", "release", "force-take", "set-role", "set-mode"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Decision is one audit entry: who did what to whom, when, and the epoch
// after it.
type Decision struct {
	Seq   uint64 // 1, 2, … over the arbiter's life; a gap means entries were dropped
	At    time.Time
	Kind  Kind
	By    uint16 // who acted; 0 is the arbiter itself
	User  uint16 // whom it concerns
	Epoch uint64
	Note  string // role or mode changes, and why the arbiter acted
}

// UserState is one user in a Presence.
type UserState struct {
	User       uint16
	Name       string
	Role       Role
	HasControl bool // may type right now
	Queued     int  // position in the request queue from 1; 0 if not waiting
}

// Presence is a snapshot of who is in the session and who has control.
type Presence struct {
	Mode   Mode
	Epoch  uint64
	Holder uint16 // exclusive mode: the holder, 0 if none; always 0 when shared
	Queue  []uint16
	Users  []UserState // ordered by user number
}

type user struct {
	name string
	role Role
}

// Arbiter is the state machine. Create it with New.
type Arbiter struct {
	opt     Options
	mode    Mode
	epoch   uint64
	holder  uint16 // 0: nobody
	queue   []uint16
	users   map[uint16]*user
	audit   []Decision
	seq     uint64
	dropped uint64
}

// New returns an arbiter with nobody in it, at epoch 1.
func New(opt Options) *Arbiter {
	if opt.Mode != Shared {
		opt.Mode = Exclusive
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxQueue <= 0 {
		opt.MaxQueue = 64
	}
	if opt.MaxAudit <= 0 {
		opt.MaxAudit = 4096
	}
	// Epoch starts at 1 so a client that never saw one (0) is always stale.
	return &Arbiter{opt: opt, mode: opt.Mode, epoch: 1, users: map[uint16]*user{}}
}

func (a *Arbiter) record(k Kind, by, u uint16, note string) {
	a.seq++
	if len(a.audit) >= a.opt.MaxAudit {
		a.audit = a.audit[1:]
		a.dropped++
	}
	a.audit = append(a.audit, Decision{Seq: a.seq, At: a.opt.Now(), Kind: k, By: by, User: u, Epoch: a.epoch, Note: note})
}

// Drain returns the audit entries recorded since the last Drain, oldest
// first, and how many were dropped because Drain was not called in time.
func (a *Arbiter) Drain() (ds []Decision, dropped uint64) {
	ds, dropped = a.audit, a.dropped
	a.audit, a.dropped = nil, 0
	return ds, dropped
}

// Epoch is the current control epoch; clients stamp their input with it.
func (a *Arbiter) Epoch() uint64 { return a.epoch }

// Mode is the current control mode.
func (a *Arbiter) Mode() Mode { return a.mode }

// Holder is who holds exclusive control (false when nobody does, or when
// control is shared).
func (a *Arbiter) Holder() (uint16, bool) { return a.holder, a.holder != 0 }

func (a *Arbiter) setHolder(u uint16) {
	a.holder = u
	a.epoch++
}

func (a *Arbiter) dequeue(u uint16) bool {
	i := slices.Index(a.queue, u)
	if i < 0 {
		return false
	}
	a.queue = slices.Delete(a.queue, i, i+1)
	return true
}

// advance hands free control to the head of the queue.
func (a *Arbiter) advance() {
	if a.holder != 0 || len(a.queue) == 0 {
		return
	}
	next := a.queue[0]
	a.queue = a.queue[1:]
	a.setHolder(next)
	a.record(KindGrant, 0, next, "next in the queue")
}

func (a *Arbiter) get(u uint16) (*user, error) {
	p := a.users[u]
	if p == nil {
		return nil, ErrNoSuchUser
	}
	return p, nil
}

// Join adds user u (assigned by the session, never 0) with a display name.
func (a *Arbiter) Join(u uint16, name string, role Role) error {
	switch {
	case u == 0:
		return ErrBadUser
	case a.users[u] != nil:
		return ErrUserExists
	case role < RoleOwner || role > RoleDisplayViewer:
		return ErrBadRole
	}
	a.users[u] = &user{name: name, role: role}
	a.record(KindJoin, u, u, role.String())
	return nil
}

// Leave removes u: a request is withdrawn, held control is released and
// passes to the next in the queue.
func (a *Arbiter) Leave(u uint16) error {
	if _, err := a.get(u); err != nil {
		return err
	}
	a.dequeue(u)
	delete(a.users, u)
	held := a.holder == u
	if held {
		a.setHolder(0)
	}
	a.record(KindLeave, u, u, "")
	if held {
		a.advance()
	}
	return nil
}

// SetRole lets the owner change another user's role (not to or from owner).
// Demoting the holder frees control.
func (a *Arbiter) SetRole(by, u uint16, role Role) error {
	b, err := a.get(by)
	if err != nil {
		return err
	}
	if b.role != RoleOwner {
		return ErrNotOwner
	}
	p, err := a.get(u)
	if err != nil {
		return err
	}
	if p.role == RoleOwner || role < RoleController || role > RoleDisplayViewer {
		return ErrBadRole
	}
	if p.role == role {
		return nil
	}
	p.role = role
	freed := false
	if !role.mayControl() {
		a.dequeue(u)
		if a.holder == u {
			a.setHolder(0)
			freed = true
		}
	}
	a.record(KindSetRole, by, u, role.String())
	if freed {
		a.advance()
	}
	return nil
}

// SetMode lets the owner switch between shared and exclusive control. Either
// way nobody holds control after it and the queue is emptied; the epoch
// changes so input sent under the old rules is refused.
func (a *Arbiter) SetMode(by uint16, m Mode) error {
	b, err := a.get(by)
	if err != nil {
		return err
	}
	if b.role != RoleOwner {
		return ErrNotOwner
	}
	if m != Shared && m != Exclusive {
		return &Refusal{"bad-mode", fmt.Sprintf("no control mode %d", m)}
	}
	if m == a.mode {
		return nil
	}
	a.mode = m
	a.queue = nil
	a.setHolder(0)
	a.record(KindSetMode, by, 0, m.String())
	return nil
}

// Request asks for exclusive control for u. It is granted at once when
// nobody holds control (granted true), otherwise u joins the queue (asking
// again keeps its place). With shared control a controller already has it.
func (a *Arbiter) Request(u uint16) (granted bool, err error) {
	p, err := a.get(u)
	if err != nil {
		return false, err
	}
	if !p.role.mayControl() {
		return false, ErrViewerOnly
	}
	switch {
	case a.mode == Shared || a.holder == u:
		return true, nil
	case a.holder == 0:
		a.dequeue(u)
		a.setHolder(u)
		a.record(KindGrant, 0, u, "requested while free")
		return true, nil
	case slices.Contains(a.queue, u):
		return false, nil
	case len(a.queue) >= a.opt.MaxQueue:
		return false, ErrQueueFull
	}
	a.queue = append(a.queue, u)
	a.record(KindRequest, u, u, fmt.Sprintf("queue position %d", len(a.queue)))
	return false, nil
}

// Grant lets the owner or the holder give exclusive control to u, who leaves
// the queue if waiting. The previous holder is not queued.
func (a *Arbiter) Grant(by, to uint16) error {
	b, err := a.get(by)
	if err != nil {
		return err
	}
	if a.mode == Shared {
		return ErrSharedMode
	}
	if b.role != RoleOwner && a.holder != by {
		return ErrCannotGrant
	}
	p, err := a.get(to)
	if err != nil {
		return err
	}
	if !p.role.mayControl() {
		return ErrViewerOnly
	}
	if a.holder == to {
		return nil
	}
	a.dequeue(to)
	a.setHolder(to)
	a.record(KindGrant, by, to, "")
	return nil
}

// Revoke lets the owner take exclusive control away from its holder; it then
// passes to the next in the queue (the owner who wants it uses ForceTake).
func (a *Arbiter) Revoke(by uint16) error {
	b, err := a.get(by)
	if err != nil {
		return err
	}
	if a.mode == Shared {
		return ErrSharedMode
	}
	if b.role != RoleOwner {
		return ErrNotOwner
	}
	if a.holder == 0 {
		return ErrNoHolder
	}
	from := a.holder
	a.setHolder(0)
	a.record(KindRevoke, by, from, "")
	a.advance()
	return nil
}

// ForceTake gives exclusive control to the owner at once, whoever held it:
// the owner can always take control back.
func (a *Arbiter) ForceTake(owner uint16) error {
	b, err := a.get(owner)
	if err != nil {
		return err
	}
	if a.mode == Shared {
		return ErrSharedMode
	}
	if b.role != RoleOwner {
		return ErrNotOwner
	}
	if a.holder == owner {
		return nil
	}
	from := a.holder
	a.dequeue(owner)
	a.setHolder(owner)
	a.record(KindForceTake, owner, from, "")
	return nil
}

// Release gives up u's exclusive control, which passes to the next in the
// queue; for a user who is only waiting it withdraws the request.
func (a *Arbiter) Release(u uint16) error {
	if _, err := a.get(u); err != nil {
		return err
	}
	if a.mode == Shared {
		return ErrSharedMode
	}
	if a.dequeue(u) {
		a.record(KindWithdraw, u, u, "")
		return nil
	}
	if a.holder != u {
		return ErrNotHolder
	}
	a.setHolder(0)
	a.record(KindRelease, u, u, "")
	a.advance()
	return nil
}

// Accept decides whether input from u, sent under epoch, may reach the
// machine. It returns a copy of events with each event's User set to u, or
// refuses the whole batch: ErrNoSuchUser, ErrViewerOnly (u's role never
// types), ErrNotController (exclusive control is someone else's or nobody's),
// ErrStaleEpoch (control changed since u sent it), ErrBadEvent (an EvUser
// event or an unknown type: the server generates user events itself).
func (a *Arbiter) Accept(u uint16, events []abi.Event, epoch uint64) ([]abi.Event, error) {
	p, err := a.get(u)
	if err != nil {
		return nil, err
	}
	if !p.role.mayControl() {
		return nil, ErrViewerOnly
	}
	if a.mode == Exclusive && a.holder != u {
		return nil, ErrNotController
	}
	if epoch != a.epoch {
		return nil, ErrStaleEpoch
	}
	out := make([]abi.Event, len(events))
	for i, e := range events {
		if e.Type < abi.EvKey || e.Type > abi.EvWheel {
			return nil, ErrBadEvent
		}
		e.User = u
		out[i] = e
	}
	return out, nil
}

// Presence returns who is in the session and who has control.
func (a *Arbiter) Presence() Presence {
	p := Presence{Mode: a.mode, Epoch: a.epoch, Holder: a.holder, Queue: slices.Clone(a.queue)}
	for u, s := range a.users {
		has := s.role.mayControl() && (a.mode == Shared || a.holder == u)
		p.Users = append(p.Users, UserState{User: u, Name: s.name, Role: s.role, HasControl: has,
			Queued: slices.Index(a.queue, u) + 1})
	}
	slices.SortFunc(p.Users, func(x, y UserState) int { return int(x.User) - int(y.User) })
	return p
}
