package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

func TestCreateEvent(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	writer, _ := e.key("writer", []string{access.ScopeEventsWrite}, "")
	base := e.nextSeq(org) // the organization's log holds its own creation
	body := e.eventBody(org, "user.signed_in")
	expect(t, e.do("POST", "/audit_logs/events", writer, body), 201, `{"success":true}`)
	if n := e.nextSeq(org); n != base+1 {
		t.Fatalf("log size %d after one event, want %d", n, base+1)
	}
	l := e.search(e.admin, "/v1/events?organization_id="+org+"&action=user.signed_in", 1)
	r := l.records(t)[0]
	if r.OrganizationID != org || r.Seq != base || !strings.HasPrefix(r.ID, "evt_") || r.Actor.Name != "Jon Smith" {
		t.Errorf("stored record %s", l.Data[0])
	}
}

func TestCreateEventErrors(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *env) { c.Limits.MaxBodyBytes = 1 << 20 })
	org := e.org("Acme")
	other := e.org("Other")
	base, otherBase := e.nextSeq(org), e.nextSeq(other)
	restricted, _ := e.key("acme writer", []string{access.ScopeEventsWrite}, org)
	noAction := e.eventBody(org, "", func(ev map[string]any) { delete(ev, "action") })
	tests := []struct {
		name    string
		secret  string
		body    string
		headers []string
		status  int
		want    string // exact body, or "code:<code>"
	}{
		{"missing action", e.admin, noAction, nil, 422,
			`{"message":"Validation failed.","errors":[{"code":"required","field":"event.action","message":"…`},
		{"too large", e.admin, `{"organization_id":"` + strings.Repeat("x", 1<<20) + `"}`, nil, 413,
			`{"message":"Request body exceeds 1048576 bytes.","code":"request_too_large"}`},
		{"not JSON", e.admin, `{"organization_id":`, nil, 400, "code:invalid_json"},
		{"empty", e.admin, ``, nil, 400, "code:invalid_json"},
		{"unknown organization", e.admin, e.eventBody("org_nope", "user.signed_in"), nil, 404,
			`{"message":"Organization 'org_nope' not found.","code":"entity_not_found"}`},
		{"another organization's key", restricted, e.eventBody(other, "user.signed_in"), nil, 404,
			`{"message":"Organization '` + other + `' not found.","code":"entity_not_found"}`},
		{"system log", e.admin, e.eventBody(store.SystemOrganizationID, "user.signed_in"), nil, 403, "code:forbidden"},
		{"long idempotency key", e.admin, e.eventBody(org, "a.b"), []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "code:invalid_idempotency_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("POST", "/audit_logs/events", tt.secret, tt.body, tt.headers...)
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				expectPrefix(t, res, tt.status, prefix)
			} else if code, ok := strings.CutPrefix(tt.want, "code:"); ok {
				expectError(t, res, tt.status, code)
			} else {
				expect(t, res, tt.status, tt.want)
			}
		})
	}
	if n := e.nextSeq(org); n != base {
		t.Errorf("%d events stored from failed requests", n-base)
	}
	if n := e.nextSeq(other); n != otherBase {
		t.Errorf("%d events stored in the other organization", n-otherBase)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	base := e.nextSeq(org)
	a, b := e.eventBody(org, "user.signed_in"), e.eventBody(org, "user.signed_out")
	for range 3 {
		expect(t, e.do("POST", "/audit_logs/events", e.admin, a, "Idempotency-Key", "k1"), 201, `{"success":true}`)
	}
	if n := e.nextSeq(org) - base; n != 1 {
		t.Fatalf("same key, same body, three times: %d events stored, want 1", n)
	}
	if got := reuseCount(t, e); got != 0 {
		t.Errorf("trail_idempotency_key_reused_total = %v after plain retries, want 0", got)
	}
	// The key alone decides, as WorkOS defines it: an event rebuilt on
	// retry (a new occurred_at), the same JSON with its keys in another
	// order, or another event altogether, is answered like the first
	// request and stores nothing; each is counted and logged.
	var reordered map[string]any
	if err := json.Unmarshal([]byte(a), &reordered); err != nil {
		t.Fatal(err)
	}
	reorderedBody := `{"organization_id":"` + org + `","event":` + mustJSON(reordered["event"]) + `}`
	if reorderedBody == a {
		t.Fatal("the reordered body is the same bytes")
	}
	rebuilt := e.eventBody(org, "user.signed_in", func(ev map[string]any) {
		ev["occurred_at"] = time.Now().UTC().Format(time.RFC3339Nano)
	})
	for i, body := range []string{rebuilt, reorderedBody, b} {
		expect(t, e.do("POST", "/audit_logs/events", e.admin, body, "Idempotency-Key", "k1"), 201, `{"success":true}`)
		if n := e.nextSeq(org) - base; n != 1 {
			t.Fatalf("same key, body %d: %d events stored, want 1", i, n)
		}
		if got := reuseCount(t, e); got != float64(i+1) {
			t.Errorf("trail_idempotency_key_reused_total = %v after %d reuses", got, i+1)
		}
	}
	first := e.search(e.admin, "/v1/events?organization_id="+org+"&action=user.signed_in", 1).records(t)[0]
	var warned int
	for line := range strings.SplitSeq(e.logs.String(), "\n") {
		if !strings.Contains(line, "Idempotency-Key was reused") {
			continue
		}
		warned++
		if !strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, `"first_event_ids":"`+first.ID+`"`) ||
			!regexp.MustCompile(`"new_event_ids":"evt_[0-9A-Z]{26}"`).MatchString(line) || !regexp.MustCompile(`"new_body_sha256":"[0-9a-f]{64}"`).MatchString(line) {
			t.Errorf("log line %s: want WARN with the first event's id, the new event's id and the new body's hash", line)
		}
	}
	if warned != 3 {
		t.Errorf("%d warnings of a reused key, want 3", warned)
	}
	// Another key is another request.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, b, "Idempotency-Key", "k2"), 201, `{"success":true}`)
	// No key: every request is an event.
	e.do("POST", "/audit_logs/events", e.admin, a)
	e.do("POST", "/audit_logs/events", e.admin, a)
	if n := e.nextSeq(org) - base; n != 4 {
		t.Fatalf("another key and no key: %d events stored, want 4", n)
	}
}

