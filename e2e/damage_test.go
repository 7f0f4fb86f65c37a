package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// copyDir copies a session directory (small files only in these tests).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func logFiles(t testing.TB, dir string) []string {
	files, err := filepath.Glob(filepath.Join(dir, "log", "*.seg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no log segments in %s", dir)
	}
	sort.Strings(files)
	return files
}

func TestReplayRefusesDamagedAndForeignLogs(t *testing.T) {
	src := filepath.Join(t.TempDir(), "session")
	record(t, "--duration", "5s", "--input", "testdata/typing.jsonl", "--snapshot-every", "2s", "--out", src)

	t.Run("truncated", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		copyDir(t, src, dir)
		files := logFiles(t, dir)
		last := files[len(files)-1]
		st, _ := os.Stat(last)
		if err := os.Truncate(last, st.Size()-7); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := replay(t, nil, dir)
		if code != 2 || !strings.Contains(stderr, "byte") {
			t.Fatalf("exit %d, %q; want exit 2 naming the byte offset", code, stderr)
		}
	})

	t.Run("another module", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		copyDir(t, src, dir)
		orig, _ := os.ReadFile(filepath.Join(dir, "module.wasm"))
		if err := os.WriteFile(filepath.Join(dir, "module.wasm"), bigmem, 0o644); err != nil {
			t.Fatal(err)
		}
		var meta map[string]any
		b, _ := os.ReadFile(filepath.Join(dir, "session.json"))
		json.Unmarshal(b, &meta)
		sum := sha256.Sum256(bigmem)
		meta["module_sha256"] = hex.EncodeToString(sum[:])
		b, _ = json.Marshal(meta)
		os.WriteFile(filepath.Join(dir, "session.json"), b, 0o644)
		_, stderr, code := replay(t, nil, dir)
		origSum := sha256.Sum256(orig)
		if code != 2 || !strings.Contains(stderr, hex.EncodeToString(sum[:])) || !strings.Contains(stderr, hex.EncodeToString(origSum[:])) {
			t.Fatalf("exit %d, %q; want exit 2 naming both module hashes", code, stderr)
		}
	})

	t.Run("module file swapped", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		copyDir(t, src, dir)
		os.WriteFile(filepath.Join(dir, "module.wasm"), bigmem, 0o644)
		_, stderr, code := replay(t, nil, dir)
		if code == 0 || !strings.Contains(stderr, "module.wasm has SHA-256") {
			t.Fatalf("exit %d, %q", code, stderr)
		}
	})

	t.Run("snapshot damaged", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		copyDir(t, src, dir)
		p := filepath.Join(dir, "snapshots", "000001.snap")
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0x10
		os.WriteFile(p, b, 0o644)
		_, stderr, code := replay(t, nil, "--from-snapshot", "1", dir)
		if code != 2 || !strings.Contains(stderr, "checksum") {
			t.Fatalf("exit %d, %q; want exit 2 for a damaged snapshot", code, stderr)
		}
		_, stderr, code = replay(t, nil, "--from-snapshot", "9", dir)
		if code == 0 || !strings.Contains(stderr, "no snapshot 9") {
			t.Fatalf("exit %d, %q", code, stderr)
		}
	})
}

// Flipping one byte anywhere in a log must never replay silently: it is a
// decode error (exit 2) or a divergence (exit 3). Positions cover every
// header and block boundary region of every segment and spread over the rest.
func TestByteFlipsNeverReplaySilently(t *testing.T) {
	src := filepath.Join(t.TempDir(), "session")
	record(t, "--duration", "4s", "--input", "testdata/typing.jsonl", "--out", src)
	files := logFiles(t, src)

	type flip struct {
		file string
		pos  int64
		mask byte
	}
	var flips []flip
	for _, f := range files {
		st, _ := os.Stat(f)
		n := st.Size()
		add := func(p int64, mask byte) {
			if p >= 0 && p < n {
				flips = append(flips, flip{f, p, mask})
			}
		}
		for p := int64(0); p < min(n, 96); p++ { // segment header and the first block's header
			add(p, 0xff)
		}
		for p := n - 24; p < n; p++ { // the seal block
			add(p, 0x01)
		}
		for i := int64(0); i < 60; i++ { // everywhere else
			add(96+i*(n-96)/60, byte(1<<(i%8)))
		}
	}
	if testing.Short() {
		flips = flips[:len(flips)/4]
	}
	t.Logf("%d flips over %d segment files", len(flips), len(files))

	var mu sync.Mutex
	var failures []string
	work := make(chan flip)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			base := filepath.Join(t.TempDir(), fmt.Sprintf("w%d", w))
			copyDir(t, src, base)
			for fl := range work {
				target := filepath.Join(base, "log", filepath.Base(fl.file))
				orig, _ := os.ReadFile(fl.file)
				b := append([]byte(nil), orig...)
				b[fl.pos] ^= fl.mask
				os.WriteFile(target, b, 0o644)
				_, stderr, code := replay(t, nil, base)
				os.WriteFile(target, orig, 0o644)
				if code != 2 && code != 3 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s byte %d ^%#x: exit %d %s", filepath.Base(fl.file), fl.pos, fl.mask, code, stderr))
					mu.Unlock()
				}
			}
		}(w)
	}
	for _, f := range flips {
		work <- f
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d flips were not caught:\n%s", len(failures), len(flips), strings.Join(failures[:min(len(failures), 10)], "\n"))
	}
}
