// Package deskfs is the desk's file system: a small, simple format on a
// device of 4 KiB blocks (the VM's disk), with a superblock, a block bitmap,
// an inode table, files of direct and one indirect block, and directories
// that are files of fixed-size entries.
//
// Layout (block numbers):
//
//	0            superblock
//	1            block bitmap (one bit per block; at most 32768 blocks)
//	2 .. 2+I-1   inode table, 32 inodes of 128 bytes per block
//	2+I ..       data blocks
//
// Robustness comes from simplicity: whole-file writes put data blocks down
// before the inode that points at them, and Mount rebuilds the bitmap from
// the inodes, so a torn write leaks nothing and a stale bitmap is repaired.
//
// It knows nothing about the guest ABI, the host or the desk's programs: it
// sees only a BlockDevice, so it runs natively in tests and on the host (to
// build the initial disk) exactly as in the guest.
package deskfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// BlockSize is the size of a block in bytes (ABI v1's disk block).
const BlockSize = 4096

// BlockDevice is what the file system is stored on.
type BlockDevice interface {
	ReadBlock(n uint64, buf []byte) error
	WriteBlock(n uint64, buf []byte) error
	Blocks() uint64
}

const (
	magic       = "DESKFS01"
	inodeSize   = 128
	inodesPerBl = BlockSize / inodeSize
	inodeBlocks = 8 // 256 inodes
	maxInodes   = inodeBlocks * inodesPerBl
	nDirect     = 26
	ptrsPerBl   = BlockSize / 4
	rootIno     = 1
	direntSize  = 64
	// MaxName is the longest file name, in bytes.
	MaxName = direntSize - 5
	// MaxFileSize is the largest file, in bytes.
	MaxFileSize = (nDirect + ptrsPerBl) * BlockSize
	bitmapBlock = 1
	inodeStart  = 2
	dataStart   = inodeStart + inodeBlocks
	maxBlocks   = BlockSize * 8
)

// Inode types.
const (
	typeFree = 0
	typeFile = 1
	typeDir  = 2
)

// Errors.
var (
	ErrNotExist = errors.New("no such file or directory")
	ErrExist    = errors.New("file exists")
	ErrNotDir   = errors.New("not a directory")
	ErrIsDir    = errors.New("is a directory")
	ErrNotEmpty = errors.New("directory not empty")
	ErrNoSpace  = errors.New("no space left on device")
	ErrTooBig   = errors.New("file too large")
	ErrName     = errors.New("invalid file name")
	ErrCorrupt  = errors.New("file system is corrupt")
	ErrBusy     = errors.New("cannot move a directory into itself")
)

// inode is the in-memory form of a 128-byte inode:
//
//	0  type u8, 1..3 zero
//	4  size u32 (bytes)
//	8  mtime i64 (Unix seconds)
//	16 direct [26]u32
//	120 indirect u32
//	124 zero
type inode struct {
	typ      uint8
	size     uint32
	mtime    int64
	direct   [nDirect]uint32
	indirect uint32
}

// FS is a mounted file system. It caches every block it reads or writes
// (write-through): the disk is small, and in replayed disk mode every read
// goes into the record log, so each block is read at most once.
type FS struct {
	dev    BlockDevice
	blocks uint32
	cache  map[uint32][]byte
	inodes [maxInodes]inode
	used   []bool // block bitmap, rebuilt at mount
	// Now gives file modification times; nil leaves them zero.
	Now func() int64
}

// Format writes an empty file system (just the root directory) to dev.
func Format(dev BlockDevice) error {
	n := dev.Blocks()
	if n < dataStart+8 {
		return fmt.Errorf("deskfs: device of %d blocks is too small", n)
	}
	if n > maxBlocks {
		n = maxBlocks // the rest of a larger device stays unused
	}
	zero := make([]byte, BlockSize)
	for b := uint64(1); b < dataStart; b++ {
		if err := dev.WriteBlock(b, zero); err != nil {
			return err
		}
	}
	sb := make([]byte, BlockSize)
	copy(sb, magic)
	binary.LittleEndian.PutUint32(sb[8:], uint32(n))
	binary.LittleEndian.PutUint32(sb[12:], inodeBlocks)
	if err := dev.WriteBlock(0, sb); err != nil {
		return err
	}
	fs, err := Mount(dev)
	if err != nil {
		return err
	}
	fs.inodes[rootIno] = inode{typ: typeDir}
	return fs.writeInode(rootIno)
}

