package retention_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestServe drives retention through a real `trail serve`, on SQLite and on
// PostgreSQL (where the sweeper runs under a lease). received_at is the
// server's to assign, so the test cannot send old events; instead it sends
// two batches, restarts the server with the sweeper's clock fixed (the
// testing-only --retention-test-now) 30 days after the second batch was
// received, and checks that exactly the events received before it are gone
// while the log still verifies.
func TestServe(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			if backend == "postgres" {
				args = []string{"--database", pgtest.New(t), "--log-origin", "trail.test/retention"}
			}
			testServe(t, args)
		})
	}
}

type client struct {
	t   *testing.T
	url string
}

func (c client) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+trailtest.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.StatusCode, b
}

// must does a request that must answer status, and decodes its JSON into v
// (when v is not nil).
func (c client) must(method, path, body string, status int, v any) []byte {
	c.t.Helper()
	code, b := c.do(method, path, body)
	if code != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

type accepted struct {
	ID         string `json:"id"`
	Seq        int64  `json:"seq"`
	ReceivedAt string `json:"received_at"`
}

func (c client) batch(org string, n int) []accepted {
	c.t.Helper()
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf(`{"organization_id":%q,"event":{"action":"doc.viewed","occurred_at":%q,`+
			`"actor":{"id":"user_%d","type":"user"},"targets":[{"id":"doc_%d","type":"document"}],"context":{"location":"203.0.113.7"}}}`,
			org, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano), i, i))
	}
	var res struct{ Data []accepted }
	c.must("POST", "/v1/events/batch", `{"events":[`+strings.Join(items, ",")+`]}`, http.StatusCreated, &res)
	return res.Data
}

// waitFor polls cond every 20 ms until it holds, failing after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// integrated waits until org's newest checkpoint covers size records and
// returns it.
func (c client) integrated(org string, size int64) []byte {
	var note []byte
	waitFor(c.t, fmt.Sprintf("a checkpoint of %s of size %d", org, size), func() bool {
		code, b := c.do("GET", "/v1/organizations/"+org+"/log/checkpoint", "")
		note = b
		return code == http.StatusOK && bytes.Contains(b, []byte("\n"+strconv.FormatInt(size, 10)+"\n"))
	})
	return note
}

func (c client) searchIDs(org string) map[string]bool {
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	c.must("GET", "/v1/events?limit=100&organization_id="+org, "", http.StatusOK, &page)
	ids := map[string]bool{}
	for _, e := range page.Data {
		ids[e.ID] = true
	}
	return ids
}

