package ledger_test

import (
	"bytes"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

// FuzzVerifySubset feeds Verify arbitrary subset bundles: whatever the
// input it must return (never panic or hang), and a subset it accepts must
// hold only records that are in the log.
func FuzzVerifySubset(f *testing.F) {
	m, org := fuzzLog(f)
	inLog := map[string]bool{}
	for seq := range int64(40) {
		inLog[string(record(org, seq))] = true
	}
	some := writeSubset(f, m, org, ledger.SubsetOptions{Selection: "every third", Select: selectSeqs(func(s int64) bool { return s%3 == 0 })})
	f.Add(some)
	f.Add(writeSubset(f, m, org, ledger.SubsetOptions{Select: selectSeqs(func(int64) bool { return false })}))
	f.Add(some[:len(some)/2])
	f.Add([]byte("trail-subset v1\ncheckpoint 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ledger.Verify(bytes.NewReader(data), fuzzVerifierKey, ledger.VerifyOptions{})
		if err != nil {
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) > 0 && line[0] == '{' && !inLog[string(line)] {
				t.Fatalf("Verify accepted a subset with a record that is not in the log: %s\nreport: %s", line, rep.String())
			}
		}
	})
}