// Mount reads the file system on dev, checks it and rebuilds the bitmap.
func Mount(dev BlockDevice) (*FS, error) {
	fs := &FS{dev: dev, cache: map[uint32][]byte{}}
	sb, err := fs.block(0)
	if err != nil {
		return nil, err
	}
	if string(sb[:8]) != magic || binary.LittleEndian.Uint32(sb[12:]) != inodeBlocks {
		return nil, fmt.Errorf("deskfs: no file system on this disk: %w", ErrCorrupt)
	}
	fs.blocks = binary.LittleEndian.Uint32(sb[8:])
	if uint64(fs.blocks) > dev.Blocks() || fs.blocks < dataStart || fs.blocks > maxBlocks {
		return nil, fmt.Errorf("deskfs: superblock says %d blocks: %w", fs.blocks, ErrCorrupt)
	}
	fs.used = make([]bool, fs.blocks)
	for b := range uint32(dataStart) {
		fs.used[b] = true
	}
	for i := range uint32(maxInodes) {
		b, err := fs.block(inodeStart + i/inodesPerBl)
		if err != nil {
			return nil, err
		}
		fs.inodes[i] = decodeInode(b[(i%inodesPerBl)*inodeSize:])
	}
	// Rebuild the bitmap from the inodes; a block claimed twice or out of
	// range means corruption we do not try to guess our way out of.
	for i := range fs.inodes {
		in := &fs.inodes[i]
		if in.typ == typeFree {
			continue
		}
		if in.typ != typeFile && in.typ != typeDir || in.size > MaxFileSize {
			return nil, fmt.Errorf("deskfs: inode %d: %w", i, ErrCorrupt)
		}
		blocks, err := fs.fileBlocks(in)
		if err != nil {
			return nil, err
		}
		if in.indirect != 0 {
			blocks = append(blocks, in.indirect)
		}
		for _, b := range blocks {
			if b < dataStart || b >= fs.blocks || fs.used[b] {
				return nil, fmt.Errorf("deskfs: inode %d block %d: %w", i, b, ErrCorrupt)
			}
			fs.used[b] = true
		}
	}
	if fs.inodes[rootIno].typ != typeDir && !isZeroInode(fs.inodes[rootIno]) {
		return nil, fmt.Errorf("deskfs: root is not a directory: %w", ErrCorrupt)
	}
	return fs, nil
}

func isZeroInode(in inode) bool { return in == inode{} }

func decodeInode(b []byte) inode {
	var in inode
	in.typ = b[0]
	in.size = binary.LittleEndian.Uint32(b[4:])
	in.mtime = int64(binary.LittleEndian.Uint64(b[8:]))
	for i := range in.direct {
		in.direct[i] = binary.LittleEndian.Uint32(b[16+4*i:])
	}
	in.indirect = binary.LittleEndian.Uint32(b[16+4*nDirect:])
	return in
}

func encodeInode(in *inode, b []byte) {
	clear(b[:inodeSize])
	b[0] = in.typ
	binary.LittleEndian.PutUint32(b[4:], in.size)
	binary.LittleEndian.PutUint64(b[8:], uint64(in.mtime))
	for i, p := range in.direct {
		binary.LittleEndian.PutUint32(b[16+4*i:], p)
	}
	binary.LittleEndian.PutUint32(b[16+4*nDirect:], in.indirect)
}

