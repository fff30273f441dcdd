package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/trailtest"
)

// testEvent is a valid event of the given action, happening now.
func testEvent(action string, i int) client.Event {
	return client.Event{
		Action:     action,
		OccurredAt: time.Now().Add(-time.Minute),
		Actor:      client.Entity{Type: "user", ID: fmt.Sprintf("user_%d", i), Name: "Ada"},
		Targets:    []client.Entity{{Type: "invoice", ID: fmt.Sprintf("inv_%d", i)}},
		Context:    client.EventContext{Location: "192.0.2.1", UserAgent: "test"},
		Metadata:   map[string]any{"i": i},
	}
}

// waitFor polls cond every 50 ms until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClientAgainstTrail calls every endpoint through the client against a
// real trail serve.
func TestClientAgainstTrail(t *testing.T) {
	srv := trailtest.Start(t, trailtest.Options{})
	ctx := trailtest.Context(t)
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness", func() bool { return c.Ready(ctx) == nil })

	// Organizations.
	org, err := c.CreateOrganization(ctx, "Acme", "acme-ext")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetOrganization(ctx, org.ID); err != nil || got.Name != "Acme" || got.ExternalID != "acme-ext" {
		t.Fatalf("GetOrganization = %+v, %v", got, err)
	}
	if got, err := c.GetOrganizationByExternalID(ctx, "acme-ext"); err != nil || got.ID != org.ID {
		t.Fatalf("GetOrganizationByExternalID = %+v, %v", got, err)
	}
	if l, err := c.ListOrganizations(ctx, client.ListOptions{Limit: 100}); err != nil || len(l.Data) == 0 {
		t.Fatalf("ListOrganizations = %+v, %v", l, err)
	}

	// Keys.
	key, err := c.CreateAPIKey(ctx, "writer", []string{client.ScopeEventsWrite, client.ScopeEventsRead}, org.ID)
	if err != nil || key.Secret == "" || key.OrganizationID != org.ID {
		t.Fatalf("CreateAPIKey = %+v, %v", key, err)
	}
	if got, err := c.GetAPIKey(ctx, key.ID); err != nil || got.Name != "writer" {
		t.Fatalf("GetAPIKey = %+v, %v", got, err)
	}
	if l, err := c.ListAPIKeys(ctx, client.ListOptions{}); err != nil || len(l.Data) < 2 {
		t.Fatalf("ListAPIKeys = %+v, %v", l, err)
	}

	// Events: one, a batch with an idempotency key (sent twice), search.
	w, err := client.New(srv.URL, key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CreateEvent(ctx, org.ID, testEvent("user.signed_in", 0), client.IdempotencyKey("one-0")); err != nil {
		t.Fatal(err)
	}
	var batch []client.OrgEvent
	for i := 1; i <= 25; i++ {
		batch = append(batch, client.OrgEvent{OrganizationID: org.ID, Event: testEvent("invoice.paid", i)})
	}
	acc, err := w.CreateEvents(ctx, batch, client.IdempotencyKey("batch-1"))
	if err != nil || len(acc) != 25 {
		t.Fatalf("CreateEvents = %d accepted, %v", len(acc), err)
	}
	again, err := w.CreateEvents(ctx, batch, client.IdempotencyKey("batch-1"))
	if err != nil || again[0].ID != acc[0].ID {
		t.Fatalf("the replay answered %+v, %v; want the first answer", again, err)
	}
	ev, err := w.GetEvent(ctx, acc[3].ID)
	if err != nil || ev.Seq != acc[3].Seq || ev.Action != "invoice.paid" || !bytes.Contains(ev.Raw, []byte(acc[3].ID)) {
		t.Fatalf("GetEvent = %+v, %v", ev, err)
	}
	// Search may lag behind ingest by a moment (the index is built after
	// the commit), so poll until every event is found.
	var n int
	waitFor(t, "the search to find the batch", func() bool {
		n = 0
		for r, err := range w.Events(ctx, client.EventQuery{OrganizationID: org.ID, Actions: []string{"invoice.*"}, ListOptions: client.ListOptions{Limit: 7}}) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Action != "invoice.paid" {
				t.Fatalf("the search for invoice.* found %s", r.Action)
			}
			n++
		}
		return n >= 25
	})
	if n != 25 {
		t.Fatalf("Events iterated over %d events, want 25 (each once)", n)
	}

	// Typed errors.
	_, err = w.GetEvent(ctx, "evt_missing")
	var te *client.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusNotFound || te.Code != "entity_not_found" || te.RequestID == "" || te.Retryable() || !client.IsNotFound(err) {
		t.Fatalf("GetEvent of a missing event: %#v", err)
	}
	bad := testEvent("user.signed_in", 0)
	bad.Actor.ID = ""
	err = w.CreateEvent(ctx, org.ID, bad)
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnprocessableEntity || len(te.Errors) == 0 || te.Errors[0].Field != "event.actor.id" {
		t.Fatalf("an event without actor id: %#v", err)
	}

	// The verifiable log.
	vkey, err := c.LogKey(ctx)
	if err != nil || vkey == "" {
		t.Fatalf("LogKey = %q, %v", vkey, err)
	}
	var cp *client.Checkpoint
	// The organization's log also holds Trail's own audit events (the
	// key created for it), so sizes are taken from the seqs answered.
	last := acc[len(acc)-1].Seq
	waitFor(t, "a checkpoint of the batch", func() bool {
		cp, err = c.GetCheckpoint(ctx, org.ID, 0, vkey)
		return err == nil && cp.Size > last
	})
	proof, err := c.GetInclusionProof(ctx, org.ID, ev.Seq, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.Verify(cp, ev.Raw); err != nil {
		t.Fatalf("the inclusion proof of %s does not verify: %v", ev.ID, err)
	}
	var records int
	if err := c.LogRecords(ctx, org.ID, 0, cp.Size, func([]byte) error { records++; return nil }); err != nil || int64(records) != cp.Size {
		t.Fatalf("LogRecords gave %d records, %v", records, err)
	}
	first := cp
	more, err := w.CreateEvents(ctx, []client.OrgEvent{{OrganizationID: org.ID, Event: testEvent("user.signed_out", 99)}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint of one more event", func() bool {
		cp, err = c.GetCheckpoint(ctx, org.ID, 0, vkey)
		return err == nil && cp.Size > more[0].Seq
	})
	cons, err := c.GetConsistencyProof(ctx, org.ID, first.Size, cp.Size)
	if err != nil || cons.Verify(first, cp) != nil {
		t.Fatalf("consistency proof %+v, %v", cons, err)
	}
	var saved bytes.Buffer
	rep, err := c.PullAndVerify(ctx, org.ID, client.BundleOptions{Since: first.Note}, vkey, &saved)
	if err != nil || !rep.OK() || rep.CheckpointSize != cp.Size || rep.SinceSize != first.Size {
		t.Fatalf("PullAndVerify = %+v, %v", rep, err)
	}
	// The key history in place of the key.
	history, err := c.LogKeys(ctx)
	if err != nil || !strings.Contains(history, vkey+" active ") {
		t.Fatalf("LogKeys = %q, %v; want the key %s active", history, err, vkey)
	}
	if rep, err := client.VerifyBundle(bytes.NewReader(saved.Bytes()), history, first.Note); err != nil || !rep.OK() {
		t.Fatalf("VerifyBundle with the key history = %+v, %v", rep, err)
	}
	if _, err := client.ParseCheckpoint(cp.Note, history); err != nil {
		t.Fatalf("ParseCheckpoint with the key history: %v", err)
	}
	tampered := bytes.Replace(saved.Bytes(), []byte("inv_5"), []byte("inv_6"), 1)
	if rep, err := client.VerifyBundle(bytes.NewReader(tampered), vkey, nil); !errors.Is(err, client.ErrVerificationFailed) || rep.OK() {
		t.Fatalf("a tampered bundle verified: %+v, %v", rep, err)
	}

	// Exports.
	exp, err := c.CreateExport(ctx, client.ExportRequest{OrganizationID: org.ID, Format: "ndjson",
		RangeStart: time.Now().Add(-time.Hour), RangeEnd: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if exp, err = c.WaitExport(wctx, exp.ID, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := c.DownloadExport(ctx, exp.ID, &file); err != nil {
		t.Fatal(err)
	}
	if rep, err := client.VerifyBundle(&file, vkey, nil); err != nil || rep.Records < 27 {
		t.Fatalf("the export verified %+v, %v", rep, err)
	}

	// Retention and configuration.
	if days, err := c.SetRetention(ctx, org.ID, 30); err != nil || days != 30 {
		t.Fatalf("SetRetention = %d, %v", days, err)
	}
	if days, err := c.GetRetention(ctx, org.ID); err != nil || days != 30 {
		t.Fatalf("GetRetention = %d, %v", days, err)
	}
	if conf, err := c.GetAuditLogConfiguration(ctx, org.ID); err != nil || conf.RetentionPeriodInDays != 30 {
		t.Fatalf("GetAuditLogConfiguration = %+v, %v", conf, err)
	}

	// Schemas.
	if a, err := c.CreateActionSchema(ctx, "invoice.sent", json.RawMessage(`{"targets":[{"type":"invoice"}]}`)); err != nil || a.Version != 1 {
		t.Fatalf("CreateActionSchema = %+v, %v", a, err)
	}
	if l, err := c.ListActions(ctx, client.ListOptions{}); err != nil || len(l.Data) != 1 || l.Data[0].Name != "invoice.sent" {
		t.Fatalf("ListActions = %+v, %v", l, err)
	}
	if l, err := c.ListActionSchemas(ctx, "invoice.sent", client.ListOptions{}); err != nil || len(l.Data) != 1 {
		t.Fatalf("ListActionSchemas = %+v, %v", l, err)
	}
	if s, err := c.CreateActorSchema(ctx, json.RawMessage(`{"metadata":{"type":"object","properties":{"email":{"type":"string"}}}}`)); err != nil || s.Version != 1 {
		t.Fatalf("CreateActorSchema = %+v, %v", s, err)
	}
	if s, err := c.GetActorSchema(ctx); err != nil || s.Version != 1 || !strings.Contains(string(s.Body), "email") {
		t.Fatalf("GetActorSchema = %+v, %v", s, err)
	}
	if l, err := c.ListActorSchemas(ctx, client.ListOptions{}); err != nil || len(l.Data) != 1 {
		t.Fatalf("ListActorSchemas = %+v, %v", l, err)
	}

	// Streams.
	st, err := c.CreateStream(ctx, org.ID, client.StreamRequest{Type: "webhook", Name: "SIEM",
		Config: json.RawMessage(`{"url":"https://siem.example.com/hook","secret":"0123456789abcdef0123456789abcdef"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetStream(ctx, org.ID, st.ID); err != nil || got.Name != "SIEM" {
		t.Fatalf("GetStream = %+v, %v", got, err)
	}
	name := "SIEM 2"
	if got, err := c.UpdateStream(ctx, org.ID, st.ID, client.StreamUpdate{Name: &name}); err != nil || got.Name != name {
		t.Fatalf("UpdateStream = %+v, %v", got, err)
	}
	if got, err := c.PauseStream(ctx, org.ID, st.ID); err != nil || got.State != "inactive" {
		t.Fatalf("PauseStream = %+v, %v", got, err)
	}
	if _, err := c.ResumeStream(ctx, org.ID, st.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ListStreams(ctx, org.ID, client.ListOptions{}); err != nil || len(l.Data) != 1 {
		t.Fatalf("ListStreams = %+v, %v", l, err)
	}
	if err := c.DeleteStream(ctx, org.ID, st.ID); err != nil {
		t.Fatal(err)
	}

	// The Admin Portal.
	link, err := c.GeneratePortalLink(ctx, client.PortalLinkRequest{Organization: org.ID, Intent: "audit_logs"})
	if err != nil || !strings.HasPrefix(link, srv.URL+"/portal/") {
		t.Fatalf("GeneratePortalLink = %q, %v", link, err)
	}
	if n, err := c.RevokePortalSessions(ctx, org.ID); err != nil || n != 1 {
		t.Fatalf("RevokePortalSessions = %d, %v", n, err)
	}

	if got, err := c.RevokeAPIKey(ctx, key.ID); err != nil || got.RevokedAt == nil {
		t.Fatalf("RevokeAPIKey = %+v, %v", got, err)
	}
}

// TestRecordDecoding: a record's fields are decoded and its exact bytes
// kept, with and without the optional parts.
func TestRecordDecoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		imported *client.ImportedFrom
		mismatch bool
	}{
		{"plain", `{"id":"evt_1","organization_id":"org_1","seq":3,"action":"a.b","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"192.0.2.1"}}`, nil, false},
		{"imported", `{"id":"evt_2","organization_id":"org_1","seq":4,"action":"a.b","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"192.0.2.1"},"imported":{"source":"workos","id":"01HX"}}`,
			&client.ImportedFrom{Source: "workos", ID: "01HX"}, false},
		{"schema mismatch", `{"id":"evt_3","organization_id":"org_1","seq":5,"action":"a.b","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"192.0.2.1"},"schema_mismatch":true}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r client.Record
			if err := json.Unmarshal([]byte(tc.raw), &r); err != nil {
				t.Fatal(err)
			}
			if string(r.Raw) != tc.raw {
				t.Errorf("Raw = %s, want the bytes given", r.Raw)
			}
			switch {
			case tc.imported == nil && r.Imported != nil, tc.imported != nil && (r.Imported == nil || *r.Imported != *tc.imported):
				t.Errorf("Imported = %+v, want %+v", r.Imported, tc.imported)
			}
			if r.SchemaMismatch != tc.mismatch {
				t.Errorf("SchemaMismatch = %v, want %v", r.SchemaMismatch, tc.mismatch)
			}
		})
	}
}

// TestTailReconnects: Tail's stream carries the client's key and
// User-Agent, and after the server ends a stream it reconnects after the
// last seq delivered (Last-Event-ID), so nothing is repeated.
func TestTailReconnects(t *testing.T) {
	record := func(seq int) string {
		return fmt.Sprintf(`{"id":"evt_%d","organization_id":"org_1","seq":%d,"action":"a.b","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"192.0.2.1"}}`, seq, seq)
	}
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk_tail" || r.Header.Get("User-Agent") != "tail-test" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"no","code":"unauthorized"}`)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		for _, seq := range [][]int{{5, 6, 7}, {8}}[min(n, 2)-1] {
			fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", seq, record(seq))
		}
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "sk_tail", client.WithUserAgent("tail-test"))
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("enough")
	var got []int64
	err = c.Tail(context.Background(), client.TailQuery{OrganizationID: "org_1"}, func(ev client.TailEvent) error {
		got = append(got, ev.Seq)
		if ev.Seq == 8 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Tail = %v, want fn's error", err)
	}
	if fmt.Sprint(got) != "[5 6 7 8]" || fmt.Sprint(lastIDs) != "[ 7]" {
		t.Fatalf("delivered %v over connections with Last-Event-ID %q, want [5 6 7 8] and \"\", \"7\"", got, lastIDs)
	}
}
