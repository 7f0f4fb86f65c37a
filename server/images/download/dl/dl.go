// Package dl is the logic of the download image: a guest that fetches a
// 12 MiB file from the host's "files" endpoint, hashes it with SHA-256 as it
// arrives, stores it on the disk, and shows a download dialog with a
// progress bar, byte counts, rate and time left (from virtual time), and at
// the end the digest and whether it matches the one it expects. R starts the
// download again. It is the network-heavy, screen-light workload.
//
// It talks to the machine only through the Host interface, so it runs and is
// tested natively; package main adapts it to the guest SDK. It must not know
// about the guest SDK, wazero or the host's endpoint implementation.
package dl

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"image"
	"io"
	"strconv"
	"strings"
	"time"

	"replaydesk/shared/abi"
	"replaydesk/shared/guest"
)

// The file and where it comes from.
const (
	Endpoint = "files"
	FileName = "big.bin"
	FileSize = 12 << 20
	// ExpectedSHA256 is the digest of the file the host serves: FileSize
	// bytes of ChaCha8 seeded with Seed.
	ExpectedSHA256 = "87672b80a3dcf364b98e3dfd628360a2ca20a9efd3f636b1391d90130bbafa2f"
)

// Seed seeds the ChaCha8 generator whose output is the served file.
var Seed = [32]byte{'r', 'e', 'p', 'l', 'a', 'y', 'd', 'e', 's', 'k', ' ', 'd', 'o', 'w', 'n', 'l', 'o', 'a', 'd', ' ', 'v', '1'}

// Disk layout: block 0 holds a record of the last finished download (see
// Record); the file's bytes go to blocks DataStart.. as they arrive.
const (
	DataStart  = 1
	DiskBlocks = DataStart + (FileSize+abi.BlockSize-1)/abi.BlockSize + 16
)

// Per-step work.
const (
	StepBudget = 256 << 10 // bytes received per step at most (about 15 MiB/s: a LAN)
	recvChunk  = abi.MaxNetChunk
	maxHeader  = 128
)

// Host is what the download needs from the machine.
type Host interface {
	Now() time.Time
	PollInput(dst []abi.Event) []abi.Event
	DiskInfo() (blocks uint64, mode abi.DiskMode, err error)
	WriteBlock(n uint64, buf []byte) error
	Dial(name string) (Conn, error)
	Present(img *image.RGBA, damage []image.Rectangle)
}

// Conn is a non-blocking byte stream (guest.Conn satisfies it): Recv returns
// (0, nil) when nothing has arrived and io.EOF at the end.
type Conn interface {
	Send(b []byte) (int, error)
	Recv(b []byte) (int, error)
	Close() error
}

type state int

const (
	stIdle   state = iota // before the first step
	stHeader              // request sent, reading the SIZE line
	stBody                // receiving the file
	stDone                // finished and verified (or not)
	stFailed              // something went wrong; R retries
)

// App is the download guest.
type App struct {
	h      Host
	img    *image.RGBA
	events []abi.Event
	buf    []byte

	state   state
	conn    Conn
	hdr     []byte
	total   int64
	got     int64
	sha     hash.Hash
	blk     []byte // the block being filled
	blkN    int
	nextBlk uint64
	start   time.Time
	elapsed time.Duration
	sum     string
	ok      bool
	errMsg  string
	runs    int

	diskBlocks uint64
	diskMode   abi.DiskMode
	diskErr    string
	written    int64 // bytes stored on the disk this run

	drawn      bool
	lastShown  int64
	lastState  state
	lastSecond int64
}

// New returns the app; it does nothing until its first Step.
func New(h Host) *App {
	return &App{
		h:   h,
		img: image.NewRGBA(image.Rect(0, 0, Width, Height)),
		buf: make([]byte, recvChunk),
		blk: make([]byte, abi.BlockSize),
		sha: sha256.New(),
	}
}

// Image is the frame (for tests).
func (a *App) Image() *image.RGBA { return a.img }

// Received reports the bytes of the file received so far in this run and
// its size (0 until known).
func (a *App) Received() (got, total int64) { return a.got, a.total }

// Done reports whether the current run has finished, and whether the digest
// matched.
func (a *App) Done() (done, verified bool) { return a.state == stDone, a.ok }

// Sum is the hex SHA-256 of the last finished download.
func (a *App) Sum() string { return a.sum }

// Step runs one tick and returns a sleep value.
func (a *App) Step() int32 {
	if !a.drawn {
		a.drawn = true
		a.probeDisk()
		a.drawAll()
		a.h.Present(a.img, nil)
		a.begin()
	}
	a.events = a.h.PollInput(a.events[:0])
	for _, ev := range a.events {
		if ev.Type == abi.EvKey && ev.Down && ev.Code == abi.CodeKeyR && (a.state == stDone || a.state == stFailed) {
			a.begin()
		}
	}
	received := 0
	if a.state == stHeader || a.state == stBody {
		received = a.pump()
	}
	a.refresh()
	switch {
	case a.state == stHeader || a.state == stBody:
		if received > 0 {
			return abi.SleepNone
		}
		// Stalled: data arriving wakes us; otherwise refresh the rate.
		return guest.SleepFor(500 * time.Millisecond)
	default:
		return abi.SleepUntilEvent
	}
}

