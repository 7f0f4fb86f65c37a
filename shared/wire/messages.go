package wire

import (
	"fmt"
	"math"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
)

// Each message's body layout is documented in docs/wire-protocol.md; the
// order of reads here is that layout.

func appendPos(b []byte, p recordlog.Pos) []byte {
	b = appendUvarint(b, uint64(p.Segment))
	b = appendUvarint(b, uint64(p.Offset))
	b = appendUvarint(b, p.Tick)
	return appendUvarint(b, p.Step)
}

func (r *reader) pos(prefix string) recordlog.Pos {
	return recordlog.Pos{
		Segment: uint32(r.uvarint(prefix+"segment", math.MaxUint32)),
		Offset:  int64(r.uvarint(prefix+"offset", MaxOffset)),
		Tick:    r.uvarint(prefix+"tick", math.MaxUint64),
		Step:    r.uvarint(prefix+"step", math.MaxUint64),
	}
}

// version reads major and minor and refuses another major version: the
// fields after them may be laid out differently, so nothing else is read.
func (r *reader) version() (major, minor uint32) {
	off := r.off
	major = uint32(r.uvarint("major", math.MaxUint32))
	if r.ok() && major != Major {
		r.failAt("major", off, ErrVersion, "peer speaks protocol version %d, this side speaks %d.%d", major, Major, Minor)
		return 0, 0
	}
	minor = uint32(r.uvarint("minor", math.MaxUint32))
	return major, minor
}

// Hello: major minor caps token want name known-count hash{count} cache-filter

func (m *Hello) appendBody(b []byte) []byte {
	b = appendUvarint(b, uint64(m.Major))
	b = appendUvarint(b, uint64(m.Minor))
	b = appendUvarint(b, m.Caps)
	b = appendString(b, m.Token)
	b = append(b, byte(m.Want))
	b = appendString(b, m.Name)
	b = appendUvarint(b, uint64(len(m.KnownSnapshots)))
	for _, h := range m.KnownSnapshots {
		b = append(b, h[:]...)
	}
	return appendBytes(b, m.CacheFilter)
}

func (m *Hello) decodeBody(r *reader) {
	m.Major, m.Minor = r.version()
	m.Caps = r.uvarint("caps", math.MaxUint64)
	m.Token = r.str("token", MaxToken)
	off := r.off
	m.Want = Mode(r.enum("want", 0, 3))
	if r.ok() && m.Want == ModeDual {
		r.failAt("want", off, ErrMalformed, "dual mode cannot be asked for")
	}
	m.Name = r.str("name", MaxName)
	if n := r.count("known_snapshots", MaxKnownSnapshots, 32); n > 0 {
		m.KnownSnapshots = make([][32]byte, n)
		r.list = "known_snapshots"
		for i := range m.KnownSnapshots {
			r.idx = i
			m.KnownSnapshots[i] = r.hash("")
		}
		r.list = ""
	}
	m.CacheFilter = r.bytes("cache_filter", MaxCacheFilter)
}

// Welcome: major minor caps session user role mode module-hash params tick-rate tick

func (m *Welcome) appendBody(b []byte) []byte {
	b = appendUvarint(b, uint64(m.Major))
	b = appendUvarint(b, uint64(m.Minor))
	b = appendUvarint(b, m.Caps)
	b = appendString(b, m.SessionID)
	b = appendUvarint(b, uint64(m.User))
	b = append(b, byte(m.Role), byte(m.Mode))
	b = append(b, m.ModuleHash[:]...)
	b = appendBytes(b, m.Params)
	b = appendUvarint(b, uint64(m.TickRate))
	return appendUvarint(b, m.Tick)
}

