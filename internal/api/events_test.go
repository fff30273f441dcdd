package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

// seed stores events of org with varied actions, actors, targets and times
// (one minute apart, oldest first) and waits until search sees them all.
func seed(t *testing.T, e *env, org string) (base time.Time) {
	t.Helper()
	base = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	events := []struct {
		action, actorID, actorName, targetType, targetID, note string
	}{
		{"user.signed_in", "user_1", "Alice Smith", "team", "team_1", "morning login"},
		{"user.signed_out", "user_1", "Alice Smith", "team", "team_1", "evening"},
		{"user.signed_in", "user_2", "Bob Jones", "team", "team_2", "vpn"},
		{"document.created", "user_2", "Bob Jones", "document", "doc_1", "quarterly report"},
		{"document.deleted", "user_3", "Carol", "document", "doc_1", "cleanup"},
		{"billing.updated", "user_3", "Carol", "invoice", "inv_9", "upgrade plan"},
	}
	for i, ev := range events {
		body := e.eventBody(org, ev.action, func(m map[string]any) {
			m["occurred_at"] = base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
			m["actor"] = map[string]any{"id": ev.actorID, "type": "user", "name": ev.actorName}
			m["targets"] = []any{map[string]any{"id": ev.targetID, "type": ev.targetType}}
			m["metadata"] = map[string]any{"note": ev.note}
		})
		if res := e.do("POST", "/audit_logs/events", e.admin, body); res.Code != 201 {
			t.Fatalf("seed: %d %s", res.Code, res.Body)
		}
	}
	e.search(e.admin, "/v1/events?limit=100&action=user.*&action=document.*&action=billing.*&organization_id="+org, len(events))
	return base
}

func TestSearchEvents(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	base := seed(t, e, org)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, org)
	ts := func(m int) string {
		return url.QueryEscape(base.Add(time.Duration(m) * time.Minute).Format(time.RFC3339))
	}
	tests := []struct {
		query string
		want  []string // actions, in answer order
	}{
		{"action=user.signed_in", []string{"user.signed_in", "user.signed_in"}},
		{"action=user.*&order=asc", []string{"user.signed_in", "user.signed_out", "user.signed_in"}},
		{"action=document.created&action=billing.updated", []string{"billing.updated", "document.created"}},
		{"actor_id=user_3", []string{"billing.updated", "document.deleted"}},
		{"actor_name=Bob+Jones&order=asc", []string{"user.signed_in", "document.created"}},
		{"target_type=document&target_id=doc_1", []string{"document.deleted", "document.created"}},
		{"target_type=invoice", []string{"billing.updated"}},
		{"q=quarterly", []string{"document.created"}},
		{"range_start=" + ts(1) + "&range_end=" + ts(3) + "&order=asc", []string{"user.signed_out", "user.signed_in"}},
		{"action=user.*&actor_id=user_1&range_start=" + ts(1), []string{"user.signed_out"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			l := e.search(reader, "/v1/events?"+tt.query, len(tt.want))
			if got := l.actions(t); !slices.Equal(got, tt.want) {
				t.Errorf("actions %q, want %q", got, tt.want)
			}
		})
	}
	// "*" is every action, and the org-restricted key's organization is the default.
	all := e.search(reader, "/v1/events?action=*&limit=100", 7) // 6 + the organization's creation
	if all.ListMetadata.After != nil {
		t.Errorf("a complete page has an after cursor")
	}
}

func TestSearchPagination(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	seed(t, e, org)
	var seen []string
	path := "/v1/events?organization_id=" + org + "&action=user.*&action=document.*&action=billing.*&limit=4"
	p1 := e.search(e.admin, path, 4)
	if p1.ListMetadata.After == nil || p1.ListMetadata.Before != nil {
		t.Fatalf("page 1 metadata %+v", p1.ListMetadata)
	}
	for _, r := range p1.records(t) {
		seen = append(seen, r.ID)
	}
	p2 := e.search(e.admin, path+"&after="+url.QueryEscape(*p1.ListMetadata.After), 2)
	if p2.ListMetadata.After != nil || p2.ListMetadata.Before == nil {
		t.Fatalf("page 2 metadata %+v", p2.ListMetadata)
	}
	for _, r := range p2.records(t) {
		if slices.Contains(seen, r.ID) {
			t.Fatalf("event %s on both pages", r.ID)
		}
	}
	back := e.search(e.admin, path+"&before="+url.QueryEscape(*p2.ListMetadata.Before), 4)
	if !slices.EqualFunc(back.Data, p1.Data, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("back from page 2 is not page 1")
	}
	// Newest first by occurred_at.
	recs := append(p1.records(t), p2.records(t)...)
	for i := 1; i < len(recs); i++ {
		if recs[i].OccurredAt > recs[i-1].OccurredAt {
			t.Fatalf("not newest first: %s after %s", recs[i].OccurredAt, recs[i-1].OccurredAt)
		}
	}
}

