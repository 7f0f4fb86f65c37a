// Package sessiondir is the on-disk layout of one recorded session
// (DESIGN.md section 9): the guest module, the base disk image, the record
// log's segments and the snapshots, with a small JSON index. A session
// directory is self-contained: copy it anywhere and replay it.
//
//	DIR/session.json      what the session is; the snapshot index
//	DIR/module.wasm       the guest module the log is bound to (by SHA-256)
//	DIR/disk.img          the base disk image (snapshotted and replayed modes)
//	DIR/log/NNNNNNNN.seg  the record log (docs/log-format.md)
//	DIR/snapshots/NNNNNN.snap
//
// A live session keeps a bounded set of snapshots (Retention, Prune): the
// rest are deleted, so numbers in the index may have gaps. Numbers are never
// reused.
//
// It must not know how a machine runs: it stores and verifies bytes.
package sessiondir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// FormatVersion is the version of this layout.
const FormatVersion = 1

// Meta is session.json.
type Meta struct {
	Format       int            `json:"format"`
	Image        string         `json:"image"`
	ModuleSHA256 string         `json:"module_sha256"`
	DiskSHA256   string         `json:"disk_sha256,omitempty"`
	DiskMode     string         `json:"disk_mode"`
	Created      time.Time      `json:"created"`
	Snapshots    []SnapshotInfo `json:"snapshots"`
}

// Kinds of snapshot: what a retention policy keeps differs (Retention).
const (
	KindPeriodic = "periodic" // taken on a schedule (also the default of an entry without a kind)
	KindDemand   = "demand"   // asked for: a viewer going to dual mode, a long backlog
)

// SnapshotInfo indexes one snapshot.
type SnapshotInfo struct {
	N      int           `json:"n"` // 1, 2, ... in order of capture, never reused
	File   string        `json:"file"`
	Kind   string        `json:"kind,omitempty"` // KindPeriodic (empty) or KindDemand
	Tick   uint64        `json:"tick"`
	Step   uint64        `json:"step"`
	LogPos recordlog.Pos `json:"log_pos"`
	// WorkingSet lists the pages the guest wrote soon after the snapshot,
	// in order of page number: what a lazy restore prefetches.
	WorkingSet []uint32 `json:"working_set,omitempty"`
}

// Dir is an open session directory.
type Dir struct {
	Path   string
	Meta   Meta
	Module []byte
	Disk   []byte // nil without a disk
}

// ModuleHash is the SHA-256 the log and snapshots are bound to.
func (d *Dir) ModuleHash() recordlog.ModuleHash { return sha256.Sum256(d.Module) }

// LogDir is where the record log's segments live.
func (d *Dir) LogDir() string { return filepath.Join(d.Path, "log") }

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Create makes a new session directory. It refuses a directory that already
// holds a session, so a recording never overwrites another.
func Create(path, image string, module, disk []byte, diskMode string) (*Dir, error) {
	if _, err := os.Stat(filepath.Join(path, "session.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a session; choose another --out", path)
	}
	if err := os.MkdirAll(filepath.Join(path, "snapshots"), 0o755); err != nil {
		return nil, err
	}
	d := &Dir{Path: path, Module: module, Disk: disk, Meta: Meta{
		Format: FormatVersion, Image: image, ModuleSHA256: hexSum(module), DiskMode: diskMode,
		Created: time.Now().UTC(), Snapshots: []SnapshotInfo{},
	}}
	if err := os.WriteFile(filepath.Join(path, "module.wasm"), module, 0o644); err != nil {
		return nil, err
	}
	if disk != nil {
		d.Meta.DiskSHA256 = hexSum(disk)
		if err := os.WriteFile(filepath.Join(path, "disk.img"), disk, 0o644); err != nil {
			return nil, err
		}
	}
	return d, d.SaveMeta()
}

