package replayer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"replaydesk/client/internal/fetch"
)

// FetchResult says what a remote snapshot cost.
type FetchResult = fetch.Result

// parseRemote splits http://host/sessions/ID into the service's base URL and
// the session id; ok is false for anything that is not such a URL.
func parseRemote(s string) (base, id string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", false
	}
	rest, found := strings.CutPrefix(strings.TrimSuffix(u.Path, "/"), "/sessions/")
	if !found || rest == "" || strings.Contains(rest, "/") {
		return "", "", false
	}
	u.Path = ""
	return u.String(), rest, true
}

// mirror copies a session served by `server serve`
// (server/internal/sessionhttp) — its files and log segments — into dir;
// its snapshots' pages come through the page cache, which every session
// shares.
func mirror(ctx context.Context, f *fetch.Fetcher, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return err
	}
	for _, name := range []string{"session.json", "module.wasm"} {
		if err := f.Get(ctx, "/files/"+name, filepath.Join(dir, name), false); err != nil {
			return err
		}
	}
	// No disk.img: its blocks come on demand (fetch.Disk).
	req, _ := http.NewRequestWithContext(ctx, "GET", f.Base+"/sessions/"+url.PathEscape(f.Session)+"/log/", nil)
	resp, err := f.HC.Do(req)
	if err != nil {
		return err
	}
	var segs []struct {
		Name string `json:"name"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&segs)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("listing the log: %w", err)
	}
	for _, s := range segs {
		if strings.ContainsAny(s.Name, `/\`) || !strings.HasSuffix(s.Name, ".seg") {
			return fmt.Errorf("the server lists a bad segment name %q", s.Name)
		}
		if err := f.Get(ctx, "/log/"+s.Name, filepath.Join(dir, "log", s.Name), false); err != nil {
			return err
		}
	}
	return nil
}
