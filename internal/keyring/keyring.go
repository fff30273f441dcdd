// Package keyring owns the deployment's master key and the keys derived from
// it: one 32-byte secret, kept in the data directory (or given by
// configuration, so that replicas on one database share it), from which every
// feature derives its own key with HKDF-SHA256 (RFC 5869) under a purpose
// label. No feature ever uses the master key directly, so a key leaked from
// one purpose (say, signed download links) says nothing about another (say,
// encrypted stream credentials).
//
// The checkpoint signing key is not derived from it: verifiers hold its public
// half, so it is its own file with its own life (package ledger).
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeySize is the size of the master key in bytes.
const MasterKeySize = 32

// FileName is the master key's file in the data directory.
const FileName = "master.key"

// Keyring holds the master key.
type Keyring struct {
	master [MasterKeySize]byte
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

// Parse reads a master key in its text form: standard base64 of 32 bytes,
// surrounding space ignored.
func Parse(text string) (*Keyring, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("master key is not base64: %w", err)
	}
	return New(raw)
}

// Generate returns a keyring over a new random master key.
func Generate() (*Keyring, error) {
	k := &Keyring{}
	if _, err := rand.Read(k.master[:]); err != nil {
		return nil, fmt.Errorf("couldn't generate a master key: %w", err)
	}
	return k, nil
}

// String is the master key's text form, for writing it to a file.
func (k *Keyring) String() string { return base64.StdEncoding.EncodeToString(k.master[:]) }

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
// "trail export links v1") with HKDF-SHA256. The same master key and
// purpose always give the same key.
func (k *Keyring) Key(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.master[:], nil, purpose, 32)
	if err != nil {
		// Only possible for lengths beyond 255 hash blocks.
		panic(fmt.Sprintf("keyring: hkdf: %v", err))
	}
	return key
}

// Sealer encrypts small secrets at rest with AES-256-GCM (NIST SP 800-38D)
// under a key derived for one purpose.
type Sealer struct {
	aead cipher.AEAD
}

// Sealer returns the sealer for purpose.
func (k *Keyring) Sealer(purpose string) *Sealer {
	block, err := aes.NewCipher(k.Key(purpose))
	if err != nil {
		panic(fmt.Sprintf("keyring: aes: %v", err)) // 32-byte keys are always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("keyring: gcm: %v", err))
	}
	return &Sealer{aead: aead}
}

// ErrOpen means a sealed value could not be opened: it was altered, sealed
// for other associated data, or sealed under another master key (a replica
// started without the deployment's shared master key).
var ErrOpen = errors.New("sealed value could not be decrypted: altered, or sealed under another master key")

// Seal encrypts plaintext, binding it to associatedData (for example the
// row's id, so a sealed value copied to another row does not open). The
// result is a random 12-byte nonce followed by the ciphertext and tag.
func (s *Sealer) Seal(plaintext, associatedData []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("keyring: random nonce: %v", err)) // crypto/rand never fails on Linux
	}
	return s.aead.Seal(nonce, nonce, plaintext, associatedData)
}

// Open decrypts what Seal returned for the same associatedData.
func (s *Sealer) Open(sealed, associatedData []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], associatedData)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
