package pagestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"replaydesk/shared/internal/bindec"
	"replaydesk/shared/recordlog"
	"replaydesk/shared/snapshot"
)

// Manifest is a snapshot without its memory: the memory is named page by
// page in Pages. It is itself content-addressed (Hash), so a manifest URL is
// as cacheable as a page URL.
type Manifest struct {
	ModuleHash recordlog.ModuleHash
	Tick, Step uint64
	LogPos     recordlog.Pos
	Globals    []uint64
	Device     []byte
	// MemorySize is the exact length of linear memory in bytes.
	MemorySize uint64
	// Pages lists every non-zero page, sorted by Index; every page not listed
	// is zero.
	Pages []PageRef
	// WorkingSet is optional: page indices the machine touched soon after the
	// snapshot, in the order it touched them, for a lazy restore to prefetch.
	WorkingSet []uint32
}

// PageRef names the content of one page of memory.
type PageRef struct {
	Index uint32
	Hash  Hash
}

// NumPages is how many pages memory spans (a trailing partial page counts).
func (m *Manifest) NumPages() int { return int((m.MemorySize + PageSize - 1) / PageSize) }

// Lookup returns the hash of page index, and false for a zero page.
func (m *Manifest) Lookup(index int) (Hash, bool) {
	i := sort.Search(len(m.Pages), func(i int) bool { return int(m.Pages[i].Index) >= index })
	if i < len(m.Pages) && int(m.Pages[i].Index) == index {
		return m.Pages[i].Hash, true
	}
	return Hash{}, false
}

// Hashes returns the distinct page hashes, in page order of first use.
func (m *Manifest) Hashes() []Hash {
	seen := make(map[Hash]struct{}, len(m.Pages))
	out := make([]Hash, 0, len(m.Pages))
	for _, p := range m.Pages {
		if _, ok := seen[p.Hash]; !ok {
			seen[p.Hash] = struct{}{}
			out = append(out, p.Hash)
		}
	}
	return out
}

// ManifestFromSnapshot splits s into a manifest and its distinct non-zero
// pages. The returned page slices alias s.Memory (copying 64 MiB to hand it
// straight to a store would be waste); do not modify s.Memory while they
// are in use. A memory size that is not whole pages is allowed: the last
// page is hashed zero-padded and Assemble trims it again.
func ManifestFromSnapshot(s *snapshot.Snapshot) (*Manifest, map[Hash][]byte) {
	m := &Manifest{
		ModuleHash: s.ModuleHash, Tick: s.Tick, Step: s.Step, LogPos: s.LogPos,
		Globals: append([]uint64(nil), s.Globals...), Device: bytes.Clone(s.Device),
		MemorySize: uint64(len(s.Memory)),
	}
	n := m.NumPages()
	page := func(i int) []byte {
		if end := (i + 1) * PageSize; end <= len(s.Memory) {
			return s.Memory[i*PageSize : end]
		}
		p := make([]byte, PageSize)
		copy(p, s.Memory[i*PageSize:])
		return p
	}
	// Hashing dominates (SHA-256 of the whole memory): spread it over the
	// cores in contiguous ranges, then assemble the table in page order.
	hashes := make([]Hash, n)
	nonzero := make([]bool, n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/256))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				p := page(i)
				if !IsZero(p) {
					nonzero[i] = true
					hashes[i] = HashPage(p)
				}
			}
		})
	}
	wg.Wait()
	pages := make(map[Hash][]byte)
	for i := range n {
		if nonzero[i] {
			m.Pages = append(m.Pages, PageRef{Index: uint32(i), Hash: hashes[i]})
			if _, ok := pages[hashes[i]]; !ok {
				pages[hashes[i]] = page(i)
			}
		}
	}
	return m, pages
}

// Encoding limits, so that a corrupt manifest cannot ask for absurd
// allocations.
const (
	MaxMemory     = snapshot.MaxMemory
	MaxGlobals    = snapshot.MaxGlobals
	MaxDevice     = snapshot.MaxDevice
	MaxWorkingSet = MaxMemory / PageSize
)