func (m *Welcome) decodeBody(r *reader) {
	m.Major, m.Minor = r.version()
	m.Caps = r.uvarint("caps", math.MaxUint64)
	m.SessionID = r.str("session_id", MaxSessionID)
	off := r.off
	m.User = r.user("user")
	if r.ok() && m.User == 0 {
		r.failAt("user", off, ErrMalformed, "user 0 is the host, never a client")
	}
	m.Role = Role(r.enum("role", 1, 4))
	m.Mode = Mode(r.enum("mode", 1, 3))
	m.ModuleHash = r.hash("module_hash")
	m.Params = r.bytes("params", MaxParams)
	off = r.off
	m.TickRate = uint32(r.uvarint("tick_rate", MaxTickRate))
	if r.ok() && m.TickRate == 0 {
		r.failAt("tick_rate", off, ErrMalformed, "tick rate 0")
	}
	m.Tick = r.uvarint("tick", math.MaxUint64)
}

// Error: code text

func (m *Error) appendBody(b []byte) []byte {
	return appendString(appendUvarint(b, uint64(m.Code)), m.Text)
}

func (m *Error) decodeBody(r *reader) {
	off := r.off
	m.Code = ErrorCode(r.uvarint("code", math.MaxUint32))
	if r.ok() && m.Code == 0 {
		r.failAt("code", off, ErrMalformed, "error code 0")
	}
	m.Text = r.str("text", MaxText)
}

// LogBlock: pos block

func (m *LogBlock) appendBody(b []byte) []byte { return appendBytes(appendPos(b, m.Pos), m.Block) }

func (m *LogBlock) decodeBody(r *reader) {
	m.Pos = r.pos("pos.")
	off := r.off
	m.Block = r.bytes("block", MaxLogBlock)
	if !r.ok() {
		return
	}
	// Check the block's framing (not its checksum or records: that is the
	// replayer's job) so a relay never forwards a truncated block.
	if len(m.Block) < 9 {
		r.failAt("block", off, ErrMalformed, "block of %d bytes is shorter than its 9-byte header", len(m.Block))
		return
	}
	if n := uint32(m.Block[0]) | uint32(m.Block[1])<<8 | uint32(m.Block[2])<<16 | uint32(m.Block[3])<<24; uint64(n) != uint64(len(m.Block)-9) {
		r.failAt("block", off, ErrMalformed, "block header says %d payload bytes, %d present", n, len(m.Block)-9)
	}
}

// SnapshotAnnounce: number manifest-hash tick step pos

func (m *SnapshotAnnounce) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Number)
	b = append(b, m.ManifestHash[:]...)
	b = appendUvarint(b, m.Tick)
	b = appendUvarint(b, m.Step)
	return appendPos(b, m.Pos)
}

func (m *SnapshotAnnounce) decodeBody(r *reader) {
	m.Number = r.uvarint("number", math.MaxUint64)
	m.ManifestHash = r.hash("manifest_hash")
	m.Tick = r.uvarint("tick", math.MaxUint64)
	m.Step = r.uvarint("step", math.MaxUint64)
	m.Pos = r.pos("pos.")
}

// Input: seq epoch count event{count}
// event: type flags fields (per type)

const (
	evDown   = 1 << 0
	evRepeat = 1 << 1
)

func (m *Input) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Seq)
	b = appendUvarint(b, m.Epoch)
	b = appendUvarint(b, uint64(len(m.Events)))
	for i := range m.Events {
		b = appendEvent(b, &m.Events[i])
	}
	return b
}

func appendEvent(b []byte, e *abi.Event) []byte {
	var flags byte
	if e.Down {
		flags |= evDown
	}
	if e.Repeat {
		flags |= evRepeat
	}
	b = append(b, byte(e.Type), flags)
	switch e.Type {
	case abi.EvKey:
		b = appendUvarint(b, uint64(e.Code))
	case abi.EvButton:
		b = appendUvarint(b, uint64(e.Button))
	case abi.EvText:
		b = appendString(b, e.Text)
	case abi.EvMove, abi.EvWheel:
		b = appendSvarint(b, e.X)
		b = appendSvarint(b, e.Y)
	}
	return b
}