// SaveMeta rewrites session.json atomically.
func (d *Dir) SaveMeta() error {
	b, err := json.MarshalIndent(d.Meta, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(d.Path, "session.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(d.Path, "session.json"))
}

// ReadMeta reads only session.json: what a server that publishes a live
// session's snapshots checks against the recorder's index, without
// reading and hashing the module and disk again.
func ReadMeta(path string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(path, "session.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s/session.json: %w", path, err)
	}
	return m, nil
}

// Open reads and verifies a session directory: the module and the disk
// must match the hashes session.json names.
func Open(path string) (*Dir, error) { return open(path, true) }

// OpenWithoutDisk is Open for a replayer that gets the disk's blocks
// elsewhere (on demand from a page service): disk.img need not be there.
func OpenWithoutDisk(path string) (*Dir, error) { return open(path, false) }

func open(path string, withDisk bool) (*Dir, error) {
	b, err := os.ReadFile(filepath.Join(path, "session.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a session directory (no session.json)", path)
	}
	if err != nil {
		return nil, err
	}
	d := &Dir{Path: path}
	if err := json.Unmarshal(b, &d.Meta); err != nil {
		return nil, corrupt(err, "%s/session.json: %v", path, err)
	}
	if d.Meta.Format != FormatVersion {
		return nil, corrupt(nil, "%s: session format %d, this build reads %d", path, d.Meta.Format, FormatVersion)
	}
	if d.Module, err = readPart(filepath.Join(path, "module.wasm")); err != nil {
		return nil, err
	}
	if got := hexSum(d.Module); got != d.Meta.ModuleSHA256 {
		return nil, corrupt(nil, "%s/module.wasm has SHA-256 %s, session.json says %s", path, got, d.Meta.ModuleSHA256)
	}
	if d.Meta.DiskSHA256 != "" && withDisk {
		if d.Disk, err = readPart(filepath.Join(path, "disk.img")); err != nil {
			return nil, err
		}
		if got := hexSum(d.Disk); got != d.Meta.DiskSHA256 {
			return nil, corrupt(nil, "%s/disk.img has SHA-256 %s, session.json says %s", path, got, d.Meta.DiskSHA256)
		}
	}
	return d, nil
}

// AddSnapshot stores a periodic snapshot and indexes it; it returns its
// number.
func (d *Dir) AddSnapshot(s *snapshot.Snapshot) (SnapshotInfo, error) {
	return d.AddSnapshotKind(s, KindPeriodic)
}

// AddSnapshotKind stores a snapshot of the given kind and indexes it; it
// returns its number, one more than the newest (deleted numbers are not
// reused: a client or a cache may still name them).
func (d *Dir) AddSnapshotKind(s *snapshot.Snapshot, kind string) (SnapshotInfo, error) {
	n := 1
	if l := len(d.Meta.Snapshots); l > 0 {
		n = d.Meta.Snapshots[l-1].N + 1
	}
	if kind == KindPeriodic {
		kind = "" // the default: session.json stays as it was for recordings
	}
	info := SnapshotInfo{N: n, File: fmt.Sprintf("snapshots/%06d.snap", n), Kind: kind, Tick: s.Tick, Step: s.Step, LogPos: s.LogPos}
	if err := snapshot.WriteFile(filepath.Join(d.Path, info.File), s); err != nil {
		return info, err
	}
	d.Meta.Snapshots = append(d.Meta.Snapshots, info)
	return info, d.SaveMeta()
}

// Newest is the newest snapshot's number (0: none).
func (d *Dir) Newest() int {
	if l := len(d.Meta.Snapshots); l > 0 {
		return d.Meta.Snapshots[l-1].N
	}
	return 0
}

// find returns the index entry of snapshot n, or a clear error: no such
// number, or one the retention policy deleted.
func (d *Dir) find(n int) (int, error) {
	for i, s := range d.Meta.Snapshots {
		if s.N == n {
			return i, nil
		}
	}
	if n >= 1 && n < d.Newest() {
		return -1, fmt.Errorf("%s: snapshot %d was deleted (a live session keeps a bounded set, docs/snapshots.md); it keeps %s", d.Path, n, d.numbers())
	}
	return -1, fmt.Errorf("%s has %d snapshots (%s); there is no snapshot %d", d.Path, len(d.Meta.Snapshots), d.numbers(), n)
}

func (d *Dir) numbers() string {
	if len(d.Meta.Snapshots) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, s := range d.Meta.Snapshots {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(s.N))
	}
	return b.String()
}

// SetWorkingSet records snapshot n's working set.
func (d *Dir) SetWorkingSet(n int, pages []uint32) error {
	i, err := d.find(n)
	if err != nil {
		return err
	}
	d.Meta.Snapshots[i].WorkingSet = pages
	return d.SaveMeta()
}