func testServe(t *testing.T, args []string) {
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data, Args: args})
	c := client{t, srv.URL}
	var a, b struct{ ID string }
	c.must("POST", "/organizations", `{"name":"Short memory"}`, http.StatusCreated, &a)
	c.must("POST", "/organizations", `{"name":"Long memory"}`, http.StatusCreated, &b)
	c.must("PUT", "/organizations/"+b.ID+"/audit_logs_retention", `{"retention_period":"2_MONTHS"}`, http.StatusOK, nil)

	old := c.batch(a.ID, 20)
	c.batch(b.ID, 20)
	last, err := time.Parse(time.RFC3339Nano, old[len(old)-1].ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	// The second batch must be received in a later millisecond.
	waitFor(t, "the clock to pass the first batch", func() bool { return time.Now().After(last.Add(2 * time.Millisecond)) })
	recent := c.batch(a.ID, 10)
	c.batch(b.ID, 10)
	cutoff, err := time.Parse(time.RFC3339Nano, recent[0].ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	first := recent[0].Seq // 21: the organization's creation and the first batch go
	sizeA, sizeB := recent[len(recent)-1].Seq+1, int64(1+1+30)
	checkpointA := c.integrated(a.ID, sizeA)
	checkpointB := c.integrated(b.ID, sizeB)
	// Searchable a little after acknowledgement (the indexer runs a pass
	// at most every 300 ms).
	var ids map[string]bool
	waitFor(t, fmt.Sprintf("%d events of %s searchable", sizeA, a.ID), func() bool {
		ids = c.searchIDs(a.ID)
		return int64(len(ids)) == sizeA
	})
	var seq0 []byte
	for id := range ids {
		body := c.must("GET", "/v1/events/"+id, "", http.StatusOK, nil)
		if bytes.Contains(body, []byte(`"seq":0,`)) {
			seq0 = body
		}
	}
	if seq0 == nil {
		t.Fatal("no event of seq 0 found")
	}
	// Only integrated records are pruned, and a log that grows by a
	// trickle is signed up to a second after its events: wait for the
	// system log's checkpoint, so that the first sweep after the restart
	// may prune all of it.
	c.integrated("org_system", int64(len(c.searchIDs("org_system"))))
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stopping the server: %v\n%s", err, srv.Logs())
	}

	// 30 days after the second batch, by the sweeper's clock.
	now := cutoff.Add(30 * 24 * time.Hour)
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: append(args, "--retention-test-now", now.Format(time.RFC3339Nano))})
	c = client{t, srv.URL}
	var metrics string
	waitFor(t, "a retention sweep", func() bool {
		metrics = string(client{t, srv.MetricsURL}.must("GET", "/metrics", "", http.StatusOK, nil))
		at, ok := metricValue(metrics, "trail_retention_last_sweep_timestamp_seconds")
		return ok && math.Abs(at-float64(now.UnixNano())/1e9) < 0.01
	})
	// The system log (the bootstrap key and the two organizations created)
	// follows the default retention too.
	if n, _ := metricValue(metrics, "trail_retention_records_deleted_total"); n != float64(first+3) {
		t.Errorf("records deleted metric = %v, want %d:\n%s", n, first+3, grep(metrics, "trail_retention"))
	}
	if n := len(c.searchIDs("org_system")); n != 0 {
		t.Errorf("the system log still shows %d events received before the cutoff", n)
	}

	// The bodies are gone: by id and from search.
	for _, e := range old {
		if code, body := c.do("GET", "/v1/events/"+e.ID, ""); code != http.StatusNotFound {
			t.Errorf("GET /v1/events/%s of a pruned event: %d %s", e.ID, code, body)
		}
	}
	ids = c.searchIDs(a.ID)
	if len(ids) != len(recent) {
		t.Errorf("search of %s finds %d events, want the %d of the second batch", a.ID, len(ids), len(recent))
	}
	for _, e := range recent {
		if !ids[e.ID] {
			t.Errorf("retained event %s is not found by search", e.ID)
		}
		c.must("GET", "/v1/events/"+e.ID, "", http.StatusOK, nil)
	}
	if n := len(c.searchIDs(b.ID)); int64(n) != sizeB {
		t.Errorf("search of %s (60 days) finds %d events, want all %d", b.ID, n, sizeB)
	}

	// The hashes are kept: the same checkpoints, and the remainder verifies.
	if got := c.must("GET", "/v1/organizations/"+a.ID+"/log/checkpoint", "", http.StatusOK, nil); !bytes.Equal(got, checkpointA) {
		t.Errorf("the checkpoint of %s changed:\n%s\nwas\n%s", a.ID, got, checkpointA)
	}
	if got := c.must("GET", "/v1/organizations/"+b.ID+"/log/checkpoint", "", http.StatusOK, nil); !bytes.Equal(got, checkpointB) {
		t.Errorf("the checkpoint of %s changed", b.ID)
	}
	key := strings.TrimSpace(string(c.must("GET", "/v1/log/key", "", http.StatusOK, nil)))
	bundle := c.must("GET", fmt.Sprintf("/v1/organizations/%s/log/bundle?from=%d", a.ID, first), "", http.StatusOK, nil)
	rep, err := ledger.Verify(bytes.NewReader(bundle), key, ledger.VerifyOptions{})
	if err != nil || rep.From != first || rep.To != sizeA || rep.Records != sizeA-first {
		t.Errorf("the bundle of the retained records did not verify: %v\n%s", err, rep.String())
	}
	whole := c.must("GET", "/v1/organizations/"+a.ID+"/log/bundle", "", http.StatusOK, nil)
	rep, err = ledger.Verify(bytes.NewReader(whole), key, ledger.VerifyOptions{})
	if err == nil || rep.ProblemCount != 1 || rep.Problems[0].Kind != ledger.ProblemMissing {
		t.Errorf("a bundle from seq 0 should report the pruned records missing: %v\n%s", err, rep.String())
	}
	// A pruned record, kept by its owner, is still proven in the signed tree.
	var proof struct{ Proof []tlog.Hash }
	c.must("GET", fmt.Sprintf("/v1/organizations/%s/log/proof/inclusion?seq=0", a.ID), "", http.StatusOK, &proof)
	verifier, err := note.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ledger.ParseCheckpoint(checkpointA, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(proof.Proof, ck.Size, ck.Hash, 0, tlog.RecordHash(seq0)); err != nil {
		t.Errorf("the pruned seq 0 is no longer proven: %v", err)
	}

	c.must("GET", "/organizations/"+a.ID+"/audit_logs_retention", "", http.StatusOK, nil)
	if got := string(c.must("GET", "/organizations/"+b.ID+"/audit_logs_retention", "", http.StatusOK, nil)); got != `{"retention_period_in_days":60}` {
		t.Errorf("retention of %s = %s", b.ID, got)
	}
}

// metricValue reads an unlabelled sample from Prometheus text.
func metricValue(text, name string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func grep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
