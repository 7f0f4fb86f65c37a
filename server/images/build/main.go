// Command build rebuilds guest images: for each name (all images when none
// are given) it compiles server/images/<name> for GOOS=wasip1 GOARCH=wasm as
// a reactor, writes server/images/<name>/<name>.wasm and records its SHA-256,
// size and Go version in server/images/manifest.json.
//
// Usage, from anywhere in the module:
//
//	go run ./server/images/build [names...]
//
// The build is reproducible: the same sources and Go version give the same
// bytes, which the images package's tests check.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"replaydesk/server/images/internal/imagebuild"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(names []string) error {
	ctx := context.Background()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed: %w", err)
	}
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("run this inside the replaydesk module")
	}
	root := filepath.Dir(gomod)
	imagesDir := filepath.Join(root, "server", "images")

	all, err := imagebuild.Names(imagesDir)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = all
	}
	for _, n := range names {
		if !slices.Contains(all, n) {
			return fmt.Errorf("unknown image %q (known: %s)", n, strings.Join(all, ", "))
		}
	}
	goVersion, err := imagebuild.GoVersion(ctx, goCmd, root)
	if err != nil {
		return err
	}
	manifestPath := filepath.Join(imagesDir, imagebuild.ManifestFile)
	manifest, err := imagebuild.ReadManifest(manifestPath)
	if err != nil {
		return err
	}
	for _, n := range names {
		dst := filepath.Join(imagesDir, n, n+".wasm")
		tmp := dst + ".tmp"
		if err := imagebuild.Build(ctx, goCmd, root, "./server/images/"+n, tmp); err != nil {
			os.Remove(tmp)
			return err
		}
		wasm, err := os.ReadFile(tmp)
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		e := imagebuild.EntryFor(wasm, goVersion)
		manifest[n] = e
		fmt.Printf("%s: %d bytes, sha256 %s (%s)\n", n, e.Bytes, e.SHA256, goVersion)
	}
	return os.WriteFile(manifestPath, manifest.Marshal(), 0o644)
}
