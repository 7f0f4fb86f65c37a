// Package wasmrw rewrites a WebAssembly binary so that every mutable global
// is exported under a predictable name. wazero can only write globals that are
// exported, and a snapshot restore must write all of them (the Go runtime's
// stack pointer among them).
//
// It knows only the wasm binary format; it must not know about wazero or the
// machine that uses it.
package wasmrw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Global is one mutable global defined by the module.
type Global struct {
	Index  uint32 // absolute index: imported globals come first
	Type   byte   // 0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64
	Export string // the name ExportMutableGlobals gave it
}

// ExportPrefix starts the names of the exports added by ExportMutableGlobals.
const ExportPrefix = "__rd_global_"

// ExportName is the export name given to the global with absolute index i.
func ExportName(i uint32) string { return fmt.Sprintf("%s%d", ExportPrefix, i) }

var magic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

const (
	secImport = 2
	secGlobal = 6
	secExport = 7
)

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("wasmrw: malformed module")

type reader struct {
	b []byte
	p int
}

func (r *reader) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, what, r.p)
}

func (r *reader) byte() (byte, error) {
	if r.p >= len(r.b) {
		return 0, r.fail("unexpected end")
	}
	c := r.b[r.p]
	r.p++
	return c, nil
}

func (r *reader) uleb() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.p:])
	if n <= 0 {
		return 0, r.fail("bad LEB128")
	}
	r.p += n
	return v, nil
}

// sleb skips a signed LEB128 number: its last byte has the high bit clear.
func (r *reader) sleb() error {
	for {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
}

func (r *reader) skip(n uint64) error {
	if n > uint64(len(r.b)-r.p) {
		return r.fail("length past end")
	}
	r.p += int(n)
	return nil
}

func (r *reader) name() error {
	n, err := r.uleb()
	if err != nil {
		return err
	}
	return r.skip(n)
}

func (r *reader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.uleb(); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.uleb()
	}
	return err
}

// constExpr skips an initializer expression through its final `end`.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x42: // i32.const, i64.const
			if err := r.sleb(); err != nil {
				return err
			}
		case 0x43:
			err = r.skip(4)
		case 0x44:
			err = r.skip(8)
		case 0x23, 0xd2: // global.get, ref.func
			_, err = r.uleb()
		case 0xd0: // ref.null t
			_, err = r.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		default:
			return r.fail(fmt.Sprintf("unsupported opcode 0x%02x in constant expression", op))
		}
		if err != nil {
			return err
		}
	}
}

type section struct {
	id   byte
	body []byte
}

func sections(bin []byte) ([]section, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:8], magic) {
		return nil, fmt.Errorf("%w: not a wasm 1.0 binary", ErrMalformed)
	}
	r := &reader{b: bin, p: 8}
	var out []section
	for r.p < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		n, err := r.uleb()
		if err != nil {
			return nil, err
		}
		start := r.p
		if err := r.skip(n); err != nil {
			return nil, err
		}
		out = append(out, section{id, bin[start:r.p]})
	}
	return out, nil
}

func importedGlobals(body []byte) (uint32, error) {
	r := &reader{b: body}
	n, err := r.uleb()
	if err != nil {
		return 0, err
	}
	var globals uint32
	for range n {
		if err := r.name(); err != nil {
			return 0, err
		}
		if err := r.name(); err != nil {
			return 0, err
		}
		kind, err := r.byte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0: // func: type index
			_, err = r.uleb()
		case 1: // table: reftype + limits
			if _, err = r.byte(); err == nil {
				err = r.limits()
			}
		case 2: // memory
			err = r.limits()
		case 3: // global: valtype + mutability
			globals++
			err = r.skip(2)
		default:
			return 0, r.fail(fmt.Sprintf("unknown import kind %d", kind))
		}
		if err != nil {
			return 0, err
		}
	}
	return globals, nil
}

func definedMutableGlobals(body []byte, first uint32) ([]Global, error) {
	r := &reader{b: body}
	n, err := r.uleb()
	if err != nil {
		return nil, err
	}
	var out []Global
	for i := range n {
		typ, err := r.byte()
		if err != nil {
			return nil, err
		}
		mut, err := r.byte()
		if err != nil {
			return nil, err
		}
		if err := r.constExpr(); err != nil {
			return nil, err
		}
		if mut == 1 {
			idx := first + uint32(i)
			switch typ {
			case 0x7f, 0x7e, 0x7d, 0x7c:
			default:
				return nil, fmt.Errorf("%w: mutable global %d has type 0x%02x, which a snapshot cannot hold", ErrMalformed, idx, typ)
			}
			out = append(out, Global{Index: idx, Type: typ, Export: ExportName(idx)})
		}
	}
	return out, nil
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// ExportMutableGlobals returns a copy of bin whose export section also
// exports every mutable global it defines, and the list of those globals in
// index order. Imported globals are not included: they belong to the host.
func ExportMutableGlobals(bin []byte) ([]byte, []Global, error) {
	secs, err := sections(bin)
	if err != nil {
		return nil, nil, err
	}
	var imported uint32
	var globals []Global
	exportAt := -1
	for i, s := range secs {
		switch s.id {
		case secImport:
			if imported, err = importedGlobals(s.body); err != nil {
				return nil, nil, err
			}
		case secGlobal:
			if globals, err = definedMutableGlobals(s.body, imported); err != nil {
				return nil, nil, err
			}
		case secExport:
			exportAt = i
		}
	}

	// Rebuild the export section: the old entries, then ours.
	var count uint64
	var entries []byte
	if exportAt >= 0 {
		r := &reader{b: secs[exportAt].body}
		if count, err = r.uleb(); err != nil {
			return nil, nil, err
		}
		entries = append(entries, secs[exportAt].body[r.p:]...)
	}
	for _, g := range globals {
		entries = appendULEB(entries, uint64(len(g.Export)))
		entries = append(entries, g.Export...)
		entries = append(entries, 3) // export kind: global
		entries = appendULEB(entries, uint64(g.Index))
	}
	body := appendULEB(nil, count+uint64(len(globals)))
	body = append(body, entries...)

	out := append([]byte(nil), magic...)
	wrote := false
	put := func(id byte, b []byte) {
		out = append(out, id)
		out = appendULEB(out, uint64(len(b)))
		out = append(out, b...)
	}
	for i, s := range secs {
		// Custom sections (id 0) may sit anywhere; known ones are ordered, and
		// the export section goes right after the global section's place.
		if !wrote && s.id != 0 && s.id > secExport {
			put(secExport, body)
			wrote = true
		}
		if i == exportAt {
			put(secExport, body)
			wrote = true
			continue
		}
		put(s.id, s.body)
	}
	if !wrote {
		put(secExport, body)
	}
	return out, globals, nil
}