// checkEvent catches what the encoding would silently drop (fields the event
// type does not carry, a user number), so Encode refuses it instead.
func checkEvent(e *abi.Event) error {
	var stray bool
	switch e.Type {
	case abi.EvKey:
		stray = e.Button != 0 || e.X != 0 || e.Y != 0 || e.Text != ""
	case abi.EvButton:
		stray = e.Code != 0 || e.X != 0 || e.Y != 0 || e.Text != "" || e.Repeat
	case abi.EvText:
		stray = e.Code != 0 || e.Button != 0 || e.X != 0 || e.Y != 0 || e.Down || e.Repeat
	case abi.EvMove, abi.EvWheel:
		stray = e.Code != 0 || e.Button != 0 || e.Text != "" || e.Down || e.Repeat
	}
	if e.User != 0 {
		return fmt.Errorf("event carries user %d: the server stamps users", e.User)
	}
	if stray {
		return fmt.Errorf("event of type %d has fields its type does not carry: %+v", e.Type, *e)
	}
	return nil
}

func (m *Input) decodeBody(r *reader) {
	m.Seq = r.uvarint("seq", math.MaxUint64)
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
	off := r.off
	n := r.count("events", MaxEvents, 3)
	if r.ok() && n == 0 {
		r.failAt("events", off, ErrMalformed, "no events")
	}
	if n == 0 {
		return
	}
	m.Events = make([]abi.Event, n)
	r.list = "events"
	for i := range m.Events {
		r.idx = i
		m.Events[i] = r.event()
	}
	r.list = ""
}

func (r *reader) event() (e abi.Event) {
	e.Type = abi.EventType(r.enum("type", uint8(abi.EvKey), uint8(abi.EvWheel)))
	off := r.off
	flags := r.u8("flags")
	allowed := byte(0)
	switch e.Type {
	case abi.EvKey:
		allowed = evDown | evRepeat
	case abi.EvButton:
		allowed = evDown
	}
	if r.ok() && flags&^allowed != 0 {
		r.failAt("flags", off, ErrMalformed, "flags %#x not allowed for event type %d", flags, e.Type)
	}
	e.Down, e.Repeat = flags&evDown != 0, flags&evRepeat != 0
	switch e.Type {
	case abi.EvKey:
		e.Code = abi.KeyCode(r.uvarint("code", math.MaxUint32))
	case abi.EvButton:
		e.Button = uint32(r.uvarint("button", math.MaxUint32))
	case abi.EvText:
		off := r.off
		e.Text = r.str("text", abi.MaxText)
		if r.ok() && e.Text == "" {
			r.failAt("text", off, ErrMalformed, "empty text")
		}
	case abi.EvMove, abi.EvWheel:
		e.X = r.svarint("x")
		e.Y = r.svarint("y")
	}
	return e
}

// InputRefused: seq reason text

func (m *InputRefused) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Seq)
	b = append(b, byte(m.Reason))
	return appendString(b, m.Text)
}

func (m *InputRefused) decodeBody(r *reader) {
	m.Seq = r.uvarint("seq", math.MaxUint64)
	m.Reason = RefuseReason(r.enum("reason", 1, uint8(RefuseRateLimited)))
	m.Text = r.str("text", MaxText)
}

// Control messages: users then epoch. Acting users ("by") may be 0, the
// server itself (a queue advancing after a release); targets may not.

func (r *reader) target(field string) uint16 {
	off := r.off
	u := r.user(field)
	if r.ok() && u == 0 {
		r.failAt(field, off, ErrMalformed, "user 0 is the host, never a participant")
	}
	return u
}

func (m *ControlRequest) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(b, uint64(m.User)), m.Epoch)
}

func (m *ControlRequest) decodeBody(r *reader) {
	m.User = r.target("user")
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
}

func (m *ControlGrant) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(appendUvarint(b, uint64(m.By)), uint64(m.To)), m.Epoch)
}

func (m *ControlGrant) decodeBody(r *reader) {
	m.By = r.user("by")
	m.To = r.target("to")
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
}

