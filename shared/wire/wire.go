package wire

import (
	"fmt"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
)

// Protocol version spoken by this package. A peer with another Major is
// refused (ErrVersion); a higher Minor only adds message types and
// capabilities, which a peer sends only after the other side announced them,
// so the layouts below never change within a major version.
const (
	Major = 1
	Minor = 1
)

// Type is a message's first byte.
type Type uint8

// Message types. Numbers are part of the protocol: never reuse one.
const (
	TypeHello            Type = 1  // client → server
	TypeWelcome          Type = 2  // server → client
	TypeError            Type = 3  // either way; the sender closes after it
	TypeLogBlock         Type = 4  // server/relay → client
	TypeSnapshotAnnounce Type = 5  // server/relay → client
	TypeInput            Type = 6  // client → server
	TypeInputRefused     Type = 7  // server → client
	TypeControlRequest   Type = 8  // client → server; server → owner/holder
	TypeControlGrant     Type = 9  // owner/holder → server; server → all
	TypeControlRevoke    Type = 10 // owner → server; server → all
	TypeControlRelease   Type = 11 // holder → server; server → all
	TypePresence         Type = 12 // server → all
	TypeModeSwitch       Type = 13 // either way
	TypeEstimates        Type = 14 // server → client
	TypeDisplayFrame     Type = 15 // server/relay → client
	TypePing             Type = 16 // either way
	TypePong             Type = 17 // either way
	TypeLag              Type = 18 // client → relay/server

	// Added in 1.1, between a relay and its upstream (CapRelay).
	TypeRouted Type = 19 // relay ↔ upstream: a message from or for one downstream client
	TypeGone   Type = 20 // relay ↔ upstream: a downstream client left, or must be dropped
	// Added in 1.1, client → relay: continue the log from a position.
	TypeResume Type = 21
	// Added in 1.1 with CapMulticast, upstream → relay: one message for
	// several of the relay's clients.
	TypeMulticast Type = 22
)

