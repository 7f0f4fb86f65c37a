package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"io"

	"replaydesk/server/images/download/dl"
	"replaydesk/server/images/internal/imagebuild"
	"replaydesk/server/images/kbuild/srctree"
	"replaydesk/shared/abi"
	"replaydesk/shared/endpoints"
)

func TestLookup(t *testing.T) {
	if got := Names(); !slices.Equal(got, []string{"desk", "download", "game", "kbuild", "stream", "testcard", "video"}) {
		t.Fatalf("Names() = %v", got)
	}
	img, err := Lookup("testcard")
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "testcard" || img.Width != 640 || img.Height != 360 || !slices.Equal(img.Endpoints, []string{"echo"}) {
		t.Fatalf("testcard: %+v", img)
	}
	if len(img.Disk) != TestcardBlocks*abi.BlockSize {
		t.Fatalf("disk is %d bytes", len(img.Disk))
	}
	if binary.LittleEndian.Uint64(img.Disk) != 0 || !bytes.Equal(img.Disk[8:abi.BlockSize], make([]byte, abi.BlockSize-8)) {
		t.Fatal("block 0 is not a zero counter")
	}
	if bytes.Count(img.Disk[abi.BlockSize:], []byte{0}) > len(img.Disk)/64 {
		t.Fatal("blocks 1.. are not random-looking")
	}
	// Fresh copies: modifying one lookup's slices does not affect the next.
	img.Disk[0], img.Wasm[0] = 0xff, 0xff
	again, _ := Lookup("testcard")
	if again.Disk[0] != 0 || again.Wasm[0] != 0 {
		t.Fatal("Lookup hands out shared slices")
	}
	if !bytes.Equal(TestcardDisk(), TestcardDisk()) {
		t.Fatal("the testcard disk is not deterministic")
	}
	// The disk's content is fixed: a changed generator changes every
	// recorded session's picture, so it must be a deliberate change.
	sum := sha256.Sum256(TestcardDisk())
	if got := hex.EncodeToString(sum[:8]); got != testcardDiskSum {
		t.Fatalf("testcard disk sha256 prefix %s, want %s", got, testcardDiskSum)
	}

	_, err = Lookup("nope")
	if err == nil || !strings.Contains(err.Error(), "testcard") {
		t.Fatalf("Lookup(nope) error %v should list the known images", err)
	}
}

const testcardDiskSum = "cb2a4e99f5dc1b02"

