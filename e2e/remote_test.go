package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fetchResult struct {
	PagesInSnapshot int `json:"pages_in_snapshot"`
	PagesFetched    int `json:"pages_fetched"`
	PagesFromCache  int `json:"pages_from_cache"`
	PagesOnDemand   int `json:"pages_on_demand"`
	Requests        int `json:"requests"`
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
	urls := serveSessions(t, filepath.Join(tmp, "store"), dir1, dir2)
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
		if r.FinalStateHash != recs[id].FinalStateHash || r.FinalFBHash != recs[id].FinalFBHash {
			t.Fatalf("remote replay of %s ended in %s, the recording in %s", id, r.FinalStateHash, recs[id].FinalStateHash)
		}
		return r.replayResult, *r.Fetch, *r.Lazy
	}
	_, first, lazy := replayRemote("first")
	// The page server fetched on fault: fewer pages than the snapshot holds
	// until the final memory check needed them all (fetched in bulk then).
	if first.PagesOnDemand == 0 || first.PagesOnDemand >= first.PagesInSnapshot ||
		first.PagesFetched+first.PagesFromCache < first.PagesInSnapshot*9/10 || first.Requests == 0 {
		t.Fatalf("first session: %+v", first)
	}
	// An eager replay (every page fetched before the restore) ends alike.
	o, errs, code := run(t, nil, clientBin, "replay", "--cache-dir", filepath.Join(tmp, "cache-eager"), "--from-snapshot", "1", urls["first"])
	var eager struct {
		replayResult
		Fetch *fetchResult `json:"fetch"`
	}
	if code != 0 || json.Unmarshal(o, &eager) != nil || eager.Fetch == nil || eager.Fetch.PagesFetched == 0 ||
		eager.FinalStateHash != recs["first"].FinalStateHash || eager.FinalFBHash != recs["first"].FinalFBHash {
		t.Fatalf("eager remote replay: exit %d %s\n%s", code, o, errs)
	}
	t.Logf("lazy: %d of %d pages fetched on demand in %d requests (%d in all)", first.PagesOnDemand, first.PagesInSnapshot, first.Requests, first.PagesFetched)
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
	o, errs, code = run(t, nil, clientBin, "replay", "--cache-dir", cache, urls["first"])
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

// serveSessions runs `server serve` over dirs and returns each session's
// URL by id (the directory's base name). The server is killed at cleanup.
func serveSessions(t testing.TB, store string, dirs ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(serverBin, append([]string{"serve", "--listen", "127.0.0.1:0", "--store", store}, dirs...)...)
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	urls := map[string]string{}
	for len(urls) < len(dirs) && sc.Scan() {
		line, _ := strings.CutPrefix(sc.Text(), "session ")
		id, url, _ := strings.Cut(line, ": ")
		urls[id] = url
	}
	for _, d := range dirs {
		if !strings.HasPrefix(urls[filepath.Base(d)], "http://") {
			t.Fatalf("server serve printed %v\n%s", urls, stderr.String())
		}
	}
	go io.Copy(io.Discard, out)
	return urls
}

// A lazy remote replay whose page service misbehaves mid-replay stops with
// a clear error — a corrupted page is refused, a vanished service is named —
// instead of replaying on zero-filled memory or hanging.
func TestRemoteLazyPageServiceFailures(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "s")
	record(t, "--duration", "8s", "--input", "testdata/typing.jsonl", "--snapshot-every", "4s", "--out", dir)
	upstream := serveSessions(t, filepath.Join(tmp, "store"), dir)["s"]
	target, _ := url.Parse(upstream)
	target.Path = ""

	for _, mode := range []string{"corrupt", "gone"} {
		t.Run(mode, func(t *testing.T) {
			// A relay in front of the page service: it passes everything
			// until the replayer's third single-page request (a fault, well
			// after the restore began), then misbehaves.
			var pageGets atomic.Int32
			var ln net.Listener
			proxy := httputil.NewSingleHostReverseProxy(target)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				single := r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/pages/")
				if single && pageGets.Add(1) >= 3 || mode == "gone" && pageGets.Load() >= 3 {
					switch mode {
					case "corrupt": // a well-formed page, but not the one named
						w.Write(append([]byte{0}, bytes.Repeat([]byte{0xAA}, 4096)...))
					case "gone": // the service vanishes: this connection and every later one
						ln.Close()
						if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
							c.Close()
						}
					}
					return
				}
				proxy.ServeHTTP(w, r)
			})
			var err error
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: h}
			go srv.Serve(ln)
			defer srv.Close()
			sessURL := "http://" + ln.Addr().String() + "/sessions/s"

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, clientBin, "replay", "--cache-dir", filepath.Join(tmp, "cache-"+mode), "--from-snapshot", "1", "--lazy", sessURL)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err = cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("the replay hung\n%s", errb.String())
			}
			if err == nil || pageGets.Load() < 3 {
				t.Fatalf("the replay succeeded (%d single-page requests)\n%s", pageGets.Load(), out.String())
			}
			want := map[string][]string{
				"corrupt": {"corrupt page", "refused", "lazy restore failed"},
				"gone":    {"page service at http://" + ln.Addr().String(), "lazy restore failed"},
			}[mode]
			for _, w := range want {
				if !strings.Contains(errb.String(), w) {
					t.Fatalf("the error does not say %q:\n%s", w, errb.String())
				}
			}
			var res replayResult
			if json.Unmarshal(out.Bytes(), &res) == nil && res.FinalStateHash != "" {
				t.Fatalf("a failed replay reported a final state: %s", out.String())
			}
			t.Logf("%s: %s", mode, lastLine(errb.String()))
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
