package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

func writeBundle(tb testing.TB, s ledger.Storage, org string, opts ledger.BundleOptions) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := ledger.WriteBundle(context.Background(), &buf, s, org, opts); err != nil {
		tb.Fatalf("WriteBundle(%+v): %v", opts, err)
	}
	return buf.Bytes()
}

// integrated1000 makes a log of 1,000 records with checkpoints at 600 and
// 1,000.
func integrated1000(t *testing.T, b *backend, org string) *ledger.Signer {
	signer := newSigner(t)
	i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{})
	b.add(t, org, 600)
	waitIdle(t, i)
	b.add(t, org, 400)
	waitIdle(t, i)
	return signer
}

func TestBundleVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		const org = "org_bundle"
		signer := integrated1000(t, b, org)
		old, err := b.storage.Checkpoint(context.Background(), org, 600)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			opts    ledger.BundleOptions
			records int64
			says    string
		}{
			{ledger.BundleOptions{}, 1000,
				"1,000 events of org_bundle (seq 0–999) match checkpoint size 1,000 signed by trail.test: none altered, none missing."},
			{ledger.BundleOptions{From: 300, To: 700}, 400,
				"400 events of org_bundle (seq 300–699) match checkpoint size 1,000 signed by trail.test: none altered, none missing in that range."},
			{ledger.BundleOptions{From: 256, To: 512}, 256, "(seq 256–511)"},
			{ledger.BundleOptions{From: 0, To: 1}, 1, "(seq 0–0)"},
			{ledger.BundleOptions{From: 999}, 1, "(seq 999–999)"},
			{ledger.BundleOptions{From: 511, To: 769}, 258, "(seq 511–768)"},
			{ledger.BundleOptions{From: 5, To: 5}, 0, "The bundle holds no events; checkpoint size 1,000"},
			{ledger.BundleOptions{From: 1000}, 0, "The bundle holds no events"},
			{ledger.BundleOptions{Size: 600, From: 100}, 500, "(seq 100–599) match checkpoint size 600"},
			{ledger.BundleOptions{Size: 600}, 600, "600 events of org_bundle (seq 0–599) match checkpoint size 600"},
		} {
			raw := writeBundle(t, b.storage, org, tc.opts)
			rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{})
			if err != nil {
				t.Fatalf("%+v: Verify: %v\n%s", tc.opts, err, rep.String())
			}
			if rep.Records != tc.records || !strings.Contains(rep.String(), tc.says) {
				t.Errorf("%+v: %d records, %q; want %d, %q", tc.opts, rep.Records, rep.String(), tc.records, tc.says)
			}
		}

		// Since: the bundle's checkpoint extends an older one.
		raw := writeBundle(t, b.storage, org, ledger.BundleOptions{Since: 600})
		rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{Since: old})
		if err != nil {
			t.Fatalf("Since: %v\n%s", err, rep.String())
		}
		if want := "Checkpoint size 1,000 is consistent with your older checkpoint size 600: the log only grew."; !strings.Contains(rep.String(), want) {
			t.Errorf("Since: %q lacks %q", rep.String(), want)
		}
	})
}