// TestIdempotencyAcrossOrganizations: keys belong to the organization of the
// request's first event; a reused key whose first answer holds events of an
// organization the caller may not see is refused rather than shown.
func TestIdempotencyAcrossOrganizations(t *testing.T) {
	e := newEnv(t)
	acme, globex := e.org("Acme"), e.org("Globex")
	onlyAcme, _ := e.key("acme writer", []string{access.ScopeEventsWrite}, acme)
	both := batchBody(e.eventBody(acme, "a.b"), e.eventBody(globex, "a.b"))
	if res := e.do("POST", "/v1/events/batch", e.admin, both, "Idempotency-Key", "shared"); res.Code != 201 {
		t.Fatalf("batch: %d %s", res.Code, res.Body)
	}
	acmeBase, globexBase := e.nextSeq(acme), e.nextSeq(globex)
	// The same key for another organization first: a new request.
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(globex, "x.y"), "Idempotency-Key", "shared"), 201, `{"success":true}`)
	if n := e.nextSeq(globex) - globexBase; n != 1 {
		t.Errorf("the key in another organization: %d events stored, want 1", n)
	}
	// The acme-only key reusing it with another body: the first answer
	// names Globex's event, which that key may not see.
	expectError(t, e.do("POST", "/v1/events/batch", onlyAcme, batchBody(e.eventBody(acme, "c.d")), "Idempotency-Key", "shared"), 409, "idempotency_key_reused")
	if n := e.nextSeq(acme) - acmeBase; n != 0 {
		t.Errorf("a refused reuse stored %d events", n)
	}
}

