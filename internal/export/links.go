package export

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// LinkTTL is how long a download link works.
const LinkTTL = 10 * time.Minute

// Errors of Links.Check.
var (
	ErrLinkExpired = errors.New("the download link has expired")
	ErrLinkInvalid = errors.New("the download link is not valid")
)

// Links signs and checks download links: HMAC-SHA256 over the export id and
// the link's expiry, so a link names one export for a limited time and
// needs no API key.
type Links struct {
	key []byte
}

// NewLinks returns links signed with key (at least 32 bytes; derive it from
// the master key).
func NewLinks(key []byte) *Links { return &Links{key: key} }

func (l *Links) mac(id string, expires int64) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("trail export link v1\n"))
	m.Write([]byte(id))
	m.Write([]byte{'\n'})
	m.Write(strconv.AppendInt(nil, expires, 10))
	return m.Sum(nil)
}

// Query returns the query string of a link to export id that works until
// expires: "expires=<unix seconds>&signature=<base64url>".
func (l *Links) Query(id string, expires time.Time) string {
	exp := expires.Unix()
	v := url.Values{}
	v.Set("expires", strconv.FormatInt(exp, 10))
	v.Set("signature", base64.RawURLEncoding.EncodeToString(l.mac(id, exp)))
	return v.Encode()
}

// Check checks a link's expires and signature parameters for export id at
// now, in constant time in the signature.
func (l *Links) Check(id, expires, signature string, now time.Time) error {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrLinkInvalid
	}
	// Compared as the text the link carries: Go's base64 decoder skips
	// newlines, so decoding first would accept a signature the server never
	// wrote (one with "\n" inside).
	want := base64.RawURLEncoding.EncodeToString(l.mac(id, exp))
	if !hmac.Equal([]byte(signature), []byte(want)) {
		return ErrLinkInvalid
	}
	if now.Unix() >= exp {
		return ErrLinkExpired
	}
	return nil
}