var manifestMagic = [8]byte{'R', 'D', 'M', 'A', 'N', 'F', 0, 1}

// ErrCorruptManifest wraps every manifest format violation.
var ErrCorruptManifest = errors.New("pagestore: corrupt manifest")

// Encode returns the manifest's binary form (docs/page-service.md):
//
//	magic "RDMANF\0\1"
//	module hash (32)
//	uvarint tick, step, log segment, log offset, log tick, log step
//	uvarint #globals, globals (u64 LE each)
//	uvarint #device, device bytes
//	uvarint memory size (bytes)
//	uvarint #pages, the page indices delta-coded (first index, then
//	  index − previous − 1 as uvarints), then the hashes (32 each) in order
//	uvarint #working set, the indices (uvarint each, in touch order)
//	SHA-256 of everything before it (32)
//
// Indices and hashes are kept apart so that the index run (mostly 0s for
// dense memory) stays a compact byte string.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m.encode(), nil
}

func (m *Manifest) encode() []byte {
	b := make([]byte, 0, 128+len(m.Device)+8*len(m.Globals)+33*len(m.Pages)+3*len(m.WorkingSet))
	b = append(b, manifestMagic[:]...)
	b = append(b, m.ModuleHash[:]...)
	for _, v := range []uint64{m.Tick, m.Step, uint64(m.LogPos.Segment), uint64(m.LogPos.Offset), m.LogPos.Tick, m.LogPos.Step} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Globals)))
	for _, g := range m.Globals {
		b = binary.LittleEndian.AppendUint64(b, g)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Device)))
	b = append(b, m.Device...)
	b = binary.AppendUvarint(b, m.MemorySize)
	b = binary.AppendUvarint(b, uint64(len(m.Pages)))
	next := uint32(0)
	for _, p := range m.Pages {
		b = binary.AppendUvarint(b, uint64(p.Index-next))
		next = p.Index + 1
	}
	for _, p := range m.Pages {
		b = append(b, p.Hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.WorkingSet)))
	for _, w := range m.WorkingSet {
		b = binary.AppendUvarint(b, uint64(w))
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// validate is what Encode refuses and DecodeManifest would refuse.
func (m *Manifest) validate() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("pagestore: manifest: "+f, a...)
	}
	switch {
	case m.MemorySize > MaxMemory:
		return bad("memory size %d exceeds %d", m.MemorySize, uint64(MaxMemory))
	case len(m.Globals) > MaxGlobals:
		return bad("%d globals exceed %d", len(m.Globals), MaxGlobals)
	case len(m.Device) > MaxDevice:
		return bad("device state of %d bytes exceeds %d", len(m.Device), MaxDevice)
	case m.LogPos.Offset < 0:
		return bad("negative log offset %d", m.LogPos.Offset)
	}
	n := m.NumPages()
	for i, p := range m.Pages {
		if int(p.Index) >= n {
			return bad("page %d is beyond memory (%d pages)", p.Index, n)
		}
		if i > 0 && p.Index <= m.Pages[i-1].Index {
			return bad("page table not strictly increasing at entry %d (page %d)", i, p.Index)
		}
		if p.Hash == ZeroHash {
			return bad("page %d is the zero page, which manifests elide", p.Index)
		}
	}
	if len(m.WorkingSet) > n {
		return bad("working set of %d pages is larger than memory (%d pages)", len(m.WorkingSet), n)
	}
	for _, w := range m.WorkingSet {
		if int(w) >= n {
			return bad("working-set page %d is beyond memory (%d pages)", w, n)
		}
	}
	return nil
}

// Hash names the manifest: the SHA-256 of its encoding.
func (m *Manifest) Hash() (Hash, error) {
	b, err := m.Encode()
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(b), nil
}

