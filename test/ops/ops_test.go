// Package ops_test runs real `trail serve` processes through what operators
// do to a deployment: a rolling upgrade with a new migration under load,
// a database outage and a shutdown behind a load balancer, and checks what
// the replicas tell their load balancers (/readyz) and that nothing
// acknowledged is lost (docs/OPERATIONS.md).
package ops_test

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// client bounds every request generously: a fault must never turn into a
// hang, and these tests may share a busy machine.
var client = &http.Client{Timeout: 60 * time.Second}

// answer is one HTTP exchange as the client saw it (code 0: no answer).
type answer struct {
	code int
	body []byte
	err  error
}

func do(url, key, method, path string, body []byte) answer {
	req, err := http.NewRequest(method, url+path, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return answer{code: res.StatusCode, body: data, err: err}
}

func must(t testing.TB, srv *trailtest.Server, method, path string, body []byte) []byte {
	t.Helper()
	a := do(srv.URL, srv.Key, method, path, body)
	if a.err != nil || a.code < 200 || a.code > 299 {
		t.Fatalf("%s %s: %d %v %s", method, path, a.code, a.err, a.body)
	}
	return a.body
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 2 minutes", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyz is the status code of GET /readyz at url ("" body on no answer).
func readyz(url string) (int, string) {
	a := do(url, "", "GET", "/readyz", nil)
	return a.code, string(a.body)
}

func createOrgs(t testing.TB, srv *trailtest.Server, n int) []string {
	t.Helper()
	var orgs []string
	for i := range n {
		var o struct{ ID string }
		if err := json.Unmarshal(must(t, srv, "POST", "/organizations", fmt.Appendf(nil, `{"name":"Tenant %d"}`, i)), &o); err != nil {
			t.Fatal(err)
		}
		orgs = append(orgs, o.ID)
	}
	return orgs
}

// eventJSON is one event of org carrying token, which identifies it in the
// log.
func eventJSON(org, token string) []byte {
	return fmt.Appendf(nil, `{"organization_id":%q,"event":{"action":"ops.tested","occurred_at":%q,"actor":{"type":"user","id":"user_1"},"targets":[{"type":"doc","id":"doc_1"}],"context":{"location":"203.0.113.7"},"metadata":{"token":%q}}}`,
		org, time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), token)
}

// tracker remembers every event sent (by token) and which were
// acknowledged at which seq.
type tracker struct {
	mu    sync.Mutex
	sent  map[string]string // token → organization
	acked map[string]int64  // token → seq
	next  int
}

func newTracker() *tracker { return &tracker{sent: map[string]string{}, acked: map[string]int64{}} }

// batch sends n events spread over orgs as one /v1/events/batch to url and
// records the outcome; it reports whether they were acknowledged.
func (tr *tracker) batch(url, key string, orgs []string, n int) (answer, bool) {
	tr.mu.Lock()
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	toks := make([]string, n)
	for i := range n {
		tr.next++
		tok := "t" + strconv.Itoa(tr.next)
		org := orgs[tr.next%len(orgs)]
		tr.sent[tok] = org
		toks[i] = tok
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(eventJSON(org, tok))
	}
	b.WriteString(`]}`)
	tr.mu.Unlock()
	a := do(url, key, "POST", "/v1/events/batch", b.Bytes())
	if a.err != nil || a.code != http.StatusCreated {
		return a, false
	}
	var out struct {
		Data []struct{ Seq int64 }
	}
	if err := json.Unmarshal(a.body, &out); err != nil || len(out.Data) != n {
		a.err = fmt.Errorf("batch answer with %d entries for %d events (%v): %s", len(out.Data), n, err, a.body)
		return a, false
	}
	tr.mu.Lock()
	for i, d := range out.Data {
		tr.acked[toks[i]] = d.Seq
	}
	tr.mu.Unlock()
	return a, true
}

// record is what the checks need of a stored record.
type record struct {
	Seq      int64             `json:"seq"`
	Action   string            `json:"action"`
	Metadata map[string]string `json:"metadata"`
}

func readLog(t testing.TB, srv *trailtest.Server, org string) []record {
	t.Helper()
	body := must(t, srv, "GET", "/v1/organizations/"+org+"/log/records", nil)
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("record line %q of %s: %v", sc.Bytes(), org, err)
		}
		out = append(out, rec)
	}
	return out
}

// checkLogs reads every organization's log through srv: seqs contiguous
// from 0, each acknowledged event stored once at the seq its answer named,
// nothing stored that was never sent.
func checkLogs(t *testing.T, srv *trailtest.Server, orgs []string, tr *tracker) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen := map[string]int64{}
	problems := 0
	problem := func(format string, args ...any) {
		if problems++; problems <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, org := range orgs {
		for i, rec := range readLog(t, srv, org) {
			if rec.Seq != int64(i) {
				problem("%s: record %d has seq %d; seqs must be contiguous from 0", org, i, rec.Seq)
			}
			tok, ok := rec.Metadata["token"]
			if !ok {
				if !strings.HasPrefix(rec.Action, "trail.") {
					problem("%s: seq %d (%s) carries no token and is not Trail's own", org, rec.Seq, rec.Action)
				}
				continue
			}
			if prev, dup := seen[tok]; dup {
				problem("%s: event %s stored twice, at seq %d and %d", org, tok, prev, rec.Seq)
			}
			seen[tok] = rec.Seq
			if sentTo := tr.sent[tok]; sentTo != org {
				problem("%s: seq %d holds event %s, sent to %q", org, rec.Seq, tok, sentTo)
			}
		}
	}
	for tok, seq := range tr.acked {
		if got, ok := seen[tok]; !ok {
			problem("acknowledged event %s (of %s, seq %d) is missing", tok, tr.sent[tok], seq)
		} else if got != seq {
			problem("acknowledged event %s was answered with seq %d but is stored at seq %d", tok, seq, got)
		}
	}
	t.Logf("%d events sent, %d acknowledged, %d stored", len(tr.sent), len(tr.acked), len(seen))
}

// fleet is the shared settings of replicas on one PostgreSQL database.
type fleet struct {
	dsn, keyFile, masterFile string
}

func newFleet(t *testing.T) fleet {
	t.Helper()
	skey, _, err := note.GenerateKey(crand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := fleet{dsn: pgtest.New(t), keyFile: filepath.Join(dir, "signing.key"), masterFile: filepath.Join(dir, "master.key")}
	if err := os.WriteFile(f.keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	master, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.masterFile, []byte(master.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fleet) start(t *testing.T, bin, data string, extra ...string) *trailtest.Server {
	t.Helper()
	return trailtest.Start(t, trailtest.Options{Binary: bin, Data: data, Args: append([]string{
		"--database", f.dsn, "--signing-key-file", f.keyFile, "--master-key-file", f.masterFile, "--log-origin", "trail.test/log",
	}, extra...)})
}

// slot is a replica that restarts replace (its port changes).
type slot struct {
	p atomic.Pointer[trailtest.Server]
}

func (s *slot) get() *trailtest.Server    { return s.p.Load() }
func (s *slot) set(srv *trailtest.Server) { s.p.Store(srv) }

// dumpOnFailure logs the replicas' warnings and errors if the test failed.
func dumpOnFailure(t *testing.T, servers func() []*trailtest.Server) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, srv := range servers() {
			for _, line := range strings.Split(srv.Logs(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
					t.Logf("replica %d: %s", i, line)
				}
			}
		}
	})
}
