package keyring_test

import (
	"bytes"
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
