package hub

import (
	"encoding/binary"
	"errors"

	"replaydesk/shared/wire"
)

// routedBytes wraps an encoded message for client c without decoding or
// re-encoding it: Routed is its type byte, the client number and the
// message's own bytes (docs/wire-protocol.md, 19 Routed).
func routedBytes(c uint32, inner []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(inner))
	b = append(b, byte(wire.TypeRouted))
	b = binary.AppendUvarint(b, uint64(c))
	return append(b, inner...)
}

// routedInner returns the client number and the wrapped message's bytes of
// an encoded Routed message. It checks the framing only; the inner message
// was checked by wire.Decode (it aliases b).
func routedInner(b []byte) (uint32, []byte, error) {
	if len(b) < 2 || b[0] != byte(wire.TypeRouted) {
		return 0, nil, errors.New("hub: not a Routed message")
	}
	c, n := binary.Uvarint(b[1:])
	if n <= 0 || c == 0 || c > wire.MaxClient || len(b) == 1+n {
		return 0, nil, errors.New("hub: bad Routed client number")
	}
	return uint32(c), b[1+n:], nil
}
