package machine

import (
	"errors"
	"slices"
	"unsafe"

	"replaydesk/shared/abi"
)

// errOverlayOutgrown: the overlay outgrew what a background snapshot laid
// out (or changed in a way it cannot patch); the device state is encoded
// from scratch instead, with the guest stopped.
var errOverlayOutgrown = errors.New("machine: overlay outgrew its background layout")

// overlaySnapshot copies a snapshotted disk's overlay blocks for a
// background snapshot, the way dirty tracking does for memory: the bulk is
// copied on a goroutine while the guest runs, and Finish copies only the
// blocks written since. A 12 MiB overlay copied with the guest stopped cost
// the download image a 5 ms stall.
//
// It needs no tracking because overlay blocks are immutable (a write
// stores a fresh slice, devices.writeOverlay): a block whose slice is the
// one copied is unchanged. New blocks go after the others
// (devices.overlayOrder), so nothing already laid out moves.
//
// Layout of buf: headerSpace bytes, then capBlocks block slots. The device
// state's header (uvarint length + JSON) is written right before the first
// block when the snapshot finishes, so the result is one slice of buf,
// byte for byte what encodeDevice would produce.
type overlaySnapshot struct {
	order       []uint64 // overlayOrder when the snapshot started
	refs        [][]byte // the slice each block had then
	headerSpace int
	capBlocks   int
	buf         []byte // filled by prepare, on the background goroutine

	Recopied int // blocks copied again at finish (written meanwhile)
	Added    int // blocks first written meanwhile
}

// newOverlaySnapshot takes references to the overlay's blocks (no data is
// copied); nil when there is no overlay. Call it between steps.
func newOverlaySnapshot(d *devices) *overlaySnapshot {
	if len(d.overlayOrder) == 0 {
		return nil
	}
	o := &overlaySnapshot{order: slices.Clone(d.overlayOrder), refs: make([][]byte, len(d.overlayOrder))}
	for i, blk := range o.order {
		o.refs[i] = d.overlay[blk]
	}
	n := len(o.order)
	o.capBlocks = n + n/4 + 256
	// JSON: the small fields, the queue and handles (small), then at most
	// 21 bytes per block number.
	o.headerSpace = 16<<10 + 24*o.capBlocks
	return o
}

// prepare allocates the layout, pre-faulted (first-touch faults, not the
// copy, dominate on these machines), and copies every referenced block.
// It runs on the background goroutine: the blocks it reads never change.
func (o *overlaySnapshot) prepare() {
	buf := make([]byte, o.headerSpace+o.capBlocks*abi.BlockSize)
	populate(buf)
	for i, b := range o.refs {
		copy(o.slot(buf, i), b)
	}
	o.buf = buf
}

func (o *overlaySnapshot) slot(buf []byte, i int) []byte {
	off := o.headerSpace + i*abi.BlockSize
	return buf[off : off+abi.BlockSize]
}

// finish returns the encoded device state for ds (whose OverlayBlocks is
// the overlay's order now), copying only the blocks written since the
// start. Call it between steps, after prepare has returned.
func (o *overlaySnapshot) finish(ds deviceState, overlay map[uint64][]byte) ([]byte, error) {
	order := ds.OverlayBlocks
	n0, n1 := len(o.order), len(order)
	if o.buf == nil || n1 < n0 || n1 > o.capBlocks || !slices.Equal(order[:n0], o.order) {
		return nil, errOverlayOutgrown
	}
	for i := range n0 {
		b := overlay[order[i]]
		if unsafe.SliceData(b) != unsafe.SliceData(o.refs[i]) {
			copy(o.slot(o.buf, i), b)
			o.Recopied++
		}
	}
	for i := n0; i < n1; i++ {
		copy(o.slot(o.buf, i), overlay[order[i]])
		o.Added++
	}
	hdr, err := deviceHeader(ds)
	if err != nil {
		return nil, err
	}
	if len(hdr) > o.headerSpace {
		return nil, errOverlayOutgrown
	}
	start := o.headerSpace - len(hdr)
	copy(o.buf[start:], hdr)
	end := o.headerSpace + n1*abi.BlockSize
	return o.buf[start:end:end], nil
}
