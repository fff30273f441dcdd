// Package keyring owns the deployment's master key and the keys derived from
// it: one 32-byte secret, kept in the data directory (or given by
// configuration, so that replicas on one database share it), from which every
// feature derives its own key with HKDF-SHA256 (RFC 5869) under a purpose
// label. No feature ever uses the master key directly, so a key leaked from
// one purpose (say, signed download links) says nothing about another (say,
// encrypted stream credentials).
//
// The checkpoint signing keys are not derived from it: verifiers hold their
// public halves, so each is a key of its own (package ledger), whose private
// half the deployment keeps sealed under the master key.
//
// The master key rotates by envelope encryption with key ids: a keyring may
// hold several master keys, the first of which (the primary) seals new
// secrets and derives every purpose's key; each sealed value names the
// master key it was sealed under by that key's check value, so a value
// sealed under an older key still opens while the keyring holds it, and
// can be re-sealed under the primary (docs/OPERATIONS.md, "Rotating the
// master key").
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MasterKeySize is the size of the master key in bytes.
const MasterKeySize = 32

// FileName is the master key's file in the data directory.
const FileName = "master.key"

// Keyring holds the master keys: the primary first, then older ones kept
// to open what was sealed under them.
type Keyring struct {
	master [MasterKeySize]byte // the primary
	older  [][MasterKeySize]byte
}

// New returns a keyring over master, which must be MasterKeySize bytes.
func New(master []byte) (*Keyring, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("master key is %d bytes; it must be %d", len(master), MasterKeySize)
	}
	k := &Keyring{}
	copy(k.master[:], master)
	return k, nil
}

// Parse reads master keys in their text form: standard base64 of 32 bytes
// each, separated by white space or newlines (lines starting with # are
// comments). The first is the primary; the others are older keys.
func Parse(text string) (*Keyring, error) {
	var k *Keyring
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			raw, err := base64.StdEncoding.DecodeString(f)
			if err != nil {
				return nil, fmt.Errorf("master key is not base64: %w", err)
			}
			if k == nil {
				if k, err = New(raw); err != nil {
					return nil, err
				}
				continue
			}
			if len(raw) != MasterKeySize {
				return nil, fmt.Errorf("master key is %d bytes; it must be %d", len(raw), MasterKeySize)
			}
			var o [MasterKeySize]byte
			copy(o[:], raw)
			if o != k.master && !slices.Contains(k.older, o) {
				k.older = append(k.older, o)
			}
		}
	}
	if k == nil {
		return nil, errors.New("no master key: want base64 of 32 bytes")
	}
	return k, nil
}

// all returns the master keys, primary first.
func (k *Keyring) all() [][MasterKeySize]byte {
	return append([][MasterKeySize]byte{k.master}, k.older...)
}

// checkValue is a value that tells whether two master keys are the same
// without revealing either: the first 8 bytes of a hash of a key derived
// for nothing else. It is the master key's id in sealed values.
func checkValue(master [MasterKeySize]byte) [8]byte {
	key, err := hkdf.Key(sha256.New, master[:], nil, "trail deployment check v1", 32)
	if err != nil {
		panic(fmt.Sprintf("keyring: hkdf: %v", err))
	}
	sum := sha256.Sum256(key)
	return [8]byte(sum[:8])
}

// CheckValues returns the check value of each master key, primary first, in
// hex: what the deployment records to tell whether replicas hold the same
// keys, and the key ids sealed values carry.
func (k *Keyring) CheckValues() []string {
	var out []string
	for _, m := range k.all() {
		c := checkValue(m)
		out = append(out, hex.EncodeToString(c[:]))
	}
	return out
}

