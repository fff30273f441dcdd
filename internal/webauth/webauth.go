// Package webauth owns what the server's two sets of browser pages — the
// Admin Portal (internal/portal) and the operator console
// (internal/console) — share of signing in and of serving pages:
//
//   - single-use link secrets (a prefix and 32 random bytes, stored only as
//     their SHA-256) and the checks of a launch: whether a link row can
//     still be opened, and whether the launch form's POST came from the
//     page the link showed (Launcher);
//   - HMAC-SHA256 signing with a session key: signed session cookies
//     (Signer.Seal, Signer.Open) and the tokens derived from the key
//     (launch and CSRF tokens);
//   - the same-origin check on POSTs (SameOrigin);
//   - static files embedded in the binary and served under content-hashed
//     URLs (Assets).
//
// What a session holds, how long it lasts, which link rows a side accepts
// and what its pages say stay with each side: a portal cookie and a console
// cookie are signed with different keys, so neither opens the other.
package webauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// Signer signs with one session key (HMAC-SHA256). Every MAC is over a
// label and the data, so a value signed for one purpose (a session, a CSRF
// token, a launch form) is never valid for another.
type Signer struct{ key []byte }

// NewSigner returns a Signer for key; the callers require at least 32
// bytes derived from the master key.
func NewSigner(key []byte) Signer { return Signer{key: key} }

// MAC is HMAC-SHA256(key, label || 0 || data).
func (s Signer) MAC(label, data string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return m.Sum(nil)
}

// Token is MAC(label, data) in base64url: a value a form carries.
func (s Signer) Token(label, data string) string {
	return base64.RawURLEncoding.EncodeToString(s.MAC(label, data))
}

// CSRFToken is the anti-forgery token of the session with this id.
func (s Signer) CSRFToken(sessionID string) string { return s.Token("csrf", sessionID) }

// LaunchToken is the anti-forgery token of the launch form of the link
// stored under hash.
func (s Signer) LaunchToken(hash [32]byte) string { return s.Token("launch", HashHex(hash)) }

// Equal compares a token a request carried with the expected one in
// constant time.
func Equal(got, want string) bool { return hmac.Equal([]byte(got), []byte(want)) }

// ErrBadCookie is a cookie value that is too long, malformed, or not
// signed with this Signer's key.
var ErrBadCookie = errors.New("cookie is malformed or not signed with this key")

// Seal returns a cookie value carrying v: base64url(JSON) "." base64url(MAC).
// v must be a struct of plain fields (strings, numbers), which always
// encode.
func (s Signer) Seal(v any) string {
	raw, _ := json.Marshal(v)
	body := base64.RawURLEncoding.EncodeToString(raw)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.MAC("session", body))
}

// Open checks a cookie value of at most maxLen bytes and decodes it into
// v: the signature first, so nothing of a forged value is ever parsed.
// Every failure is ErrBadCookie; checking the fields is the caller's.
func (s Signer) Open(value string, maxLen int, v any) error {
	if len(value) > maxLen {
		return ErrBadCookie
	}
	body, sig, ok := strings.Cut(value, ".")
	if !ok {
		return ErrBadCookie
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.MAC("session", body)) {
		return ErrBadCookie
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return ErrBadCookie
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return ErrBadCookie
	}
	return nil
}

// Cookie describes a session cookie: always HttpOnly, scoped to Path.
type Cookie struct {
	Name     string
	Path     string
	Secure   bool // served over HTTPS
	SameSite http.SameSite
}

// Set sets the cookie to value for maxAge seconds; a negative maxAge with
// an empty value deletes it.
func (c Cookie) Set(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: c.Name, Value: value, Path: c.Path, MaxAge: maxAge,
		HttpOnly: true, Secure: c.Secure, SameSite: c.SameSite})
}

// NewSessionID returns a random session id: 32 hex digits.
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// HashHex is a link hash as a session names it.
func HashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }

// ParseHashHex is the inverse of HashHex; false when s is not 64 hex
// digits.
func ParseHashHex(s string) ([32]byte, bool) {
	var h [32]byte
	if len(s) != 2*len(h) {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, false
	}
	return h, true
}

// secretLen is the length of a link secret after its prefix: 32 bytes in
// base64url without padding.
const secretLen = 43

// NewSecret returns a new link secret: prefix and 32 random bytes in
// base64url.
func NewSecret(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseSecret checks a link secret's form (prefix, then 32 bytes in
// strict base64url) and returns the hash it is stored under.
func ParseSecret(prefix, t string) ([32]byte, bool) {
	if len(t) != len(prefix)+secretLen || !strings.HasPrefix(t, prefix) {
		return [32]byte{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(t[len(prefix):])
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(t)), true
}

// LinkState says whether a link row can still be opened at now: nil, or
// store.ErrLinkUsed, store.ErrLinkRevoked or store.ErrLinkExpired. It is
// what a launch page shows; the redemption itself is
// store.PortalLinks.RedeemPortalLink, once and atomically in the database.
func LinkState(l store.PortalLink, now time.Time) error {
	switch {
	case !l.UsedAt.IsZero():
		return store.ErrLinkUsed
	case !l.EndedAt.IsZero():
		return store.ErrLinkRevoked
	case !l.ExpiresAt.After(now):
		return store.ErrLinkExpired
	}
	return nil
}

// SameOrigin reports whether a POST comes from a page of this server: by
// Sec-Fetch-Site where the browser sends it, else by Origin (baseURL's
// origin — the server's public URL — or the host the request was sent
// to). A request with neither is refused: every browser that runs the
// pages sends one of them.
func SameOrigin(r *http.Request, baseURL string) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return false
	}
	if base, err := url.Parse(baseURL); err == nil && origin == base.Scheme+"://"+base.Host {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host
}

// Launcher checks the two steps of opening a link, so that what follows
// links without a person (mail security scanners, chat link previews)
// cannot spend one: GET shows a page with a button and a token bound to
// the link (Signer.LaunchToken); only that button's POST, from this
// origin and with the token, may redeem it.
type Launcher struct {
	Prefix  string // the secrets' prefix: ptl_, csl_
	Signer  Signer
	BaseURL string
}

// Secret returns the hash of the one well-formed secret in v (a query's or
// a form's values of "secret").
func (l Launcher) Secret(v []string) ([32]byte, bool) {
	if len(v) != 1 {
		return [32]byte{}, false
	}
	return ParseSecret(l.Prefix, v[0])
}

// Authentic reports whether a launch POST for the link stored under hash
// came from the launch page: same origin, and its form's "csrf" is the
// link's launch token. The form must have been parsed.
func (l Launcher) Authentic(r *http.Request, hash [32]byte) bool {
	return SameOrigin(r, l.BaseURL) && Equal(r.PostFormValue("csrf"), l.Signer.LaunchToken(hash))
}
