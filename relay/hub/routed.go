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

// multicastBytes makes a Multicast of an encoded message for clients
// (distinct, at most wire.MaxMulticast: the upstream's list, renumbered).
func multicastBytes(clients []uint32, inner []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen32*(1+len(clients))+len(inner))
	b = append(b, byte(wire.TypeMulticast))
	b = binary.AppendUvarint(b, uint64(len(clients)))
	for _, c := range clients {
		b = binary.AppendUvarint(b, uint64(c))
	}
	return append(b, inner...)
}

// multicastInner returns the wrapped message's bytes of an encoded
// Multicast that wire.Decode accepted (it aliases b).
func multicastInner(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != byte(wire.TypeMulticast) {
		return nil, errors.New("hub: not a Multicast message")
	}
	off := 1
	n, k := binary.Uvarint(b[off:])
	if k <= 0 || n == 0 || n > wire.MaxMulticast {
		return nil, errors.New("hub: bad Multicast count")
	}
	off += k
	for range n {
		if _, k = binary.Uvarint(b[off:]); k <= 0 {
			return nil, errors.New("hub: bad Multicast client")
		}
		off += k
	}
	if off >= len(b) {
		return nil, errors.New("hub: Multicast without a message")
	}
	return b[off:], nil
}
