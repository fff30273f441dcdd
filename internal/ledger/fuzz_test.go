package ledger_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
)

// fuzzSigningKey signs the seed bundles and checkpoints of the fuzz
// targets. It is a test key, published here on purpose: the fuzzers need a
// fixed verifier so that seeds stay valid from one run to the next.
const (
	fuzzSigningKey  = "PRIVATE+KEY+trail.test+0ab439bf+Ac5SCnVSWu1VgEMjbNKdyLISvGVW17Kv5mjozGEVYYUm"
	fuzzVerifierKey = "trail.test+0ab439bf+AR+9P7VAMZezufly+r4Wo3Nv2R9r8vtjFwGF7g/KC1u2"
)

// fuzzLog builds a small integrated log signed by the fuzz key: 40
// records, checkpoints at 25 and 40. Small, because the fuzzer's cost per
// input grows with its size.
func fuzzLog(tb testing.TB) (*memStorage, string) {
	signer, err := ledger.NewSignerFromKey(fuzzSigningKey)
	if err != nil {
		tb.Fatal(err)
	}
	m := newMemStorage()
	const org = "org_fuzz"
	i := startIntegrator(tb, m, signer, tb.TempDir(), ledger.Options{})
	addRecords(m, org, 25)
	waitIdle(tb, i)
	addRecords(m, org, 15)
	waitIdle(tb, i)
	return m, org
}

// FuzzVerifyBundle feeds Verify arbitrary bundles: whatever the input, it
// must return (never panic or hang), and a bundle it accepts must hold only
// records that are in the log: no altered or invented record ever verifies.
func FuzzVerifyBundle(f *testing.F) {
	m, org := fuzzLog(f)
	inLog := map[string]bool{}
	for seq := range int64(40) {
		inLog[string(record(org, seq))] = true
	}
	whole := writeBundle(f, m, org, ledger.BundleOptions{})
	ranged := writeBundle(f, m, org, ledger.BundleOptions{From: 5, To: 30, Since: 25})
	f.Add(whole)
	f.Add(ranged)
	f.Add(whole[:len(whole)/2])
	f.Add([]byte("trail-bundle v1\ncheckpoint 0\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ledger.Verify(bytes.NewReader(data), fuzzVerifierKey, ledger.VerifyOptions{})
		if err != nil {
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 && line[0] == '{' && !inLog[string(line)] {
				t.Fatalf("Verify accepted a bundle with a record that is not in the log: %s\nreport: %s", line, rep.String())
			}
		}
	})
}

// FuzzReadBundle checks the bundle reader alone: every input ends in a
// clean error or io.EOF, within the input's length in entries.
func FuzzReadBundle(f *testing.F) {
	m, org := fuzzLog(f)
	f.Add(writeBundle(f, m, org, ledger.BundleOptions{}))
	f.Add(writeBundle(f, m, org, ledger.BundleOptions{From: 7, To: 9}))
	f.Add([]byte("trail-bundle v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ledger.ReadBundle(bytes.NewReader(data))
		if err != nil {
			return
		}
		for n := 0; ; n++ {
			if n > len(data) {
				t.Fatalf("more entries than input bytes: the reader does not advance")
			}
			if _, err := r.Next(); err != nil {
				if !errors.Is(err, io.EOF) && err.Error() == "" {
					t.Fatal("empty error message")
				}
				return
			}
		}
	})
}

// FuzzParseCheckpoint parses arbitrary notes as checkpoints: no panic, and
// whatever parses re-formats to a body that parses to the same checkpoint
// (C2SP tlog-checkpoint: origin, size, root hash, then extension lines).
func FuzzParseCheckpoint(f *testing.F) {
	v, err := note.NewVerifier(fuzzVerifierKey)
	if err != nil {
		f.Fatal(err)
	}
	m, org := fuzzLog(f)
	msg, err := m.LatestCheckpoint(f.Context(), org)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte("trail.test/org_a\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— trail.test x\n"))
	f.Add([]byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := ledger.ParseCheckpointBody(data); err == nil {
			again, err := ledger.ParseCheckpointBody(ledger.FormatCheckpoint(c))
			if err != nil {
				t.Fatalf("formatted checkpoint %q does not parse: %v", ledger.FormatCheckpoint(c), err)
			}
			if again.Origin != c.Origin || again.Size != c.Size || again.Hash != c.Hash {
				t.Fatalf("round trip changed the checkpoint: %+v → %+v", c, again)
			}
		}
		c, err := ledger.ParseCheckpoint(data, v)
		if err == nil && !strings.HasPrefix(string(data), c.Origin+"\n") {
			t.Fatalf("verified checkpoint %+v is not what the note says: %q", c, data)
		}
	})
}