func TestSearchInvalid(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	q := "/v1/events?organization_id=" + org + "&"
	tests := []struct {
		query  string
		status int
		code   string
		field  string
	}{
		{"range_start=yesterday", 422, "invalid_request_parameters", "range_start"},
		{"range_end=2026-13-01T00:00:00Z", 422, "invalid_request_parameters", "range_end"},
		{"range_start=2026-11-25T10:00:00Z&range_end=2026-11-25T09:00:00Z", 422, "invalid_request_parameters", "range_end"},
		{"range_start=2026-11-25T10:00:00Z&range_end=2026-11-25T10:00:00Z", 422, "invalid_request_parameters", "range_end"},
		{"limit=0", 422, "invalid_request_parameters", "limit"},
		{"limit=101", 422, "invalid_request_parameters", "limit"},
		{"limit=-1", 422, "invalid_request_parameters", "limit"},
		{"order=newest", 422, "invalid_request_parameters", "order"},
		{"target_id=doc_1", 422, "invalid_request_parameters", "target_id"},
		{"q=" + strings.Repeat("w", 201), 422, "invalid_request_parameters", "q"},
		{"action=", 422, "invalid_request_parameters", "action"},
		{"actor=user_1", 422, "invalid_request_parameters", "actor"},
		{"actor_id=a&actor_id=b", 422, "invalid_request_parameters", "actor_id"},
		{"before=x&after=y", 422, "invalid_request_parameters", "after"},
		{"after=%zz", 422, "invalid_request_parameters", "(query)"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			b := expectError(t, e.do("GET", q+tt.query, e.admin, ""), tt.status, tt.code)
			if len(b.Errors) == 0 || b.Errors[0].Field != tt.field || !strings.Contains(b.Message, b.Errors[0].Message) {
				t.Errorf("errors %+v, message %q: want the first naming %s", b.Errors, b.Message, tt.field)
			}
		})
	}
	expect(t, e.do("GET", q+"after=not-a-cursor", e.admin, ""), 422,
		`{"message":"The after cursor is not valid: use list_metadata from a previous response.","code":"invalid_cursor"}`)
	expect(t, e.do("GET", q+"before=not-a-cursor", e.admin, ""), 422,
		`{"message":"The before cursor is not valid: use list_metadata from a previous response.","code":"invalid_cursor"}`)
	// An unrestricted key must name the organization.
	b := expectError(t, e.do("GET", "/v1/events", e.admin, ""), 422, "invalid_request_parameters")
	if b.Errors[0].Field != "organization_id" {
		t.Errorf("errors %+v", b.Errors)
	}
	expect(t, e.do("GET", "/v1/events?organization_id=org_nope", e.admin, ""), 404,
		`{"message":"Organization 'org_nope' not found.","code":"entity_not_found"}`)
}

func TestGetEvent(t *testing.T) {
	e := newEnv(t)
	org := e.org("Acme")
	seed(t, e, org)
	l := e.search(e.admin, "/v1/events?organization_id="+org+"&action=document.created", 1)
	id := l.records(t)[0].ID
	res := e.do("GET", "/v1/events/"+id, e.admin, "")
	if res.Code != 200 || res.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET event: %d %s", res.Code, res.Body)
	}
	// The record goes out byte for byte as stored, in the list and alone.
	stored, err := e.st.Event(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Body.Bytes(), stored.Record) || !bytes.Equal(l.Data[0], stored.Record) {
		t.Fatalf("record changed on the way out:\nstored %s\nGET    %s\nlist   %s", stored.Record, res.Body, l.Data[0])
	}
	expect(t, e.do("GET", "/v1/events/evt_nope", e.admin, ""), 404, `{"message":"Event 'evt_nope' not found.","code":"entity_not_found"}`)
}

func TestParseEventQuery(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		query      string
		defaultOrg string
		want       store.EventQuery
	}{
		{"organization_id=org_a", "", store.EventQuery{OrganizationID: "org_a", Limit: 10, Order: "desc"}},
		{"", "org_r", store.EventQuery{OrganizationID: "org_r", Limit: 10, Order: "desc"}},
		{"action=user.*&action=a.b&action=x*", "org_r", store.EventQuery{OrganizationID: "org_r", Actions: []string{"a.b"}, ActionPrefixes: []string{"user.", "x"}, Limit: 10, Order: "desc"}},
		{"action=*&action=a.b", "org_r", store.EventQuery{OrganizationID: "org_r", Limit: 10, Order: "desc"}},
		{"range_start=2026-11-01T01:00:00%2B01:00&limit=100&order=asc&q=+hello+", "org_r", store.EventQuery{OrganizationID: "org_r", From: from, Text: "hello", Limit: 100, Order: "asc"}},
		{"target_type=team&target_id=t1&actor_id=u&actor_name=N&after=c", "org_r", store.EventQuery{OrganizationID: "org_r", TargetType: "team", TargetID: "t1", ActorID: "u", ActorName: "N", After: "c", Limit: 10, Order: "desc"}},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.query)
		got, errs := parseEventQuery(v, tt.defaultOrg)
		if errs != nil {
			t.Errorf("%s: errors %+v", tt.query, errs)
			continue
		}
		if mustJSON(got) != mustJSON(tt.want) || !got.From.Equal(tt.want.From) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.query, got, tt.want)
		}
	}
}
