package main

import (
	"strings"
	"testing"
)

// Mistakes in trail witness's and trail serve's witness settings are usage
// errors (exit 2) that name the setting.
func TestWitnessSettings(t *testing.T) {
	signer := newTestSigner(t)
	w := newWitnessSigner(t, "w1.example")
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"witness without a log", []string{"witness", "--data", t.TempDir()}, "give at least one log"},
		{"witness log without a key", []string{"witness", "--data", t.TempDir(), "--log", "trail.test/*"}, "--log"},
		{"witness log with a bad key", []string{"witness", "--data", t.TempDir(), "--log", "trail.test/* nope+1+AA"}, "invalid verifier key"},
		{"witness star inside the origin", []string{"witness", "--data", t.TempDir(), "--log", "trail.*/x " + signer.VerifierKey()}, "* may only end a prefix"},
		{"witness log file missing", []string{"witness", "--data", t.TempDir(), "--log-file", "/nonexistent/logs"}, "--log-file"},
		{"serve witness without URL", []string{"serve", "--data", t.TempDir(), "--check-config", "--witness", w.Verifier().String()}, "--witness"},
		{"serve witness with a log key", []string{"serve", "--data", t.TempDir(), "--check-config", "--witness", "http://w.example " + signer.VerifierKey()}, "not an Ed25519 cosignature/v1 key"},
		{"serve quorum above witnesses", []string{"serve", "--data", t.TempDir(), "--check-config", "--witness", "http://w.example " + w.Verifier().String(), "--witness-quorum", "2"}, "--witness-quorum 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runTrail(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %q", code, stderr, tc.stderr)
			}
		})
	}
	// A valid configuration passes --check-config.
	code, stdout, stderr := runTrail(t, "serve", "--data", t.TempDir(), "--check-config",
		"--witness", "https://w.example "+w.Verifier().String(), "--witness-quorum", "1")
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("valid witness settings: exit %d\n%s%s", code, stdout, stderr)
	}
}
