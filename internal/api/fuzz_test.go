package api

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// FuzzEventsQuery: any query string either becomes a well-formed
// store.EventQuery or field errors, never a panic.
func FuzzEventsQuery(f *testing.F) {
	for _, s := range []string{
		"",
		"organization_id=org_a",
		"organization_id=org_a&action=user.*&action=a.b&action=*",
		"range_start=2026-11-25T00:00:00Z&range_end=2026-11-26T00:00:00.5%2B02:00",
		"range_start=2026-11-25T00:00:00Z&range_end=2026-11-24T00:00:00Z",
		"target_type=team&target_id=t&actor_id=u&actor_name=Jon+Smith&q=hello+world",
		"target_id=alone",
		"limit=100&order=asc&after=abc",
		"limit=0&order=sideways&before=a&after=b",
		"unknown=1&q=%FF%FE",
		"action=&action=%2A%2A",
	} {
		f.Add(s, "")
		f.Add(s, "org_default")
	}
	f.Fuzz(func(t *testing.T, raw, defaultOrg string) {
		v, _ := url.ParseQuery(raw) // keeps the pairs it could parse
		q, errs := parseEventQuery(v, defaultOrg)
		if errs != nil {
			if q.OrganizationID != "" || q.Limit != 0 {
				t.Fatalf("errors %+v with a query %+v", errs, q)
			}
			for _, e := range errs {
				if e.Field == "" || e.Code == "" || e.Message == "" {
					t.Fatalf("incomplete field error %+v", e)
				}
			}
			return
		}
		switch {
		case q.OrganizationID == "":
			t.Fatalf("no organization: %+v", q)
		case q.Limit < 1 || q.Limit > 100:
			t.Fatalf("limit %d", q.Limit)
		case q.Order != store.OrderAsc && q.Order != store.OrderDesc:
			t.Fatalf("order %q", q.Order)
		case q.Before != "" && q.After != "":
			t.Fatalf("both cursors: %+v", q)
		case !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From):
			t.Fatalf("empty range %v – %v", q.From, q.To)
		case q.TargetID != "" && q.TargetType == "":
			t.Fatalf("target_id without target_type: %+v", q)
		case utf8.RuneCountInString(q.Text) > maxQueryText:
			t.Fatalf("q of %d characters", utf8.RuneCountInString(q.Text))
		}
		for _, a := range q.Actions {
			if a == "" || strings.HasSuffix(a, "*") || !utf8.ValidString(a) {
				t.Fatalf("action %q", a)
			}
		}
		if len(q.Actions)+len(q.ActionPrefixes) > maxActionValues {
			t.Fatalf("%d action filters", len(q.Actions)+len(q.ActionPrefixes))
		}
		for k := range v {
			if !eventQueryParams[k] {
				t.Fatalf("unknown parameter %q accepted", k)
			}
		}
	})
}

// FuzzBatchBody: any body is a list of valid drafts or a 400/422 with
// field paths under events, never a panic.
func FuzzBatchBody(f *testing.F) {
	ev := `{"action":"user.signed_in","occurred_at":"2026-11-25T18:43:09.709Z","actor":{"id":"u1","type":"user"},"targets":[{"id":"t1","type":"team"}],"context":{"location":"203.0.113.7"}}`
	for _, s := range []string{
		`{"events":[{"organization_id":"org_a","event":` + ev + `}]}`,
		`{"events":[{"organization_id":"org_a","event":` + ev + `},{"organization_id":"org_b","event":` + ev + `}]}`,
		`{"events":[{"organization_id":"org_a","event":{}}]}`,
		`{"events":[{"event":` + ev + `},"x",null,7]}`,
		`{"events":[]}`,
		`{"events":{}}`,
		`{"events":null}`,
		`{}`,
		`[]`,
		`{"events":[`,
		``,
		`{"events":[{"organization_id":"org_a","event":` + ev + `}],"events":[]}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := parseBatch(body, now, event.DefaultLimits())
		if err != nil {
			e, ok := asAPIError(err)
			if !ok || (e.status != 400 && e.status != 422) || e.message == "" {
				t.Fatalf("error %v (%T)", err, err)
			}
			if len(e.errors) > maxBatchErrors {
				t.Fatalf("%d field errors", len(e.errors))
			}
			for _, fe := range e.errors {
				if !strings.HasPrefix(fe.Field, "events") || fe.Code == "" {
					t.Fatalf("field error %+v", fe)
				}
			}
			return
		}
		if len(items) < 1 || len(items) > maxBatchEvents {
			t.Fatalf("%d items accepted", len(items))
		}
		for _, it := range items {
			if it.orgID == "" || it.draft == nil || len(it.draft.Tail) == 0 {
				t.Fatalf("item %+v", it)
			}
		}
	})
}