func (m *ControlRevoke) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(appendUvarint(b, uint64(m.By)), uint64(m.From)), m.Epoch)
}

func (m *ControlRevoke) decodeBody(r *reader) {
	m.By = r.user("by")
	m.From = r.target("from")
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
}

func (m *ControlRelease) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(b, uint64(m.User)), m.Epoch)
}

func (m *ControlRelease) decodeBody(r *reader) {
	m.User = r.target("user")
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
}

// Presence: control epoch count user{count}
// user: number name role mode flags x y

func (m *Presence) appendBody(b []byte) []byte {
	b = append(b, byte(m.Control))
	b = appendUvarint(b, m.Epoch)
	b = appendUvarint(b, uint64(len(m.Users)))
	for _, u := range m.Users {
		b = appendUvarint(b, uint64(u.User))
		b = appendString(b, u.Name)
		b = append(b, byte(u.Role), byte(u.Mode))
		b = appendBool(b, u.HasControl)
		b = appendSvarint(b, u.X)
		b = appendSvarint(b, u.Y)
	}
	return b
}

func (m *Presence) decodeBody(r *reader) {
	m.Control = ControlMode(r.enum("control", 1, 2))
	m.Epoch = r.uvarint("epoch", math.MaxUint64)
	n := r.count("users", MaxUsers, 7)
	if n == 0 {
		return
	}
	m.Users = make([]PresenceUser, n)
	r.list = "users"
	for i := range m.Users {
		r.idx = i
		u := &m.Users[i]
		off := r.off
		u.User = r.target("user")
		// Ascending order makes the encoding canonical and duplicates impossible.
		if r.ok() && i > 0 && u.User <= m.Users[i-1].User {
			r.failAt("user", off, ErrMalformed, "user %d after user %d: not in ascending order", u.User, m.Users[i-1].User)
		}
		u.Name = r.str("name", MaxName)
		u.Role = Role(r.enum("role", 1, 4))
		u.Mode = Mode(r.enum("mode", 1, 3))
		u.HasControl = r.bool("has_control")
		u.X = r.svarint("x")
		u.Y = r.svarint("y")
	}
	r.list = ""
}

// ModeSwitch: kind mode reason

func (m *ModeSwitch) appendBody(b []byte) []byte {
	return appendString(append(b, byte(m.Kind), byte(m.Mode)), m.Reason)
}

func (m *ModeSwitch) decodeBody(r *reader) {
	m.Kind = SwitchKind(r.enum("kind", 1, 3))
	off := r.off
	m.Mode = Mode(r.enum("mode", 0, 3))
	if r.ok() {
		switch {
		case m.Mode == ModeAuto && m.Kind != SwitchPinned:
			r.failAt("mode", off, ErrMalformed, "auto is only a pin")
		case m.Mode == ModeDual && m.Kind == SwitchPinned:
			r.failAt("mode", off, ErrMalformed, "dual mode cannot be pinned")
		}
	}
	m.Reason = r.str("reason", MaxText)
}

// Estimates: log-bytes/s display-bytes/s window-ms tick

func (m *Estimates) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.LogBytesPerSec)
	b = appendUvarint(b, m.DisplayBytesPerSec)
	b = appendUvarint(b, uint64(m.WindowMillis))
	return appendUvarint(b, m.Tick)
}

func (m *Estimates) decodeBody(r *reader) {
	m.LogBytesPerSec = r.uvarint("log_bytes_per_sec", math.MaxUint64)
	m.DisplayBytesPerSec = r.uvarint("display_bytes_per_sec", math.MaxUint64)
	off := r.off
	m.WindowMillis = uint32(r.uvarint("window_millis", math.MaxUint32))
	if r.ok() && m.WindowMillis == 0 {
		r.failAt("window_millis", off, ErrMalformed, "window of 0 ms")
	}
	m.Tick = r.uvarint("tick", math.MaxUint64)
}

// DisplayFrame: seq tick key width height count tile{count}
// tile: x y w h encoding data

