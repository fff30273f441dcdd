package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// SigningKeyFile is the name of the signing key in the data directory.
const SigningKeyFile = "signing.key"

// Signer signs checkpoints with one Ed25519 note key.
type Signer struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	skey     string
}

// LoadOrCreateSigner reads the note signing key in <dataDir>/signing.key, or,
// on first start, generates one named name and writes it there with mode 0600.
// An existing key is used as it is, whatever its name: changing the key would
// leave every verifier holding the old verifier key unable to check new
// checkpoints.
func LoadOrCreateSigner(dataDir, name string) (*Signer, error) {
	path := filepath.Join(dataDir, SigningKeyFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(dataDir, path, name); err != nil {
			return nil, err
		}
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read signing key %s: %w", path, err)
	}
	s, err := NewSignerFromKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}

// createKey writes a new key so that path either does not exist or holds a
// complete key: the key goes to a temporary file, is synced, then linked into
// place (link fails if another process got there first, whose key is kept).
func createKey(dataDir, path, name string) error {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("couldn't generate a signing key named %q: %w", name, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("couldn't create data directory %s: %w", dataDir, err)
	}
	tmp, err := os.CreateTemp(dataDir, SigningKeyFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("couldn't create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("couldn't restrict signing key permissions: %w", err)
	}
	if _, err := tmp.WriteString(skey + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("couldn't write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("couldn't sync signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("couldn't write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("couldn't install signing key %s: %w", path, err)
	}
	return syncDir(dataDir)
}

// NewSignerFromKey returns a signer for a note private key
// ("PRIVATE+KEY+<name>+<hash>+<key data>", as note.GenerateKey makes).
func NewSignerFromKey(skey string) (*Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("invalid note signing key (want PRIVATE+KEY+<name>+<hash>+<key>): %w", err)
	}
	// note derives no verifier from a signer key: decode the Ed25519 seed
	// (algorithm byte 1, then 32 bytes) to get its public key.
	// PRIVATE+KEY+<name>+<hash>+<key>: the key's base64 may contain '+'.
	f := strings.SplitN(skey, "+", 5)
	if len(f) != 5 {
		return nil, errors.New("invalid note signing key: want PRIVATE+KEY+<name>+<hash>+<key>")
	}
	data, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(data) != 1+ed25519.SeedSize || data[0] != 1 {
		return nil, errors.New("invalid note signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(data[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive verifier key: %w", err)
	}
	if v.KeyHash() != s.KeyHash() {
		return nil, errors.New("invalid note signing key: its key hash does not match its key")
	}
	return &Signer{signer: s, verifier: v, vkey: vkey, skey: skey}, nil
}

// Name is the key name that appears on signature lines.
func (s *Signer) Name() string { return s.signer.Name() }

// VerifierKey returns the public verifier key in note format
// ("<name>+<hash>+<key data>"), what `trail verify --key` takes.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier returns the verifier of this signer's signatures.
func (s *Signer) Verifier() note.Verifier { return s.verifier }

// SignText signs text as a signed note's text and returns the signature's
// base64 (4-byte key hash ‖ 64-byte Ed25519 signature), as on a signature
// line.
func (s *Signer) SignText(text string) (string, error) {
	msg, err := note.Sign(&note.Note{Text: text}, s.signer)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(msg[len(text)+1:]))
	if len(f) != 3 {
		return "", fmt.Errorf("unexpected signature line %q", msg[len(text)+1:])
	}
	return f[2], nil
}

// Sign returns the signed checkpoint note of c.
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(FormatCheckpoint(c))}, s.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint %s/%d: %w", c.Origin, c.Size, err)
	}
	return msg, nil
}

// CheckpointSigner signs checkpoints: a *Signer with its one key, or a
// deployment's current set of keys during a rotation (Signers).
type CheckpointSigner interface {
	Sign(c Checkpoint) ([]byte, error)
}

// ErrNoSigningKey means a checkpoint could not be signed because no key is
// active (or the log is frozen).
var ErrNoSigningKey = errors.New("no active signing key")

// Signers signs each checkpoint with every key in it, one signature line
// each, in order (C2SP signed-note allows several): how a log signs during
// a key rotation's overlap, so that verifiers holding either key accept it.
type Signers []*Signer

// SelectionSigner signs a subset bundle's selection line: SignText returns
// the base64 signature of text as a signed note's text by a key that
// signs the log's checkpoints. *Signer and Signers are SelectionSigners.
type SelectionSigner interface {
	SignText(text string) (string, error)
}

var (
	_ SelectionSigner = (*Signer)(nil)
	_ SelectionSigner = Signers(nil)
)

// SignText signs text with the first key (Signers are in the order the
// deployment's history lists its active keys).
func (s Signers) SignText(text string) (string, error) {
	if len(s) == 0 {
		return "", ErrNoSigningKey
	}
	return s[0].SignText(text)
}

// Sign returns the signed checkpoint note of c, signed by every key.
func (s Signers) Sign(c Checkpoint) ([]byte, error) {
	if len(s) == 0 {
		return nil, fmt.Errorf("couldn't sign checkpoint %s/%d: %w", c.Origin, c.Size, ErrNoSigningKey)
	}
	ns := make([]note.Signer, len(s))
	for i, k := range s {
		ns[i] = k.signer
	}
	msg, err := note.Sign(&note.Note{Text: string(FormatCheckpoint(c))}, ns...)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint %s/%d: %w", c.Origin, c.Size, err)
	}
	return msg, nil
}

// PrivateKey returns the note private key ("PRIVATE+KEY+…"), for sealing
// it in the deployment's key history. Keep it secret.
func (s *Signer) PrivateKey() string { return s.skey }

// GenerateSigner returns a signer with a new Ed25519 key named name.
func GenerateSigner(name string) (*Signer, error) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, fmt.Errorf("couldn't generate a signing key named %q: %w", name, err)
	}
	return NewSignerFromKey(skey)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("couldn't open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("couldn't sync directory %s: %w", dir, err)
	}
	return nil
}
