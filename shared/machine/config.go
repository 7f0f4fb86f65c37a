package machine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"replaydesk/shared/abi"
	"replaydesk/shared/recordlog"
)

// Mode is how a machine treats non-deterministic inputs.
type Mode int

const (
	// Live runs the real imports and logs nothing.
	Live Mode = iota
	// Record runs the real imports and logs every result.
	Record
	// Replay never runs a real import: results come from the log.
	Replay
)

func (m Mode) String() string {
	switch m {
	case Live:
		return "live"
	case Record:
		return "record"
	case Replay:
		return "replay"
	}
	return "mode?"
}

// Defaults for Params.
const (
	DefaultTickHz          = 60
	DefaultCheckpointEvery = 60 // ticks: one framebuffer checkpoint a second
	DefaultMemCheckEvery   = 10 // checkpoints: one memory hash every ten
	// MonotonicBase is the guest's monotonic clock at tick 0. Not zero, so
	// that guests never see a zero timestamp.
	MonotonicBase = int64(time.Second)
)

// Params is the configuration a replayer must share with the recorder. It
// travels in the record log's header.
type Params struct {
	ABI    int `json:"abi"`
	TickHz int `json:"tick_hz"`
	// VirtualClock makes the guest's clocks advance exactly 1/TickHz per
	// tick, so a recording runs as fast as the host can step it. Without it
	// the clocks are the host's real ones.
	VirtualClock bool `json:"virtual_clock"`
	// RealtimeBase is the guest's wall clock at tick 0 (ns since the epoch).
	RealtimeBase int64 `json:"realtime_base_ns"`
	// CheckpointEvery is the recorder's framebuffer checkpoint period in
	// ticks; MemCheckEvery puts a memory hash in every n-th checkpoint.
	CheckpointEvery uint64 `json:"checkpoint_every"`
	MemCheckEvery   uint64 `json:"mem_check_every"`
	// Disk: how the disk reaches replayers, its size, and the SHA-256 of the
	// base image (hex) a replayer must hold in snapshotted mode.
	DiskMode   abi.DiskMode `json:"disk_mode"`
	DiskBlocks uint64       `json:"disk_blocks"`
	DiskSHA256 string       `json:"disk_sha256,omitempty"`
	// Endpoints are the net endpoint names the guest may open.
	Endpoints []string `json:"endpoints,omitempty"`
}

// WithDefaults fills zero fields with their defaults.
func (p Params) WithDefaults() Params {
	if p.ABI == 0 {
		p.ABI = abi.Version
	}
	if p.TickHz == 0 {
		p.TickHz = DefaultTickHz
	}
	if p.CheckpointEvery == 0 {
		p.CheckpointEvery = DefaultCheckpointEvery
	}
	if p.MemCheckEvery == 0 {
		p.MemCheckEvery = DefaultMemCheckEvery
	}
	return p
}

// Encode returns the bytes stored in a log header.
func (p Params) Encode() []byte {
	b, _ := json.Marshal(p) // plain struct: cannot fail
	return b
}

// DecodeParams parses Params from a log header.
func DecodeParams(b []byte) (Params, error) {
	var p Params
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("machine: log header parameters: %w", err)
	}
	if p.ABI != abi.Version {
		return p, fmt.Errorf("machine: log was recorded with guest ABI v%d; this build speaks v%d", p.ABI, abi.Version)
	}
	if p.TickHz <= 0 || p.TickHz > 10000 {
		return p, fmt.Errorf("machine: log header has tick rate %d", p.TickHz)
	}
	return p, nil
}

// RecordSink receives records in record mode (a *recordlog.Writer is one).
type RecordSink interface {
	Append(recordlog.Record) error
}

// RecordSource yields records in replay mode (a *recordlog.Reader is one).
// It returns io.EOF at the end of the log. A live source (recordlog.Stream)
// may also have a Ready() bool method: the machine then never waits for the
// record after a step, so a step's frame is not held back until the next
// block arrives.
type RecordSource interface {
	Next(ctx context.Context) (recordlog.Record, error)
}

// Config makes a machine.
type Config struct {
	Mode   Mode
	Params Params
	Sink   RecordSink   // Record mode
	Source RecordSource // Replay mode
	// Disk is the disk's contents: the frozen base image in snapshotted mode
	// (never written; writes go to an overlay in machine state), or, in
	// replayed mode, the real disk that record mode reads and writes. Its
	// length must be Params.DiskBlocks * abi.BlockSize. Replay in replayed
	// mode needs none.
	Disk []byte
	// DiskSource serves the frozen base image block by block when Disk is
	// nil in snapshotted mode: a remote replayer fetches only the blocks the
	// guest reads. A block it cannot deliver stops the machine.
	DiskSource BlockSource
	// Net opens endpoints in live and record modes. Replay never calls it.
	Net NetHost
	// Console receives console and stdout/stderr text in every mode (it is
	// deterministic output, so a replayer may show it too). Nil drops it.
	Console io.Writer
	Log     zerolog.Logger
}

// BlockSource delivers blocks of a disk image (abi.BlockSize bytes each).
type BlockSource interface {
	Block(n uint64) ([]byte, error)
}

// NetHost opens the named endpoints a session allows.
type NetHost interface {
	Open(name string) (Stream, error)
}

// Stream is one open endpoint. Recv never blocks: (0, nil) means nothing yet,
// io.EOF means closed by the peer. Pending reports data waiting to be read,
// which wakes a sleeping guest.
type Stream interface {
	Send(p []byte) (int, error)
	Recv(p []byte) (int, error)
	Pending() bool
	Close() error
}
