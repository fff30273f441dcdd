package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// logEnv is an env whose server serves the verifiable log, with a real
// integrator signing checkpoints over the same SQLite store.
type logEnv struct {
	*env
	signer *ledger.Signer
	in     *ledger.Integrator
}

func newLogEnv(t *testing.T, refused func() map[string]string) *logEnv {
	t.Helper()
	le := &logEnv{}
	e := newEnv(t, func(c *Config, e *env) {
		signer, err := ledger.LoadOrCreateSigner(t.TempDir(), "test.example")
		if err != nil {
			t.Fatal(err)
		}
		in, err := ledger.NewIntegrator(e.st, signer, "test.example/trail", ledger.Options{DataDir: t.TempDir(), Interval: 5 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.Stop)
		le.signer, le.in = signer, in
		c.Log = LogConfig{Storage: e.st, VerifierKey: signer.VerifierKey(), Refused: refused, Keys: plainKeys(t, signer.VerifierKey())}
	})
	le.env = e
	return le
}

// integrated waits until org's newest checkpoint covers its whole log and
// returns that checkpoint.
func (e *logEnv) integrated(org string) ledger.Checkpoint {
	e.t.Helper()
	want := e.nextSeq(org)
	deadline := time.Now().Add(time.Minute)
	for {
		e.in.Wake()
		if err := e.in.WaitIdle(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		res := e.do("GET", "/v1/organizations/"+org+"/log/checkpoint", e.admin, "")
		if res.Code == http.StatusOK {
			ck, err := ledger.ParseCheckpoint(res.Body.Bytes(), e.signer.Verifier())
			if err != nil {
				e.t.Fatalf("checkpoint does not verify: %v\n%s", err, res.Body)
			}
			if ck.Size == want {
				return ck
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no checkpoint of size %d for %s: last answer %d %s", want, org, res.Code, res.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *logEnv) send(org string, n int) {
	e.t.Helper()
	for i := range n {
		res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, fmt.Sprintf("doc.edited_%d", i%3)))
		if res.Code != http.StatusCreated {
			e.t.Fatalf("POST event: %d %s", res.Code, res.Body)
		}
	}
}

// plainKeys is a key history of the given keys, all active.
func plainKeys(t testing.TB, vkeys ...string) func() *ledger.KeyHistory {
	h, err := ledger.PlainKeys(vkeys...)
	if err != nil {
		t.Fatal(err)
	}
	return func() *ledger.KeyHistory { return h }
}

func TestLogKeyAndCheckpoint(t *testing.T) {
	e := newLogEnv(t, nil)
	res := e.do("GET", "/v1/log/key", "", "")
	if res.Code != 200 || strings.TrimSpace(res.Body.String()) != e.signer.VerifierKey() {
		t.Fatalf("GET /v1/log/key = %d %q, want the verifier key %q", res.Code, res.Body, e.signer.VerifierKey())
	}
	res = e.do("GET", "/v1/log/keys", "", "")
	if h, err := ledger.ParseKeyHistory(res.Body.String()); res.Code != 200 || err != nil || h.Keys[0].VerifierKey != e.signer.VerifierKey() {
		t.Fatalf("GET /v1/log/keys = %d %q (%v), want the key history", res.Code, res.Body, err)
	}
	org := e.org("Acme")
	e.send(org, 5)
	ck := e.integrated(org)
	if ck.Origin != "test.example/trail/"+org {
		t.Errorf("origin %q", ck.Origin)
	}
	res = e.do("GET", "/v1/organizations/"+org+"/log/checkpoint", e.admin, "")
	if ct := res.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	// A checkpoint of an exact older size, when one was signed.
	old := ck.Size
	e.send(org, 3)
	e.integrated(org)
	res = e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/checkpoint?size=%d", org, old), e.admin, "")
	if res.Code != 200 {
		t.Fatalf("checkpoint?size=%d: %d %s", old, res.Code, res.Body)
	}
	got, err := ledger.ParseCheckpoint(res.Body.Bytes(), e.signer.Verifier())
	if err != nil || got.Size != old || got.Hash != ck.Hash {
		t.Fatalf("checkpoint?size=%d = %+v, %v; want %+v", old, got, err, ck)
	}
}

// Every proof the API serves checks against the signed checkpoint with
// nothing but x/mod/sumdb/tlog and the records the API serves.
func TestLogProofsVerify(t *testing.T) {
	e := newLogEnv(t, nil)
	org := e.org("Acme")
	e.send(org, 9)
	first := e.integrated(org)
	e.send(org, 31)
	ck := e.integrated(org)

	res := e.do("GET", "/v1/organizations/"+org+"/log/records", e.admin, "")
	if res.Code != 200 || res.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("records: %d %s %s", res.Code, res.Header().Get("Content-Type"), res.Body)
	}
	lines := bytes.Split(bytes.TrimSuffix(res.Body.Bytes(), []byte("\n")), []byte("\n"))
	if int64(len(lines)) != ck.Size {
		t.Fatalf("records returned %d lines, want %d", len(lines), ck.Size)
	}
	for seq, line := range lines {
		var rec struct{ Seq int64 }
		if err := json.Unmarshal(line, &rec); err != nil || rec.Seq != int64(seq) {
			t.Fatalf("line %d: seq %d, %v", seq, rec.Seq, err)
		}
		var p inclusionProofJSON
		decode(t, e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/proof/inclusion?seq=%d", org, seq), e.admin, ""), &p)
		if p.TreeSize != ck.Size || p.Seq != int64(seq) {
			t.Fatalf("inclusion proof for %d: %+v", seq, p)
		}
		if err := tlog.CheckRecord(p.Proof, ck.Size, ck.Hash, int64(seq), tlog.RecordHash(line)); err != nil {
			t.Fatalf("inclusion proof of seq %d does not verify: %v", seq, err)
		}
	}
	// A record from another seq must not verify with this proof.
	var p inclusionProofJSON
	decode(t, e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/proof/inclusion?seq=3&size=%d", org, first.Size), e.admin, ""), &p)
	if err := tlog.CheckRecord(p.Proof, first.Size, first.Hash, 3, tlog.RecordHash(lines[4])); err == nil {
		t.Fatal("an inclusion proof verified the wrong record")
	}
	if err := tlog.CheckRecord(p.Proof, first.Size, first.Hash, 3, tlog.RecordHash(lines[3])); err != nil {
		t.Fatalf("inclusion proof in the older tree: %v", err)
	}

	var c consistencyProofJSON
	decode(t, e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/proof/consistency?from=%d", org, first.Size), e.admin, ""), &c)
	if c.From != first.Size || c.To != ck.Size {
		t.Fatalf("consistency proof %+v", c)
	}
	if err := tlog.CheckTree(c.Proof, ck.Size, ck.Hash, first.Size, first.Hash); err != nil {
		t.Fatalf("consistency proof does not verify: %v", err)
	}

	// A sub-range of records.
	res = e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/records?from=4&to=7", org), e.admin, "")
	if got := bytes.Count(res.Body.Bytes(), []byte("\n")); got != 3 || !bytes.HasPrefix(res.Body.Bytes(), lines[4]) {
		t.Fatalf("records 4..7: %d lines: %s", got, res.Body)
	}

	// Bundles verify offline, whole or partial, with a since proof.
	for _, q := range []string{"", "?from=17", fmt.Sprintf("?from=2&to=%d", first.Size), fmt.Sprintf("?since=%d", first.Size)} {
		res := e.do("GET", "/v1/organizations/"+org+"/log/bundle"+q, e.admin, "")
		if res.Code != 200 {
			t.Fatalf("bundle%s: %d %s", q, res.Code, res.Body)
		}
		opts := ledger.VerifyOptions{}
		if strings.Contains(q, "since") {
			old := e.do("GET", fmt.Sprintf("/v1/organizations/%s/log/checkpoint?size=%d", org, first.Size), e.admin, "")
			opts.Since = old.Body.Bytes()
		}
		rep, err := ledger.Verify(res.Body, e.signer.VerifierKey(), opts)
		if err != nil {
			t.Fatalf("bundle%s does not verify: %v\n%s", q, err, rep.String())
		}
	}
}

func TestLogErrors(t *testing.T) {
	e := newLogEnv(t, nil)
	org := e.org("Acme")
	other := e.org("Other")
	e.send(org, 4)
	ck := e.integrated(org)
	restricted, _ := e.key("other reader", []string{access.ScopeEventsRead}, other)
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	reader, _ := e.key("acme reader", []string{access.ScopeEventsRead}, org)
	base := "/v1/organizations/" + org + "/log"
	tests := []struct {
		name, secret, path string
		status             int
		code               string
	}{
		{"no key", "", base + "/checkpoint", 401, ""},
		{"write-only key", writer, base + "/checkpoint", 403, ""},
		{"another organization's key: checkpoint", restricted, base + "/checkpoint", 404, "entity_not_found"},
		{"another organization's key: records", restricted, base + "/records", 404, "entity_not_found"},
		{"another organization's key: bundle", restricted, base + "/bundle", 404, "entity_not_found"},
		{"another organization's key: inclusion", restricted, base + "/proof/inclusion?seq=0", 404, "entity_not_found"},
		{"another organization's key: consistency", restricted, base + "/proof/consistency?from=1", 404, "entity_not_found"},
		{"unknown organization", e.admin, "/v1/organizations/org_nope/log/checkpoint", 404, "entity_not_found"},
		{"unknown parameter", reader, base + "/checkpoint?sise=3", 422, "invalid_request_parameters"},
		{"size not a number", reader, base + "/checkpoint?size=abc", 422, "invalid_request_parameters"},
		{"size beyond the log", reader, base + "/checkpoint?size=99", 400, "tree_size_not_signed"},
		{"inclusion without seq", reader, base + "/proof/inclusion", 422, "invalid_request_parameters"},
		{"inclusion seq negative", reader, base + "/proof/inclusion?seq=-1", 422, "invalid_request_parameters"},
		{"inclusion seq not below size", reader, fmt.Sprintf("%s/proof/inclusion?seq=%d&size=%d", base, ck.Size, ck.Size), 422, "invalid_request_parameters"},
		{"inclusion size beyond", reader, base + "/proof/inclusion?seq=0&size=99", 400, "tree_size_not_signed"},
		{"consistency without from", reader, base + "/proof/consistency", 422, "invalid_request_parameters"},
		{"consistency from above to", reader, base + "/proof/consistency?from=3&to=2", 422, "invalid_request_parameters"},
		{"records to beyond the log", reader, base + "/records?to=99", 422, "invalid_request_parameters"},
		{"records from above to", reader, base + "/records?from=3&to=1", 422, "invalid_request_parameters"},
		{"bundle to zero", reader, base + "/bundle?to=0", 422, "invalid_request_parameters"},
		{"bundle from beyond", reader, base + "/bundle?from=99", 422, "invalid_request_parameters"},
		{"bundle since beyond", reader, base + "/bundle?since=99", 422, "invalid_request_parameters"},
		{"bundle size beyond", reader, base + "/bundle?size=99", 400, "tree_size_not_signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("GET", tt.path, tt.secret, "")
			if res.Code != tt.status {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, res.Code, res.Body, tt.status)
			}
			var body errorBody
			if err := json.Unmarshal(res.Body.Bytes(), &body); err != nil || body.Message == "" {
				t.Fatalf("error body %q is not a JSON error with a message", res.Body)
			}
			if tt.code != "" && body.Code != tt.code {
				t.Errorf("code %q, want %q (%s)", body.Code, tt.code, body.Message)
			}
		})
	}
}

func TestReadyzReportsRefusedLogs(t *testing.T) {
	e := newLogEnv(t, func() map[string]string {
		return map[string]string{"org_x": "stored tree of size 3 does not contain signed checkpoint of size 9"}
	})
	// Anonymous callers learn the status only; operators, which.
	res := e.do("GET", "/readyz", "", "")
	if res.Code != http.StatusServiceUnavailable || !strings.Contains(res.Body.String(), `"status":"degraded"`) || strings.Contains(res.Body.String(), "org_x") {
		t.Fatalf("public /readyz = %d %s, want 503 degraded naming no organization", res.Code, res.Body)
	}
	res = e.operator("/readyz", false)
	if res.Code != http.StatusServiceUnavailable || !strings.Contains(res.Body.String(), `"status":"degraded"`) || !strings.Contains(res.Body.String(), "org_x") {
		t.Fatalf("operator /readyz = %d %s, want 503 degraded naming org_x", res.Code, res.Body)
	}
}

// Witnesses that do not answer leave the server ready (ingest goes on) but
// say so: "degraded" to anyone, which witnesses to operators only.
func TestReadyzReportsWitnessesDown(t *testing.T) {
	var down []string
	e := newEnv(t, func(c *Config, e *env) {
		c.Log = LogConfig{Storage: e.st, VerifierKey: "test", WitnessesDown: func() []string { return down }}
	})
	if res := e.do("GET", "/readyz", "", ""); res.Code != http.StatusOK || strings.Contains(res.Body.String(), "degraded") {
		t.Fatalf("/readyz with every witness up = %d %s, want 200 ok", res.Code, res.Body)
	}
	down = []string{"witness.example"}
	res := e.do("GET", "/readyz", "", "")
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), `"status":"degraded"`) || strings.Contains(res.Body.String(), "witness.example") {
		t.Fatalf("public /readyz = %d %s, want 200 degraded naming no witness", res.Code, res.Body)
	}
	res = e.operator("/readyz", false)
	if res.Code != http.StatusOK || !strings.Contains(res.Body.String(), "witness.example") {
		t.Fatalf("operator /readyz = %d %s, want 200 naming the witness", res.Code, res.Body)
	}
}

// refusingSubmitter refuses every submission with an event for another
// organization than the system one, as the integrator's Admit does for a
// refused log.
type refusingSubmitter struct{ next Submitter }

func (r refusingSubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	for _, e := range s.Events {
		if e.OrganizationID != store.SystemOrganizationID {
			return store.AppendResult{}, fmt.Errorf("admit: %w", &ledger.RefusedError{Organization: e.OrganizationID, Reason: "behind"})
		}
	}
	return r.next.Submit(ctx, s)
}

// Events for a refused log are answered 503 with why and a Retry-After of
// minutes (an operator must act), on both ingest routes.
func TestIngestRefusedLog(t *testing.T) {
	e := newEnv(t, func(_ *Config, e *env) { e.subOverride = refusingSubmitter{e.com} })
	org := e.org("Acme")
	tests := []struct{ path, body string }{
		{"/audit_logs/events", e.eventBody(org, "user.signed_in")},
		{"/v1/events/batch", `{"events":[` + e.eventBody(org, "user.signed_in") + `]}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := e.do("POST", tt.path, e.admin, tt.body)
			expectError(t, res, http.StatusServiceUnavailable, "log_refused")
			if ra := res.Header().Get("Retry-After"); ra != "300" {
				t.Errorf("Retry-After %q, want 300", ra)
			}
		})
	}
}