// Snapshot reads snapshot n (as numbered in the index) and checks it
// belongs to the module.
func (d *Dir) Snapshot(n int) (*snapshot.Snapshot, SnapshotInfo, error) {
	i, err := d.find(n)
	if err != nil {
		return nil, SnapshotInfo{}, err
	}
	info := d.Meta.Snapshots[i]
	path := filepath.Join(d.Path, info.File)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, info, corrupt(err, "%s: snapshot %d (%s) is indexed in session.json but missing", d.Path, n, info.File)
	}
	s, err := snapshot.ReadFile(path, d.ModuleHash())
	if err != nil {
		return nil, info, err
	}
	for _, p := range info.WorkingSet {
		if uint64(p) >= uint64(len(s.Memory)/snapshot.PageSize) {
			return nil, info, corrupt(nil, "%s: snapshot %d's working set names page %d, beyond its memory", d.Path, n, p)
		}
	}
	if s.Tick != info.Tick || s.Step != info.Step || s.LogPos != info.LogPos {
		return nil, info, corrupt(nil, "%s: snapshot %d does not match its index entry", d.Path, n)
	}
	return s, info, nil
}

// CorruptError is a session directory whose files disagree with its index
// (session.json) or are missing from it: the log or snapshots it holds
// cannot be trusted. Its Corrupt method makes commands exit with
// shared/cli's ExitCorrupt.
type CorruptError struct {
	Msg string
	Err error // the underlying error, if any
}

func (e *CorruptError) Error() string { return e.Msg }
func (e *CorruptError) Unwrap() error { return e.Err }

// Corrupt reports true (shared/cli's exit codes).
func (e *CorruptError) Corrupt() bool { return true }

func corrupt(err error, format string, a ...any) error {
	return &CorruptError{Msg: fmt.Sprintf(format, a...), Err: err}
}

// readPart reads one of the directory's own files: a missing one means an
// incomplete (corrupt) session directory, not a bad argument.
func readPart(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, corrupt(err, "%s is missing from its session directory", path)
	}
	return b, err
}

// Verify checks everything the directory holds before a command changes it
// for good (server end seals it) or publishes it (server serve): every
// snapshot is read and checked against its index, its log position must be
// a block boundary of the log, and the whole log is read. sealed tells
// whether the log has its SEAL block; an unsealed log (a stopped live
// session, even with a torn tail a crash left) is not an error here. The
// first problem is returned, as the package's, recordlog's or snapshot's
// error, all of them Corrupters for shared/cli.
func (d *Dir) Verify() (sealed bool, err error) {
	for _, si := range d.Meta.Snapshots {
		n := si.N
		_, info, err := d.Snapshot(n)
		if err != nil {
			return false, err
		}
		if err := d.checkLogPos(n, info.LogPos); err != nil {
			return false, err
		}
	}
	return d.VerifyLog()
}

// VerifyLog reads the whole log (every block's checksum and records): it is
// cheap next to the snapshots, and a restart checks it so that damage before
// the newest snapshot, which the restart does not replay, is found too.
func (d *Dir) VerifyLog() (sealed bool, err error) {
	r, err := recordlog.Open(d.LogDir(), d.ModuleHash(), recordlog.ReaderOptions{})
	if err != nil {
		return false, d.logErr(err)
	}
	defer r.Close()
	for {
		_, err := r.Next(context.Background())
		switch {
		case err == nil:
		case err == io.EOF:
			return true, nil
		case errors.Is(err, recordlog.ErrUnsealed):
			return false, nil
		default:
			return false, d.logErr(err)
		}
	}
}

// logErr names the directory in a log error, and makes a log with no
// segment at all a corrupt session directory.
func (d *Dir) logErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return corrupt(err, "%s: the record log is missing (%v)", d.Path, err)
	}
	return fmt.Errorf("%s: %w", d.Path, err)
}

// checkLogPos checks that snapshot n's log position starts a block.
func (d *Dir) checkLogPos(n int, p recordlog.Pos) error {
	r, err := recordlog.Open(d.LogDir(), d.ModuleHash(), recordlog.ReaderOptions{})
	if err != nil {
		return d.logErr(err)
	}
	defer r.Close()
	if err := r.Seek(p); err != nil {
		return corrupt(err, "%s: snapshot %d's log position is not in the log: %v", d.Path, n, err)
	}
	_, err = r.Next(context.Background())
	if err != nil && err != io.EOF && !errors.Is(err, recordlog.ErrUnsealed) {
		return fmt.Errorf("%s: snapshot %d's log position: %w", d.Path, n, err)
	}
	return nil
}