func (a *App) probeDisk() {
	blocks, mode, err := a.h.DiskInfo()
	switch {
	case err != nil:
		a.diskErr = "no disk: the file is not stored"
	case blocks < DiskBlocks:
		a.diskErr = fmt.Sprintf("disk too small (%d blocks): the file is not stored", blocks)
	default:
		a.diskBlocks, a.diskMode = blocks, mode
	}
}

// begin starts a run: dial, send the request.
func (a *App) begin() {
	a.runs++
	a.state, a.errMsg, a.sum, a.ok = stHeader, "", "", false
	a.hdr, a.total, a.got, a.written = a.hdr[:0], 0, 0, 0
	a.sha.Reset()
	a.blkN, a.nextBlk = 0, DataStart
	a.start, a.elapsed = a.h.Now(), 0
	c, err := a.h.Dial(Endpoint)
	if err != nil {
		a.fail("cannot connect to " + Endpoint + ": " + err.Error())
		return
	}
	a.conn = c
	req := []byte("GET " + FileName + "\n")
	if n, err := c.Send(req); err != nil || n != len(req) {
		a.fail("cannot send the request")
	}
}

func (a *App) fail(msg string) {
	a.state, a.errMsg = stFailed, msg
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// pump reads what is available, up to StepBudget bytes, and returns how many
// bytes it received.
func (a *App) pump() int {
	total := 0
	for total < StepBudget && (a.state == stHeader || a.state == stBody) {
		n, err := a.conn.Recv(a.buf[:min(len(a.buf), StepBudget-total)])
		if n > 0 {
			total += n
			a.consume(a.buf[:n])
		}
		if errors.Is(err, io.EOF) {
			a.finish()
			break
		}
		if err != nil {
			a.fail("receive: " + err.Error())
			break
		}
		if n == 0 {
			break
		}
	}
	return total
}

func (a *App) consume(p []byte) {
	for len(p) > 0 && a.state == stHeader {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			a.hdr = append(a.hdr, p...)
			if len(a.hdr) > maxHeader {
				a.fail("bad answer from the server")
			}
			return
		}
		a.hdr = append(a.hdr, p[:i]...)
		p = p[i+1:]
		line := string(a.hdr)
		if msg, ok := strings.CutPrefix(line, "ERR "); ok {
			a.fail("server: " + msg)
			return
		}
		size, ok := strings.CutPrefix(line, "SIZE ")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok || err != nil || n < 0 {
			a.fail("bad answer from the server: " + line)
			return
		}
		a.total, a.state = n, stBody
	}
	if a.state != stBody || len(p) == 0 {
		return
	}
	if a.got+int64(len(p)) > a.total {
		a.fail("the server sent more than it announced")
		return
	}
	a.got += int64(len(p))
	a.sha.Write(p)
	for len(p) > 0 {
		c := copy(a.blk[a.blkN:], p)
		a.blkN += c
		p = p[c:]
		if a.blkN == len(a.blk) {
			a.flushBlock()
		}
	}
}

// flushBlock writes the filled part of the current block (zero-padded).
func (a *App) flushBlock() {
	if a.blkN == 0 {
		return
	}
	clear(a.blk[a.blkN:])
	if a.diskErr == "" {
		if err := a.h.WriteBlock(a.nextBlk, a.blk); err != nil {
			a.diskErr = fmt.Sprintf("disk write failed at block %d: %v", a.nextBlk, err)
		} else {
			a.written += int64(a.blkN)
		}
	}
	a.nextBlk++
	a.blkN = 0
}

func (a *App) finish() {
	if a.state != stBody || a.got != a.total {
		a.fail(fmt.Sprintf("connection closed after %d of %d bytes", a.got, a.total))
		return
	}
	a.flushBlock()
	a.conn.Close()
	a.conn = nil
	a.elapsed = a.h.Now().Sub(a.start)
	a.sum = hex.EncodeToString(a.sha.Sum(nil))
	a.ok = a.sum == ExpectedSHA256
	a.state = stDone
	if a.diskErr == "" {
		a.h.WriteBlock(0, EncodeRecord(Record{Size: a.total, SHA256: a.sha.Sum(nil), Runs: uint32(a.runs)}))
	}
}

// Record is what block 0 holds after a finished download.
type Record struct {
	Size   int64
	SHA256 []byte
	Runs   uint32
}

const recordMagic = "DLREC1\x00\x00"

// EncodeRecord lays r out in one block: magic, size (u64), runs (u32), the
// digest (32 bytes).
func EncodeRecord(r Record) []byte {
	b := make([]byte, abi.BlockSize)
	copy(b, recordMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(r.Size))
	binary.LittleEndian.PutUint32(b[16:], r.Runs)
	copy(b[20:52], r.SHA256)
	return b
}

// DecodeRecord reads a block written by EncodeRecord.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) < 52 || string(b[:8]) != recordMagic {
		return Record{}, errors.New("dl: no download record")
	}
	return Record{
		Size:   int64(binary.LittleEndian.Uint64(b[8:])),
		Runs:   binary.LittleEndian.Uint32(b[16:]),
		SHA256: bytes.Clone(b[20:52]),
	}, nil
}
