package token

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	key := NewKey()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c := Claims{Session: "desk", Role: RoleController, Name: "ada", Expiry: now.Add(time.Hour)}
	tok := Sign(key, c)
	got, err := Verify(key, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Session != c.Session || got.Role != c.Role || got.Name != c.Name || !got.Expiry.Equal(c.Expiry) {
		t.Fatalf("claims %+v, want %+v", got, c)
	}
	if _, err := Verify(key, tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := Verify(NewKey(), tok, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: %v", err)
	}
	// Changing the role in the claims breaks the signature.
	forged := Sign(key, Claims{Session: "desk", Role: RoleViewer, Expiry: now.Add(time.Hour)})
	p, _, _ := strings.Cut(forged, ".")
	_, sig, _ := strings.Cut(tok, ".")
	if _, err := Verify(key, p+"."+sig, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("swapped claims: %v", err)
	}
	for _, bad := range []string{"", "abc", "a.b", tok + "x", strings.Repeat("a", MaxLen+1)} {
		if _, err := Verify(key, bad, now); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	if _, err := Verify(key, Sign(key, Claims{Role: "root", Expiry: now.Add(time.Hour)}), now); !errors.Is(err, ErrRole) {
		t.Fatalf("unknown role: %v", err)
	}
}

// TestOneSpellingPerToken: a signature's last base64 character carries
// unused bits, so several characters decode to the same bytes. Only the
// canonical one is accepted: a link that differs from the issued one in any
// character is not the issued token.
func TestOneSpellingPerToken(t *testing.T) {
	key := NewKey()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tok := Sign(key, Claims{Session: "desk", Role: RoleDisplay, Expiry: now.Add(time.Hour)})
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	accepted := 0
	for _, pos := range []int{len(tok) - 1, strings.IndexByte(tok, '.') - 1} {
		for _, ch := range []byte(alphabet) {
			b := []byte(tok)
			b[pos] = ch
			if _, err := Verify(key, string(b), now); err == nil {
				accepted++
				if string(b) != tok {
					t.Errorf("position %d changed to %q still verifies", pos, ch)
				}
			}
		}
	}
	if accepted != 2 { // the original, once per position tried
		t.Fatalf("%d spellings verified, want exactly the original twice", accepted)
	}
}

func FuzzVerify(f *testing.F) {
	key := []byte("fuzz key")
	f.Add(Sign(key, Claims{Session: "s", Role: RoleOwner, Expiry: time.Unix(2e9, 0)}))
	f.Add("x.y")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(key, tok, time.Unix(1e9, 0))
		if err == nil && c.Role == "" {
			t.Fatal("accepted a token without a role")
		}
		if err == nil {
			p, sig, _ := strings.Cut(tok, ".")
			raw, _ := b64.DecodeString(sig)
			body, _ := b64.DecodeString(p)
			if b64.EncodeToString(raw) != sig || b64.EncodeToString(body) != p {
				t.Fatalf("accepted a non-canonical spelling %q", tok)
			}
		}
	})
}
