package hub

import (
	"net/http"
	"strings"
	"time"

	"replaydesk/shared/token"
)

// replayOnly guards a session's files, log and snapshot list (everything
// under /sessions/{id}/): they hold every key anyone typed, so only roles
// that may replay (owner, controller, viewer, and child relays) get them
// (DESIGN.md section 7). The token comes as "Authorization: Bearer". Every
// hub has the key (New refuses to run without one), so nothing here passes
// unchecked.
func (h *Hub) replayOnly(next http.Handler) http.Handler {
	return h.needToken(next, true)
}

// pagesOnly guards pages and manifests: they are named by hashes only the
// log and the snapshot list reveal, but some are guessable (the zero page,
// an image's well-known module), and nothing is served to a stranger, so
// they too need a token that may replay, of any session behind this relay
// (pages are shared by the upstream's sessions).
func (h *Hub) pagesOnly(next http.Handler) http.Handler {
	return h.needToken(next, false)
}

func (h *Hub) needToken(next http.Handler, ownSession bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/sessions/"), "/")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "a session's files, log, snapshots and pages need a token with replay rights (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		c, err := token.Verify(h.opts.Key, tok, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		switch {
		case ownSession && c.Session != id:
			http.Error(w, "the token is for session "+c.Session+", not "+id, http.StatusForbidden)
		case c.Role == token.RoleDisplay:
			http.Error(w, "display viewers receive pixels only: a session's log and snapshots need a role that may replay", http.StatusForbidden)
		default:
			next.ServeHTTP(w, r)
		}
	})
}
