// Package faults_test drives real `trail serve` processes through the faults
// an operator meets: SIGKILL under sustained ingest, a full disk, load far
// beyond capacity, and malformed or hostile HTTP clients. Each test checks
// what must hold afterwards: every acknowledged event stored exactly once,
// nothing stored that was never sent, seqs contiguous, the log verifying
// with `trail verify`, refusals answered quickly with Retry-After, and the
// server still serving. docs/FAULTS.md describes each test and the figures
// measured.
//
// TRAIL_FAULTS_LONG=1 runs the longer variants.
package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

// long reports whether the longer variants were asked for.
func long() bool { return os.Getenv("TRAIL_FAULTS_LONG") != "" }

// pick returns short, or long under TRAIL_FAULTS_LONG.
func pick[T any](short, long_ T) T {
	if long() {
		return long_
	}
	return short
}

// requestTimeout bounds every request: a fault must never turn into a hang.
// It is generous, because these tests may share a busy machine: how fast
// answers come is measured by BenchmarkOverload, never asserted here.
const requestTimeout = 60 * time.Second

func newClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Timeout: requestTimeout, Transport: tr}
}

// target is the server under test; restarts replace it (the port changes).
type target struct {
	p atomic.Pointer[trailtest.Server]
}

func (tg *target) get() *trailtest.Server     { return tg.p.Load() }
func (tg *target) set(srv *trailtest.Server)  { tg.p.Store(srv) }
func newTarget(srv *trailtest.Server) *target { tg := &target{}; tg.set(srv); return tg }

// answer is one HTTP exchange as the client saw it.
type answer struct {
	code       int // 0: no answer (connection refused, reset, timeout)
	body       []byte
	retryAfter string
	took       time.Duration
	err        error
}

func do(ctx context.Context, c *http.Client, srv *trailtest.Server, method, path string, body []byte) answer {
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return answer{code: res.StatusCode, body: data, retryAfter: res.Header.Get("Retry-After"), took: time.Since(start), err: err}
}

func must(t testing.TB, c *http.Client, srv *trailtest.Server, method, path string, body []byte) []byte {
	t.Helper()
	a := do(context.Background(), c, srv, method, path, body)
	if a.err != nil || a.code < 200 || a.code > 299 {
		t.Fatalf("%s %s: %d %v %s", method, path, a.code, a.err, a.body)
	}
	return a.body
}

// api is a client of srv with its bootstrap key, over c.
func api(t testing.TB, c *http.Client, srv *trailtest.Server) *client.Client {
	t.Helper()
	cl, err := client.New(srv.URL, srv.Key, client.WithHTTPClient(c))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func createOrgs(t testing.TB, c *http.Client, srv *trailtest.Server, n int, name string) []string {
	t.Helper()
	var orgs []string
	for i := range n {
		o, err := api(t, c, srv).CreateOrganization(context.Background(), fmt.Sprintf("%s %d", name, i), "")
		if err != nil {
			t.Fatalf("creating an organization: %v", err)
		}
		orgs = append(orgs, o.ID)
	}
	return orgs
}

// eventJSON is one event of org carrying token as its only metadata value,
// which identifies it in the log.
func eventJSON(org, token string) []byte {
	return fmt.Appendf(nil, `{"organization_id":%q,"event":{"action":"fault.tested","occurred_at":%q,"actor":{"type":"user","id":"user_1","name":"Fault Harness"},"targets":[{"type":"doc","id":"doc_1"}],"context":{"location":"203.0.113.7","user_agent":"faults"},"metadata":{"token":%q}}}`,
		org, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), token)
}

