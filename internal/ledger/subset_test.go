package ledger_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

func writeSubset(tb testing.TB, s ledger.Storage, org string, opts ledger.SubsetOptions) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := ledger.WriteSubset(context.Background(), &buf, s, org, opts); err != nil {
		tb.Fatalf("WriteSubset: %v", err)
	}
	return buf.Bytes()
}

func selectSeqs(pred func(int64) bool) func(int64, []byte) (bool, error) {
	return func(seq int64, _ []byte) (bool, error) { return pred(seq), nil }
}

func TestSubsetVerifies(t *testing.T) {
	b := memBackend(t)
	const org = "org_subset"
	signer := newSigner(t)
	i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{})
	b.add(t, org, 70_000) // more than one level-1 tile, and a partial last group
	waitIdle(t, i)
	for _, tc := range []struct {
		name    string
		pick    func(int64) bool
		upTo    int64
		records int64
	}{
		{"none", func(int64) bool { return false }, 0, 0},
		{"all", func(int64) bool { return true }, 0, 70_000},
		{"first", func(s int64) bool { return s == 0 }, 0, 1},
		{"last", func(s int64) bool { return s == 69_999 }, 0, 1},
		{"sparse", func(s int64) bool { return s%1000 == 7 }, 0, 70},
		{"one group in the middle", func(s int64) bool { return s >= 33_024 && s < 33_280 }, 0, 256},
		{"group edges", func(s int64) bool { return s%256 == 255 || s%256 == 0 }, 0, 547},
		{"up to", func(int64) bool { return true }, 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := writeSubset(t, b.storage, org, ledger.SubsetOptions{Selection: "test\nselection", UpTo: tc.upTo, Select: selectSeqs(tc.pick)})
			rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{})
			if err != nil {
				t.Fatalf("Verify: %v\n%s", err, rep.String())
			}
			if rep.Records != tc.records {
				t.Errorf("verified %d records, want %d", rep.Records, tc.records)
			}
			want := "of org_subset are in its log under checkpoint size 70,000 signed by trail.test, each at its seq, unaltered. The export says it selected (not signed: a bundle of an earlier version; do not rely on it): test selection."
			if !strings.Contains(rep.String(), want) || !strings.Contains(rep.String(), "not that the selection is complete") {
				t.Errorf("report %q; want it to contain %q and the completeness caveat", rep.String(), want)
			}
		})
	}
}

// A bundle that starts reading at From is the bundle of a selection that
// takes nothing before From, byte for byte.
func TestSubsetFrom(t *testing.T) {
	b := memBackend(t)
	const org = "org_subset_from"
	signer := newSigner(t)
	i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{})
	b.add(t, org, 5000)
	waitIdle(t, i)
	for _, from := range []int64{0, 1, 255, 256, 257, 3000, 4999, 5000, 6000} {
		odd := func(s int64) bool { return s%2 == 1 }
		got := writeSubset(t, b.storage, org, ledger.SubsetOptions{From: from, Select: selectSeqs(odd)})
		want := writeSubset(t, b.storage, org, ledger.SubsetOptions{Select: selectSeqs(func(s int64) bool { return s >= from && odd(s) })})
		if !bytes.Equal(got, want) {
			t.Errorf("From %d: the bundle differs from the one selecting nothing before %d", from, from)
		}
		rep, err := ledger.Verify(bytes.NewReader(got), signer.VerifierKey(), ledger.VerifyOptions{})
		if wantN := (max(5000-from, 0) + from%2) / 2; err != nil || rep.Records != wantN {
			t.Errorf("From %d: verified %d records (%v), want %d", from, rep.Records, err, wantN)
		}
	}
}

