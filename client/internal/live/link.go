package live

import (
	"fmt"
	"net/url"
	"strings"

	"replaydesk/shared/pageservice"
)

// Link is a parsed session link, http://HOST:PORT/s/SESSION?t=TOKEN.
type Link struct {
	Base    string // http://HOST:PORT: pages, manifests and session files come from here
	Session string
	Token   string
}

// WebSocket is the session's WebSocket URL, ws://HOST:PORT/ws/SESSION.
func (l Link) WebSocket() string {
	u, _ := url.Parse(l.Base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = "/ws/" + url.PathEscape(l.Session)
	return u.String()
}

// ParseLink parses a session link as the server prints it.
func ParseLink(s string) (Link, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Link{}, fmt.Errorf("session link %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Link{}, fmt.Errorf("session link %q: want http://HOST:PORT/s/SESSION?t=TOKEN", s)
	}
	id, ok := strings.CutPrefix(strings.TrimSuffix(u.Path, "/"), "/s/")
	if !ok || !pageservice.ValidSessionID.MatchString(id) {
		return Link{}, fmt.Errorf("session link %q: the path must be /s/SESSION", s)
	}
	tok := u.Query().Get("t")
	if tok == "" {
		return Link{}, fmt.Errorf("session link %q has no token (?t=…)", s)
	}
	return Link{Base: u.Scheme + "://" + u.Host, Session: id, Token: tok}, nil
}