// WithPrimary returns the keyring with the key of check value check as its
// primary and the others after it, in order; an error if it holds no such
// key.
func (k *Keyring) WithPrimary(check string) (*Keyring, error) {
	all := k.all()
	for i, c := range k.CheckValues() {
		if c == check {
			out := &Keyring{master: all[i]}
			for j, m := range all {
				if j != i {
					out.older = append(out.older, m)
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no master key with check value %s", check)
}

// Generate returns a keyring over a new random master key.
func Generate() (*Keyring, error) {
	k := &Keyring{}
	if _, err := rand.Read(k.master[:]); err != nil {
		return nil, fmt.Errorf("couldn't generate a master key: %w", err)
	}
	return k, nil
}

// String is the master keys' text form, for writing them to a file: one
// per line, the primary first.
func (k *Keyring) String() string {
	var lines []string
	for _, m := range k.all() {
		lines = append(lines, base64.StdEncoding.EncodeToString(m[:]))
	}
	return strings.Join(lines, "\n")
}

// LoadOrCreate reads dir/master.key, creating it (mode 0600, written to a
// temporary file and renamed so a crash never leaves half a key) on first
// start.
func LoadOrCreate(dir string) (*Keyring, error) {
	path := filepath.Join(dir, FileName)
	raw, err := os.ReadFile(path)
	if err == nil {
		k, err := Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("couldn't read the master key: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, FileName+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("couldn't create the master key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("couldn't restrict the master key file: %w", err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("couldn't write the master key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("couldn't write the master key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("couldn't write the master key: %w", err)
	}
	// Link rather than rename: if two processes race on first start, the
	// second fails and reads the winner's key instead of replacing it.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreate(dir)
		}
		return nil, fmt.Errorf("couldn't store the master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}

// Key derives the 32-byte key for purpose (a fixed label such as
// "trail export links v1") from the primary master key with HKDF-SHA256.
// The same master key and purpose always give the same key.
func (k *Keyring) Key(purpose string) []byte { return derive(k.master, purpose) }

func derive(master [MasterKeySize]byte, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, master[:], nil, purpose, 32)
	if err != nil {
		// Only possible for lengths beyond 255 hash blocks.
		panic(fmt.Sprintf("keyring: hkdf: %v", err))
	}
	return key
}

// Sealer encrypts small secrets at rest with AES-256-GCM (NIST SP 800-38D)
// under a key derived for one purpose from the primary master key, and
// opens what any master key of the keyring sealed.
type Sealer struct {
	ids   [][8]byte // master key check values, primary first
	aeads []cipher.AEAD
}

// Sealer returns the sealer for purpose.
func (k *Keyring) Sealer(purpose string) *Sealer {
	s := &Sealer{}
	for _, m := range k.all() {
		block, err := aes.NewCipher(derive(m, purpose))
		if err != nil {
			panic(fmt.Sprintf("keyring: aes: %v", err)) // 32-byte keys are always valid
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			panic(fmt.Sprintf("keyring: gcm: %v", err))
		}
		s.ids = append(s.ids, checkValue(m))
		s.aeads = append(s.aeads, aead)
	}
	return s
}

// sealedMagic starts a sealed value that names its master key: the magic,
// then the master key's 8-byte check value, then nonce, ciphertext and tag.
// Values without it (sealed before keys had ids) are tried with every key.
const sealedMagic = "tk1\x00"

// SealedUnderPrimary reports whether sealed names the primary master key:
// re-encryption skips such values.
func (s *Sealer) SealedUnderPrimary(sealed []byte) bool {
	id, _, ok := s.split(sealed)
	return ok && id == s.ids[0]
}

func (s *Sealer) split(sealed []byte) (id [8]byte, rest []byte, ok bool) {
	rest, ok = bytes.CutPrefix(sealed, []byte(sealedMagic))
	if !ok || len(rest) < 8 {
		return id, nil, false
	}
	return [8]byte(rest[:8]), rest[8:], true
}

// ErrOpen means a sealed value could not be opened: it was altered, sealed
// for other associated data, or sealed under another master key (a replica
// started without the deployment's shared master key).
var ErrOpen = errors.New("sealed value could not be decrypted: altered, or sealed under another master key")

// Seal encrypts plaintext, binding it to associatedData (for example the
// row's id, so a sealed value copied to another row does not open). The
// result is "tk1\x00", the primary master key's 8-byte check value, a
// random 12-byte nonce, then the ciphertext and tag.
func (s *Sealer) Seal(plaintext, associatedData []byte) []byte {
	aead := s.aeads[0]
	out := make([]byte, 0, len(sealedMagic)+8+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, sealedMagic...)
	out = append(out, s.ids[0][:]...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("keyring: random nonce: %v", err)) // crypto/rand never fails on Linux
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, associatedData)
}

// Open decrypts what Seal returned for the same associatedData, under
// whichever master key of the keyring the value names (or, for a value
// sealed before keys had ids, under any of them).
func (s *Sealer) Open(sealed, associatedData []byte) ([]byte, error) {
	if id, rest, ok := s.split(sealed); ok {
		for i, kid := range s.ids {
			if kid == id {
				if plain, err := open(s.aeads[i], rest, associatedData); err == nil {
					return plain, nil
				}
			}
		}
	}
	for _, aead := range s.aeads {
		if plain, err := open(aead, sealed, associatedData); err == nil {
			return plain, nil
		}
	}
	return nil, ErrOpen
}

func open(aead cipher.AEAD, sealed, associatedData []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], associatedData)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// fieldHashPurpose derives the field hashing keys (FieldHasher).
const fieldHashPurpose = "trail field hmac v1"

// FieldHashPrefix starts every value FieldHasher.Hash returns.
const FieldHashPrefix = "hmac:v1:"

// FieldHasher computes the keyed hashes a field policy stores instead of
// values (docs/PRIVACY.md), like Vault's audit hashing: HMAC-SHA256 under
// a key derived from a master key, of the organization's id, a zero byte
// and the value, written "hmac:v1:<key id>:<base64url>". The key id is the
// master key's check value, so a hash made before the master key was
// rotated still names its key, and HashAll gives a value's hash under every
// key the keyring holds, for searching across a rotation. The organization
// is part of the input so that one organization's hashes say nothing about
// another's: equal values of two tenants hash apart.
type FieldHasher struct {
	ids  []string // master key check values in hex, primary first
	keys [][]byte
}

// FieldHasher returns the field hasher of the keyring's master keys.
func (k *Keyring) FieldHasher() *FieldHasher {
	h := &FieldHasher{}
	for _, m := range k.all() {
		c := checkValue(m)
		h.ids = append(h.ids, hex.EncodeToString(c[:]))
		h.keys = append(h.keys, derive(m, fieldHashPurpose))
	}
	return h
}

// Hash returns value's keyed hash in organization org under the primary
// master key.
func (h *FieldHasher) Hash(org, value string) string { return h.hashWith(0, org, value) }

// KeyedHash is a value's hash under one master key.
type KeyedHash struct {
	KeyID   string `json:"key_id"`
	Primary bool   `json:"primary"`
	Hash    string `json:"hmac"`
}

// HashAll returns value's keyed hash in org under every master key, the
// primary's first.
func (h *FieldHasher) HashAll(org, value string) []KeyedHash {
	out := make([]KeyedHash, len(h.keys))
	for i := range h.keys {
		out[i] = KeyedHash{KeyID: h.ids[i], Primary: i == 0, Hash: h.hashWith(i, org, value)}
	}
	return out
}

func (h *FieldHasher) hashWith(i int, org, value string) string {
	m := hmac.New(sha256.New, h.keys[i])
	m.Write([]byte(org))
	m.Write([]byte{0})
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	buf := make([]byte, 0, len(FieldHashPrefix)+len(h.ids[i])+1+base64.RawURLEncoding.EncodedLen(sha256.Size))
	buf = append(buf, FieldHashPrefix...)
	buf = append(buf, h.ids[i]...)
	buf = append(buf, ':')
	buf = base64.RawURLEncoding.AppendEncode(buf, m.Sum(sum[:0]))
	return string(buf)
}