func readManifest(t *testing.T) imagebuild.Manifest {
	t.Helper()
	m, err := imagebuild.ReadManifest(imagebuild.ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEmbeddedMatchManifest checks each embedded module against
// manifest.json, and that the manifest lists exactly the registered images.
func TestEmbeddedMatchManifest(t *testing.T) {
	m := readManifest(t)
	for _, name := range Names() {
		img, _ := Lookup(name)
		e, ok := m[name]
		if !ok {
			t.Errorf("%s: not in %s: run go run ./server/images/build", name, imagebuild.ManifestFile)
			continue
		}
		if got := imagebuild.EntryFor(img.Wasm, e.GoVersion); got != e {
			t.Errorf("%s: embedded module is %d bytes sha256 %s; manifest says %d bytes sha256 %s: run go run ./server/images/build",
				name, got.Bytes, got.SHA256, e.Bytes, e.SHA256)
		}
	}
	for name := range m {
		if _, ok := registry[name]; !ok {
			t.Errorf("manifest lists %q, which is not registered", name)
		}
	}
	dirs, err := imagebuild.Names(".")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dirs, Names()) {
		t.Errorf("image directories %v differ from the registry %v", dirs, Names())
	}
}

// TestReproducibleBuild rebuilds every image and, when the toolchain is the
// one that built the committed modules, requires identical bytes.
func TestReproducibleBuild(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to rebuild the images: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	goVersion, err := imagebuild.GoVersion(ctx, goCmd, ".")
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t)
	dir := t.TempDir()
	for _, name := range Names() {
		out := filepath.Join(dir, name+".wasm")
		if err := imagebuild.Build(ctx, goCmd, ".", "./"+name, out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkModule(got); err != nil {
			t.Errorf("%s: rebuilt module: %v", name, err)
		}
		want := m[name]
		if runtime.Version() != want.GoVersion || goVersion != want.GoVersion {
			t.Logf("%s: built with %s (test binary %s) but the committed module with %s: the build works; bytes not compared",
				name, goVersion, runtime.Version(), want.GoVersion)
			continue
		}
		if e := imagebuild.EntryFor(got, goVersion); e != want {
			t.Errorf("%s: stale image: run go run ./server/images/build (rebuilt %d bytes sha256 %s, manifest %d bytes sha256 %s)",
				name, e.Bytes, e.SHA256, want.Bytes, want.SHA256)
		}
	}
}

// TestModuleInterface checks every embedded module's imports and exports
// against guest ABI v1: only the replaydesk_v1 functions with their
// documented signatures and WASI preview 1, and the exports memory,
// _initialize and step() -> i32.
func TestModuleInterface(t *testing.T) {
	for _, name := range Names() {
		img, _ := Lookup(name)
		if err := checkModule(img.Wasm); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The checker itself rejects a module that imports another ABI version.
	img, _ := Lookup("testcard")
	bad := bytes.Replace(img.Wasm, []byte(abi.Module), []byte("replaydesk_v9"), 1)
	if err := checkModule(bad); err == nil {
		t.Error("checkModule accepted a module importing replaydesk_v9")
	}
}

// abiSignatures are the ABI v1 imports' wasm signatures (docs/abi.md).
var abiSignatures = map[string]string{
	abi.ImportPresent:      "(i32,i32,i32,i32,i32,i32,i32)->()",
	abi.ImportInputPoll:    "(i32,i32)->(i32)",
	abi.ImportDiskInfo:     "(i32)->(i32)",
	abi.ImportDiskRead:     "(i64,i32)->(i32)",
	abi.ImportDiskWrite:    "(i64,i32)->(i32)",
	abi.ImportNetOpen:      "(i32,i32)->(i32)",
	abi.ImportNetSend:      "(i32,i32,i32)->(i32)",
	abi.ImportNetRecv:      "(i32,i32,i32)->(i32)",
	abi.ImportNetClose:     "(i32)->(i32)",
	abi.ImportConsoleWrite: "(i32,i32)->()",
}

func checkModule(wasm []byte) error {
	mod, err := parseModule(wasm)
	if err != nil {
		return err
	}
	for _, im := range mod.imports {
		switch im.module {
		case abi.Module:
			want, ok := abiSignatures[im.name]
			if !ok {
				return fmt.Errorf("imports unknown function %s.%s", im.module, im.name)
			}
			if im.kind != 0 || im.sig != want {
				return fmt.Errorf("imports %s.%s as %s, want function %s", im.module, im.name, im.sig, want)
			}
		case "wasi_snapshot_preview1":
		default:
			return fmt.Errorf("imports %s.%s from a module that is neither %s nor WASI", im.module, im.name, abi.Module)
		}
	}
	want := map[string]string{abi.ExportMemory: "memory", abi.ExportInit: "()->()", abi.ExportStep: "()->(i32)"}
	for name, sig := range want {
		if got, ok := mod.exports[name]; !ok || got != sig {
			return fmt.Errorf("export %q is %q, want %q", name, got, sig)
		}
	}
	return nil
}

type wasmImport struct {
	module, name string
	kind         byte
	sig          string
}

type wasmModule struct {
	imports []wasmImport
	exports map[string]string // name -> signature, or "memory", "table", "global"
}

// parseModule reads the type, import, function and export sections of a
// WebAssembly binary: just enough to check a guest's interface.
func parseModule(b []byte) (*wasmModule, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" || binary.LittleEndian.Uint32(b[4:]) != 1 {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	r := &reader{b: b[8:]}
	var types []string
	var funcs []string // signatures of all functions, imported first
	m := &wasmModule{exports: map[string]string{}}
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sec := &reader{b: r.bytes(int(r.uleb()))}
		switch id {
		case 1: // types
			for range sec.uleb() {
				if sec.byte() != 0x60 {
					return nil, errors.New("bad function type")
				}
				params := sec.valtypes()
				results := sec.valtypes()
				types = append(types, "("+params+")->("+results+")")
			}
		case 2: // imports
			for range sec.uleb() {
				im := wasmImport{module: sec.name(), name: sec.name(), kind: sec.byte()}
				switch im.kind {
				case 0:
					idx := sec.uleb()
					if idx >= uint64(len(types)) {
						return nil, errors.New("bad type index")
					}
					im.sig = types[idx]
					funcs = append(funcs, im.sig)
				case 1:
					sec.byte()
					sec.limits()
				case 2:
					sec.limits()
				case 3:
					sec.byte()
					sec.byte()
				default:
					return nil, fmt.Errorf("import kind %d", im.kind)
				}
				m.imports = append(m.imports, im)
			}
		case 3: // functions
			for range sec.uleb() {
				idx := sec.uleb()
				if idx >= uint64(len(types)) {
					return nil, errors.New("bad type index")
				}
				funcs = append(funcs, types[idx])
			}
		case 7: // exports
			for range sec.uleb() {
				name, kind, idx := sec.name(), sec.byte(), sec.uleb()
				switch kind {
				case 0:
					if idx >= uint64(len(funcs)) {
						return nil, errors.New("bad function index")
					}
					m.exports[name] = funcs[idx]
				case 1:
					m.exports[name] = "table"
				case 2:
					m.exports[name] = "memory"
				case 3:
					m.exports[name] = "global"
				}
			}
		}
		if sec.err != nil {
			return nil, sec.err
		}
	}
	return m, r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated WebAssembly binary")
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail()
	return 0
}

func (r *reader) name() string { return string(r.bytes(int(r.uleb()))) }

func (r *reader) limits() {
	if r.byte()&1 != 0 {
		r.uleb()
	}
	r.uleb()
}

func (r *reader) valtypes() string {
	n := r.uleb()
	var s []string
	for range n {
		switch t := r.byte(); t {
		case 0x7f:
			s = append(s, "i32")
		case 0x7e:
			s = append(s, "i64")
		case 0x7d:
			s = append(s, "f32")
		case 0x7c:
			s = append(s, "f64")
		default:
			s = append(s, fmt.Sprintf("0x%x", t))
		}
	}
	return strings.Join(s, ",")
}

// TestDownloadSource checks that the download image's "files" endpoint
// serves the file whose digest the guest expects.
func TestDownloadSource(t *testing.T) {
	img, err := Lookup("download")
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Disk) != dl.DiskBlocks*abi.BlockSize || !slices.Equal(img.Endpoints, []string{dl.Endpoint}) {
		t.Fatalf("download: disk %d bytes, endpoints %v", len(img.Disk), img.Endpoints)
	}
	s, err := img.Sources[dl.Endpoint]()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Send([]byte("GET " + dl.FileName + "\n"))
	var got []byte
	buf := make([]byte, abi.MaxNetChunk)
	sha := sha256.New()
	for {
		n, err := s.Recv(buf)
		if len(got) < 64 {
			got = append(got, buf[:n]...)
		}
		sha.Write(buf[:n])
		if err != nil {
			break
		}
	}
	hdr := fmt.Sprintf("SIZE %d\n", dl.FileSize)
	if !strings.HasPrefix(string(got), hdr) {
		t.Fatalf("answer starts %q", got)
	}
	want := sha256.New()
	want.Write([]byte(hdr))
	io.Copy(want, endpoints.ChaChaFile(dl.Seed, dl.FileSize).Open())
	if !bytes.Equal(sha.Sum(nil), want.Sum(nil)) {
		t.Fatal("the served answer is not the header and the file")
	}
	fsum := sha256.New()
	io.Copy(fsum, endpoints.ChaChaFile(dl.Seed, dl.FileSize).Open())
	if hex.EncodeToString(fsum.Sum(nil)) != dl.ExpectedSHA256 {
		t.Fatal("the served file's digest is not the one the guest expects")
	}
}

func TestKbuildDisk(t *testing.T) {
	img, err := Lookup("kbuild")
	if err != nil {
		t.Fatal(err)
	}
	s, err := srctree.DecodeSuper(img.Disk)
	if err != nil || int(s.Blocks)*abi.BlockSize != len(img.Disk) || s.Files < 100 {
		t.Fatalf("%+v %v", s, err)
	}
	if !bytes.Equal(KbuildDisk(), img.Disk) {
		t.Fatal("the kbuild disk is not deterministic")
	}
	if sum := sha256.Sum256(img.Disk); hex.EncodeToString(sum[:8]) != kbuildDiskSum {
		t.Fatalf("kbuild disk sha256 prefix %s, want %s (a changed tree changes every recorded session)", hex.EncodeToString(sum[:8]), kbuildDiskSum)
	}
}

const kbuildDiskSum = "2511176deba03e3c"
