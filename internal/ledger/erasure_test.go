package ledger_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

// tombstone returns a tombstone record of org at seq naming seqs, signed
// by signer (or with a made-up signature when signer is nil).
func tombstone(t *testing.T, signer *ledger.Signer, org string, seq int64, seqs string) []byte {
	t.Helper()
	ts := ledger.ErasureTombstone{OrganizationID: org, ErasureID: "ers_1", ErasedAt: "2026-11-25T18:00:00.000Z",
		Subject: "hmac:v1:k:abc", Part: "1/1", Seqs: seqs}
	sig := "AAAA" + strings.Repeat("A", 88)
	if signer != nil {
		var err error
		if sig, err = signer.SignText(ts.Text()); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Appendf(nil, `{"id":"evt_%026d","organization_id":%q,"seq":%d,"received_at":"2026-11-25T18:00:00.000Z","action":%q,"occurred_at":"2026-11-25T18:00:00.000Z","actor":{"id":"key_1","type":"api_key"},"targets":[{"id":"ers_1","type":"erasure"}],"context":{"location":"trail"},"metadata":{"erased_at":%q,"erasure_id":"ers_1","part":"1/1","seqs":%q,"signature":%q,"subject":"hmac:v1:k:abc"}}`,
		seq, org, seq, ledger.ErasureAction, ts.ErasedAt, seqs, sig)
}

func TestVerifyReportsErasedSeqs(t *testing.T) {
	const org = "org_erased"
	signer := newSigner(t)
	for _, tt := range []struct {
		name      string
		signed    bool
		ok        bool
		erased    string // what the report says of the erased records
		stillMiss string
	}{
		{"signed tombstone", true, true, "seq 3–5 erased by request ers_1", ""},
		{"forged tombstone", false, false, "", "seq 3–5 (3 records) are not in the bundle"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemStorage()
			addRecords(m, org, 10)
			s := signer
			if !tt.signed {
				s = nil
			}
			m.Mu.Lock()
			l := m.Log(org)
			l.Records = append(l.Records, tombstone(t, s, org, 10, "3-5,7"))
			m.Mu.Unlock()
			i := startIntegrator(t, m, signer, t.TempDir(), ledger.Options{})
			waitIdle(t, i)
			// Erase 3–5 (named by the tombstone) and 8 (not named).
			m.Mu.Lock()
			for _, q := range []int{3, 4, 5, 8} {
				l.Records[q] = nil
			}
			m.Mu.Unlock()
			raw := writeBundle(t, m, org, ledger.BundleOptions{})
			rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{})
			text := rep.String()
			if !hasProblem(rep, ledger.ProblemMissing, "seq 8 is not in the bundle") {
				t.Errorf("seq 8, erased without a tombstone, is not reported missing:\n%s", text)
			}
			if tt.stillMiss != "" && !hasProblem(rep, ledger.ProblemMissing, tt.stillMiss) {
				t.Errorf("report lacks %q:\n%s", tt.stillMiss, text)
			}
			if tt.erased != "" && !strings.Contains(text, tt.erased) {
				t.Errorf("report lacks %q:\n%s", tt.erased, text)
			}
			if tt.signed && (len(rep.Erased) != 1 || rep.Erased[0].Seq != 3 || rep.Erased[0].SeqEnd != 5 || rep.ProblemCount != 1) {
				t.Errorf("erased %+v, %d problems; want seq 3–5 erased and one problem (seq 8)", rep.Erased, rep.ProblemCount)
			}
			if !tt.signed && len(rep.Erased) != 0 {
				t.Errorf("a forged tombstone was believed: %+v", rep.Erased)
			}
			_ = err
		})
	}
	// With every erased seq named, the bundle verifies: a run, or every
	// other record (which a verifier must not take for records out of
	// order).
	for _, seqs := range []string{"3-5", "1,3,5"} {
		m := newMemStorage()
		addRecords(m, org, 10)
		m.Mu.Lock()
		l := m.Log(org)
		l.Records = append(l.Records, tombstone(t, signer, org, 10, seqs))
		m.Mu.Unlock()
		waitIdle(t, startIntegrator(t, m, signer, t.TempDir(), ledger.Options{}))
		erased, err := ledger.ParseSeqRanges(seqs, 10)
		if err != nil {
			t.Fatal(err)
		}
		m.Mu.Lock()
		for _, q := range erased {
			l.Records[q] = nil
		}
		m.Mu.Unlock()
		rep, err := ledger.Verify(bytes.NewReader(writeBundle(t, m, org, ledger.BundleOptions{})), signer.VerifierKey(), ledger.VerifyOptions{})
		if err != nil || !strings.Contains(rep.String(), "3 records erased (not missing") {
			t.Errorf("erasing %s: Verify = %v:\n%s", seqs, err, rep.String())
		}
	}
}

func TestParseSeqRanges(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "[]", true},
		{"3-5,9", "[3 4 5 9]", true},
		{"0", "[0]", true},
		{"5-3", "", false},
		{"3,3", "", false},
		{"9,3", "", false},
		{"-1", "", false},
		{"a", "", false},
		{"0-100000", "", false},
	} {
		got, err := ledger.ParseSeqRanges(tt.in, 1000)
		if (err == nil) != tt.ok || (tt.ok && fmt.Sprint(got) != tt.want && !(tt.want == "[]" && got == nil)) {
			t.Errorf("ParseSeqRanges(%q) = %v, %v", tt.in, got, err)
		}
	}
}