func TestSubsetTampering(t *testing.T) {
	b := memBackend(t)
	const org = "org_subset"
	signer := newSigner(t)
	i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{})
	b.add(t, org, 3000)
	waitIdle(t, i)
	raw := writeSubset(t, b.storage, org, ledger.SubsetOptions{Select: selectSeqs(func(s int64) bool { return s%1000 == 3 })})
	lines := strings.SplitAfter(string(raw), "\n")
	find := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line starting %q", prefix)
		return -1
	}
	edit := func(f func(ls []string) []string) []byte {
		ls := f(append([]string(nil), lines...))
		return []byte(strings.Join(ls, ""))
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		kind ledger.ProblemKind
	}{
		{"altered record", edit(func(ls []string) []string {
			i := find(`{"id":"evt_00000000000000000000001003"`)
			ls[i] = strings.Replace(ls[i], "203.0.113.7", "203.0.113.8", 1)
			return ls
		}), ledger.ProblemAltered},
		{"record moved to another seq", edit(func(ls []string) []string {
			i := find(`{"id":"evt_00000000000000000000001003"`)
			ls[i] = strings.Replace(ls[i], `"seq":1003`, `"seq":1004`, 1)
			return ls
		}), ledger.ProblemAltered},
		{"altered subtree hash", edit(func(ls []string) []string {
			i := find("subtrees ")
			ls[i] = strings.Replace(ls[i], ls[i][len(ls[i])-6:len(ls[i])-3], "AAA", 1)
			return ls
		}), ledger.ProblemTreeMismatch},
		{"group dropped", edit(func(ls []string) []string {
			i := find("subtrees ")
			return append(ls[:i], ls[i+1:]...)
		}), ledger.ProblemMalformed},
		{"cut short", raw[:len(raw)/2], ledger.ProblemIncomplete},
		{"records swapped", edit(func(ls []string) []string {
			i := find(`{"id":"evt_00000000000000000000001003"`)
			j := find(`{"id":"evt_00000000000000000000002003"`)
			ls[i], ls[j] = ls[j], ls[i]
			return ls
		}), ledger.ProblemReordered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ledger.Verify(bytes.NewReader(tc.raw), signer.VerifierKey(), ledger.VerifyOptions{})
			if err == nil {
				t.Fatalf("Verify succeeded on a tampered subset: %s", rep.String())
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Kind == tc.kind
			}
			if !found {
				t.Errorf("problems %v; want one of kind %q", rep.Problems, tc.kind)
			}
		})
	}
}

// TestSubsetSignedSelection: with a Signer the selection line is signed by
// the log key for the checkpoint; an edited selection, a signature moved
// to another checkpoint's bundle or made by another key fails, and a
// bundle without the line (an earlier version's) verifies, reported
// unsigned.
func TestSubsetSignedSelection(t *testing.T) {
	b := memBackend(t)
	const org = "org_subset"
	signer := newSigner(t)
	i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{})
	b.add(t, org, 300)
	waitIdle(t, i)
	pick := selectSeqs(func(s int64) bool { return s%100 == 1 })
	small := writeSubset(t, b.storage, org, ledger.SubsetOptions{Selection: "export exp_1: seqs 1, 101, 201", Select: pick, Signer: signer})
	b.add(t, org, 100)
	waitIdle(t, i)
	raw := writeSubset(t, b.storage, org, ledger.SubsetOptions{Selection: "export exp_1: seqs 1, 101, 201", Select: pick, Signer: signer})
	other := writeSubset(t, b.storage, org, ledger.SubsetOptions{Selection: "export exp_1: seqs 1, 101, 201", Select: pick, Signer: newSigner(t)})
	sigLine := func(bundle []byte) string {
		for l := range strings.Lines(string(bundle)) {
			if strings.HasPrefix(l, "selection-signature ") {
				return l
			}
		}
		t.Fatal("no selection-signature line")
		return ""
	}
	for _, tc := range []struct {
		name   string
		raw    []byte
		ok     bool
		signed bool
		report string
	}{
		{"signed", raw, true, true, "The export says it selected (signed with the log key for this checkpoint): export exp_1: seqs 1, 101, 201."},
		{"selection edited", bytes.Replace(raw, []byte("selection export exp_1: seqs 1, 101, 201"), []byte("selection export exp_1: all events"), 1),
			false, false, "the selection line, or its signature, was altered"},
		{"signature of another checkpoint", bytes.Replace(raw, []byte(sigLine(raw)), []byte(sigLine(small)), 1),
			false, false, "the selection line, or its signature, was altered"},
		{"signature of another key", bytes.Replace(raw, []byte(sigLine(raw)), []byte(sigLine(other)), 1),
			false, false, "the selection line, or its signature, was altered"},
		{"no signature (an earlier version)", bytes.Replace(raw, []byte(sigLine(raw)), nil, 1),
			true, false, "The export says it selected (not signed: a bundle of an earlier version; do not rely on it): export exp_1: seqs 1, 101, 201."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ledger.Verify(bytes.NewReader(tc.raw), signer.VerifierKey(), ledger.VerifyOptions{})
			if (err == nil) != tc.ok || rep.SelectionSigned != tc.signed {
				t.Fatalf("Verify: %v, selection signed %v; want ok=%v, signed=%v\n%s", err, rep.SelectionSigned, tc.ok, tc.signed, rep.String())
			}
			if !strings.Contains(rep.String(), tc.report) {
				t.Errorf("report %q lacks %q", rep.String(), tc.report)
			}
		})
	}
}
