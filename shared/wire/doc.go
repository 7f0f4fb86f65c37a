// Package wire is replaydesk's session protocol: the messages a server, a
// relay and a client exchange over one WebSocket connection, one binary
// WebSocket message per wire message. It defines the messages, their compact
// binary encoding (varints, length-prefixed bytes), the version handshake
// (Hello/Welcome) and hard limits that keep a hostile peer from making a
// decoder allocate or loop without bound. docs/wire-protocol.md is the
// byte-for-byte reference; this package is its Go implementation.
//
// It must not know about transports (WebSocket, WebRTC, files), sessions,
// the machine or the meaning of record-log blocks: a LogBlock's bytes are
// forwarded as they are (a relay never decodes records), tile bytes are
// opaque to it except for their sizes, and control and mode decisions belong
// to server/internal/control and shared/modes.
//
// Encode refuses anything Decode would refuse, and the encoding is canonical
// (shortest varints, no trailing bytes, no unknown flag bits), so for any b
// that decodes, Encode(Decode(b)) == b.
package wire