var typeNames = [...]string{
	TypeHello: "Hello", TypeWelcome: "Welcome", TypeError: "Error", TypeLogBlock: "LogBlock",
	TypeSnapshotAnnounce: "SnapshotAnnounce", TypeInput: "Input", TypeInputRefused: "InputRefused",
	TypeControlRequest: "ControlRequest", TypeControlGrant: "ControlGrant",
	TypeControlRevoke: "ControlRevoke", TypeControlRelease: "ControlRelease",
	TypePresence: "Presence", TypeModeSwitch: "ModeSwitch", TypeEstimates: "Estimates",
	TypeDisplayFrame: "DisplayFrame", TypePing: "Ping", TypePong: "Pong", TypeLag: "Lag",
	TypeRouted: "Routed", TypeGone: "Gone", TypeResume: "Resume", TypeMulticast: "Multicast",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Hard limits. Decode refuses anything beyond them before allocating, so a
// message costs at most about its own size in memory.
const (
	// MaxMessage bounds a whole message: the largest record-log block (9
	// bytes of block header + 8 MiB payload) plus room for its position.
	MaxMessage = 9 << 20
	// MaxLogBlock is the largest raw block a LogBlock carries.
	MaxLogBlock = 9 + 8<<20
	// MaxParams matches the record log's Params limit.
	MaxParams = 64 << 10

	MaxToken     = 4096 // a signed token, opaque here
	MaxName      = 64   // a person's or client's display name, UTF-8 bytes
	MaxSessionID = 128
	MaxText      = 1024 // Error text, refusal and switch reasons

	MaxKnownSnapshots = 64       // Hello.KnownSnapshots
	MaxCacheFilter    = 64 << 10 // Hello.CacheFilter bytes

	MaxEvents = 256  // events in one Input
	MaxUsers  = 1024 // users in one Presence
	MaxTiles  = 4096 // tiles in one DisplayFrame
	MaxSide   = 16384
	// MaxUser is the largest user number (abi.Event.User is 16 bits).
	MaxUser = 1<<16 - 1
	// MaxTickRate bounds Welcome.TickRate (ticks per second).
	MaxTickRate = 10000
	// MaxOffset bounds a log position's byte offset.
	MaxOffset = 1<<62 - 1
)

// Capability bits (Hello.Caps, Welcome.Caps). Unknown bits are carried and
// ignored, so a newer minor version can add some.
const (
	CapReplay     uint64 = 1 << 0 // can replay (native client or browser wasm)
	CapDisplay    uint64 = 1 << 1 // can show display frames
	CapZlib       uint64 = 1 << 2 // tile encodings the viewer decodes…
	CapPalette    uint64 = 1 << 3
	CapJPEG       uint64 = 1 << 4
	CapPNG        uint64 = 1 << 5
	CapPageCache  uint64 = 1 << 6 // keeps pages across sessions (Hello.CacheFilter meaningful)
	CapDualStream uint64 = 1 << 7 // can take log and display at once (dual mode)
	// CapRelay (1.1): the Hello is a relay's upstream connection; Routed and
	// Gone carry its downstream clients' messages.
	CapRelay uint64 = 1 << 8
	// CapMulticast (1.1): a relay's Hello says it takes Multicast, so a
	// message for many of its clients (a display key frame for everyone
	// who joined meanwhile) crosses its upstream connection once.
	CapMulticast uint64 = 1 << 9
)

// MaxClient bounds Routed.Client and Gone.Client: a relay's number for one
// of its downstream connections.
const MaxClient = 1<<32 - 1

// MaxMulticast bounds Multicast.Clients.
const MaxMulticast = 4096

// Role is what a user may do (DESIGN.md section 7).
type Role uint8

const (
	RoleOwner         Role = 1
	RoleController    Role = 2
	RoleViewer        Role = 3 // may replay: receives memory and the log
	RoleDisplayViewer Role = 4 // pixels only
)

// Mode is a viewer's mode (DESIGN.md section 6). ModeAuto appears only where
// a request or pin may leave the choice to the mode controller.
type Mode uint8

const (
	ModeAuto    Mode = 0
	ModeDisplay Mode = 1
	ModeDual    Mode = 2
	ModeReplay  Mode = 3
)

// ControlMode is how input from several controllers is arbitrated.
type ControlMode uint8

const (
	ControlShared    ControlMode = 1
	ControlExclusive ControlMode = 2
)

// ErrorCode says why a peer gives up (Error.Code). Unknown codes are valid:
// show the text.
type ErrorCode uint32

const (
	CodeVersion      ErrorCode = 1 // unsupported protocol major version
	CodeMalformed    ErrorCode = 2 // a message did not decode
	CodeUnauthorized ErrorCode = 3 // bad, expired or missing token
	CodeNoSession    ErrorCode = 4
	CodeForbidden    ErrorCode = 5 // the role does not allow it
	CodeTooSlow      ErrorCode = 6 // the client fell too far behind the log
	CodeLimit        ErrorCode = 7 // size or rate limit
	CodeInternal     ErrorCode = 8
	CodeShutdown     ErrorCode = 9
)

// RefuseReason says why input was refused (InputRefused.Reason).
type RefuseReason uint8

const (
	RefuseNotController RefuseReason = 1
	RefuseViewerOnly    RefuseReason = 2
	RefuseStaleEpoch    RefuseReason = 3
	RefuseNoSuchUser    RefuseReason = 4
	RefuseBadEvent      RefuseReason = 5
	RefuseRateLimited   RefuseReason = 6
)

// SwitchKind says who wants a mode switch (ModeSwitch.Kind).
type SwitchKind uint8

const (
	// SwitchRequested: the client's mode controller decided (client → server).
	SwitchRequested SwitchKind = 1
	// SwitchForced: the server or relay orders it (for example a slow client
	// to display mode); the client must comply.
	SwitchForced SwitchKind = 2
	// SwitchPinned: the user pinned a mode by hand; ModeAuto unpins.
	SwitchPinned SwitchKind = 3
)

// Encoding is a tile's encoding.
type Encoding uint8

const (
	EncRaw     Encoding = 1 // w*h*4 bytes, RGBA, rows top to bottom
	EncSolid   Encoding = 2 // 4 bytes RGBA filling the tile
	EncZlib    Encoding = 3 // zlib stream (RFC 1950) of the raw bytes
	EncPalette Encoding = 4 // palette + indices, layout owned by the display encoder
	EncJPEG    Encoding = 5 // a JFIF file
	EncPNG     Encoding = 6 // a PNG file
)

// Message is one of the pointer types below (*Hello, *Welcome, …).
type Message interface {
	Type() Type
	appendBody(b []byte) []byte
	decodeBody(r *reader)
}

// Hello is the client's first message.
type Hello struct {
	Major, Minor uint32 // this side's version: Major and Minor
	Caps         uint64
	Token        string // signed token (session, role, expiry), opaque here
	Want         Mode   // ModeAuto, ModeDisplay or ModeReplay
	Name         string // shown to others
	// KnownSnapshots are manifest hashes of snapshots whose pages the
	// client has cached in full; CacheFilter is a filter over cached page
	// hashes whose format the page service owns. Both optional.
	KnownSnapshots [][32]byte
	CacheFilter    []byte
}

// Welcome is the server's answer to an acceptable Hello.
type Welcome struct {
	Major, Minor uint32 // this side's version: Major and Minor
	Caps         uint64
	SessionID    string
	User         uint16 // this client's user number, never 0 (0 is the host)
	Role         Role
	Mode         Mode // the mode the client starts in (not ModeAuto)
	ModuleHash   recordlog.ModuleHash
	Params       []byte // the log's Params, opaque (recordlog.Header.Params)
	TickRate     uint32 // ticks per second, 1..MaxTickRate
	Tick         uint64 // the machine's current tick
}

// Error reports why the sender gives up; it closes the connection after.
type Error struct {
	Code ErrorCode // not 0
	Text string
}

// LogBlock carries one raw record-log block (its 9-byte block header and
// stored payload, exactly as in the segment file) and the position where it
// starts, so a relay can forward it without decoding records.
type LogBlock struct {
	Pos   recordlog.Pos
	Block []byte
}

// SnapshotAnnounce says a snapshot exists: its pages and manifest are
// fetched from the page service by ManifestHash; replay from it continues at
// Pos.
type SnapshotAnnounce struct {
	Number       uint64
	ManifestHash [32]byte
	Tick, Step   uint64
	Pos          recordlog.Pos
}

// Input is a batch of input events. Events carry no user: the server stamps
// them (abi.Event.User is 0 here). Epoch is the control epoch the client last
// saw; input from a stale epoch is refused.
type Input struct {
	Seq    uint64
	Epoch  uint64
	Events []abi.Event // 1..MaxEvents; types key, text, move, button, wheel
}

// InputRefused tells a client that the Input with Seq was dropped.
type InputRefused struct {
	Seq    uint64
	Reason RefuseReason
	Text   string // user-facing
}

// ControlRequest: User asks for control (exclusive mode). From a client, User
// is the client's own number; the server forwards it to the owner and holder.
type ControlRequest struct {
	User  uint16
	Epoch uint64
}

// ControlGrant: By gives control to To. From the server, Epoch is the new
// epoch; from a client, the epoch it saw.
type ControlGrant struct {
	By, To uint16
	Epoch  uint64
}

// ControlRevoke: By (the owner) takes control away from From.
type ControlRevoke struct {
	By, From uint16
	Epoch    uint64
}

// ControlRelease: User gives control up (or withdraws a request).
type ControlRelease struct {
	User  uint16
	Epoch uint64
}

// Presence is everyone in the session, ordered by user number.
type Presence struct {
	Control ControlMode
	Epoch   uint64
	Users   []PresenceUser
}

// PresenceUser is one person in a Presence.
type PresenceUser struct {
	User       uint16
	Name       string
	Role       Role
	Mode       Mode // ModeDisplay, ModeDual or ModeReplay
	HasControl bool
	X, Y       int32 // pointer, framebuffer coordinates
}

// ModeSwitch asks for, orders or pins a mode.
type ModeSwitch struct {
	Kind   SwitchKind
	Mode   Mode // ModeAuto only with SwitchPinned; never ModeDual with SwitchPinned
	Reason string
}

// Estimates are the server's traffic figures for the mode a viewer is not
// in (DESIGN.md section 6): what the record log costs, and what display mode
// would cost at the current screen damage, averaged over Window.
type Estimates struct {
	LogBytesPerSec     uint64
	DisplayBytesPerSec uint64
	WindowMillis       uint32 // 1.. (the averaging window)
	Tick               uint64 // the tick the figures were taken at
}

// DisplayFrame is one display-mode update: tiles to paint on a Width×Height
// screen. Key frames repaint the whole screen (a late joiner starts at one).
type DisplayFrame struct {
	Seq           uint64
	Tick          uint64
	Key           bool
	Width, Height uint32 // 1..MaxSide
	Tiles         []Tile // 0..MaxTiles
}

// Tile is a rectangle of a DisplayFrame, inside the frame.
type Tile struct {
	X, Y, W, H uint32
	Encoding   Encoding
	Data       []byte
}

// Ping asks for a Pong. Sent is the sender's clock in nanoseconds, opaque
// to the receiver.
type Ping struct {
	Seq  uint64
	Sent uint64
}

// Pong answers a Ping: Echo is the Ping's Sent, so RTT = now − Echo on the
// pinger's clock; Sent is the ponger's clock.
type Pong struct {
	Seq  uint64
	Echo uint64
	Sent uint64
}

// Routed wraps a message from or for one of a relay's downstream clients,
// on the relay's upstream connection (1.1, CapRelay). Upward, Msg came from
// client Client (its Hello opens the client; the answer comes back routed);
// downward, Msg is for that client only. Messages that are not routed go to
// every client the relay decides should see them. Msg is never itself a
// Routed or Gone message.
type Routed struct {
	Client uint32 // 1..MaxClient, the relay's number for the connection
	Msg    Message
}

// Multicast is Routed for several clients at once (1.1, CapMulticast;
// upstream → relay only): Msg is for each of Clients, as if routed to each.
// Clients are distinct, 1..MaxClient, at most MaxMulticast of them. Msg is
// never a Routed, Gone or Multicast.
type Multicast struct {
	Clients []uint32
	Msg     Message
}

// Gone says a downstream client is no more: upward, it disconnected (or the
// relay dropped it); downward, the upstream asks the relay to drop it after
// delivering what was routed to it before.
type Gone struct {
	Client uint32
	Reason string
}

// Resume (1.1) asks a relay to continue a reconnecting replay client's log at
// Pos, the end of the log it already holds, instead of from a snapshot. A
// relay that no longer has the log from Pos starts it from its newest
// snapshot (SnapshotAnnounce) as for a late joiner.
type Resume struct {
	Pos recordlog.Pos
}

// Lag is a replaying client's progress, for a relay's per-client cursor and
// the server's bookkeeping.
type Lag struct {
	ReplayTick   uint64 // the tick the client's replay reached
	ReceivedTick uint64 // the tick at the end of the log it has received
	BufferBytes  uint64 // received log bytes not replayed yet
}

func (*Hello) Type() Type            { return TypeHello }
func (*Welcome) Type() Type          { return TypeWelcome }
func (*Error) Type() Type            { return TypeError }
func (*LogBlock) Type() Type         { return TypeLogBlock }
func (*SnapshotAnnounce) Type() Type { return TypeSnapshotAnnounce }
func (*Input) Type() Type            { return TypeInput }
func (*InputRefused) Type() Type     { return TypeInputRefused }
func (*ControlRequest) Type() Type   { return TypeControlRequest }
func (*ControlGrant) Type() Type     { return TypeControlGrant }
func (*ControlRevoke) Type() Type    { return TypeControlRevoke }
func (*ControlRelease) Type() Type   { return TypeControlRelease }
func (*Presence) Type() Type         { return TypePresence }
func (*ModeSwitch) Type() Type       { return TypeModeSwitch }
func (*Estimates) Type() Type        { return TypeEstimates }
func (*DisplayFrame) Type() Type     { return TypeDisplayFrame }
func (*Ping) Type() Type             { return TypePing }
func (*Pong) Type() Type             { return TypePong }
func (*Lag) Type() Type              { return TypeLag }
func (*Routed) Type() Type           { return TypeRouted }
func (*Gone) Type() Type             { return TypeGone }
func (*Resume) Type() Type           { return TypeResume }
func (*Multicast) Type() Type        { return TypeMulticast }

func (m *Error) Error() string { return fmt.Sprintf("peer error %d: %s", m.Code, m.Text) }

// newMessage returns an empty message of type t, or nil.
func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeError:
		return new(Error)
	case TypeLogBlock:
		return new(LogBlock)
	case TypeSnapshotAnnounce:
		return new(SnapshotAnnounce)
	case TypeInput:
		return new(Input)
	case TypeInputRefused:
		return new(InputRefused)
	case TypeControlRequest:
		return new(ControlRequest)
	case TypeControlGrant:
		return new(ControlGrant)
	case TypeControlRevoke:
		return new(ControlRevoke)
	case TypeControlRelease:
		return new(ControlRelease)
	case TypePresence:
		return new(Presence)
	case TypeModeSwitch:
		return new(ModeSwitch)
	case TypeEstimates:
		return new(Estimates)
	case TypeDisplayFrame:
		return new(DisplayFrame)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeLag:
		return new(Lag)
	case TypeRouted:
		return new(Routed)
	case TypeGone:
		return new(Gone)
	case TypeResume:
		return new(Resume)
	case TypeMulticast:
		return new(Multicast)
	}
	return nil
}
