package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// seqFinder is what exports use to skip the log before a date range's start.
type seqFinder interface {
	FirstSeqSince(ctx context.Context, org string, since time.Time, limit int64) (int64, error)
}

// testFirstSeqSince checks FirstSeqSince against the least seq of the events
// with occurred_at ≥ since, computed here: equal to it once everything is
// indexed, never above it while some events are not (a bound that is too
// high would make an export miss events), and 0 past the limit.
func testFirstSeqSince(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	f, ok := s.(seqFinder)
	if !ok {
		t.Fatalf("%T has no FirstSeqSince", s)
	}
	ctx := ctxOf(t)
	a := mustCreateOrg(t, s, orgID("F", 1), t0).ID
	b := mustCreateOrg(t, s, orgID("F", 2), t0).ID
	// occurred_at of org a's events by seq: out of order, as backfills and
	// clients' clocks make them; org b's events interleave.
	hours := []int{-10, -1, -5, 1, -3, 2, -8}
	var at []time.Time
	next := 0
	add := func(org string, h int) store.PendingEvent {
		next++
		when := t0.Add(time.Duration(h) * time.Hour)
		if org == a {
			at = append(at, when)
		}
		return portalEvent(org, "first.seq", when, 900_000+next)
	}
	var evs []store.PendingEvent
	for _, h := range hours[:5] {
		evs = append(evs, add(a, h), add(b, -h))
	}
	appendAll(t, s, evs, indexedFully)

	want := func(since time.Time) int64 {
		least := int64(len(at))
		for seq, w := range at {
			if !w.Before(since) {
				least = min(least, int64(seq))
			}
		}
		return least
	}
	check := func(name string, exact bool) {
		t.Helper()
		for _, h := range []int{-12, -10, -9, -6, -5, -4, -3, -2, -1, 0, 1, 2} {
			since := t0.Add(time.Duration(h) * time.Hour)
			got, err := f.FirstSeqSince(ctx, a, since, 1000)
			if err != nil {
				t.Fatalf("%s: FirstSeqSince(%+dh): %v", name, h, err)
			}
			w := want(since)
			if got > w || exact && got != w {
				t.Errorf("%s: FirstSeqSince(%+dh) = %d, want %d", name, h, got, w)
			}
		}
	}
	check("indexed", true)
	// A millisecond matters: since just after an event's occurred_at
	// excludes it.
	if got, err := f.FirstSeqSince(ctx, a, at[1].Add(time.Millisecond), 1000); err != nil || got != 3 {
		t.Errorf("FirstSeqSince(a millisecond after seq 1) = %d, %v; want 3", got, err)
	}

	// Events stored but not indexed yet (SQLite's search file lags ingest):
	// the bound may be lower than the least seq, never higher. Since +90m
	// only the first of them (+2h) counts.
	res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{add(a, hours[5]), add(b, 0), add(a, hours[6])}}}, t0)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Append: %v %v", err, res)
	}
	check("partly indexed", false)
	indexAll(t, s, 1000)
	check("indexed again", true)

	// Past the limit: 0, read everything. Since -3h there are 4 events.
	if got, err := f.FirstSeqSince(ctx, a, t0.Add(-3*time.Hour), 3); err != nil || got != 0 {
		t.Errorf("FirstSeqSince over 4 events with limit 3 = %d, %v; want 0", got, err)
	}
	if got, err := f.FirstSeqSince(ctx, a, t0.Add(-3*time.Hour), 4); err != nil || got != 1 {
		t.Errorf("FirstSeqSince over 4 events with limit 4 = %d, %v; want 1", got, err)
	}
	// Tenants apart: org b has events from +3h on, org a none.
	if got, err := f.FirstSeqSince(ctx, a, t0.Add(150*time.Minute), 1000); err != nil || got != int64(len(at)) {
		t.Errorf("FirstSeqSince(+150m) = %d, %v; want %d, the log size", got, err, len(at))
	}
	// Dates far outside what a sort key holds are bounds like any other:
	// since 1800 is every event, since 9999 none; a search from 1800 to
	// 9999 finds them all.
	for _, c := range []struct {
		since time.Time
		want  int64
	}{{time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), 0}, {time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), int64(len(at))}} {
		if got, err := f.FirstSeqSince(ctx, a, c.since, 1000); err != nil || got != c.want {
			t.Errorf("FirstSeqSince(%d) = %d, %v; want %d", c.since.Year(), got, err, c.want)
		}
	}
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: a, Limit: 100,
		From: time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil || len(page.Events) != len(at) {
		t.Errorf("SearchEvents from 1800 to 9999 = %d events, %v; want %d", len(page.Events), err, len(at))
	}
	if _, err := f.FirstSeqSince(ctx, "org_does_not_exist", t0, 1000); err == nil {
		t.Error("FirstSeqSince of an unknown organization: no error")
	}
}