func (m *DisplayFrame) appendBody(b []byte) []byte {
	b = appendUvarint(b, m.Seq)
	b = appendUvarint(b, m.Tick)
	b = appendBool(b, m.Key)
	b = appendUvarint(b, uint64(m.Width))
	b = appendUvarint(b, uint64(m.Height))
	b = appendUvarint(b, uint64(len(m.Tiles)))
	for _, t := range m.Tiles {
		b = appendUvarint(b, uint64(t.X))
		b = appendUvarint(b, uint64(t.Y))
		b = appendUvarint(b, uint64(t.W))
		b = appendUvarint(b, uint64(t.H))
		b = append(b, byte(t.Encoding))
		b = appendBytes(b, t.Data)
	}
	return b
}

func (r *reader) side(field string) uint32 {
	off := r.off
	v := uint32(r.uvarint(field, MaxSide))
	if r.ok() && v == 0 {
		r.failAt(field, off, ErrMalformed, "%s 0", field)
	}
	return v
}

func (m *DisplayFrame) decodeBody(r *reader) {
	m.Seq = r.uvarint("seq", math.MaxUint64)
	m.Tick = r.uvarint("tick", math.MaxUint64)
	m.Key = r.bool("key")
	m.Width = r.side("width")
	m.Height = r.side("height")
	n := r.count("tiles", MaxTiles, 6)
	if n == 0 {
		return
	}
	m.Tiles = make([]Tile, n)
	r.list = "tiles"
	for i := range m.Tiles {
		r.idx = i
		t := &m.Tiles[i]
		t.X = uint32(r.uvarint("x", MaxSide))
		t.Y = uint32(r.uvarint("y", MaxSide))
		off := r.off
		t.W = r.side("w")
		if r.ok() && t.X+t.W > m.Width {
			r.failAt("w", off, ErrMalformed, "tile x %d + w %d passes the frame's width %d", t.X, t.W, m.Width)
		}
		off = r.off
		t.H = r.side("h")
		if r.ok() && t.Y+t.H > m.Height {
			r.failAt("h", off, ErrMalformed, "tile y %d + h %d passes the frame's height %d", t.Y, t.H, m.Height)
		}
		t.Encoding = Encoding(r.enum("encoding", 1, uint8(EncPNG)))
		off = r.off
		t.Data = r.bytes("data", MaxMessage)
		if !r.ok() {
			break
		}
		switch want := uint64(t.W) * uint64(t.H) * 4; {
		case t.Encoding == EncRaw && uint64(len(t.Data)) != want:
			r.failAt("data", off, ErrMalformed, "raw tile %dx%d needs %d bytes, has %d", t.W, t.H, want, len(t.Data))
		case t.Encoding == EncSolid && len(t.Data) != 4:
			r.failAt("data", off, ErrMalformed, "solid tile needs 4 bytes, has %d", len(t.Data))
		case len(t.Data) == 0:
			r.failAt("data", off, ErrMalformed, "empty tile data")
		}
	}
	r.list = ""
}

// Ping: seq sent; Pong: seq echo sent; Lag: replay-tick received-tick buffer-bytes

func (m *Ping) appendBody(b []byte) []byte { return appendUvarint(appendUvarint(b, m.Seq), m.Sent) }

func (m *Ping) decodeBody(r *reader) {
	m.Seq = r.uvarint("seq", math.MaxUint64)
	m.Sent = r.uvarint("sent", math.MaxUint64)
}

func (m *Pong) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(appendUvarint(b, m.Seq), m.Echo), m.Sent)
}

func (m *Pong) decodeBody(r *reader) {
	m.Seq = r.uvarint("seq", math.MaxUint64)
	m.Echo = r.uvarint("echo", math.MaxUint64)
	m.Sent = r.uvarint("sent", math.MaxUint64)
}

func (m *Lag) appendBody(b []byte) []byte {
	return appendUvarint(appendUvarint(appendUvarint(b, m.ReplayTick), m.ReceivedTick), m.BufferBytes)
}

