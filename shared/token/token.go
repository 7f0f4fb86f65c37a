// Package token makes and checks the signed tokens that admit people (and
// relays) to a session: which session, which role, whose name, until when
// (DESIGN.md section 8). A token is
//
//	base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))
//
// so a relay holding the key checks it without asking the server, and a
// browser link can carry it in its query string.
//
// It must not know about connections, the wire protocol or what roles allow:
// the server and relay decide that from the claims.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles a token can grant. RoleRelay admits a relay's upstream connection.
const (
	RoleOwner      = "owner"
	RoleController = "controller"
	RoleViewer     = "viewer"
	RoleDisplay    = "display"
	RoleRelay      = "relay"
)

// Roles lists the people's roles in link order.
var Roles = []string{RoleOwner, RoleController, RoleViewer, RoleDisplay}

// Claims are what a token says.
type Claims struct {
	Session string    `json:"s"`
	Role    string    `json:"r"`
	Name    string    `json:"n,omitempty"` // suggested display name; the Hello's name wins if set
	Expiry  time.Time `json:"e"`
}

// Errors Verify wraps; their text is fit to show to the person holding the
// token.
var (
	ErrMalformed = errors.New("token: malformed")
	ErrSignature = errors.New("token: bad signature (not issued for this server)")
	ErrExpired   = errors.New("token: expired")
	ErrRole      = errors.New("token: unknown role")
)

var b64 = base64.RawURLEncoding.Strict()

// MaxLen bounds a token (wire.MaxToken).
const MaxLen = 4096

// NewKey returns a fresh random signing key.
func NewKey() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand panics rather than return short)
	return k
}

// Sign returns the token for c.
func Sign(key []byte, c Claims) string {
	body, _ := json.Marshal(c) // plain struct: cannot fail
	p := base64.RawURLEncoding.EncodeToString(body)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(key, p))
}

func mac(key []byte, p string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(p))
	return h.Sum(nil)
}

// Verify checks tok's signature and expiry at now and returns its claims.
func Verify(key []byte, tok string, now time.Time) (Claims, error) {
	var c Claims
	if len(tok) > MaxLen {
		return c, fmt.Errorf("%w: %d bytes", ErrMalformed, len(tok))
	}
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return c, fmt.Errorf("%w: no signature part", ErrMalformed)
	}
	// Strict: the last character's unused bits must be zero, so one
	// signature has exactly one spelling (a changed last character that
	// decodes to the same bytes is a different token, and refused).
	got, err := b64.DecodeString(sig)
	if err != nil {
		return c, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if !hmac.Equal(got, mac(key, p)) {
		return c, ErrSignature
	}
	body, err := b64.DecodeString(p)
	if err != nil {
		return c, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	switch c.Role {
	case RoleOwner, RoleController, RoleViewer, RoleDisplay, RoleRelay:
	default:
		return Claims{}, fmt.Errorf("%w %q", ErrRole, c.Role)
	}
	if !now.Before(c.Expiry) {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}
