package control

import (
	"errors"
	"slices"
	"testing"
	"time"

	"replaydesk/shared/abi"
)

const (
	owner   = 1
	carl    = 2 // controller
	cora    = 3 // controller
	vic     = 4 // viewer
	dee     = 5 // display viewer
	nobody  = 9
	startAt = 1000
)

// session returns an arbiter with the five users above, nobody holding
// control, and its audit drained. The clock advances a second per reading.
func session(t *testing.T, mode Mode) *Arbiter {
	t.Helper()
	clock := time.Unix(startAt, 0)
	a := New(Options{Mode: mode, MaxQueue: 2, Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	for _, j := range []struct {
		u    uint16
		name string
		r    Role
	}{{owner, "olive", RoleOwner}, {carl, "carl", RoleController}, {cora, "cora", RoleController},
		{vic, "vic", RoleViewer}, {dee, "dee", RoleDisplayViewer}} {
		if err := a.Join(j.u, j.name, j.r); err != nil {
			t.Fatal(err)
		}
	}
	a.Drain()
	return a
}

func request(u uint16) func(*Arbiter) error {
	return func(a *Arbiter) error { _, err := a.Request(u); return err }
}

type audit struct {
	k     Kind
	by, u uint16
}

func TestTransitions(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   Mode
		setup  []func(*Arbiter) error
		act    func(*Arbiter) error
		err    error
		holder uint16
		epoch  uint64 // change of epoch caused by act
		queue  []uint16
		audit  []audit
	}{
		{name: "request while free is granted", act: request(carl), holder: carl, epoch: 1,
			audit: []audit{{KindGrant, 0, carl}}},
		{name: "request while held queues", setup: []func(*Arbiter) error{request(carl)}, act: request(cora),
			holder: carl, queue: []uint16{cora}, audit: []audit{{KindRequest, cora, cora}}},
		{name: "request again keeps place", setup: []func(*Arbiter) error{request(carl), request(cora)}, act: request(cora),
			holder: carl, queue: []uint16{cora}},
		{name: "holder requests again", setup: []func(*Arbiter) error{request(carl)}, act: request(carl), holder: carl},
		{name: "queue full", setup: []func(*Arbiter) error{request(owner), request(carl), request(cora)},
			act: func(a *Arbiter) error { a.Join(6, "sam", RoleController); return request(6)(a) },
			err: ErrQueueFull, holder: owner, queue: []uint16{carl, cora}, audit: []audit{{KindJoin, 6, 6}}},
		{name: "viewer cannot request", act: request(vic), err: ErrViewerOnly},
		{name: "display viewer cannot request", act: request(dee), err: ErrViewerOnly},
		{name: "unknown user cannot request", act: request(nobody), err: ErrNoSuchUser},
		{name: "request under shared control", mode: Shared, act: request(carl)},

		{name: "owner grants", act: func(a *Arbiter) error { return a.Grant(owner, carl) }, holder: carl, epoch: 1,
			audit: []audit{{KindGrant, owner, carl}}},
		{name: "holder grants to queued", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Grant(carl, cora) }, holder: cora, epoch: 1,
			audit: []audit{{KindGrant, carl, cora}}},
		{name: "non-holder cannot grant", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.Grant(cora, cora) }, err: ErrCannotGrant, holder: carl},
		{name: "cannot grant to a viewer", act: func(a *Arbiter) error { return a.Grant(owner, vic) }, err: ErrViewerOnly},
		{name: "cannot grant to nobody", act: func(a *Arbiter) error { return a.Grant(owner, nobody) }, err: ErrNoSuchUser},
		{name: "grant to the holder is a no-op", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.Grant(owner, carl) }, holder: carl},
		{name: "grant under shared control", mode: Shared, act: func(a *Arbiter) error { return a.Grant(owner, carl) }, err: ErrSharedMode},

		{name: "owner revokes, queue advances", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Revoke(owner) }, holder: cora, epoch: 2,
			audit: []audit{{KindRevoke, owner, carl}, {KindGrant, 0, cora}}},
		{name: "revoke with empty queue frees", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.Revoke(owner) }, epoch: 1, audit: []audit{{KindRevoke, owner, carl}}},
		{name: "only the owner revokes", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.Revoke(carl) }, err: ErrNotOwner, holder: carl},
		{name: "revoke when free", act: func(a *Arbiter) error { return a.Revoke(owner) }, err: ErrNoHolder},
		{name: "revoke under shared control", mode: Shared, act: func(a *Arbiter) error { return a.Revoke(owner) }, err: ErrSharedMode},

		{name: "owner force-takes", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.ForceTake(owner) }, holder: owner, epoch: 1, queue: []uint16{cora},
			audit: []audit{{KindForceTake, owner, carl}}},
		{name: "queued owner force-takes", setup: []func(*Arbiter) error{request(carl), request(owner)},
			act: func(a *Arbiter) error { return a.ForceTake(owner) }, holder: owner, epoch: 1,
			audit: []audit{{KindForceTake, owner, carl}}},
		{name: "controller cannot force-take", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.ForceTake(cora) }, err: ErrNotOwner, holder: carl},
		{name: "force-take when holding", setup: []func(*Arbiter) error{request(owner)},
			act: func(a *Arbiter) error { return a.ForceTake(owner) }, holder: owner},
		{name: "force-take under shared control", mode: Shared, act: func(a *Arbiter) error { return a.ForceTake(owner) }, err: ErrSharedMode},

		{name: "release passes to the queue", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Release(carl) }, holder: cora, epoch: 2,
			audit: []audit{{KindRelease, carl, carl}, {KindGrant, 0, cora}}},
		{name: "release with empty queue frees", setup: []func(*Arbiter) error{request(carl)},
			act: func(a *Arbiter) error { return a.Release(carl) }, epoch: 1, audit: []audit{{KindRelease, carl, carl}}},
		{name: "release withdraws a request", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Release(cora) }, holder: carl, audit: []audit{{KindWithdraw, cora, cora}}},
		{name: "release without control", act: func(a *Arbiter) error { return a.Release(carl) }, err: ErrNotHolder},
		{name: "release by nobody", act: func(a *Arbiter) error { return a.Release(nobody) }, err: ErrNoSuchUser},
		{name: "release under shared control", mode: Shared, act: func(a *Arbiter) error { return a.Release(carl) }, err: ErrSharedMode},

		{name: "holder leaves, queue advances", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Leave(carl) }, holder: cora, epoch: 2,
			audit: []audit{{KindLeave, carl, carl}, {KindGrant, 0, cora}}},
		{name: "queued user leaves", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.Leave(cora) }, holder: carl, audit: []audit{{KindLeave, cora, cora}}},
		{name: "unknown user leaves", act: func(a *Arbiter) error { return a.Leave(nobody) }, err: ErrNoSuchUser},
		{name: "join twice", act: func(a *Arbiter) error { return a.Join(carl, "x", RoleViewer) }, err: ErrUserExists},
		{name: "join as user 0", act: func(a *Arbiter) error { return a.Join(0, "host", RoleOwner) }, err: ErrBadUser},
		{name: "join with bad role", act: func(a *Arbiter) error { return a.Join(7, "x", 9) }, err: ErrBadRole},

		{name: "demoting the holder frees control", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.SetRole(owner, carl, RoleViewer) }, holder: cora, epoch: 2,
			audit: []audit{{KindSetRole, owner, carl}, {KindGrant, 0, cora}}},
		{name: "demoting a queued user dequeues", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.SetRole(owner, cora, RoleDisplayViewer) }, holder: carl,
			audit: []audit{{KindSetRole, owner, cora}}},
		{name: "promote a viewer", act: func(a *Arbiter) error { return a.SetRole(owner, vic, RoleController) },
			audit: []audit{{KindSetRole, owner, vic}}},
		{name: "only the owner sets roles", act: func(a *Arbiter) error { return a.SetRole(carl, vic, RoleController) }, err: ErrNotOwner},
		{name: "owner's role is fixed", act: func(a *Arbiter) error { return a.SetRole(owner, owner, RoleViewer) }, err: ErrBadRole},
		{name: "nobody becomes owner", act: func(a *Arbiter) error { return a.SetRole(owner, carl, RoleOwner) }, err: ErrBadRole},

		{name: "share control", setup: []func(*Arbiter) error{request(carl), request(cora)},
			act: func(a *Arbiter) error { return a.SetMode(owner, Shared) }, epoch: 1, audit: []audit{{KindSetMode, owner, 0}}},
		{name: "back to exclusive", mode: Shared, act: func(a *Arbiter) error { return a.SetMode(owner, Exclusive) }, epoch: 1,
			audit: []audit{{KindSetMode, owner, 0}}},
		{name: "same mode is a no-op", act: func(a *Arbiter) error { return a.SetMode(owner, Exclusive) }},
		{name: "only the owner sets the mode", act: func(a *Arbiter) error { return a.SetMode(carl, Shared) }, err: ErrNotOwner},
		{name: "no such mode", act: func(a *Arbiter) error { return a.SetMode(owner, 7) }, err: errors.New("bad-mode")},
	} {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == 0 {
				mode = Exclusive
			}
			a := session(t, mode)
			for _, s := range c.setup {
				if err := s(a); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			a.Drain()
			before := a.Epoch()
			err := c.act(a)
			switch {
			case c.err != nil && c.err.Error() == "bad-mode":
				var r *Refusal
				if !errors.As(err, &r) || r.Code != "bad-mode" {
					t.Fatalf("err = %v, want a bad-mode refusal", err)
				}
			case !errors.Is(err, c.err):
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if h, _ := a.Holder(); h != c.holder {
				t.Errorf("holder = %d, want %d", h, c.holder)
			}
			if d := a.Epoch() - before; d != c.epoch {
				t.Errorf("epoch moved by %d, want %d", d, c.epoch)
			}
			if q := a.Presence().Queue; !slices.Equal(q, c.queue) && len(q)+len(c.queue) > 0 {
				t.Errorf("queue = %v, want %v", q, c.queue)
			}
			ds, _ := a.Drain()
			var got []audit
			for _, d := range ds {
				got = append(got, audit{d.Kind, d.By, d.User})
				if d.At.IsZero() || d.Epoch == 0 {
					t.Errorf("audit entry without time or epoch: %+v", d)
				}
			}
			if !slices.Equal(got, c.audit) {
				t.Errorf("audit = %v, want %v", got, c.audit)
			}
		})
	}
}