func (m *Lag) decodeBody(r *reader) {
	m.ReplayTick = r.uvarint("replay_tick", math.MaxUint64)
	off := r.off
	m.ReceivedTick = r.uvarint("received_tick", math.MaxUint64)
	if r.ok() && m.ReceivedTick < m.ReplayTick {
		r.failAt("received_tick", off, ErrMalformed, "replay tick %d is past the received tick %d", m.ReplayTick, m.ReceivedTick)
	}
	m.BufferBytes = r.uvarint("buffer_bytes", math.MaxUint64)
}

// Routed: client:uvarint (1..MaxClient) then the inner message's bytes, which
// use up the rest. Gone: client:uvarint reason:string. Resume: pos.

func (m *Routed) appendBody(b []byte) []byte {
	b = appendUvarint(b, uint64(m.Client))
	if m.Msg == nil {
		return b // refused by the decoder: no inner message
	}
	return m.Msg.appendBody(append(b, byte(m.Msg.Type())))
}

func (m *Routed) decodeBody(r *reader) {
	off := r.off
	m.Client = uint32(r.uvarint("client", MaxClient))
	if r.ok() && m.Client == 0 {
		r.failAt("client", off, ErrMalformed, "client 0")
	}
	if !r.ok() {
		return
	}
	m.Msg = r.inner()
}

// inner decodes the wrapped message that uses up the rest of a Routed or
// Multicast; it is never one of the wrappers itself.
func (r *reader) inner() Message {
	off := r.off
	if r.remaining() == 0 {
		r.failAt("msg", off, ErrMalformed, "no inner message")
		return nil
	}
	if t := Type(r.b[off]); t == TypeRouted || t == TypeGone || t == TypeMulticast {
		r.failAt("msg", off, ErrMalformed, "a routed %s", t)
		return nil
	}
	inner, err := Decode(r.b[off:])
	if err != nil {
		de := err.(*DecodeError)
		r.failAt("msg", off+de.Offset, de.Err, "inner %s", de.Error())
		return nil
	}
	r.off = len(r.b)
	return inner
}

// Multicast: count:uvarint (1..MaxMulticast) client:uvarint×count (each
// 1..MaxClient, no two equal) then the inner message, as in Routed.

func (m *Multicast) appendBody(b []byte) []byte {
	b = appendUvarint(b, uint64(len(m.Clients)))
	for _, c := range m.Clients {
		b = appendUvarint(b, uint64(c))
	}
	if m.Msg == nil {
		return b
	}
	return m.Msg.appendBody(append(b, byte(m.Msg.Type())))
}

func (m *Multicast) decodeBody(r *reader) {
	off := r.off
	n := r.count("clients", MaxMulticast, 1)
	if r.ok() && n == 0 {
		r.failAt("clients", off, ErrMalformed, "no clients")
	}
	if !r.ok() {
		return
	}
	m.Clients = make([]uint32, n)
	seen := make(map[uint32]struct{}, n)
	for i := range m.Clients {
		off := r.off
		c := uint32(r.uvarint("clients", MaxClient))
		if !r.ok() {
			return
		}
		if _, dup := seen[c]; c == 0 || dup {
			r.failAt("clients", off, ErrMalformed, "client %d is 0 or repeated", c)
			return
		}
		seen[c] = struct{}{}
		m.Clients[i] = c
	}
	m.Msg = r.inner()
}

func (m *Gone) appendBody(b []byte) []byte {
	return appendString(appendUvarint(b, uint64(m.Client)), m.Reason)
}

func (m *Gone) decodeBody(r *reader) {
	off := r.off
	m.Client = uint32(r.uvarint("client", MaxClient))
	if r.ok() && m.Client == 0 {
		r.failAt("client", off, ErrMalformed, "client 0")
	}
	m.Reason = r.str("reason", MaxText)
}

func (m *Resume) appendBody(b []byte) []byte { return appendPos(b, m.Pos) }

func (m *Resume) decodeBody(r *reader) { m.Pos = r.pos("") }