// block returns the cached contents of block n, reading it once.
func (fs *FS) block(n uint32) ([]byte, error) {
	if b, ok := fs.cache[n]; ok {
		return b, nil
	}
	b := make([]byte, BlockSize)
	if err := fs.dev.ReadBlock(uint64(n), b); err != nil {
		return nil, fmt.Errorf("deskfs: read block %d: %w", n, err)
	}
	fs.cache[n] = b
	return b, nil
}

func (fs *FS) writeBlock(n uint32, data []byte) error {
	b := fs.cache[n]
	if b == nil {
		b = make([]byte, BlockSize)
		fs.cache[n] = b
	}
	copy(b, data)
	clear(b[len(data):])
	if err := fs.dev.WriteBlock(uint64(n), b); err != nil {
		delete(fs.cache, n) // the disk's content is unknown now
		return fmt.Errorf("deskfs: write block %d: %w", n, err)
	}
	return nil
}

func (fs *FS) writeInode(i uint32) error {
	bn := inodeStart + i/inodesPerBl
	b, err := fs.block(bn)
	if err != nil {
		return err
	}
	nb := append([]byte(nil), b...)
	encodeInode(&fs.inodes[i], nb[(i%inodesPerBl)*inodeSize:])
	return fs.writeBlock(bn, nb)
}

func (fs *FS) writeBitmap() error {
	b := make([]byte, BlockSize)
	for i, u := range fs.used {
		if u {
			b[i/8] |= 1 << (i % 8)
		}
	}
	return fs.writeBlock(bitmapBlock, b)
}

// fileBlocks lists the data blocks of in, in order.
func (fs *FS) fileBlocks(in *inode) ([]uint32, error) {
	n := int((in.size + BlockSize - 1) / BlockSize)
	out := make([]uint32, 0, n)
	for i := 0; i < n && i < nDirect; i++ {
		out = append(out, in.direct[i])
	}
	if n > nDirect {
		if in.indirect == 0 || in.indirect >= fs.blocks {
			return nil, ErrCorrupt
		}
		ib, err := fs.block(in.indirect)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n-nDirect; i++ {
			out = append(out, binary.LittleEndian.Uint32(ib[4*i:]))
		}
	}
	return out, nil
}

func (fs *FS) readInode(in *inode) ([]byte, error) {
	blocks, err := fs.fileBlocks(in)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, in.size)
	for _, bn := range blocks {
		if bn < dataStart || bn >= fs.blocks {
			return nil, ErrCorrupt
		}
		b, err := fs.block(bn)
		if err != nil {
			return nil, err
		}
		out = append(out, b[:min(BlockSize, int(in.size)-len(out))]...)
	}
	return out, nil
}

func (fs *FS) allocBlocks(n int) ([]uint32, error) {
	var out []uint32
	for b := uint32(dataStart); b < fs.blocks && len(out) < n; b++ {
		if !fs.used[b] {
			out = append(out, b)
		}
	}
	if len(out) < n {
		return nil, ErrNoSpace
	}
	return out, nil
}

// writeInodeData replaces the content of inode i with data: new blocks are
// written first, then the inode, then the old blocks are freed, so the file
// is always either all old or all new on disk.
func (fs *FS) writeInodeData(i uint32, data []byte) error {
	if len(data) > MaxFileSize {
		return ErrTooBig
	}
	in := fs.inodes[i]
	old, err := fs.fileBlocks(&in)
	if err != nil {
		return err
	}
	if in.indirect != 0 {
		old = append(old, in.indirect)
	}
	n := (len(data) + BlockSize - 1) / BlockSize
	need := n
	if n > nDirect {
		need++
	}
	nb, err := fs.allocBlocks(need)
	if err != nil {
		return err
	}
	for k := 0; k < n; k++ {
		end := min(len(data), (k+1)*BlockSize)
		if err := fs.writeBlock(nb[k], data[k*BlockSize:end]); err != nil {
			return err
		}
	}
	in.size = uint32(len(data))
	in.direct = [nDirect]uint32{}
	in.indirect = 0
	for k := 0; k < n && k < nDirect; k++ {
		in.direct[k] = nb[k]
	}
	if n > nDirect {
		ib := make([]byte, BlockSize)
		for k := nDirect; k < n; k++ {
			binary.LittleEndian.PutUint32(ib[4*(k-nDirect):], nb[k])
		}
		in.indirect = nb[n]
		if err := fs.writeBlock(in.indirect, ib); err != nil {
			return err
		}
	}
	if fs.Now != nil {
		in.mtime = fs.Now()
	}
	fs.inodes[i] = in
	if err := fs.writeInode(i); err != nil {
		return err
	}
	for _, b := range old {
		fs.used[b] = false
	}
	for _, b := range nb {
		fs.used[b] = true
	}
	return fs.writeBitmap()
}

