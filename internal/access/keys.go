// Package access decides who may do what. It generates API key secrets and
// hashes them (only the SHA-256 hash is ever stored), names the scopes a key
// can hold, and describes the authenticated caller as a Principal that the
// HTTP layer checks every request against: which scopes it has and which
// organizations it may see.
package access

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

const (
	// SecretPrefix starts every API key secret, so that leaked secrets are
	// easy to recognise (and for secret scanners to find).
	SecretPrefix = "sk_"
	// secretRandomLen is the number of base62 characters after the prefix:
	// 40 of them carry about 238 bits of entropy.
	secretRandomLen = 40
	// PrefixLen is how much of the secret is stored in clear, to recognise a
	// key in listings.
	PrefixLen = 10
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Generate returns a new API key secret ("sk_" and 40 base62 characters from
// crypto/rand), its SHA-256 hash, and its first PrefixLen characters.
func Generate() (secret string, hash [32]byte, prefix string) {
	b := make([]byte, 0, len(SecretPrefix)+secretRandomLen)
	b = append(b, SecretPrefix...)
	var buf [64]byte
	for len(b) < cap(b) {
		// crypto/rand.Read never returns an error (it crashes the program
		// rather than return weak randomness).
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			// Rejection sampling: 248 = 4*62, so c%62 is uniform below it.
			if c >= 248 {
				continue
			}
			b = append(b, base62[c%62])
			if len(b) == cap(b) {
				break
			}
		}
	}
	secret = string(b)
	return secret, HashSecret(secret), secret[:PrefixLen]
}

// HashSecret is how a secret is stored and looked up: SHA-256 of its bytes.
// The secrets are long and random, so a fast unsalted hash is enough.
func HashSecret(secret string) [32]byte {
	return sha256.Sum256([]byte(secret))
}

// WellFormedSecret reports whether s has the shape of an API key secret, so
// that garbage can be refused without a database lookup.
func WellFormedSecret(s string) bool {
	// Generated secrets are sk_ + 40 base62 characters, but an operator may
	// choose the bootstrap secret (--bootstrap-key), so accept any sk_ token
	// of sane length made of URL-safe characters.
	if len(s) < 24 || len(s) > 200 || s[:len(SecretPrefix)] != SecretPrefix {
		return false
	}
	for i := len(SecretPrefix); i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// NewKeyID returns a new API key id: "key_" and a ULID for time t.
func NewKeyID(t time.Time) string { return "key_" + newULID(t) }

// NewOrganizationID returns a new organization id: "org_" and a ULID for
// time t.
func NewOrganizationID(t time.Time) string { return "org_" + newULID(t) }

// ValidOrganizationID reports whether id has the form of a WorkOS (and
// Trail) organization id: "org_" and a ULID of 26 upper-case Crockford
// base32 characters, within the ULID range. A WorkOS customer creates or
// imports its organizations under the ids its database already holds.
func ValidOrganizationID(id string) bool {
	u, ok := strings.CutPrefix(id, "org_")
	if !ok || len(u) != ulid.EncodedSize || strings.ToUpper(u) != u {
		return false
	}
	_, err := ulid.ParseStrict(u)
	return err == nil
}

func newULID(t time.Time) string {
	// DefaultEntropy is safe for concurrent use and monotonic within one
	// millisecond, so ids made in one process sort in creation order.
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}
