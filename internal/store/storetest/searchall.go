package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// testSearchAll checks SearchAllEvents, the search across organizations,
// on the search fixture (three organizations whose events share
// milliseconds), indexed: each of the single-organization search cases
// that applies across organizations, in both orders and two page sizes,
// against the brute-force answer over every organization. The order
// within one millisecond is the backend's own, so a walk is checked for
// its set of events (exactly the matches, each once), its order of
// occurred_at, its page sizes and cursors, and a walk back with the
// before cursors giving the same pages.
func testSearchAll(t *testing.T, open func(t *testing.T) store.Backend) {
	f := newSearchFixture(t, open(t), indexedFully)
	ctx := ctxOf(t)
	for _, c := range searchCases() {
		if len(c.q.ActionPrefixes) > 0 || c.q.SchemaMismatch {
			continue // not filters of the search across organizations
		}
		for _, order := range []string{store.OrderDesc, store.OrderAsc} {
			for _, size := range []int{100, 7} {
				q := c.q
				q.Order, q.Limit = order, size
				t.Run(fmt.Sprintf("%s/%s/%d", c.name, order, size), func(t *testing.T) { f.checkAll(t, q) })
			}
		}
	}
	t.Run("Refused", func(t *testing.T) {
		for _, q := range []store.EventQuery{
			{OrganizationID: f.orgs[0]},
			{ActionPrefixes: []string{"user."}},
			{SchemaMismatch: true},
		} {
			if _, err := f.s.SearchAllEvents(ctx, q); err == nil {
				t.Errorf("SearchAllEvents(%+v) = nil error, want a refusal", q)
			}
		}
		for _, c := range []string{"x", "not a cursor", "YTE6LTE"} {
			_, err := f.s.SearchAllEvents(ctx, store.EventQuery{After: c})
			wantErr(t, "cursor "+c, err, store.ErrInvalidCursor)
		}
		// A single-organization cursor is not one of this search.
		page, err := f.s.SearchEvents(ctx, store.EventQuery{OrganizationID: f.orgs[0], Limit: 2})
		if err != nil || page.After == "" {
			t.Fatalf("SearchEvents: %v, %+v", err, page)
		}
		_, err = f.s.SearchAllEvents(ctx, store.EventQuery{After: page.After})
		wantErr(t, "a SearchEvents cursor", err, store.ErrInvalidCursor)
	})
	t.Run("NewEvent", func(t *testing.T) {
		// Events appended after the fixture are found once indexed.
		org := f.orgs[1]
		d := draft(t, []byte(`{"action":"late.arrival","occurred_at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","actor":{"id":"late","type":"user"},"targets":[{"id":"t","type":"team"}],"context":{"location":"203.0.113.9"}}`))
		if _, err := f.s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{pending(org, d, time.Now())}}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		indexAll(t, f.s, 100)
		page, err := f.s.SearchAllEvents(ctx, store.EventQuery{Actions: []string{"late.arrival"}, Limit: 10})
		if err != nil || len(page.Events) != 1 || page.Events[0].OrganizationID != org {
			t.Fatalf("SearchAllEvents(late.arrival) = %v, %s", err, describe(page.Events))
		}
		page, err = f.s.SearchAllEvents(ctx, store.EventQuery{Limit: 1})
		if err != nil || len(page.Events) != 1 || page.Events[0].OrganizationID != org {
			t.Fatalf("the newest event across organizations = %v, %s", err, describe(page.Events))
		}
	})
}

// expectAll is what q finds across organizations, in q's order of
// occurred_at (ties in (organization, seq) order, which the check does
// not require).
func (f *searchFixture) expectAll(q store.EventQuery) []*searchEvent {
	var out []*searchEvent
	for i := range f.events {
		e := &f.events[i]
		q.OrganizationID = e.OrganizationID
		if e.matches(q) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *searchEvent) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.OrganizationID, b.OrganizationID), cmp.Compare(a.Seq, b.Seq))
	})
	if q.Order == store.OrderAsc {
		return out
	}
	return reversed(out)
}

func (f *searchFixture) checkAll(t *testing.T, q store.EventQuery) {
	t.Helper()
	ctx := ctxOf(t)
	want := f.expectAll(q)
	at := map[string]time.Time{}
	wantSet := map[string]*searchEvent{}
	for _, e := range want {
		key := e.OrganizationID + "/" + fmt.Sprint(e.Seq)
		wantSet[key], at[key] = e, e.at
	}
	size := q.Limit
	var pages []store.EventPage
	seen := map[string]bool{}
	var last time.Time
	p := q
	for i := 0; ; i++ {
		page, err := f.s.SearchAllEvents(ctx, p)
		if err != nil {
			t.Fatalf("SearchAllEvents(%+v): %v", p, err)
		}
		if n := min(size, len(want)-i*size); len(page.Events) != max(n, 0) {
			t.Fatalf("page %d: %d events, want %d (of %d)", i, len(page.Events), max(n, 0), len(want))
		}
		for _, e := range page.Events {
			key := e.OrganizationID + "/" + fmt.Sprint(e.Seq)
			w, ok := wantSet[key]
			switch {
			case !ok:
				t.Fatalf("page %d: %s does not match %+v", i, key, q)
			case seen[key]:
				t.Fatalf("page %d: %s again", i, key)
			case e.ID != w.ID || string(e.Record) != string(w.Record):
				t.Fatalf("page %d: %s is not the stored event", i, key)
			}
			seen[key] = true
			if !last.IsZero() && (q.Order == store.OrderAsc && w.at.Before(last) || q.Order != store.OrderAsc && w.at.After(last)) {
				t.Fatalf("page %d: %s at %s after one at %s, out of order", i, key, w.at, last)
			}
			last = w.at
		}
		if (page.Before != "") != (i > 0 && len(page.Events) > 0) || (page.After != "") != ((i+1)*size < len(want)) {
			t.Fatalf("page %d of %d events: before=%q after=%q", i, len(want), page.Before, page.After)
		}
		pages = append(pages, page)
		if page.After == "" {
			break
		}
		if i > len(want)/size+1 {
			t.Fatal("the walk does not end")
		}
		p.After, p.Before = page.After, ""
	}
	if len(seen) != len(want) {
		t.Fatalf("the walk found %d events, want %d", len(seen), len(want))
	}
	cur := pages[len(pages)-1]
	for i := len(pages) - 2; i >= 0; i-- {
		p.After, p.Before = "", cur.Before
		page, err := f.s.SearchAllEvents(ctx, p)
		if err != nil {
			t.Fatalf("SearchAllEvents(%+v): %v", p, err)
		}
		if !slices.EqualFunc(page.Events, pages[i].Events, func(a, b store.StoredEvent) bool {
			return a.OrganizationID == b.OrganizationID && a.Seq == b.Seq
		}) {
			t.Fatalf("back to page %d: %s, want %s", i, describe(page.Events), describe(pages[i].Events))
		}
		cur = page
	}
}
