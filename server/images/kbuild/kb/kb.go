// Package kb is the logic of the kbuild image: a guest that "compiles" the
// tree of pseudo-C files on its disk (layout in package srctree) like a
// kernel build — for each file it reads the source, compresses it with
// compress/flate, hashes the result with SHA-256, writes the object to the
// file's output slot and appends a line such as
//
//	CC      drivers/net/skb_queue.c   12.3 KB -> 4.1 KB  a1b2c3d4
//
// to a scrolling terminal, with a progress line at the bottom. The work is
// budgeted per step (Budget bytes of source), stopping mid-file and resuming
// on the next step, so the machine stays responsive. When it is done it
// shows a summary and sleeps; any key builds again. It is the CPU-heavy,
// screen-light workload.
//
// It talks to the machine only through the Host interface, so it runs and is
// tested natively; package main adapts it to the guest SDK. It must not know
// about the guest SDK, wazero or how the disk was generated.
package kb

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"time"

	"replaydesk/server/images/internal/ui"
	"replaydesk/server/images/kbuild/srctree"
	"replaydesk/shared/abi"
)

// DefaultBudget is the source bytes compiled per step: a few milliseconds of
// work in the guest.
const DefaultBudget = 28 << 10

// ObjMagic starts an output slot's header block: magic, object size (u32),
// source size (u32), SHA-256 of the object (32 bytes); the object follows in
// the slot's next blocks.
const ObjMagic = "KBOBJ1\x00\x00"

// Host is what the build needs from the machine.
type Host interface {
	Now() time.Time
	PollInput(dst []abi.Event) []abi.Event
	DiskInfo() (blocks uint64, mode abi.DiskMode, err error)
	ReadBlock(n uint64, buf []byte) error
	WriteBlock(n uint64, buf []byte) error
	Present(img *image.RGBA, damage []image.Rectangle)
}

type phase int

const (
	phStart phase = iota
	phBuild
	phDone
	phFailed
)

// App is the kbuild guest.
type App struct {
	// Budget is the source bytes compiled per step; set it before the first
	// step (0 means DefaultBudget).
	Budget int

	h      Host
	img    *image.RGBA
	events []abi.Event
	blk    []byte

	phase   phase
	super   srctree.Super
	entries []srctree.Entry
	runs    int
	start   time.Time
	elapsed time.Duration

	// The file being compiled.
	cur  int
	off  uint32 // source bytes read
	obj  bytes.Buffer
	fw   *flate.Writer
	srcB int64 // totals of finished files
	objB int64
	all  int64 // total source bytes
	errs string

	term terminal
}

// New returns the app; it does nothing until its first Step.
func New(h Host) *App {
	a := &App{h: h, img: image.NewRGBA(image.Rect(0, 0, Width, Height)), blk: make([]byte, abi.BlockSize)}
	a.term.init(a.img)
	return a
}

// Image is the frame (for tests).
func (a *App) Image() *image.RGBA { return a.img }

// Done reports whether a build has finished, and how many files it compiled.
func (a *App) Done() (bool, int) { return a.phase == phDone, a.cur }

// Progress reports the source bytes compiled so far (finished files and the
// current one's part) and the tree's total.
func (a *App) Progress() (done, total int64) { return a.srcB + int64(a.off), a.all }

// Failed returns the error that stopped the build, if any.
func (a *App) Failed() string {
	if a.phase == phFailed {
		return a.errs
	}
	return ""
}

// Step runs one tick and returns a sleep value.
func (a *App) Step() int32 {
	if a.phase == phStart {
		a.term.drawChrome()
		a.h.Present(a.img, nil)
		if err := a.load(); err != nil {
			a.fail(err.Error())
		} else {
			a.begin()
		}
	}
	a.events = a.h.PollInput(a.events[:0])
	for _, ev := range a.events {
		if ev.Type == abi.EvKey && ev.Down && !ev.Repeat && (a.phase == phDone || a.phase == phFailed) && a.entries != nil {
			a.begin()
		}
	}
	if a.phase == phBuild {
		a.work()
	}
	a.term.status = a.statusLine()
	if d := a.term.flush(); len(d) > 0 {
		a.h.Present(a.img, d)
	}
	if a.phase == phBuild {
		return abi.SleepNone
	}
	return abi.SleepUntilEvent
}

// load reads the superblock and the file table.
func (a *App) load() error {
	blocks, _, err := a.h.DiskInfo()
	if err != nil {
		return fmt.Errorf("no disk: %v", err)
	}
	if err := a.h.ReadBlock(0, a.blk); err != nil {
		return fmt.Errorf("reading the superblock: %v", err)
	}
	s, err := srctree.DecodeSuper(a.blk)
	if err != nil {
		return err
	}
	if uint64(s.Blocks) > blocks {
		return fmt.Errorf("the tree needs %d blocks; the disk has %d", s.Blocks, blocks)
	}
	a.super = s
	a.entries = make([]srctree.Entry, 0, s.Files)
	for i := range s.Files {
		if i%srctree.EntriesPerBlock == 0 {
			if err := a.h.ReadBlock(uint64(s.TableStart+i/srctree.EntriesPerBlock), a.blk); err != nil {
				return fmt.Errorf("reading the file table: %v", err)
			}
		}
		off := int(i%srctree.EntriesPerBlock) * srctree.EntrySize
		e, err := srctree.DecodeEntry(s, a.blk[off:off+srctree.EntrySize])
		if err != nil {
			return err
		}
		a.entries = append(a.entries, e)
		a.all += int64(e.Size)
	}
	return nil
}

