package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/witness"
)

func newWitnessSigner(t *testing.T, name string) *witness.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := witness.NewSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cosignBundle returns bundle with the witnesses' cosignatures appended to
// its checkpoint note, as the server serves it once they cosigned.
func cosignBundle(t *testing.T, bundle []byte, ws ...*witness.Signer) []byte {
	t.Helper()
	magic, rest, _ := bytes.Cut(bundle, []byte("\n"))
	header, rest, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.Atoi(strings.TrimPrefix(string(header), "checkpoint "))
	if err != nil {
		t.Fatalf("bundle header %q", header)
	}
	msg, tail := bytes.Clone(rest[:n]), rest[n:]
	_, err = note.Open(msg, nil)
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		t.Fatal(err)
	}
	text := unverified.Note.Text
	for _, w := range ws {
		signed, err := note.Sign(&note.Note{Text: text}, w)
		if err != nil {
			t.Fatal(err)
		}
		msg = append(msg, signed[bytes.LastIndex(signed, []byte("\n\n"))+2:]...)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%s\ncheckpoint %d\n", magic, len(msg))
	out.Write(msg)
	out.Write(tail)
	return out.Bytes()
}

func TestVerifyWitnesses(t *testing.T) {
	const org = "org_witnessed"
	signer := newTestSigner(t)
	l := newTestLog(t, signer, org, 300)
	vkey := signer.VerifierKey()
	w1, w2, w3 := newWitnessSigner(t, "w1.example"), newWitnessSigner(t, "w2.example"), newWitnessSigner(t, "w3.example")
	k1, k2 := w1.Verifier().String(), w2.Verifier().String()
	full := l.bundle(t, ledger.BundleOptions{})
	both := cosignBundle(t, full, w1, w2)
	one := cosignBundle(t, full, w1)
	other := cosignBundle(t, full, w3)
	// A forged cosignature: one base64 character of w1's signature changed.
	forged := bytes.Clone(both)
	i := bytes.Index(forged, []byte("— w1.example ")) + len("— w1.example ") + 30
	if forged[i] == 'A' {
		forged[i] = 'B'
	} else {
		forged[i] = 'A'
	}
	keys := writeTemp(t, "witnesses", []byte("# the auditors' witnesses\n"+k1+"\n"+k2+"\n"))

	for _, tc := range []struct {
		name   string
		bundle []byte
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"both cosigned, quorum 2", both, []string{"--witness", k1, "--witness", k2, "--quorum", "2"}, 0,
			[]string{"Cosigned by witness w1.example at ", "Cosigned by witness w2.example at ", "Witness quorum met: 2 of 2"}, ""},
		{"quorum defaults to every witness given", one, []string{"--witness", k1, "--witness", k2}, 1,
			[]string{"Cosigned by witness w1.example", "No cosignature of witness w2.example"}, "has 1 valid of the 2 required"},
		{"one of two is enough for quorum 1", one, []string{"--witness", k1, "--witness", k2, "--quorum", "1"}, 0,
			[]string{"Witness quorum met: 1 of 1"}, ""},
		{"keys from a file", both, []string{"--witness", keys, "--quorum", "2"}, 0, []string{"Witness quorum met: 2 of 2"}, ""},
		{"no cosignatures", full, []string{"--witness", k1, "--quorum", "1"}, 1,
			[]string{"No cosignature of witness w1.example"}, "not enough witness cosignatures"},
		{"another witness's cosignature does not count", other, []string{"--witness", k1, "--witness", k2, "--quorum", "1"}, 1,
			[]string{"No cosignature of witness w1.example, w2.example"}, "has 0 valid"},
		{"forged cosignature", forged, []string{"--witness", k1, "--witness", k2, "--quorum", "2"}, 1,
			[]string{"INVALID cosignature of witness w1.example"}, "has 1 valid of the 2 required"},
		{"quorum above the witnesses given", both, []string{"--witness", k1, "--quorum", "2"}, 2, nil, "--quorum 2"},
		{"not a witness key", both, []string{"--witness", vkey}, 2, nil, "--witness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "bundle", tc.bundle)
			code, stdout, stderr := runTrail(t, append([]string{"verify", path, "--key", vkey}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}
