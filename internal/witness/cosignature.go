package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// algCosignatureV1 is the signature type byte of Ed25519 cosignature/v1
// keys (C2SP tlog-cosignature).
const algCosignatureV1 = 0x04

// KeyFile is the name of the witness's private key in its data directory.
const KeyFile = "witness.key"

// cosignatureMessage returns what a cosignature/v1 signs: the header line,
// the timestamp line, then the checkpoint note body.
func cosignatureMessage(t uint64, body []byte) []byte {
	m := make([]byte, 0, len(body)+40)
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// keyID is SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4], big-endian.
func keyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.ContainsRune(name, '+') &&
		strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}

// Verifier checks Ed25519 cosignature/v1 signatures of one witness key. It is
// a note.Verifier, so note.Open counts its signatures on a checkpoint.
type Verifier struct {
	name string
	id   uint32
	pub  ed25519.PublicKey
}

var _ note.Verifier = (*Verifier)(nil)

// Name is the witness's key name.
func (v *Verifier) Name() string { return v.name }

// KeyHash is the key ID of the signature lines.
func (v *Verifier) KeyHash() uint32 { return v.id }

// Verify reports whether sig (8-byte big-endian timestamp ‖ Ed25519
// signature) is a cosignature/v1 of the note body msg.
func (v *Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.pub, cosignatureMessage(t, msg), sig[8:])
}

// String returns the verifier key: "<name>+<key ID>+<base64(0x04 ‖ key)>".
func (v *Verifier) String() string {
	return fmt.Sprintf("%s+%08x+%s", v.name, v.id,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, v.pub...)))
}

// ParseVerifierKey parses a witness verifier key
// ("<name>+<hex key ID>+<base64 of 0x04 ‖ 32-byte Ed25519 key>").
func ParseVerifierKey(vkey string) (*Verifier, error) {
	f := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(f) != 3 {
		return nil, fmt.Errorf("witness key %q: want <name>+<key id>+<base64 key>", vkey)
	}
	name, idHex, b64 := f[0], f[1], f[2]
	if !validKeyName(name) {
		return nil, fmt.Errorf("witness key %q: invalid name %q", vkey, name)
	}
	id, err := strconv.ParseUint(idHex, 16, 32)
	if err != nil || len(idHex) != 8 {
		return nil, fmt.Errorf("witness key %q: key id %q is not 8 hex digits", vkey, idHex)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("witness key %q: key is not base64: %w", vkey, err)
	}
	if len(raw) != 1+ed25519.PublicKeySize || raw[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness key %q is not an Ed25519 cosignature/v1 key (type byte 0x04 and 32 bytes)", vkey)
	}
	pub := ed25519.PublicKey(raw[1:])
	if keyID(name, pub) != uint32(id) {
		return nil, fmt.Errorf("witness key %q: key id does not match the key", vkey)
	}
	return &Verifier{name: name, id: uint32(id), pub: pub}, nil
}

// Signer makes cosignature/v1 signatures with one Ed25519 key. It is a
// note.Signer: note.Sign with it cosigns a checkpoint.
type Signer struct {
	v    Verifier
	priv ed25519.PrivateKey
	// now is the clock of the timestamps (time.Now when nil).
	now func() time.Time
}

var _ note.Signer = (*Signer)(nil)

// NewSigner returns a cosigner named name with the given key.
func NewSigner(name string, priv ed25519.PrivateKey) (*Signer, error) {
	if !validKeyName(name) {
		return nil, fmt.Errorf("witness name %q must be printable, without spaces or +", name)
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{v: Verifier{name: name, id: keyID(name, pub), pub: pub}, priv: priv}, nil
}

// Name is the key name of the signature lines.
func (s *Signer) Name() string { return s.v.name }

// KeyHash is the key ID of the signature lines.
func (s *Signer) KeyHash() uint32 { return s.v.id }

// Verifier returns the verifier of this signer's cosignatures.
func (s *Signer) Verifier() *Verifier { return &s.v }

// Sign cosigns the note body msg at the current time.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	t := uint64(now().Unix())
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), t)
	return append(sig, ed25519.Sign(s.priv, cosignatureMessage(t, msg))...), nil
}

// privateKey returns the key file form:
// "PRIVATE+KEY+<name>+<key ID>+<base64(0x04 ‖ seed)>".
func (s *Signer) privateKey() string {
	return fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", s.v.name, s.v.id,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, s.priv.Seed()...)))
}

// ParseSigner parses a private key written by LoadOrCreateSigner.
func ParseSigner(skey string) (*Signer, error) {
	f := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(f) != 5 || f[0] != "PRIVATE" || f[1] != "KEY" {
		return nil, errors.New("not a witness private key (want PRIVATE+KEY+<name>+<key id>+<key>)")
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algCosignatureV1 {
		return nil, errors.New("not an Ed25519 cosignature/v1 private key")
	}
	s, err := NewSigner(f[2], ed25519.NewKeyFromSeed(raw[1:]))
	if err != nil {
		return nil, err
	}
	if fmt.Sprintf("%08x", s.v.id) != f[3] {
		return nil, errors.New("witness private key: key id does not match the key")
	}
	return s, nil
}

// LoadOrCreateSigner reads <dir>/witness.key, or on first start generates a
// key named name and writes it there (mode 0600). An existing key is kept
// whatever name is given: its verifier key is what log operators configured.
func LoadOrCreateSigner(dir, name string) (*Signer, error) {
	path := filepath.Join(dir, KeyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("couldn't generate a witness key: %w", err)
		}
		s, err := NewSigner(name, priv)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("couldn't create data directory %s: %w", dir, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("couldn't create witness key %s: %w", path, err)
		}
		if _, err := f.WriteString(s.privateKey() + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("couldn't write witness key %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("couldn't sync witness key %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("couldn't write witness key %s: %w", path, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read witness key %s: %w", path, err)
	}
	s, err := ParseSigner(string(raw))
	if err != nil {
		return nil, fmt.Errorf("witness key %s: %w", path, err)
	}
	return s, nil
}

// Cosigner is a witness whose cosignature a checkpoint carries.
type Cosigner struct {
	Name string
	Key  string // verifier key
	Time time.Time
}

// CheckCosignatures returns the witnesses among vs whose cosignature/v1 on
// the checkpoint note msg verifies, and those whose signature line is there
// but does not verify (a forged or altered cosignature) in bad. Lines of
// other keys are ignored.
func CheckCosignatures(msg []byte, vs []*Verifier) (good []Cosigner, bad []string) {
	for _, v := range vs {
		n, err := note.Open(msg, note.VerifierList(v))
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &invalid):
			bad = append(bad, v.Name())
		case err == nil:
			c := Cosigner{Name: v.Name(), Key: v.String()}
			for _, s := range n.Sigs {
				if raw, err := base64.StdEncoding.DecodeString(s.Base64); err == nil && len(raw) >= 12 {
					c.Time = time.Unix(int64(binary.BigEndian.Uint64(raw[4:12])), 0).UTC()
				}
			}
			good = append(good, c)
		}
	}
	return good, bad
}