func reuseCount(t *testing.T, e *env) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "trail_idempotency_key_reused_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func TestBatch(t *testing.T) {
	e := newEnv(t)
	acme, globex := e.org("Acme"), e.org("Globex")
	a0, g0 := e.nextSeq(acme), e.nextSeq(globex)
	body := batchBody(
		`{"organization_id":"`+acme+`","event":`+string(innerEvent(e.eventBody(acme, "user.signed_in")))+`}`,
		`{"organization_id":"`+globex+`","event":`+string(innerEvent(e.eventBody(globex, "user.signed_in")))+`}`,
		`{"organization_id":"`+acme+`","event":`+string(innerEvent(e.eventBody(acme, "user.signed_out")))+`}`,
	)
	res := e.do("POST", "/v1/events/batch", e.admin, body, "Idempotency-Key", "batch-1")
	if res.Code != 201 {
		t.Fatalf("batch: %d %s", res.Code, res.Body)
	}
	var out struct {
		Data []struct {
			ID             string `json:"id"`
			OrganizationID string `json:"organization_id"`
			Seq            int64  `json:"seq"`
			ReceivedAt     string `json:"received_at"`
		} `json:"data"`
	}
	decode(t, res, &out)
	wantOrgs, wantSeqs := []string{acme, globex, acme}, []int64{a0, g0, a0 + 1}
	if len(out.Data) != 3 {
		t.Fatalf("batch answer %s", res.Body)
	}
	for i, d := range out.Data {
		if d.OrganizationID != wantOrgs[i] || d.Seq != wantSeqs[i] || !strings.HasPrefix(d.ID, "evt_") || len(d.ReceivedAt) != 24 {
			t.Errorf("data[%d] = %+v, want organization %s seq %d", i, d, wantOrgs[i], wantSeqs[i])
		}
	}
	// The stored record carries the same id and received_at.
	got := e.do("GET", "/v1/events/"+out.Data[2].ID, e.admin, "")
	var r struct {
		ReceivedAt string `json:"received_at"`
		Seq        int64  `json:"seq"`
	}
	decode(t, got, &r)
	if r.ReceivedAt != out.Data[2].ReceivedAt || r.Seq != a0+1 {
		t.Errorf("record %s does not match the batch answer %+v", got.Body, out.Data[2])
	}
	// An idempotent replay answers the same, with the original ids.
	replay := e.do("POST", "/v1/events/batch", e.admin, body, "Idempotency-Key", "batch-1")
	if replay.Code != 201 || replay.Body.String() != res.Body.String() {
		t.Errorf("replay: %d %s\nfirst: %s", replay.Code, replay.Body, res.Body)
	}
	if e.nextSeq(acme) != a0+2 || e.nextSeq(globex) != g0+1 {
		t.Errorf("after replay: log sizes %d, %d; want %d, %d", e.nextSeq(acme), e.nextSeq(globex), a0+2, g0+1)
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *env) { c.MaxBatchBodyBytes = 64 << 10 })
	acme, globex := e.org("Acme"), e.org("Globex")
	a0, g0 := e.nextSeq(acme), e.nextSeq(globex)
	restricted, _ := e.key("acme writer", []string{access.ScopeEventsWrite}, acme)
	item := func(org, action string) string {
		return `{"organization_id":"` + org + `","event":` + string(innerEvent(e.eventBody(org, action))) + `}`
	}
	var items []string
	for i := range 5 {
		items = append(items, item(acme, fmt.Sprintf("user.action_%d", i)))
	}
	bad := append([]string(nil), items...)
	bad[3] = item(acme, "")
	bad[4] = `{"event":` + string(innerEvent(e.eventBody(acme, "x.y"))) + `}`
	// The event parser's own wording; the test pins the shape around it.
	_, perr := parseBatch([]byte(batchBody(bad[3])), e.now(), defaultLimits())
	actionMsg := perr.(*apiError).errors[0].Message
	many := make([]string, 1001)
	for i := range many {
		many[i] = `{}`
	}
	tests := []struct {
		name   string
		secret string
		body   string
		status int
		want   string
	}{
		{"invalid items", e.admin, batchBody(bad...), 422,
			`{"message":"Validation failed.","errors":[{"code":"required","field":"events[3].event.action","message":"` + actionMsg + `"},{"code":"required","field":"events[4].organization_id","message":"must be a non-empty string"}]}`},
		{"unknown organization", e.admin, batchBody(item(acme, "a.b"), item("org_missing", "a.b")), 404,
			`{"message":"Organization 'org_missing' not found.","code":"entity_not_found"}`},
		{"another organization's key", restricted, batchBody(item(acme, "a.b"), item(globex, "a.b")), 404,
			`{"message":"Organization '` + globex + `' not found.","code":"entity_not_found"}`},
		{"no events", e.admin, `{"events":[]}`, 422,
			`{"message":"Validation failed.","errors":[{"code":"required","field":"events","message":"must hold at least one event"}]}`},
		{"missing events", e.admin, `{}`, 422,
			`{"message":"Validation failed.","errors":[{"code":"required","field":"events","message":"must be an array of 1 to 1000 events"}]}`},
		{"events not an array", e.admin, `{"events":{}}`, 422,
			`{"message":"Validation failed.","errors":[{"code":"invalid_type","field":"events","message":"must be an array of 1 to 1000 events"}]}`},
		{"too many", e.admin, batchBody(many...), 422,
			`{"message":"Validation failed.","errors":[{"code":"too_many","field":"events","message":"must hold at most 1000 events, not 1001; split the batch"}]}`},
		{"too large", e.admin, batchBody(item(acme, strings.Repeat("a", 70<<10))), 413,
			`{"message":"Request body exceeds 65536 bytes.","code":"request_too_large"}`},
		{"not JSON", e.admin, `{"events":[`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("POST", "/v1/events/batch", tt.secret, tt.body)
			if tt.want == "" {
				expectError(t, res, tt.status, "invalid_json")
				return
			}
			expect(t, res, tt.status, tt.want)
		})
	}
	if e.nextSeq(acme) != a0 || e.nextSeq(globex) != g0 {
		t.Fatalf("failed batches stored events: log sizes %d, %d; want %d, %d", e.nextSeq(acme), e.nextSeq(globex), a0, g0)
	}
	// The valid batch goes in whole.
	if res := e.do("POST", "/v1/events/batch", restricted, batchBody(items...)); res.Code != 201 {
		t.Fatalf("valid batch: %d %s", res.Code, res.Body)
	}
	if n := e.nextSeq(acme) - a0; n != 5 {
		t.Fatalf("%d events stored, want 5", n)
	}
}