func TestAccept(t *testing.T) {
	key := []abi.Event{{Type: abi.EvKey, Code: 4, Down: true}, {Type: abi.EvText, Text: "a"}}
	for _, c := range []struct {
		name   string
		mode   Mode
		setup  []func(*Arbiter) error
		user   uint16
		epoch  int64 // relative to the current epoch
		events []abi.Event
		err    error
	}{
		{name: "holder types", setup: []func(*Arbiter) error{request(carl)}, user: carl, events: key},
		{name: "non-holder refused", setup: []func(*Arbiter) error{request(carl)}, user: cora, events: key, err: ErrNotController},
		{name: "owner without control refused", setup: []func(*Arbiter) error{request(carl)}, user: owner, events: key, err: ErrNotController},
		{name: "nobody holds control", user: carl, events: key, err: ErrNotController},
		{name: "viewer refused", user: vic, events: key, err: ErrViewerOnly},
		{name: "display viewer refused", mode: Shared, user: dee, events: key, err: ErrViewerOnly},
		{name: "unknown user refused", user: nobody, events: key, err: ErrNoSuchUser},
		{name: "old epoch refused", setup: []func(*Arbiter) error{request(carl)}, user: carl, epoch: -1, events: key, err: ErrStaleEpoch},
		{name: "future epoch refused", setup: []func(*Arbiter) error{request(carl)}, user: carl, epoch: 1, events: key, err: ErrStaleEpoch},
		{name: "user events refused", setup: []func(*Arbiter) error{request(carl)}, user: carl,
			events: []abi.Event{{Type: abi.EvKey}, {Type: abi.EvUser, Text: "mallory"}}, err: ErrBadEvent},
		{name: "unknown event type refused", setup: []func(*Arbiter) error{request(carl)}, user: carl,
			events: []abi.Event{{Type: 0}}, err: ErrBadEvent},
		{name: "shared: every controller types", mode: Shared, user: cora, events: key},
		{name: "shared: the owner types", mode: Shared, user: owner, events: key},
		{name: "shared: stale epoch refused", mode: Shared, user: cora, epoch: -1, events: key, err: ErrStaleEpoch},
		{name: "empty batch", setup: []func(*Arbiter) error{request(carl)}, user: carl},
	} {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == 0 {
				mode = Exclusive
			}
			a := session(t, mode)
			for _, s := range c.setup {
				if err := s(a); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			in := slices.Clone(c.events)
			got, err := a.Accept(c.user, in, uint64(int64(a.Epoch())+c.epoch))
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err != nil {
				var r *Refusal
				if got != nil || !errors.As(err, &r) || r.Reason == "" {
					t.Fatalf("refusal: events %v, err %#v", got, err)
				}
				return
			}
			if len(got) != len(c.events) {
				t.Fatalf("accepted %d of %d events", len(got), len(c.events))
			}
			for i := range got {
				want := c.events[i]
				want.User = c.user
				if got[i] != want {
					t.Errorf("event %d = %+v, want %+v", i, got[i], want)
				}
				if in[i].User != 0 {
					t.Errorf("Accept changed the caller's events")
				}
			}
		})
	}
}