// dirent is one directory entry: inode u32, name length u8, name.
type dirent struct {
	ino  uint32
	name string
}

func (fs *FS) readDir(i uint32) ([]dirent, error) {
	data, err := fs.readInode(&fs.inodes[i])
	if err != nil {
		return nil, err
	}
	var out []dirent
	for off := 0; off+direntSize <= len(data); off += direntSize {
		e := data[off:]
		ino := binary.LittleEndian.Uint32(e)
		l := int(e[4])
		if ino == 0 || ino >= maxInodes || l == 0 || l > MaxName {
			continue
		}
		out = append(out, dirent{ino, string(e[5 : 5+l])})
	}
	return out, nil
}

func (fs *FS) writeDir(i uint32, ents []dirent) error {
	sort.Slice(ents, func(a, b int) bool { return ents[a].name < ents[b].name })
	data := make([]byte, len(ents)*direntSize)
	for k, e := range ents {
		d := data[k*direntSize:]
		binary.LittleEndian.PutUint32(d, e.ino)
		d[4] = byte(len(e.name))
		copy(d[5:], e.name)
	}
	return fs.writeInodeData(i, data)
}

// split cleans p (relative paths are taken from the root) into its parts.
func split(p string) []string {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

func (fs *FS) lookup(p string) (uint32, error) {
	ino := uint32(rootIno)
	for _, part := range split(p) {
		if fs.inodes[ino].typ != typeDir {
			return 0, ErrNotDir
		}
		ents, err := fs.readDir(ino)
		if err != nil {
			return 0, err
		}
		found := false
		for _, e := range ents {
			if e.name == part {
				ino, found = e.ino, true
				break
			}
		}
		if !found {
			return 0, ErrNotExist
		}
	}
	return ino, nil
}

// parent resolves the directory that holds p and p's last name.
func (fs *FS) parent(p string) (uint32, string, error) {
	parts := split(p)
	if len(parts) == 0 {
		return 0, "", ErrExist // the root has no parent
	}
	name := parts[len(parts)-1]
	if len(name) > MaxName {
		return 0, "", ErrName
	}
	dir, err := fs.lookup(strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return 0, "", err
	}
	if fs.inodes[dir].typ != typeDir {
		return 0, "", ErrNotDir
	}
	return dir, name, nil
}

func (fs *FS) allocInode() (uint32, error) {
	for i := uint32(rootIno + 1); i < maxInodes; i++ {
		if fs.inodes[i].typ == typeFree {
			return i, nil
		}
	}
	return 0, ErrNoSpace
}

func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &PathError{Op: op, Path: p, Err: err}
}

// PathError records a failed operation on a path.
type PathError struct {
	Op, Path string
	Err      error
}