// DecodeManifest parses and verifies a manifest's encoding. It checks the
// trailing checksum, then every structural rule Encode enforces, so a
// manifest that decodes is one Encode would have produced.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) < len(manifestMagic)+32+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorruptManifest, len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptManifest)
	}
	d := &bindec.Decoder{B: body, Kind: ErrCorruptManifest}
	if !bytes.Equal(d.Bytes(8, "magic"), manifestMagic[:]) {
		return nil, fmt.Errorf("%w: not a replaydesk manifest (bad magic)", ErrCorruptManifest)
	}
	m := &Manifest{}
	copy(m.ModuleHash[:], d.Bytes(32, "module hash"))
	m.Tick = d.Uvarint("tick")
	m.Step = d.Uvarint("step")
	seg := d.Uvarint("log segment")
	off := d.Uvarint("log offset")
	if seg > 1<<32-1 || off > 1<<63-1 {
		d.Fail("log position out of range")
	}
	m.LogPos.Segment, m.LogPos.Offset = uint32(seg), int64(off)
	m.LogPos.Tick = d.Uvarint("log tick")
	m.LogPos.Step = d.Uvarint("log step")
	ng := d.Uvarint("global count")
	if ng > MaxGlobals {
		d.Fail("too many globals")
	}
	if gb := d.Bytes(ng*8, "globals"); len(gb) > 0 {
		m.Globals = make([]uint64, 0, ng)
		for i := 0; i+8 <= len(gb); i += 8 {
			m.Globals = append(m.Globals, binary.LittleEndian.Uint64(gb[i:]))
		}
	}
	nd := d.Uvarint("device length")
	if nd > MaxDevice {
		d.Fail("device state too large")
	}
	if dev := d.Bytes(nd, "device state"); len(dev) > 0 {
		m.Device = bytes.Clone(dev)
	}
	m.MemorySize = d.Uvarint("memory size")
	if m.MemorySize > MaxMemory {
		d.Fail(fmt.Sprintf("memory size %d", m.MemorySize))
	}
	n := uint64(m.NumPages())
	np := d.Uvarint("page count")
	if np > n {
		d.Fail(fmt.Sprintf("%d pages listed for a memory of %d pages", np, n))
	}
	// Each listed page needs at least one index byte and 32 hash bytes: a
	// count the remaining bytes cannot hold is refused before allocating.
	if d.Err == nil && np*33 > uint64(len(body)-d.P) {
		d.Fail("page table runs past the end")
	}
	if d.Err != nil {
		return nil, d.Err
	}
	if np > 0 {
		m.Pages = make([]PageRef, np)
	}
	next := uint64(0)
	for i := range m.Pages {
		idx := next + d.Uvarint("page index delta")
		if d.Err != nil {
			return nil, d.Err
		}
		if idx >= n || idx < next { // beyond memory, or the delta overflowed
			d.Fail(fmt.Sprintf("page index %d beyond memory (%d pages)", idx, n))
			return nil, d.Err
		}
		m.Pages[i].Index = uint32(idx)
		next = idx + 1
	}
	for i := range m.Pages {
		copy(m.Pages[i].Hash[:], d.Bytes(32, "page hash"))
		if d.Err == nil && m.Pages[i].Hash == ZeroHash {
			d.Fail(fmt.Sprintf("page %d is the zero page, which manifests elide", m.Pages[i].Index))
		}
	}
	nw := d.Uvarint("working-set count")
	if d.Err == nil && (nw > n || nw > uint64(len(body)-d.P)) {
		d.Fail(fmt.Sprintf("working set of %d pages", nw))
	}
	if d.Err != nil {
		return nil, d.Err
	}
	if nw > 0 {
		m.WorkingSet = make([]uint32, nw)
	}
	for i := range m.WorkingSet {
		w := d.Uvarint("working-set page")
		if d.Err == nil && w >= n {
			d.Fail(fmt.Sprintf("working-set page %d beyond memory (%d pages)", w, n))
		}
		m.WorkingSet[i] = uint32(w)
	}
	if d.Err == nil && d.P != len(body) {
		d.Fail("trailing bytes")
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return m, nil
}