// Input sent before control changed hands is refused even when its sender
// gets control back: the epoch, not the holder, decides.
func TestStaleInputAfterRoundTrip(t *testing.T) {
	a := session(t, Exclusive)
	request(carl)(a)
	old := a.Epoch()
	if err := a.ForceTake(owner); err != nil {
		t.Fatal(err)
	}
	if err := a.Grant(owner, carl); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accept(carl, []abi.Event{{Type: abi.EvKey}}, old); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("err = %v, want ErrStaleEpoch", err)
	}
	if _, err := a.Accept(carl, []abi.Event{{Type: abi.EvKey}}, a.Epoch()); err != nil {
		t.Fatal(err)
	}
}

func TestPresence(t *testing.T) {
	a := session(t, Exclusive)
	request(carl)(a)
	request(owner)(a)
	p := a.Presence()
	if p.Mode != Exclusive || p.Holder != carl || p.Epoch != a.Epoch() || !slices.Equal(p.Queue, []uint16{owner}) {
		t.Fatalf("presence %+v", p)
	}
	want := []UserState{
		{User: owner, Name: "olive", Role: RoleOwner, Queued: 1},
		{User: carl, Name: "carl", Role: RoleController, HasControl: true},
		{User: cora, Name: "cora", Role: RoleController},
		{User: vic, Name: "vic", Role: RoleViewer},
		{User: dee, Name: "dee", Role: RoleDisplayViewer},
	}
	if !slices.Equal(p.Users, want) {
		t.Fatalf("users\n got %+v\nwant %+v", p.Users, want)
	}
	a.SetMode(owner, Shared)
	for _, u := range a.Presence().Users {
		if u.HasControl != (u.Role == RoleOwner || u.Role == RoleController) || u.Queued != 0 {
			t.Errorf("shared: %+v", u)
		}
	}
}

