package hub

import (
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// originAllowed says whether a WebSocket upgrade may proceed, judged by its
// Origin header (browsers set it and pages cannot forge it; anything else
// can send any header, so a missing Origin is a native client, admitted by
// its token alone). A browser page is admitted when its origin is
//
//   - one of Options.AllowOrigins: a pattern (path.Match) of a whole origin
//     ("https://desk.example.com") or of its host and port
//     ("desk.example.com", "127.0.0.1:*"), or
//   - the relay's own origin, i.e. the request's scheme and Host, but only
//     when that Host is an IP address or localhost.
//
// The Host header proves nothing for a name: a DNS-rebinding page at
// evil.example, its name pointed at the relay's address, sends Origin
// http://evil.example:8090 and Host evil.example:8090, and used to be
// taken for a page of the relay's own. An IP or localhost cannot be
// rebound, so those stay same-origin; a relay serving pages under a name
// lists it with --allow-origin. The reason is for the log and the 403.
func (h *Hub) originAllowed(r *http.Request) (bool, string) {
	o := r.Header.Get("Origin")
	if o == "" {
		return true, ""
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false, "origin " + cutText(o) + " is not a web origin"
	}
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	host := strings.ToLower(u.Host)
	for _, p := range h.opts.AllowOrigins {
		p = strings.ToLower(p)
		target := host
		if strings.Contains(p, "://") {
			target = origin
		}
		if ok, _ := path.Match(p, target); ok {
			return true, ""
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if origin == scheme+"://"+strings.ToLower(r.Host) && unrebindable(r.Host) {
		return true, ""
	}
	return false, "pages from " + cutText(origin) + " may not connect to this relay (a relay serving pages under a name needs --allow-origin for it)"
}

// unrebindable says whether host (host[:port]) is an IP address or
// localhost, names no one else's DNS can point here.
func unrebindable(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost")
}
