package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

const testOrigin = "trail.test"

// testLog is one organization's verifiable log in a real SQLite store,
// integrated and signed by a real Integrator.
type testLog struct {
	st     *sqlite.Store
	signer *ledger.Signer
	org    string
}

// newTestSigner returns a fresh signing key named testOrigin.
func newTestSigner(t *testing.T) *ledger.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestLog appends the given numbers of events to org's log, one batch
// after the other, waiting after each for its checkpoint: sizes 600, 400
// give checkpoints of size 600 and 1,000.
func newTestLog(t *testing.T, signer *ledger.Signer, org string, batches ...int) *testLog {
	t.Helper()
	l := newSignedLog(t, signer, org, batches...)
	l.signer = signer
	return l
}

// newSignedLog is newTestLog with any checkpoint signer (several keys).
func newSignedLog(t *testing.T, signer ledger.CheckpointSigner, org string, batches ...int) *testLog {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("CreateOrganization: %v", err)
	}
	in, err := ledger.NewIntegrator(st, signer, testOrigin, ledger.Options{DataDir: t.TempDir(), Interval: time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatalf("NewIntegrator: %v", err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer in.Stop()
	d, err := event.ParseEvent([]byte(`{"action":"user.signed_in","occurred_at":"`+now.UTC().Add(-time.Minute).Format(time.RFC3339Nano)+`",`+
		`"actor":{"id":"user_1","type":"user"},"targets":[{"id":"team_1","type":"team"}],`+
		`"context":{"location":"203.0.113.7"}}`), now, event.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	for _, n := range batches {
		var sub store.Submission
		for range n {
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
		}
		res, err := st.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append: %v %v", err, res[0].Err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = in.WaitIdle(wctx)
		cancel()
		if err != nil {
			t.Fatalf("WaitIdle: %v", err)
		}
	}
	return &testLog{st: st, org: org}
}

func (l *testLog) bundle(t *testing.T, opts ledger.BundleOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ledger.WriteBundle(context.Background(), &buf, l.st, l.org, opts); err != nil {
		t.Fatalf("WriteBundle(%+v): %v", opts, err)
	}
	return buf.Bytes()
}

func (l *testLog) checkpoint(t *testing.T, size int64) []byte {
	t.Helper()
	msg, err := l.st.Checkpoint(context.Background(), l.org, size)
	if err != nil {
		t.Fatalf("Checkpoint(%d): %v", size, err)
	}
	return msg
}

// writeTemp writes data to a new file in a test directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runTrail runs the trail command line and returns its exit status and output.
func runTrail(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// recordLine returns the index in lines of the record line of seq.
func recordLine(t *testing.T, lines []string, seq int) int {
	t.Helper()
	for i, l := range lines {
		if strings.HasPrefix(l, "{") && strings.Contains(l, fmt.Sprintf(`"seq":%d,`, seq)) {
			return i
		}
	}
	t.Fatalf("no record line for seq %d", seq)
	return -1
}

// editBundle returns raw with f applied to its lines.
func editBundle(raw []byte, f func(lines []string) []string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	return []byte(strings.Join(f(lines), "\n") + "\n")
}

func TestVerify(t *testing.T) {
	const org = "org_verify"
	signer := newTestSigner(t)
	l := newTestLog(t, signer, org, 600, 400)
	fork := newTestLog(t, signer, org, 600) // same key and origin, other history
	vkey := signer.VerifierKey()

	full := l.bundle(t, ledger.BundleOptions{})
	withSince := l.bundle(t, ledger.BundleOptions{Since: 600})
	older := writeTemp(t, "older.checkpoint", l.checkpoint(t, 600))
	forked := writeTemp(t, "forked.checkpoint", fork.checkpoint(t, 600))
	keyFile := writeTemp(t, "trail.vkey", []byte(vkey+"\n"))
	privFile := writeTemp(t, "signing.key", []byte("PRIVATE+KEY+trail.test+00000000+AAAA\n"))
	otherKey := newTestSigner(t).VerifierKey()

	altered := editBundle(full, func(lines []string) []string {
		i := recordLine(t, lines, 5)
		lines[i] = strings.Replace(lines[i], "user.signed_in", "user.signed_up", 1)
		return lines
	})
	deleted := editBundle(full, func(lines []string) []string {
		i := recordLine(t, lines, 7)
		return append(lines[:i], lines[i+1:]...)
	})
	truncated := full[:len(full)/2]

	for _, tc := range []struct {
		name   string
		bundle []byte // written to a file given as the first argument
		args   []string
		code   int
		stdout string // must contain
		stderr string // must contain
	}{
		{"whole log", full, []string{"--key", vkey}, 0,
			"1,000 events of org_verify (seq 0–999) match checkpoint size 1,000 signed by trail.test: none altered, none missing.", ""},
		{"range", l.bundle(t, ledger.BundleOptions{From: 300, To: 700}), []string{"--key", vkey}, 0,
			"400 events of org_verify (seq 300–699) match checkpoint size 1,000 signed by trail.test: none altered, none missing in that range.", ""},
		{"flags first", full, []string{"--key=" + vkey}, 0, "none altered, none missing.", ""},
		{"key from a file", full, []string{"--key", keyFile}, 0, "none altered, none missing.", ""},
		{"since, consistent", withSince, []string{"--key", vkey, "--since", older}, 0,
			"Checkpoint size 1,000 is consistent with your older checkpoint size 600: the log only grew.", ""},
		{"altered record", altered, []string{"--key", vkey}, 1,
			"altered record: seq 5 (line ", "verification failed: 1 problem"},
		{"deleted record", deleted, []string{"--key", vkey}, 1, "seq 7 is not in the bundle", "verification failed"},
		{"cut short", truncated, []string{"--key", vkey}, 1, "VERIFICATION FAILED", "verification failed"},
		{"wrong key", full, []string{"--key", otherKey}, 1, "is not signed by key trail.test+", "verification failed"},
		{"since, forked history", withSince, []string{"--key", vkey, "--since", forked}, 1,
			"does not extend your older checkpoint size 600", "verification failed"},
		{"since, no proof in the bundle", full, []string{"--key", vkey, "--since", older}, 1,
			"carries no consistency proof from size 600", "verification failed"},
		{"since signed by another key", full, []string{"--key", otherKey, "--since", older}, 1, "", "older checkpoint"},
		{"no key", full, nil, 2, "", "--key is required"},
		{"bad key", full, []string{"--key", "not-a-key"}, 2, "", "neither a verifier key"},
		{"private key file", full, []string{"--key", privFile}, 2, "", "holds a private signing key"},
		{"private key", full, []string{"--key", "PRIVATE+KEY+trail.test+00000000+AAAA"}, 2, "", "is a private signing key"},
		{"missing since file", full, []string{"--key", vkey, "--since", filepath.Join(t.TempDir(), "nope")}, 2, "", "--since"},
		{"unknown flag", full, []string{"--key", vkey, "--bogus"}, 2, "", "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"verify", writeTemp(t, "log.bundle", tc.bundle)}, tc.args...)
			code, stdout, stderr := runTrail(t, args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout %q, stderr %q", code, tc.code, stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := runTrail(t, "verify", filepath.Join(t.TempDir(), "nope.bundle"), "--key", vkey)
		if code != 2 || !strings.Contains(stderr, "no such file") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("no file", func(t *testing.T) {
		if code, _, stderr := runTrail(t, "verify", "--key", vkey); code != 2 || !strings.Contains(stderr, "give one bundle file") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("key from the environment", func(t *testing.T) {
		t.Setenv("TRAIL_VERIFIER_KEY", vkey)
		if code, stdout, stderr := runTrail(t, "verify", writeTemp(t, "log.bundle", full)); code != 0 {
			t.Errorf("exit %d\n%s%s", code, stdout, stderr)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"verify", writeTemp(t, "log.bundle", full), "--key", vkey}, &out, &errOut)
		if code != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), "context canceled") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
		}
	})
	t.Run("standard input", func(t *testing.T) {
		var out, errOut bytes.Buffer
		c := &verifyCommand{stdin: bytes.NewReader(full), stdout: &out, stderr: &errOut}
		if err := c.Run(context.Background(), []string{"-", "--key", vkey}); err != nil || !strings.Contains(out.String(), "none missing.") {
			t.Errorf("err %v, stdout %q", err, out.String())
		}
		c = &verifyCommand{stdin: bytes.NewReader(altered), stdout: &out, stderr: &errOut}
		if err := c.Run(context.Background(), []string{"--key", vkey, "-"}); !errors.Is(err, ledger.ErrVerificationFailed) {
			t.Errorf("altered bundle on stdin: err %v", err)
		}
	})
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args []string
		key  string
		pos  []string
	}{
		{[]string{"f", "--key", "k"}, "k", []string{"f"}},
		{[]string{"--key", "k", "f"}, "k", []string{"f"}},
		{[]string{"a", "--key=k", "b"}, "k", []string{"a", "b"}},
		{[]string{"-"}, "", []string{"-"}},
		{[]string{"--key", "k", "--", "--key", "x"}, "k", []string{"--key", "x"}},
	} {
		fs := flag.NewFlagSet("verify", flag.ContinueOnError)
		key := fs.String("key", "", "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil || *key != tc.key || strings.Join(pos, " ") != strings.Join(tc.pos, " ") {
			t.Errorf("%q: key %q, pos %q, err %v; want %q, %q", tc.args, *key, pos, err, tc.key, tc.pos)
		}
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &buf, now: func() time.Time { return now }}
	p.update(" verified %s records", commas(4096))
	now = now.Add(100 * time.Millisecond)
	p.update(" verified %s records", commas(8192)) // too soon: not drawn
	now = now.Add(200 * time.Millisecond)
	p.update(" n %d", 3) // shorter: padded over the longer line
	p.clear()
	want := "\r verified 4,096 records" + "\r n 3" + strings.Repeat(" ", 19) + "\r    \r"
	if buf.String() != want {
		t.Errorf("drew %q, want %q", buf.String(), want)
	}
	// Not a terminal: nothing drawn.
	q := newProgress(&buf)
	q.update("x")
	q.clear()
	if buf.String() != want {
		t.Errorf("a progress line on a buffer drew %q", strings.TrimPrefix(buf.String(), want))
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		n           int64
		commas, siz string
	}{
		{0, "0", "0 B"},
		{999, "999", "999 B"},
		{1000, "1,000", "1.0 kB"},
		{1204331, "1,204,331", "1.2 MB"},
		{-1234, "-1,234", "-1234 B"},
	} {
		if got := commas(tc.n); got != tc.commas {
			t.Errorf("commas(%d) = %q, want %q", tc.n, got, tc.commas)
		}
		if got := byteSize(tc.n); got != tc.siz {
			t.Errorf("byteSize(%d) = %q, want %q", tc.n, got, tc.siz)
		}
	}
}
