// Package imagebuild builds guest images reproducibly and reads and writes
// their manifest. It is shared by the build tool (server/images/build) and
// the images package's tests, so that both build the same bytes.
package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Entry is one image's line in manifest.json.
type Entry struct {
	SHA256    string `json:"sha256"`     // hex SHA-256 of the .wasm
	GoVersion string `json:"go_version"` // the toolchain that built it, e.g. "go1.26.8"
	Bytes     int64  `json:"bytes"`      // its size
}

// Manifest maps image names to entries.
type Manifest map[string]Entry

// ManifestFile is the manifest's name in server/images.
const ManifestFile = "manifest.json"

// ReadManifest reads a manifest file; a missing file is an empty manifest.
func ReadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Manifest{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := Manifest{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Marshal encodes the manifest with sorted keys and a final newline.
func (m Manifest) Marshal() []byte {
	b, err := json.MarshalIndent(m, "", "  ") // maps marshal with sorted keys
	if err != nil {
		panic(err) // cannot happen for this type
	}
	return append(b, '\n')
}

// EntryFor describes wasm built by goVersion.
func EntryFor(wasm []byte, goVersion string) Entry {
	sum := sha256.Sum256(wasm)
	return Entry{SHA256: hex.EncodeToString(sum[:]), GoVersion: goVersion, Bytes: int64(len(wasm))}
}

// Flags are the go build flags every image is built with. -trimpath,
// -buildvcs=false and an empty build ID make the output depend only on the
// sources and the toolchain, not on the directory, the commit or the cache.
var Flags = []string{
	"-trimpath",
	"-buildvcs=false",
	"-buildmode=c-shared",
	"-ldflags=-s -w -buildid=",
}

// env is the environment of a build: the caller's, with every variable that
// changes the output replaced.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOOS", "GOARCH", "GOFLAGS", "GOWASM", "CGO_ENABLED", "GOEXPERIMENT", "GOAMD64":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "CGO_ENABLED=0")
}

// Build compiles the guest package pkg (such as "./server/images/testcard"),
// relative to dir, with goCmd into the file out.
func Build(ctx context.Context, goCmd, dir, pkg, out string) error {
	args := append([]string{"build"}, Flags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = env()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("GOOS=wasip1 GOARCH=wasm %s %s: %w\n%s", goCmd, strings.Join(args, " "), err, stderr.Bytes())
	}
	return nil
}

// GoVersion returns the version of the toolchain goCmd runs, as
// runtime.Version reports it ("go1.26.8").
func GoVersion(ctx context.Context, goCmd, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, "env", "GOVERSION")
	cmd.Dir = dir
	cmd.Env = env()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s env GOVERSION: %w", goCmd, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Names returns the images in the directory imagesDir (server/images): its
// subdirectories that hold a main.go, except the build tool's.
func Names(imagesDir string) ([]string, error) {
	ents, err := os.ReadDir(imagesDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "build" || e.Name() == "internal" {
			continue
		}
		if _, err := os.Stat(imagesDir + "/" + e.Name() + "/main.go"); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
