package recordlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// Stream is a record source fed with raw blocks as they arrive over a
// network (a live session's LogBlock messages), instead of read from segment
// files. Push checks and decodes a block whole, so a damaged block is refused
// at once and nothing of it is replayed; Next hands out its records in order.
//
// Blocks must follow each other without a gap: each block's start tick and
// step must be where the previous one ended. NEXT blocks (a segment roll)
// carry no records and are accepted; a SEAL block ends the stream (Next then
// returns io.EOF). Push and Next may be called from different goroutines.
type Stream struct {
	mu     sync.Mutex
	wake   chan struct{} // closed and replaced when records arrive or the stream ends
	recs   []Record
	head   int
	bytes  []int // per queued record: its share of block bytes, for Buffered
	queued int64
	tick   uint64 // after the last pushed record
	step   uint64
	next   Pos // where the next block must start
	// offKnown: next.Offset is exact (false at a segment's start, whose
	// header length the stream never sees).
	offKnown bool
	end      error // io.EOF after SEAL, or the error Close gave
	bd       blockDecoder
}

// NewStream returns a stream whose first block must start at start: a
// snapshot's log position, or the zero Pos for a session's start (an Offset
// of 0 means "the first block of start.Segment", wherever it lies).
func NewStream(start Pos) *Stream {
	return &Stream{wake: make(chan struct{}), tick: start.Tick, step: start.Step, next: start, offKnown: start.Offset > 0}
}

// Push adds one block (9-byte header plus stored payload, as in a segment
// file) that starts at pos. A refused block leaves the stream unchanged, so
// the caller can report it and close the stream with the error.
func (s *Stream) Push(pos Pos, block []byte) error {
	if len(block) < blockHeaderLen {
		return &CorruptError{Segment: pos.Segment, Offset: pos.Offset, Reason: fmt.Sprintf("block of %d bytes is shorter than its header", len(block))}
	}
	n := binary.LittleEndian.Uint32(block)
	flags := block[4]
	bad := func(format string, a ...any) error {
		return &CorruptError{Segment: pos.Segment, Offset: pos.Offset, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case int(n) != len(block)-blockHeaderLen:
		return bad("block length %d, %d bytes present", n, len(block)-blockHeaderLen)
	case n > MaxBlockPayload:
		return bad("block length %d exceeds limit %d", n, MaxBlockPayload)
	case flags&^flagsKnown != 0:
		return bad("unknown block flags 0x%02x", flags)
	case flags&flagSeal != 0 && flags&flagNext != 0:
		return bad("block flagged both SEAL and NEXT")
	}
	payload := block[blockHeaderLen:]
	if crc := crc32.Update(crc32.Update(0, castagnoli, block[4:5]), castagnoli, payload); crc != binary.LittleEndian.Uint32(block[5:]) {
		return bad("block checksum mismatch")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil {
		return fmt.Errorf("recordlog: stream ended: %w", s.end)
	}
	if pos.Tick != s.tick || pos.Step != s.step {
		return bad("block starts at tick %d step %d, the stream is at tick %d step %d", pos.Tick, pos.Step, s.tick, s.step)
	}
	if pos.Segment != s.next.Segment || (s.offKnown && pos.Offset != s.next.Offset) {
		return bad("block at segment %d offset %d, the stream expects segment %d offset %d (a block is missing)",
			pos.Segment, pos.Offset, s.next.Segment, s.next.Offset)
	}
	if flags&(flagSeal|flagNext) != 0 {
		if n != 0 {
			return bad("SEAL or NEXT block with a payload")
		}
		if flags&flagSeal != 0 {
			s.finish(io.EOF)
		} else {
			s.next = Pos{Segment: pos.Segment + 1, Tick: s.tick, Step: s.step}
			s.offKnown = false
		}
		return nil
	}
	if flags&flagCompressed != 0 {
		p, err := inflate(payload)
		if err != nil {
			return bad("%v", err)
		}
		payload = p
	} else {
		payload = append([]byte(nil), payload...) // records alias it; the caller may reuse block
	}
	tick, step, err := s.bd.init(payload)
	if err != nil {
		return bad("%v", err)
	}
	if tick != pos.Tick || step != pos.Step {
		return bad("block payload starts at tick %d step %d, its position says tick %d step %d", tick, step, pos.Tick, pos.Step)
	}
	var recs []Record
	for s.bd.left > 0 {
		var r Record
		if err := s.bd.next(&r); err != nil {
			return bad("%v", err)
		}
		switch r.Kind {
		case KindStep:
			tick++
			step++
		case KindIdle:
			tick += r.N
		}
		recs = append(recs, r)
	}
	if len(s.bd.d) != 0 {
		return bad("%d trailing bytes after the last record", len(s.bd.d))
	}
	share := len(block) / len(recs)
	for range recs {
		s.bytes = append(s.bytes, share)
	}
	s.recs = append(s.recs, recs...)
	s.queued += int64(share * len(recs))
	s.tick, s.step = tick, step
	s.next = Pos{Segment: pos.Segment, Offset: pos.Offset + int64(len(block)), Tick: tick, Step: step}
	s.offKnown = true
	s.signal()
	return nil
}

// signal wakes waiters; s.mu is held.
func (s *Stream) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *Stream) finish(err error) {
	if s.end == nil {
		s.end = err
		s.signal()
	}
}

// Close ends the stream: Next returns the records already pushed, then err
// (io.EOF if err is nil).
func (s *Stream) Close(err error) {
	if err == nil {
		err = io.EOF
	}
	s.mu.Lock()
	s.finish(err)
	s.mu.Unlock()
}

// Next returns the next record, waiting for a Push until ctx is done. After
// the last record of an ended stream it returns io.EOF or Close's error.
func (s *Stream) Next(ctx context.Context) (Record, error) {
	for {
		s.mu.Lock()
		if s.head < len(s.recs) {
			r := s.recs[s.head]
			s.recs[s.head] = Record{}
			s.queued -= int64(s.bytes[s.head])
			s.head++
			if s.head == len(s.recs) { // drained: reuse the arrays
				s.recs, s.bytes, s.head = s.recs[:0], s.bytes[:0], 0
			}
			s.mu.Unlock()
			return r, nil
		}
		if s.end != nil {
			err := s.end
			s.mu.Unlock()
			return Record{}, err
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

// Ready reports whether Next would return without waiting. A live replayer
// uses it not to wait for the next block after a step (the machine peeks at
// the record after each step).
func (s *Stream) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head < len(s.recs) || s.end != nil
}

// Buffered is the number of block bytes pushed whose records Next has not
// returned yet (approximately: a block's bytes are shared among its records).
func (s *Stream) Buffered() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// End is the position after the last pushed block: the tick and step where
// the received log ends, and where the next block must start.
func (s *Stream) End() Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}