func TestBundleSinceFailures(t *testing.T) {
	ctx := context.Background()
	b := memBackend(t)
	const org = "org_since"
	signer := integrated1000(t, b, org)
	origin := testPrefix + "/" + org
	old, _ := b.storage.Checkpoint(ctx, org, 600)
	newest, _ := b.storage.Checkpoint(ctx, org, 1000)
	forged, err := signer.Sign(ledger.Checkpoint{Origin: origin, Size: 600, Hash: tlog.Hash{6}})
	if err != nil {
		t.Fatal(err)
	}
	forgedSame, _ := signer.Sign(ledger.Checkpoint{Origin: origin, Size: 1000, Hash: tlog.Hash{6}})
	otherLog, _ := signer.Sign(ledger.Checkpoint{Origin: testPrefix + "/org_other", Size: 600, Hash: tlog.Hash{6}})
	for _, tc := range []struct {
		name   string
		opts   ledger.BundleOptions
		since  []byte
		detail string
	}{
		{"forged older checkpoint", ledger.BundleOptions{Since: 600}, forged, "does not extend your older checkpoint size 600"},
		{"older is newer", ledger.BundleOptions{Size: 600}, newest, "the log shrank"},
		{"same size, other root", ledger.BundleOptions{}, forgedSame, "two different histories"},
		{"no proof in the bundle", ledger.BundleOptions{}, old, "carries no consistency proof from size 600"},
		{"another log", ledger.BundleOptions{Since: 600}, otherLog, "your older checkpoint is of log"},
	} {
		raw := writeBundle(t, b.storage, org, tc.opts)
		rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{Since: tc.since})
		if !errors.Is(err, ledger.ErrVerificationFailed) || !hasProblem(rep, ledger.ProblemInconsistent, tc.detail) {
			t.Errorf("%s: err %v; report:\n%s", tc.name, err, rep.String())
		}
	}
	// An older checkpoint that is not signed by the key is unusable.
	other := newSigner(t)
	alien, _ := other.Sign(ledger.Checkpoint{Origin: origin, Size: 600, Hash: tlog.Hash{6}})
	raw := writeBundle(t, b.storage, org, ledger.BundleOptions{Since: 600})
	if _, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{Since: alien}); err == nil || errors.Is(err, ledger.ErrVerificationFailed) {
		t.Errorf("Since signed by another key: err = %v", err)
	}
}

func hasProblem(rep ledger.Report, kind ledger.ProblemKind, detail string) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && strings.Contains(p.Detail, detail) {
			return true
		}
	}
	return false
}

// lines splits a bundle into lines; recordLine finds the line of a seq.
func lines(raw []byte) []string { return strings.SplitAfter(string(raw), "\n") }

func recordLine(t *testing.T, ls []string, seq int64) int {
	t.Helper()
	needle := fmt.Sprintf(`,"seq":%d,`, seq)
	for i, l := range ls {
		if strings.HasPrefix(l, "{") && strings.Contains(l, needle) {
			return i
		}
	}
	t.Fatalf("no record line for seq %d", seq)
	return -1
}