// batchJSON is a /v1/events/batch body of the events (org, token).
func batchJSON(orgs, tokens []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range tokens {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(eventJSON(orgs[i], tokens[i]))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// tracker remembers every event sent (by token) and which were
// acknowledged, and at which seq when the answer said.
type tracker struct {
	mu    sync.Mutex
	sent  map[string]string // token → organization
	acked map[string]int64  // token → seq, -1 when the answer did not say
	next  atomic.Int64
}

func newTracker() *tracker {
	return &tracker{sent: map[string]string{}, acked: map[string]int64{}}
}

// tokens returns n new tokens for events of orgs[i%len], marked as sent.
func (tr *tracker) tokens(prefix string, orgs []string, n int) (evOrgs, toks []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for range n {
		i := tr.next.Add(1)
		tok := prefix + "-" + strconv.FormatInt(i, 36)
		org := orgs[int(i)%len(orgs)]
		tr.sent[tok] = org
		evOrgs, toks = append(evOrgs, org), append(toks, tok)
	}
	return evOrgs, toks
}

// ack marks toks acknowledged; seqs, when not nil, are their seqs.
func (tr *tracker) ack(toks []string, seqs []int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, tok := range toks {
		seq := int64(-1)
		if seqs != nil {
			seq = seqs[i]
		}
		tr.acked[tok] = seq
	}
}

func (tr *tracker) counts() (sent, acked int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.sent), len(tr.acked)
}

// send posts the events (one per token) as one request: a single event to
// POST /audit_logs/events, several as one /v1/events/batch. It returns the
// answer and, for an acknowledged batch, the seqs it reports.
func send(ctx context.Context, c *http.Client, srv *trailtest.Server, evOrgs, toks []string) (answer, []int64) {
	if len(toks) == 1 {
		return do(ctx, c, srv, "POST", "/audit_logs/events", eventJSON(evOrgs[0], toks[0])), nil
	}
	a := do(ctx, c, srv, "POST", "/v1/events/batch", batchJSON(evOrgs, toks))
	if a.code != http.StatusCreated {
		return a, nil
	}
	var out struct {
		Data []struct{ Seq int64 }
	}
	if err := json.Unmarshal(a.body, &out); err != nil || len(out.Data) != len(toks) {
		a.err = fmt.Errorf("batch answer with %d entries for %d events (%v): %s", len(out.Data), len(toks), err, a.body)
		return a, nil
	}
	seqs := make([]int64, len(toks))
	for i, d := range out.Data {
		seqs[i] = d.Seq
	}
	return a, seqs
}

// record is what the checks need of a stored canonical record.
type record struct {
	ID             string            `json:"id"`
	OrganizationID string            `json:"organization_id"`
	Seq            int64             `json:"seq"`
	Action         string            `json:"action"`
	Metadata       map[string]string `json:"metadata"`
}

// readLog reads an organization's whole log from GET …/log/records.
func readLog(t *testing.T, c *http.Client, srv *trailtest.Server, org string) []record {
	t.Helper()
	var out []record
	err := api(t, c, srv).LogRecords(context.Background(), org, 0, 0, func(line []byte) error {
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("record line %q of %s: %w", line, org, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the log of %s: %v", org, err)
	}
	return out
}

// logCheck is what checkLogs found.
type logCheck struct {
	stored   int            // events of the tracker found in the logs
	acked    int            // acknowledged events, all found once
	unacked  int            // stored events whose request had no 201 (outcome unknown to the client)
	sizes    map[string]int // records per organization, Trail's own included
	problems []string
}

// checkLogs reads every organization's log and checks it against tr:
// seqs contiguous from 0, every acknowledged event present exactly once (at
// the seq its answer named, when it named one), nothing stored that was
// never sent. Records without a token must be Trail's own (trail.*).
func checkLogs(t *testing.T, c *http.Client, srv *trailtest.Server, orgs []string, tr *tracker) logCheck {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res := logCheck{sizes: map[string]int{}}
	problem := func(format string, args ...any) {
		if len(res.problems) < 20 {
			res.problems = append(res.problems, fmt.Sprintf(format, args...))
		}
	}
	seen := map[string]int64{}
	for _, org := range orgs {
		recs := readLog(t, c, srv, org)
		res.sizes[org] = len(recs)
		for i, rec := range recs {
			if rec.Seq != int64(i) {
				problem("%s: record %d has seq %d; seqs must be contiguous from 0", org, i, rec.Seq)
			}
			if rec.OrganizationID != org {
				problem("%s: record seq %d belongs to %s", org, rec.Seq, rec.OrganizationID)
			}
			tok, ok := rec.Metadata["token"]
			if !ok {
				if !strings.HasPrefix(rec.Action, "trail.") {
					problem("%s: record seq %d (%s) carries no token and is not Trail's own", org, rec.Seq, rec.Action)
				}
				continue
			}
			if prev, dup := seen[tok]; dup {
				problem("%s: event %s stored twice, at seq %d and %d", org, tok, prev, rec.Seq)
				continue
			}
			seen[tok] = rec.Seq
			sentTo, wasSent := tr.sent[tok]
			switch {
			case !wasSent:
				problem("%s: seq %d holds event %s, which was never sent", org, rec.Seq, tok)
			case sentTo != org:
				problem("%s: seq %d holds event %s, sent to %s", org, rec.Seq, tok, sentTo)
			}
			res.stored++
			if _, ok := tr.acked[tok]; !ok {
				res.unacked++
			}
		}
	}
	for tok, seq := range tr.acked {
		got, ok := seen[tok]
		switch {
		case !ok:
			problem("acknowledged event %s (of %s, seq %d) is missing", tok, tr.sent[tok], seq)
		case seq >= 0 && got != seq:
			problem("acknowledged event %s was answered with seq %d but is stored at seq %d", tok, seq, got)
		default:
			res.acked++
		}
	}
	return res
}

// requireLogs fails the test on any problem checkLogs found.
func requireLogs(t *testing.T, lc logCheck) {
	t.Helper()
	for _, p := range lc.problems {
		t.Error(p)
	}
	if len(lc.problems) > 0 {
		t.FailNow()
	}
}

// waitCheckpoint waits until org's newest checkpoint covers size records.
func waitCheckpoint(t *testing.T, c *http.Client, srv *trailtest.Server, org string, size int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		a := do(context.Background(), c, srv, "GET", "/v1/organizations/"+org+"/log/checkpoint", nil)
		if a.code == http.StatusOK {
			lines := strings.Split(string(a.body), "\n")
			if len(lines) > 1 {
				if n, err := strconv.Atoi(lines[1]); err == nil && n == size {
					return
				}
			}
		}
		last = fmt.Sprintf("%d %s", a.code, a.body)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: no checkpoint of size %d within 30s; last answer: %s", org, size, last)
}

// verifyLog pulls org's log with `trail log pull` and checks it offline with
// `trail verify`, as an auditor would, and returns verify's summary.
func verifyLog(t *testing.T, srv *trailtest.Server, org string) string {
	t.Helper()
	bin := trailtest.Binary(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("trail %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	vkey := run("log", "key", "--server", srv.URL)
	file := filepath.Join(t.TempDir(), org+".bundle")
	run("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org, "--out", file)
	return run("verify", file, "--key", vkey)
}

// settleAndVerify waits for every organization's checkpoint to cover its
// whole log, then verifies each log with the CLI.
func settleAndVerify(t *testing.T, c *http.Client, srv *trailtest.Server, lc logCheck) {
	t.Helper()
	orgs := make([]string, 0, len(lc.sizes))
	for org := range lc.sizes {
		orgs = append(orgs, org)
	}
	slices.Sort(orgs)
	for _, org := range orgs {
		waitCheckpoint(t, c, srv, org, lc.sizes[org])
		t.Logf("verify %s: %s", org, verifyLog(t, srv, org))
	}
}

// serverPID finds the process of the trail serve running on dataDir
// (trailtest.Server does not expose it) through /proc/*/cmdline.
func serverPID(t *testing.T, dataDir string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc: %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "serve" && slices.Contains(args, dataDir) {
			return pid
		}
	}
	t.Fatalf("no trail serve process with data directory %s", dataDir)
	return 0
}

// procStatusKB reads a field such as VmHWM or VmRSS of /proc/PID/status, in KiB.
func procStatusKB(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("couldn't read the status of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// percentile returns the p-th percentile (0–100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// errorLines returns the server's last n log lines at ERROR level.
func errorLines(srv *trailtest.Server, n int) []string {
	var out []string
	for _, line := range strings.Split(srv.Logs(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out[max(0, len(out)-n):]
}

// dumpOnFailure logs the server's errors when the test fails.
func dumpOnFailure(t *testing.T, tg *target) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, line := range errorLines(tg.get(), 30) {
			t.Logf("server: %s", line)
		}
	})
}
