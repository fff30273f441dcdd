package ledger_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

// A checkpoint is accepted when a key of the history that is not revoked
// signed it; during a rotation's overlap it carries both keys' signatures.
func TestKeyHistoryOpenCheckpoint(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	oldKey, err := ledger.GenerateSigner("trail.test")
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := ledger.GenerateSigner("trail.test")
	if err != nil {
		t.Fatal(err)
	}
	ck := ledger.Checkpoint{Origin: "trail.test/org_1", Size: 5, Hash: tlog.Hash{1}}
	sign := func(ss ...*ledger.Signer) []byte {
		msg, err := ledger.Signers(ss).Sign(ck)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	key := func(s *ledger.Signer, state ledger.KeyState) ledger.HistoryKey {
		until := time.Time{}
		if state != ledger.KeyActive {
			until = now
		}
		k, err := ledger.NewHistoryKey(s.VerifierKey(), state, now.Add(-time.Hour), until)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	history := func(ks ...ledger.HistoryKey) *ledger.KeyHistory {
		h := &ledger.KeyHistory{}
		for _, k := range ks {
			if err := h.Add(k); err != nil {
				t.Fatal(err)
			}
		}
		// Through its text form, as a verifier receives it.
		parsed, err := ledger.ParseKeyHistory(h.String())
		if err != nil {
			t.Fatalf("%v\n%s", err, h)
		}
		return parsed
	}
	for _, tc := range []struct {
		name    string
		note    []byte
		history *ledger.KeyHistory
		signed  int    // keys that verified, when accepted
		err     string // else the error says this
	}{
		{"old key, before rotation", sign(oldKey), history(key(oldKey, ledger.KeyActive)), 1, ""},
		{"overlap, old key only known", sign(oldKey, newKey), history(key(oldKey, ledger.KeyActive)), 1, ""},
		{"overlap, new key only known", sign(oldKey, newKey), history(key(newKey, ledger.KeyActive)), 1, ""},
		{"overlap, both known", sign(oldKey, newKey), history(key(oldKey, ledger.KeyActive), key(newKey, ledger.KeyActive)), 2, ""},
		{"after retirement, old key only known", sign(newKey), history(key(oldKey, ledger.KeyActive)), 0, "is not signed by key"},
		{"after retirement, history", sign(newKey), history(key(oldKey, ledger.KeyRetired), key(newKey, ledger.KeyActive)), 1, ""},
		{"signed by the retired key before it retired", sign(oldKey), history(key(oldKey, ledger.KeyRetired), key(newKey, ledger.KeyActive)), 1, ""},
		{"signed only by a revoked key", sign(oldKey), history(key(oldKey, ledger.KeyRevoked), key(newKey, ledger.KeyActive)), 0, "revoked (compromised) key"},
		{"revoked key beside the current one", sign(oldKey, newKey), history(key(oldKey, ledger.KeyRevoked), key(newKey, ledger.KeyActive)), 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, signed, err := tc.history.OpenCheckpoint(tc.note)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != ck || len(signed) != tc.signed {
				t.Fatalf("got %+v signed by %d keys, want %+v by %d", got, len(signed), ck, tc.signed)
			}
		})
	}
}

func TestParseKeyHistoryRejects(t *testing.T) {
	s, err := ledger.GenerateSigner("trail.test")
	if err != nil {
		t.Fatal(err)
	}
	vk := s.VerifierKey()
	for _, tc := range []struct{ name, text, want string }{
		{"no magic", vk + " active -\n", "starts with"},
		{"no keys", "trail-keys v1\n", "no keys"},
		{"bad state", "trail-keys v1\n" + vk + " lost -\n", "key state"},
		{"bad time", "trail-keys v1\n" + vk + " retired yesterday -\n", "RFC 3339"},
		{"active with until", "trail-keys v1\n" + vk + " active - 2026-01-01T00:00:00Z\n", "no until"},
		{"bad key", "trail-keys v1\nnot+a+key active -\n", "invalid verifier key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ledger.ParseKeyHistory(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
