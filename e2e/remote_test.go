package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type fetchResult struct {
	PagesInSnapshot int `json:"pages_in_snapshot"`
	PagesFetched    int `json:"pages_fetched"`
	PagesFromCache  int `json:"pages_from_cache"`
}

type lazyResult struct {
	Pages         int `json:"pages"`
	Faults        int `json:"faults"`
	ServedByFault int `json:"served_by_fault"`
}

// A recorded session served over HTTP replays elsewhere from a snapshot,
// lazily, and a second replay of the same session (a repeat session) takes
// its pages from the client's cache instead of the network.
func TestRemoteLazyReplayAndRepeatSession(t *testing.T) {
	tmp := t.TempDir()
	// Two sessions of the same image and script: the paper's "repeat".
	dir1, dir2 := filepath.Join(tmp, "first"), filepath.Join(tmp, "repeat")
	recs := map[string]recordResult{}
	for _, d := range []string{dir1, dir2} {
		recs[filepath.Base(d)] = record(t, "--duration", "8s", "--input", "testdata/typing.jsonl", "--snapshot-every", "4s", "--out", d)
	}
	cmd := exec.Command(serverBin, "serve", "--listen", "127.0.0.1:0", "--store", filepath.Join(tmp, "store"), dir1, dir2)
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	urls := map[string]string{}
	for len(urls) < 2 && sc.Scan() {
		line, _ := strings.CutPrefix(sc.Text(), "session ")
		id, url, _ := strings.Cut(line, ": ")
		urls[id] = url
	}
	if !strings.HasPrefix(urls["first"], "http://") || !strings.HasPrefix(urls["repeat"], "http://") {
		t.Fatalf("server serve printed %v\n%s", urls, stderr.String())
	}
	cache := filepath.Join(tmp, "cache")
	replayRemote := func(id string) (replayResult, fetchResult, lazyResult) {
		t.Helper()
		url := urls[id]
		o, errs, code := run(t, nil, clientBin, "replay", "--cache-dir", cache, "--from-snapshot", "1", "--lazy", url)
		var r struct {
			replayResult
			Fetch *fetchResult `json:"fetch"`
			Lazy  *lazyResult  `json:"lazy"`
		}
		if code != 0 || jsonErr(o, &r) != nil || r.Fetch == nil || r.Lazy == nil {
			t.Fatalf("replay %s: exit %d %s\n%s", url, code, o, errs)
		}
		if r.FinalStateHash != recs[id].FinalStateHash {
			t.Fatalf("remote replay of %s ended in %s, the recording in %s", id, r.FinalStateHash, recs[id].FinalStateHash)
		}
		return r.replayResult, *r.Fetch, *r.Lazy
	}
	_, first, lazy := replayRemote("first")
	if first.PagesFetched == 0 || first.PagesFetched+first.PagesFromCache > first.PagesInSnapshot {
		t.Fatalf("first session: %+v", first)
	}
	if lazy.Faults == 0 || lazy.ServedByFault > lazy.Pages {
		t.Fatalf("lazy paging: %+v", lazy)
	}
	_, repeat, _ := replayRemote("repeat")
	// Pages are content-addressed: only what differs between the two
	// sessions crosses the network the second time. (The test card differs
	// on purpose between sessions — wall-clock date, random noise, the Go
	// runtime's random seeds — so it saves less than a video repeat does;
	// the benchmark suite measures the images.)
	if repeat.PagesFromCache == 0 || repeat.PagesFetched*2 > first.PagesFetched {
		t.Fatalf("repeat session fetched %d pages (%d from the cache), the first %d", repeat.PagesFetched, repeat.PagesFromCache, first.PagesFetched)
	}
	// From the start, with no snapshot: the disk's frozen blocks come on
	// demand like pages; no disk image is downloaded.
	o, errs, code := run(t, nil, clientBin, "replay", "--cache-dir", cache, urls["first"])
	var fromStart struct {
		replayResult
		DiskBlocksRead int `json:"disk_blocks_read"`
	}
	if code != 0 || json.Unmarshal(o, &fromStart) != nil || fromStart.FinalStateHash != recs["first"].FinalStateHash || fromStart.DiskBlocksRead == 0 {
		t.Fatalf("replay from the start: exit %d %s\n%s", code, o, errs)
	}
	if imgs, _ := filepath.Glob(filepath.Join(cache, "sessions", "*", "disk.img")); len(imgs) != 0 {
		t.Fatalf("the client downloaded the disk image: %v", imgs)
	}
	t.Logf("first session fetched %d pages; the repeat %d (%.1f%% less), %d from the cache",
		first.PagesFetched, repeat.PagesFetched, 100*(1-float64(repeat.PagesFetched)/float64(first.PagesFetched)), repeat.PagesFromCache)
}