func TestAuditStream(t *testing.T) {
	clock := time.Unix(50, 0)
	a := New(Options{MaxAudit: 3, Now: func() time.Time { return clock }})
	a.Join(1, "o", RoleOwner)
	a.Join(2, "c", RoleController)
	clock = clock.Add(time.Minute)
	a.Request(2)
	ds, dropped := a.Drain()
	if dropped != 0 || len(ds) != 3 || ds[2].Kind != KindGrant || !ds[2].At.Equal(clock) || ds[2].Seq != 3 {
		t.Fatalf("%d dropped, %+v", dropped, ds)
	}
	a.Release(2)
	a.Request(2)
	a.Release(2)
	a.Leave(2)
	ds, dropped = a.Drain()
	if dropped != 1 || len(ds) != 3 || ds[0].Seq != 5 || ds[2].Kind != KindLeave {
		t.Fatalf("%d dropped, %+v", dropped, ds)
	}
	if ds, _ := a.Drain(); len(ds) != 0 {
		t.Fatalf("second drain: %+v", ds)
	}
	if KindForceTake.String() != "force-take" || Role(9).String() != "role(9)" || Shared.String() != "shared" {
		t.Fatal("names")
	}
}

func TestDefaults(t *testing.T) {
	a := New(Options{})
	if a.Mode() != Exclusive || a.Epoch() != 1 || a.opt.MaxQueue != 64 || a.opt.MaxAudit != 4096 || a.opt.Now == nil {
		t.Fatalf("defaults: %+v", a.opt)
	}
	if ErrNotController.Error() == "" || ErrNotController.Code != "not-controller" {
		t.Fatal("refusal text")
	}
}