func TestVerifyDetectsBundleTampering(t *testing.T) {
	b := memBackend(t)
	const org = "org_t"
	signer := integrated1000(t, b, org)
	clean := writeBundle(t, b.storage, org, ledger.BundleOptions{})
	edit := func(f func(ls []string) []string) []byte {
		return []byte(strings.Join(f(lines(clean)), ""))
	}
	for _, tc := range []struct {
		name    string
		bundle  func(t *testing.T) []byte
		key     string
		kind    ledger.ProblemKind
		details []string
	}{
		{"altered record", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 37)
				ls[i] = strings.Replace(ls[i], "user.signed_in", "user.signed_on", 1)
				return ls
			})
		}, "", ledger.ProblemAltered, []string{"seq 37 (line "}},
		{"deleted record", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 37)
				return append(ls[:i], ls[i+1:]...)
			})
		}, "", ledger.ProblemMissing, []string{"seq 37 is not in the bundle"}},
		{"deleted records", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i, j := recordLine(t, ls, 250), recordLine(t, ls, 300)
				return append(ls[:i], ls[j:]...) // across a leaves line: 250–299 gone, the leaves line too
			})
		}, "", ledger.ProblemMalformed, []string{"leaves line"}},
		{"swapped records", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i, j := recordLine(t, ls, 10), recordLine(t, ls, 20)
				ls[i], ls[j] = ls[j], ls[i]
				return ls
			})
		}, "", ledger.ProblemReordered, []string{"holds seq 20 where seq 10 belongs", "holds seq 10 where seq 20 belongs"}},
		{"swapped neighbours", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 10)
				ls[i], ls[i+1] = ls[i+1], ls[i]
				return ls
			})
		}, "", ledger.ProblemReordered, []string{"holds seq 11 where seq 10 belongs", "holds seq 10 where seq 11 belongs"}},
		{"duplicated record", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 40)
				return append(ls[:i+1], ls[i:]...)
			})
		}, "", ledger.ProblemReordered, []string{"seq 40 appears twice"}},
		{"truncated log", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				for _, seq := range []int64{995, 996, 997, 998, 999} {
					i := recordLine(t, ls, seq)
					ls = append(ls[:i], ls[i+1:]...)
				}
				return ls
			})
		}, "", ledger.ProblemTruncated, []string{"the last 5 records (seq 995–999)"}},
		{"record of another organization", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 12)
				ls[i] = strings.Replace(ls[i], `"org_t"`, `"org_u"`, 1)
				return ls
			})
		}, "", ledger.ProblemWrongOrganization, []string{"(seq 12) is a record of another organization"}},
		{"garbage line", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				i := recordLine(t, ls, 12)
				return append(ls[:i], append([]string{"hello\n"}, ls[i:]...)...)
			})
		}, "", ledger.ProblemMalformed, []string{"is not a Trail record"}},
		{"altered leaf hash", func(t *testing.T) []byte {
			return edit(func(ls []string) []string {
				for i, l := range ls {
					if strings.HasPrefix(l, "leaves 256 ") {
						ls[i] = l[:20] + string(rune(l[20]^1)) + l[21:]
					}
				}
				return ls
			})
		}, "", ledger.ProblemTreeMismatch, []string{"does not lead to the root signed in checkpoint size 1,000"}},
		{"altered checkpoint", func(t *testing.T) []byte {
			return bytes.Replace(clean, []byte("\n1000\n"), []byte("\n1001\n"), 1)
		}, "", ledger.ProblemSignature, []string{"does not verify"}},
		{"wrong key", func(t *testing.T) []byte { return clean }, newSigner(t).VerifierKey(),
			ledger.ProblemSignature, []string{"is not signed by key"}},
		{"file cut short", func(t *testing.T) []byte { return clean[:len(clean)/2] },
			"", ledger.ProblemIncomplete, []string{"cut short"}},
		{"end line missing", func(t *testing.T) []byte {
			return clean[:bytes.LastIndex(clean, []byte("end "))]
		}, "", ledger.ProblemIncomplete, []string{"cut short"}},
		{"not a bundle", func(t *testing.T) []byte { return []byte("{}\n") },
			"", ledger.ProblemMalformed, []string{"not a Trail bundle"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = signer.VerifierKey()
			}
			rep, err := ledger.Verify(bytes.NewReader(tc.bundle(t)), key, ledger.VerifyOptions{})
			if !errors.Is(err, ledger.ErrVerificationFailed) {
				t.Fatalf("err = %v, want ErrVerificationFailed; report:\n%s", err, rep.String())
			}
			for _, d := range tc.details {
				if !hasProblem(rep, tc.kind, d) {
					t.Errorf("no %q problem saying %q; report:\n%s", tc.kind, d, rep.String())
				}
			}
			if !strings.HasPrefix(rep.String(), "VERIFICATION FAILED") {
				t.Errorf("report does not start with VERIFICATION FAILED:\n%s", rep.String())
			}
			t.Log(rep.String())
		})
	}
}

