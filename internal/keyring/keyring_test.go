package keyring_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/keyring"
)

func TestLoadOrCreateKeepsTheKey(t *testing.T) {
	dir := t.TempDir()
	a, err := keyring.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, keyring.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := keyring.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Error("a second start made a new master key")
	}
	if !bytes.Equal(a.Key("x"), b.Key("x")) {
		t.Error("same master and purpose gave different keys")
	}
	if bytes.Equal(a.Key("x"), a.Key("y")) {
		t.Error("two purposes gave the same key")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", true},
		{"  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", true},
		{"AAAA", false},
		{"not base64!", false},
		{"", false},
	} {
		_, err := keyring.Parse(tc.text)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error %v, want ok=%v", tc.text, err, tc.ok)
		}
	}
}

func TestSealer(t *testing.T) {
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := k.Sealer("stream secrets")
	sealed := s.Seal([]byte("hunter2"), []byte("ls_1"))
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed value contains the plaintext")
	}
	plain, err := s.Open(sealed, []byte("ls_1"))
	if err != nil || string(plain) != "hunter2" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	if _, err := s.Open(sealed, []byte("ls_2")); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("opened with other associated data: %v", err)
	}
	if _, err := k.Sealer("other purpose").Open(sealed, []byte("ls_1")); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("opened under another purpose: %v", err)
	}
	other, _ := keyring.Generate()
	if _, err := other.Sealer("stream secrets").Open(sealed, []byte("ls_1")); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("opened under another master key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, []byte("ls_1")); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("opened an altered value: %v", err)
	}
	if _, err := s.Open([]byte("short"), nil); !errors.Is(err, keyring.ErrOpen) {
		t.Errorf("opened a short value: %v", err)
	}
}

// legacySeal seals as values were sealed before master keys had ids: a
// nonce, then ciphertext and tag, under the purpose's key.
func legacySeal(t *testing.T, k *keyring.Keyring, purpose string, plain, ad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(k.Key(purpose))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(nonce, nonce, plain, ad)
}

// Master-key rotation: a keyring of the new and the old key opens what
// either sealed (and what was sealed before keys had ids), seals under the
// new one, and tells which values still need re-sealing; without the old
// key, only what was re-sealed opens.
func TestRotation(t *testing.T) {
	oldKey, _ := keyring.Generate()
	newKey, _ := keyring.Generate()
	both, err := keyring.Parse(newKey.String() + "\n# the old key, until re-encrypted\n" + oldKey.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := both.CheckValues(); len(got) != 2 || got[0] != newKey.CheckValues()[0] || got[1] != oldKey.CheckValues()[0] {
		t.Fatalf("CheckValues = %v", got)
	}
	const purpose = "stream secrets"
	ad := []byte("ls_1")
	underOld := oldKey.Sealer(purpose).Seal([]byte("old"), ad)
	legacy := legacySeal(t, oldKey, purpose, []byte("legacy"), ad)
	underNew := both.Sealer(purpose).Seal([]byte("new"), ad)
	for _, tc := range []struct {
		name         string
		sealed       []byte
		plain        string
		underNew     bool // SealedUnderPrimary of the two-key keyring
		opensNewOnly bool // opens with the new key alone
	}{
		{"sealed under the old key", underOld, "old", false, false},
		{"sealed before key ids", legacy, "legacy", false, false},
		{"sealed under the new key", underNew, "new", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := both.Sealer(purpose)
			plain, err := s.Open(tc.sealed, ad)
			if err != nil || string(plain) != tc.plain {
				t.Fatalf("Open = %q, %v; want %q", plain, err, tc.plain)
			}
			if got := s.SealedUnderPrimary(tc.sealed); got != tc.underNew {
				t.Errorf("SealedUnderPrimary = %v, want %v", got, tc.underNew)
			}
			resealed := s.Seal(plain, ad)
			if !s.SealedUnderPrimary(resealed) {
				t.Error("a re-sealed value is not under the primary key")
			}
			if p, err := newKey.Sealer(purpose).Open(resealed, ad); err != nil || string(p) != tc.plain {
				t.Errorf("the new key alone does not open the re-sealed value: %q, %v", p, err)
			}
			_, err = newKey.Sealer(purpose).Open(tc.sealed, ad)
			if (err == nil) != tc.opensNewOnly {
				t.Errorf("the new key alone opens the original: %v, want %v", err == nil, tc.opensNewOnly)
			}
		})
	}
	// The deployment decides the primary: WithPrimary reorders.
	oldFirst, err := both.WithPrimary(oldKey.CheckValues()[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(oldFirst.Key("x"), oldKey.Key("x")) || !oldFirst.Sealer(purpose).SealedUnderPrimary(underOld) {
		t.Error("WithPrimary did not make the old key primary")
	}
	if _, err := both.WithPrimary("0000000000000000"); err == nil {
		t.Error("WithPrimary accepted a key the keyring does not hold")
	}
}