// failingSubmitter answers every submission with err.
type failingSubmitter struct{ err error }

func (f failingSubmitter) Submit(context.Context, store.Submission) (store.AppendResult, error) {
	return store.AppendResult{}, f.err
}

func TestIngestUnavailable(t *testing.T) {
	const want = `{"message":"Trail is temporarily unable to accept events; retry after the delay in Retry-After.","code":"service_unavailable"}`
	for _, err := range []error{ingest.ErrOverloaded, fmt.Errorf("append: %w", store.ErrUnavailable)} {
		e := newEnv(t, func(_ *Config, e *env) { e.subOverride = failingSubmitter{err} })
		org := e.org("Acme")
		res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in"))
		expect(t, res, 503, want)
		if res.Header().Get("Retry-After") != "1" {
			t.Errorf("%v: Retry-After %q, want 1", err, res.Header().Get("Retry-After"))
		}
		res = e.do("POST", "/v1/events/batch", e.admin, batchBody(`{"organization_id":"`+org+`","event":`+string(innerEvent(e.eventBody(org, "a.b")))+`}`))
		expect(t, res, 503, want)
	}
	// The real committer, stopped (shutting down).
	e := newEnv(t)
	org := e.org("Acme")
	e.com.Stop()
	expect(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")), 503, want)
	// Any other failure is a 500, logged, never a 4xx blaming the client.
	e = newEnv(t, func(_ *Config, e *env) { e.subOverride = failingSubmitter{errors.New("disk on fire")} })
	org = e.org("Acme")
	expectError(t, e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")), 500, "internal_error")
	if !strings.Contains(e.logs.String(), "disk on fire") {
		t.Error("the failure was not logged")
	}
}

func TestBatchFieldPaths(t *testing.T) {
	// Every error of an item is reported under its index.
	body := batchBody(`{"organization_id":"org_a","event":{"action":"a.b","occurred_at":"yesterday","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"}}}`, `"text"`, `{"organization_id":7,"event":[]}`)
	_, err := parseBatch([]byte(body), testclock.Now(t), defaultLimits())
	e, ok := asAPIError(err)
	if !ok || e.status != 422 {
		t.Fatalf("parseBatch = %v", err)
	}
	var fields []string
	for _, fe := range e.errors {
		fields = append(fields, fe.Field)
	}
	want := []string{"events[0].event.occurred_at", "events[1]", "events[2].organization_id", "events[2].event"}
	if b, _ := json.Marshal(fields); string(b) != mustJSON(want) {
		t.Errorf("fields %s, want %s", b, mustJSON(want))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestConcurrentIngest(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *env) { c.RateLimit, c.RateBurst = 1000, 1000 })
	org := e.org("Acme")
	base := e.nextSeq(org)
	writers := make([]string, 4)
	for i := range writers {
		writers[i], _ = e.key(fmt.Sprintf("writer %d", i), []string{access.ScopeEventsWrite}, org)
	}
	const perWorker = 25
	var wg sync.WaitGroup
	errs := make(chan string, 8*perWorker)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				body := e.eventBody(org, fmt.Sprintf("load.w%d", w))
				var res *httptest.ResponseRecorder
				if i%5 == 0 {
					res = e.do("POST", "/v1/events/batch", writers[w%4], batchBody(`{"organization_id":"`+org+`","event":`+string(innerEvent(body))+`}`))
				} else {
					res = e.do("POST", "/audit_logs/events", writers[w%4], body)
				}
				if res.Code != 201 {
					errs <- fmt.Sprintf("%d %s", res.Code, res.Body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.nextSeq(org) - base; n != 8*perWorker {
		t.Fatalf("%d events stored, want %d", n, 8*perWorker)
	}
}

// blockingSubmitter, once armed, holds every submission until release is
// closed; before that it passes them to next.
type blockingSubmitter struct {
	next    Submitter
	armed   *atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (b blockingSubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	if !b.armed.Load() {
		return b.next.Submit(ctx, s)
	}
	b.entered <- struct{}{}
	<-b.release
	return store.AppendResult{Events: make([]event.Accepted, len(s.Events))}, nil
}

// Ingest in progress is bounded in bytes: past the bound a request is
// refused at once with 503 and Retry-After, before its body is read, and
// admitted again once the work ahead of it is done.
func TestIngestIntakeBound(t *testing.T) {
	block := blockingSubmitter{armed: &atomic.Bool{}, entered: make(chan struct{}, 10), release: make(chan struct{})}
	body := eventBodyAt(time.Now(), "org_placeholder", "user.signed_in")
	e := newEnv(t, func(c *Config, e *env) {
		c.MaxIntakeBytes = int64(len(body)) + 100 // room for one request
		block.next = e.com
		e.subOverride = block
	})
	org := e.org("Acme")
	body = e.eventBody(org, "user.signed_in")
	block.armed.Store(true)
	done := make(chan int, 1)
	go func() { done <- e.do("POST", "/audit_logs/events", e.admin, body).Code }()
	<-block.entered // the first request holds the intake while it commits

	// The first request is held until block.release: this answer, coming
	// while it is, shows the refusal waits for no commit.
	res := e.do("POST", "/audit_logs/events", e.admin, body)
	if res.Code != 503 || res.Header().Get("Retry-After") == "" {
		t.Fatalf("second request during a full intake: %d %s (Retry-After %q), want 503 with Retry-After", res.Code, res.Body, res.Header().Get("Retry-After"))
	}
	res = e.do("POST", "/v1/events/batch", e.admin, batchBody(`{"organization_id":"`+org+`","event":`+string(innerEvent(body))+`}`))
	if res.Code != 503 {
		t.Fatalf("batch during a full intake: %d %s, want 503", res.Code, res.Body)
	}
	close(block.release)
	if code := <-done; code != 201 {
		t.Fatalf("the admitted request: %d", code)
	}
	block.armed.Store(false)
	if res := e.do("POST", "/audit_logs/events", e.admin, body); res.Code != 201 {
		t.Fatalf("after the intake drained: %d %s", res.Code, res.Body)
	}
}

// Large bodies are parsed a few at a time (one per core), each turn ending
// before the request waits for its commit; small ones never wait for a turn;
// a request whose client leaves while it waits for a turn stores nothing.
func TestParseTurns(t *testing.T) {
	block := blockingSubmitter{armed: &atomic.Bool{}, entered: make(chan struct{}, 64), release: make(chan struct{})}
	e := newEnv(t, func(c *Config, e *env) {
		block.next = e.com
		e.subOverride = block
	})
	org := e.org("Acme")
	item := `{"organization_id":"` + org + `","event":` + string(innerEvent(e.eventBody(org, "user.signed_in"))) + `}`
	items := make([]string, 0, 1000)
	for len(strings.Join(items, ",")) < parseTurnMin {
		items = append(items, item)
	}
	large := batchBody(items...)
	turns := cap(e.srv.parsing)

	// More large batches than turns all reach their commit together: a turn
	// is not held while the commit is awaited.
	block.armed.Store(true)
	codes := make(chan int, turns+2)
	for range turns + 2 {
		go func() { codes <- e.do("POST", "/v1/events/batch", e.admin, large).Code }()
	}
	for i := range turns + 2 {
		select {
		case <-block.entered:
		case <-time.After(time.Minute):
			t.Fatalf("only %d of %d large batches reached their commit", i, turns+2)
		}
	}
	close(block.release)
	for range turns + 2 {
		if code := <-codes; code != 201 {
			t.Fatalf("large batch: %d", code)
		}
	}
	block.armed.Store(false)

	// Every turn taken: a small event is not held up; a large batch waits,
	// and if its client leaves, answers 499 with nothing stored.
	for range turns {
		e.srv.parsing <- struct{}{}
	}
	if res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")); res.Code != 201 {
		t.Fatalf("small event while every turn is taken: %d %s", res.Code, res.Body)
	}
	before := e.nextSeq(org)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/events/batch", strings.NewReader(large))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 499 {
		t.Fatalf("large batch whose client left while waiting for a turn: %d %s, want 499", rec.Code, rec.Body)
	}
	if n := e.nextSeq(org) - before; n != 0 {
		t.Fatalf("%d events of the abandoned batch were stored", n)
	}
	for range turns {
		<-e.srv.parsing
	}
	if res := e.do("POST", "/v1/events/batch", e.admin, large); res.Code != 201 {
		t.Fatalf("large batch once turns are free: %d %s", res.Code, res.Body.String()[:min(200, res.Body.Len())])
	}
}