func (a *App) begin() {
	a.runs++
	a.phase, a.cur, a.off, a.srcB, a.objB = phBuild, 0, 0, 0, 0
	a.start, a.elapsed = a.h.Now(), 0
	a.term.add(line{{"make -j1 bzImage", colPrompt}, {fmt.Sprintf("   # build %d, %d files, %s", a.runs, len(a.entries), ui.Size(a.all)), colDim}})
	a.term.add(line{{"  SYNC    ", colVerb}, {"include/config/auto.conf", colText}})
	a.openFile()
}

func (a *App) fail(msg string) {
	a.phase, a.errs = phFailed, msg
	a.term.add(line{{"make: *** ", colErr}, {msg, colErr}})
}

func (a *App) openFile() {
	a.obj.Reset()
	if a.fw == nil {
		a.fw, _ = flate.NewWriter(&a.obj, flate.DefaultCompression)
	} else {
		a.fw.Reset(&a.obj)
	}
	a.off = 0
}

// work compiles up to Budget bytes of source, across file boundaries.
func (a *App) work() {
	budget := a.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	for budget > 0 && a.phase == phBuild {
		e := a.entries[a.cur]
		if a.off < e.Size {
			blk := e.DataBlock + a.off/abi.BlockSize
			if err := a.h.ReadBlock(uint64(blk), a.blk); err != nil {
				a.fail(fmt.Sprintf("%s: read error at block %d: %v", e.Path, blk, err))
				return
			}
			n := min(e.Size-a.off, abi.BlockSize)
			a.fw.Write(a.blk[:n])
			a.off += n
			budget -= abi.BlockSize // a block read is the unit of work
			continue
		}
		if err := a.finishFile(e); err != nil {
			a.fail(err.Error())
			return
		}
		a.cur++
		if a.cur == len(a.entries) {
			a.finishBuild()
			return
		}
		a.openFile()
	}
}

// finishFile writes the object to the file's output slot and logs a line.
func (a *App) finishFile(e srctree.Entry) error {
	a.fw.Close()
	obj := a.obj.Bytes()
	sum := sha256.Sum256(obj)
	if srctree.Blocks(uint32(len(obj)))+1 > e.OutBlocks {
		return fmt.Errorf("%s: object of %d bytes does not fit its slot", e.Path, len(obj))
	}
	clear(a.blk)
	copy(a.blk, ObjMagic)
	binary.LittleEndian.PutUint32(a.blk[8:], uint32(len(obj)))
	binary.LittleEndian.PutUint32(a.blk[12:], e.Size)
	copy(a.blk[16:48], sum[:])
	if err := a.h.WriteBlock(uint64(e.OutBlock), a.blk); err != nil {
		return fmt.Errorf("%s: write error: %v", e.Path, err)
	}
	for i := 0; i < len(obj); i += abi.BlockSize {
		clear(a.blk)
		copy(a.blk, obj[i:])
		if err := a.h.WriteBlock(uint64(e.OutBlock)+1+uint64(i/abi.BlockSize), a.blk); err != nil {
			return fmt.Errorf("%s: write error: %v", e.Path, err)
		}
	}
	a.srcB += int64(e.Size)
	a.objB += int64(len(obj))
	a.off = 0
	a.term.add(line{
		{"  CC      ", colVerb},
		{fmt.Sprintf("%-44s", e.Path), colText},
		{fmt.Sprintf("%8s -> %-8s ", ui.Size(int64(e.Size)), ui.Size(int64(len(obj)))), colDim},
		{hex.EncodeToString(sum[:4]), colHash},
	})
	return nil
}

func (a *App) finishBuild() {
	a.phase = phDone
	a.elapsed = a.h.Now().Sub(a.start)
	a.term.add(line{{"  LD      ", colVerb}, {"vmlinux", colText}})
	a.term.add(line{{"  OBJCOPY ", colVerb}, {"arch/x86/boot/bzImage", colText}})
	a.term.add(line{{"Kernel: arch/x86/boot/bzImage is ready  (#", colOK}, {fmt.Sprint(a.runs), colOK}, {")", colOK}})
	a.term.add(line{{fmt.Sprintf("Built %d files, %s -> %s (%.1f%%) in %.1f s of virtual time. Press any key to rebuild.",
		len(a.entries), ui.Size(a.srcB), ui.Size(a.objB), 100*float64(a.objB)/float64(max(a.srcB, 1)), a.elapsed.Seconds()), colDim}})
}

func (a *App) statusLine() line {
	done, total := a.Progress()
	pct := 0
	if total > 0 {
		pct = int(done * 100 / total)
	}
	el := a.h.Now().Sub(a.start)
	switch a.phase {
	case phDone:
		return line{{fmt.Sprintf(" [100%%] done: %d/%d files  %s -> %s  in %.1f s  -  any key rebuilds", len(a.entries), len(a.entries), ui.Size(a.srcB), ui.Size(a.objB), a.elapsed.Seconds()), colStatus}}
	case phFailed:
		return line{{" build failed: " + a.errs, colStatus}}
	}
	name := ""
	if a.cur < len(a.entries) {
		name = a.entries[a.cur].Path
	}
	return line{{fmt.Sprintf(" [%3d%%] %d/%d files  %s -> %s  %5.1f s  %s", pct, a.cur, len(a.entries), ui.Size(a.srcB), ui.Size(a.objB), el.Seconds(), name), colStatus}}
}