func TestBundleAfterRetention(t *testing.T) {
	m := newMemStorage()
	b := &backend{name: "mem", storage: m, add: func(_ testing.TB, org string, n int) { addRecords(m, org, n) }}
	const org = "org_ret"
	signer := integrated1000(t, b, org)
	m.Mu.Lock()
	for s := range 300 {
		m.Logs[org].Records[s] = nil // retention deleted the bodies, not the tiles
	}
	m.Mu.Unlock()
	raw := writeBundle(t, m, org, ledger.BundleOptions{From: 300})
	rep, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("bundle after pruned records: %v\n%s", err, rep.String())
	}
	raw = writeBundle(t, m, org, ledger.BundleOptions{})
	rep, _ = ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{})
	if !hasProblem(rep, ledger.ProblemMissing, "seq 0–299 (300 records) are not in the bundle") {
		t.Errorf("bundle over pruned records:\n%s", rep.String())
	}
	// Proofs still work for what remains, and for the pruned seqs too.
	if _, err := ledger.InclusionProof(context.Background(), m, org, 5, 1000); err != nil {
		t.Error(err)
	}
}

func TestVerifyProgress(t *testing.T) {
	b := memBackend(t)
	signer := integrated1000(t, b, "org_p")
	raw := writeBundle(t, b.storage, "org_p", ledger.BundleOptions{})
	var calls []int64
	_, err := ledger.Verify(bytes.NewReader(raw), signer.VerifierKey(), ledger.VerifyOptions{
		ProgressEvery: 300, Progress: func(n int64) { calls = append(calls, n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(calls) != "[300 600 900 1000]" {
		t.Errorf("progress calls %v", calls)
	}
}

func TestWriteBundleErrors(t *testing.T) {
	ctx := context.Background()
	b := memBackend(t)
	integrated1000(t, b, "org_w")
	for _, tc := range []struct {
		opts ledger.BundleOptions
		err  error
	}{
		{ledger.BundleOptions{To: 1001}, ledger.ErrInvalidRange},
		{ledger.BundleOptions{From: 10, To: 5}, ledger.ErrInvalidRange},
		{ledger.BundleOptions{From: -1}, ledger.ErrInvalidRange},
		{ledger.BundleOptions{Since: 1001}, ledger.ErrInvalidRange},
		{ledger.BundleOptions{Size: 601}, store.ErrNotFound},
	} {
		if _, err := ledger.WriteBundle(ctx, io.Discard, b.storage, "org_w", tc.opts); !errors.Is(err, tc.err) {
			t.Errorf("%+v: err = %v, want %v", tc.opts, err, tc.err)
		}
	}
	if _, err := ledger.WriteBundle(ctx, io.Discard, b.storage, "org_none", ledger.BundleOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no checkpoint: err = %v", err)
	}
}

func TestReadBundle(t *testing.T) {
	b := memBackend(t)
	integrated1000(t, b, "org_r")
	raw := writeBundle(t, b.storage, "org_r", ledger.BundleOptions{From: 100, To: 900, Since: 600})
	br, err := ledger.ReadBundle(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if br.From != 100 || br.To != 900 || len(br.Left) != 2 { // 100 = 64 + 32 + 4: three subtrees… minus none
		t.Logf("left hashes: %d", len(br.Left))
	}
	var records, leaves int64
	for {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Record != nil {
			records++
		} else {
			leaves += int64(len(e.Leaves))
		}
	}
	if records != 800 || leaves != 800 || br.Records != 800 || br.SinceSize != 600 || len(br.SinceProof) == 0 || len(br.Proof) == 0 {
		t.Errorf("records %d, leaves %d, end %d, since %d (%d hashes), proof %d hashes",
			records, leaves, br.Records, br.SinceSize, len(br.SinceProof), len(br.Proof))
	}
	for _, bad := range []string{
		"", "trail-bundle v2\n", "trail-bundle v1\ncheckpoint x\n", "trail-bundle v1\ncheckpoint 5\nab",
		"trail-bundle v1\ncheckpoint 2\nx\nrange 5 1\n", "trail-bundle v1\ncheckpoint 2\nx\nrange 0 1\nleft zz\n",
	} {
		var fe *ledger.FormatError
		if _, err := ledger.ReadBundle(strings.NewReader(bad)); !errors.As(err, &fe) {
			t.Errorf("ReadBundle(%q) = %v, want a FormatError", bad, err)
		}
	}
}