func (e *PathError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// Info describes a file or directory.
type Info struct {
	Name  string
	Dir   bool
	Size  int
	MTime int64
}

// Stat describes the file or directory at p.
func (fs *FS) Stat(p string) (Info, error) {
	ino, err := fs.lookup(p)
	if err != nil {
		return Info{}, wrap("stat", p, err)
	}
	in := fs.inodes[ino]
	return Info{Name: path.Base(path.Clean("/" + p)), Dir: in.typ == typeDir, Size: int(in.size), MTime: in.mtime}, nil
}

// ReadDir lists the directory at p, sorted by name.
func (fs *FS) ReadDir(p string) ([]Info, error) {
	ino, err := fs.lookup(p)
	if err != nil {
		return nil, wrap("readdir", p, err)
	}
	if fs.inodes[ino].typ != typeDir {
		return nil, wrap("readdir", p, ErrNotDir)
	}
	ents, err := fs.readDir(ino)
	if err != nil {
		return nil, wrap("readdir", p, err)
	}
	out := make([]Info, len(ents))
	for k, e := range ents {
		in := fs.inodes[e.ino]
		out[k] = Info{Name: e.name, Dir: in.typ == typeDir, Size: int(in.size), MTime: in.mtime}
	}
	return out, nil
}

// ReadFile returns the content of the file at p.
func (fs *FS) ReadFile(p string) ([]byte, error) {
	ino, err := fs.lookup(p)
	if err != nil {
		return nil, wrap("open", p, err)
	}
	if fs.inodes[ino].typ != typeFile {
		return nil, wrap("open", p, ErrIsDir)
	}
	b, err := fs.readInode(&fs.inodes[ino])
	return b, wrap("read", p, err)
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= MaxName && !strings.ContainsAny(name, "/\x00")
}

// create makes a new entry name in dir with a fresh inode of type typ.
func (fs *FS) create(dir uint32, name string, typ uint8) (uint32, error) {
	if !validName(name) {
		return 0, ErrName
	}
	ents, err := fs.readDir(dir)
	if err != nil {
		return 0, err
	}
	ino, err := fs.allocInode()
	if err != nil {
		return 0, err
	}
	fs.inodes[ino] = inode{typ: typ}
	if fs.Now != nil {
		fs.inodes[ino].mtime = fs.Now()
	}
	if err := fs.writeInode(ino); err != nil {
		return 0, err
	}
	if err := fs.writeDir(dir, append(ents, dirent{ino, name})); err != nil {
		fs.inodes[ino] = inode{}
		fs.writeInode(ino)
		return 0, err
	}
	return ino, nil
}

// WriteFile creates or replaces the file at p with data.
func (fs *FS) WriteFile(p string, data []byte) error {
	ino, err := fs.lookup(p)
	if errors.Is(err, ErrNotExist) {
		dir, name, perr := fs.parent(p)
		if perr != nil {
			return wrap("write", p, perr)
		}
		ino, err = fs.create(dir, name, typeFile)
	}
	if err != nil {
		return wrap("write", p, err)
	}
	if fs.inodes[ino].typ != typeFile {
		return wrap("write", p, ErrIsDir)
	}
	return wrap("write", p, fs.writeInodeData(ino, data))
}

// Mkdir makes the directory p; its parent must exist.
func (fs *FS) Mkdir(p string) error {
	if _, err := fs.lookup(p); err == nil {
		return wrap("mkdir", p, ErrExist)
	}
	dir, name, err := fs.parent(p)
	if err != nil {
		return wrap("mkdir", p, err)
	}
	_, err = fs.create(dir, name, typeDir)
	return wrap("mkdir", p, err)
}

// MkdirAll makes p and any missing parents.
func (fs *FS) MkdirAll(p string) error {
	cur := ""
	for _, part := range split(p) {
		cur += "/" + part
		st, err := fs.Stat(cur)
		if err == nil {
			if !st.Dir {
				return wrap("mkdir", cur, ErrNotDir)
			}
			continue
		}
		if err := fs.Mkdir(cur); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the file or empty directory p.
func (fs *FS) Remove(p string) error {
	dir, name, err := fs.parent(p)
	if err != nil {
		return wrap("remove", p, err)
	}
	ents, err := fs.readDir(dir)
	if err != nil {
		return wrap("remove", p, err)
	}
	idx := -1
	for k, e := range ents {
		if e.name == name {
			idx = k
		}
	}
	if idx < 0 {
		return wrap("remove", p, ErrNotExist)
	}
	ino := ents[idx].ino
	if fs.inodes[ino].typ == typeDir && fs.inodes[ino].size > 0 {
		if sub, _ := fs.readDir(ino); len(sub) > 0 {
			return wrap("remove", p, ErrNotEmpty)
		}
	}
	// Unlink first: a crash after this leaks an inode, never a dangling entry.
	if err := fs.writeDir(dir, append(ents[:idx:idx], ents[idx+1:]...)); err != nil {
		return wrap("remove", p, err)
	}
	in := fs.inodes[ino]
	blocks, _ := fs.fileBlocks(&in)
	if in.indirect != 0 {
		blocks = append(blocks, in.indirect)
	}
	fs.inodes[ino] = inode{}
	if err := fs.writeInode(ino); err != nil {
		return wrap("remove", p, err)
	}
	for _, b := range blocks {
		fs.used[b] = false
	}
	return wrap("remove", p, fs.writeBitmap())
}

// Rename moves old to new; new must not exist.
func (fs *FS) Rename(oldp, newp string) error {
	ino, err := fs.lookup(oldp)
	if err != nil {
		return wrap("rename", oldp, err)
	}
	if _, err := fs.lookup(newp); err == nil {
		return wrap("rename", newp, ErrExist)
	}
	co, cn := path.Clean("/"+oldp), path.Clean("/"+newp)
	if fs.inodes[ino].typ == typeDir && strings.HasPrefix(cn+"/", co+"/") {
		return wrap("rename", oldp, ErrBusy)
	}
	odir, oname, err := fs.parent(oldp)
	if err != nil {
		return wrap("rename", oldp, err)
	}
	ndir, nname, err := fs.parent(newp)
	if err != nil {
		return wrap("rename", newp, err)
	}
	if !validName(nname) {
		return wrap("rename", newp, ErrName)
	}
	nents, err := fs.readDir(ndir)
	if err != nil {
		return wrap("rename", newp, err)
	}
	// Link in the new place first, then unlink the old name.
	if err := fs.writeDir(ndir, append(nents, dirent{ino, nname})); err != nil {
		return wrap("rename", newp, err)
	}
	oents, err := fs.readDir(odir)
	if err != nil {
		return wrap("rename", oldp, err)
	}
	for k, e := range oents {
		if e.name == oname && e.ino == ino {
			oents = append(oents[:k], oents[k+1:]...)
			break
		}
	}
	return wrap("rename", oldp, fs.writeDir(odir, oents))
}

// Free reports free data blocks and free inodes.
func (fs *FS) Free() (blocks, inodes int) {
	for b := uint32(dataStart); b < fs.blocks; b++ {
		if !fs.used[b] {
			blocks++
		}
	}
	for i := rootIno + 1; i < maxInodes; i++ {
		if fs.inodes[i].typ == typeFree {
			inodes++
		}
	}
	return blocks, inodes
}

// MemDevice is a BlockDevice in memory: for tests and for building disk
// images on the host.
type MemDevice []byte

// NewMemDevice returns a zeroed device of n blocks.
func NewMemDevice(n int) MemDevice { return make(MemDevice, n*BlockSize) }

// Blocks returns the device's size in blocks.
func (d MemDevice) Blocks() uint64 { return uint64(len(d) / BlockSize) }

// ReadBlock copies block n into buf.
func (d MemDevice) ReadBlock(n uint64, buf []byte) error {
	if n >= d.Blocks() {
		return fmt.Errorf("block %d out of range", n)
	}
	copy(buf[:BlockSize], d[n*BlockSize:])
	return nil
}

// WriteBlock copies buf into block n.
func (d MemDevice) WriteBlock(n uint64, buf []byte) error {
	if n >= d.Blocks() {
		return fmt.Errorf("block %d out of range", n)
	}
	copy(d[n*BlockSize:(n+1)*BlockSize], buf)
	return nil
}
