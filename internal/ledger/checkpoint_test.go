package ledger_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

func TestCheckpointFormat(t *testing.T) {
	c := ledger.Checkpoint{Origin: ledger.Origin("trail.example.com/log", "org_1"), Size: 1204331, Hash: tlog.Hash{1, 2, 3}}
	body := string(ledger.FormatCheckpoint(c))
	want := "trail.example.com/log/org_1\n1204331\nAQIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	if body != want {
		t.Fatalf("FormatCheckpoint = %q, want %q", body, want)
	}
	if got, err := ledger.ParseCheckpointBody([]byte(body)); err != nil || got != c {
		t.Fatalf("ParseCheckpointBody = %+v, %v", got, err)
	}
	if org := ledger.OrganizationOf(c.Origin); org != "org_1" {
		t.Errorf("OrganizationOf = %q", org)
	}
	hash := tlog.Hash{1, 2, 3}.String()
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"o\n0\n" + hash + "\n", true},
		{"o\n5\n" + hash + "\next one\n", true}, // extension lines are allowed
		{"o\n5\n" + hash, false},                // no final newline
		{"o\n5\n", false},
		{"\n5\n" + hash + "\n", false},
		{"o\n05\n" + hash + "\n", false},
		{"o\n-5\n" + hash + "\n", false},
		{"o\nfive\n" + hash + "\n", false},
		{"o\n5\nAAAA\n", false},
		{"o\n5\n" + hash + "\n\n", false}, // empty extension line
	} {
		_, err := ledger.ParseCheckpointBody([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("ParseCheckpointBody(%q) = %v, want ok=%v", tc.body, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ledger.ErrMalformedCheckpoint) {
			t.Errorf("ParseCheckpointBody(%q) error %v is not ErrMalformedCheckpoint", tc.body, err)
		}
	}
}

func TestCheckpointSignatures(t *testing.T) {
	signer, other := newSigner(t), newSigner(t)
	c := ledger.Checkpoint{Origin: testPrefix + "/org_1", Size: 7, Hash: tlog.Hash{9}}
	msg, err := signer.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "\n\n— "+testPrefix+" ") {
		t.Errorf("not a signed note: %q", msg)
	}
	if got, err := ledger.ParseCheckpoint(msg, signer.Verifier()); err != nil || got != c {
		t.Fatalf("ParseCheckpoint = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		v    note.Verifier
		want string
	}{
		{"another key", msg, other.Verifier(), "is not signed by key"},
		{"altered body", []byte(strings.Replace(string(msg), "\n7\n", "\n8\n", 1)), signer.Verifier(), "does not verify"},
		{"not a note", []byte("hello\n"), signer.Verifier(), "malformed"},
	} {
		if _, err := ledger.ParseCheckpoint(tc.msg, tc.v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := ledger.LoadOrCreateSigner(dir, "trail.example")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ledger.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ledger.SigningKeyFile))
	if !strings.HasPrefix(string(raw), "PRIVATE+KEY+trail.example+") {
		t.Errorf("signing key file %q", raw)
	}
	// Reloading keeps the key, whatever name is asked for now.
	s2, err := ledger.LoadOrCreateSigner(dir, "renamed")
	if err != nil {
		t.Fatal(err)
	}
	if s1.VerifierKey() != s2.VerifierKey() || s2.Name() != "trail.example" {
		t.Errorf("reloaded key %q, first %q", s2.VerifierKey(), s1.VerifierKey())
	}
	// The verifier key verifies what the signer signs.
	v, err := note.NewVerifier(s1.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := s2.Sign(ledger.Checkpoint{Origin: "trail.example/org", Size: 1})
	if _, err := ledger.ParseCheckpoint(msg, v); err != nil {
		t.Errorf("verifier key does not verify: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data directory holds %d files, want only the key", len(entries))
	}
}

func TestNewSignerFromKeyRejects(t *testing.T) {
	good := newSigner(t)
	for _, skey := range []string{
		"", "nonsense", good.VerifierKey(), "PRIVATE+KEY+x+00000000+AQ==",
		"PRIVATE+KEY+x+00000000+" + strings.Repeat("A", 44),
	} {
		if _, err := ledger.NewSignerFromKey(skey); err == nil {
			t.Errorf("NewSignerFromKey(%q) succeeded", skey)
		}
	}
}
