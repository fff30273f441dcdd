package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// RunSchemas runs the conformance cases of store.SchemaStore and of the
// schema_mismatch flag that Append stores beside an event (read back by
// Event and SearchEvents, filtered by EventQuery.SchemaMismatch). open
// returns a fresh, empty, migrated store closed when t ends.
func runSchemas(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Versions", func(t *testing.T) { testSchemaVersions(t, open(t)) })
	t.Run("ConcurrentCreates", func(t *testing.T) { testSchemaConcurrent(t, open(t)) })
	t.Run("ListSchemas", func(t *testing.T) { testListSchemas(t, open(t)) })
	t.Run("ListActions", func(t *testing.T) { testListActions(t, open(t)) })
	t.Run("Mismatch", func(t *testing.T) { testSchemaMismatch(t, open(t)) })
}

func schemaBody(name string, n int) []byte {
	return fmt.Appendf(nil, `{"targets":[{"type":"t%d"}],"actor":{"metadata":{"type":"object","properties":{}}},"metadata":{"type":"object","properties":{"k":{"type":"string"}}},"name":%q}`, n, name)
}

func mustCreateSchema(t *testing.T, s store.SchemaStore, kind, name string, n int, at time.Time) store.Schema {
	t.Helper()
	got, err := s.CreateSchema(ctxOf(t), store.Schema{Kind: kind, Name: name, Version: 99, Body: schemaBody(name, n), CreatedAt: at})
	if err != nil {
		t.Fatalf("CreateSchema(%s %q): %v", kind, name, err)
	}
	return got
}

func checkSchema(t *testing.T, what string, got, want store.Schema) {
	t.Helper()
	if got.Kind != want.Kind || got.Name != want.Name || got.Version != want.Version ||
		!bytes.Equal(got.Body, want.Body) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = {%s %q v%d %s %s}, want {%s %q v%d %s %s}", what,
			got.Kind, got.Name, got.Version, got.Body, got.CreatedAt, want.Kind, want.Name, want.Version, want.Body, want.CreatedAt)
	}
}

func testSchemaVersions(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	for _, kind := range []string{store.SchemaKindAction, store.SchemaKindActor} {
		if _, err := s.Schema(ctx, kind, "user.signed_in", 0); true {
			wantErr(t, "Schema of nothing yet", err, store.ErrNotFound)
		}
	}
	// Versions count per (kind, name): interleaved creates do not share them.
	type key struct{ kind, name string }
	made := map[key][]store.Schema{}
	plan := []key{
		{store.SchemaKindAction, "user.signed_in"}, {store.SchemaKindAction, "user.signed_out"},
		{store.SchemaKindAction, "user.signed_in"}, {store.SchemaKindActor, ""},
		{store.SchemaKindAction, "user.signed_in"}, {store.SchemaKindActor, ""},
		// Same name, other kind: its own sequence.
		{store.SchemaKindActor, "user.signed_in"},
	}
	for i, k := range plan {
		at := t0.Add(time.Duration(i) * time.Second)
		got := mustCreateSchema(t, s, k.kind, k.name, i, at)
		want := store.Schema{Kind: k.kind, Name: k.name, Version: len(made[k]) + 1, Body: schemaBody(k.name, i), CreatedAt: at}
		checkSchema(t, fmt.Sprintf("CreateSchema #%d", i), got, want)
		made[k] = append(made[k], want)
	}
	for k, versions := range made {
		for _, want := range versions {
			got, err := s.Schema(ctx, k.kind, k.name, want.Version)
			if err != nil {
				t.Fatalf("Schema(%s %q v%d): %v", k.kind, k.name, want.Version, err)
			}
			checkSchema(t, fmt.Sprintf("Schema(%s %q v%d)", k.kind, k.name, want.Version), got, want)
		}
		latest, err := s.Schema(ctx, k.kind, k.name, 0)
		if err != nil {
			t.Fatalf("Schema(%s %q latest): %v", k.kind, k.name, err)
		}
		checkSchema(t, fmt.Sprintf("Schema(%s %q latest)", k.kind, k.name), latest, versions[len(versions)-1])
		_, err = s.Schema(ctx, k.kind, k.name, len(versions)+1)
		wantErr(t, "Schema of a version not created yet", err, store.ErrNotFound)
	}
	_, err := s.Schema(ctx, store.SchemaKindAction, "user.unknown", 1)
	wantErr(t, "Schema of an unknown action", err, store.ErrNotFound)
}

func testSchemaConcurrent(t *testing.T, s store.Backend) {
	const workers, each = 6, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var versions []int
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				got, err := s.CreateSchema(ctxOf(t), store.Schema{Kind: store.SchemaKindAction, Name: "doc.edited",
					Body: schemaBody("doc.edited", w*each+i), CreatedAt: t0})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				versions = append(versions, got.Version)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CreateSchema: %v", err)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("concurrent creates got versions %v, want 1…%d each once", versions, workers*each)
		}
	}
}

func testListSchemas(t *testing.T, s store.Backend) {
	const n = 23
	var all []string
	for i := range n {
		mustCreateSchema(t, s, store.SchemaKindAction, "invoice.paid", i, t0.Add(time.Duration(i)*time.Millisecond))
		all = append(all, strconv.Itoa(i+1))
	}
	// Another action's and the actor's versions are not listed with it.
	mustCreateSchema(t, s, store.SchemaKindAction, "invoice.sent", 0, t0)
	mustCreateSchema(t, s, store.SchemaKindActor, "", 0, t0)
	list := func(p store.ListParams) (store.ListPage[store.Schema], error) {
		return s.ListSchemas(ctxOf(t), store.SchemaKindAction, "invoice.paid", p)
	}
	idOf := func(sc store.Schema) string { return strconv.Itoa(sc.Version) }
	for _, order := range []string{"", store.OrderAsc, store.OrderDesc} {
		for _, limit := range []int{0, 1, 5, 23, 100} {
			t.Run(fmt.Sprintf("order=%s/limit=%d", order, limit), func(t *testing.T) {
				checkList(t, list, idOf, all, order, limit)
			})
		}
	}
	page, err := s.ListSchemas(ctxOf(t), store.SchemaKindActor, "", store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 1 || page.Data[0].Version != 1 || page.Data[0].Kind != store.SchemaKindActor {
		t.Errorf("ListSchemas(actor) = %+v, %v; want its one version", page, err)
	}
	page, err = s.ListSchemas(ctxOf(t), store.SchemaKindAction, "nothing.here", store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 0 || page.Before != "" || page.After != "" {
		t.Errorf("ListSchemas(unknown action) = %+v, %v; want an empty page", page, err)
	}
	for _, c := range []string{"x", "-1", "01", "1.5", "2147483648", "99999999999999999999", ""} {
		if c == "" {
			continue
		}
		_, err := list(store.ListParams{Limit: 10, After: c})
		wantErr(t, "ListSchemas with cursor "+strconv.Quote(c), err, store.ErrInvalidCursor)
	}
}

func testListActions(t *testing.T, s store.Backend) {
	// Names in byte order; each action gets 1–3 versions.
	var all []string
	first := map[string]time.Time{}
	latest := map[string]int{}
	for i := range 14 {
		name := fmt.Sprintf("action.%02d", i)
		all = append(all, name)
		for v := range i%3 + 1 {
			at := t0.Add(time.Duration(i*10+v) * time.Second)
			if v == 0 {
				first[name] = at
			}
			mustCreateSchema(t, s, store.SchemaKindAction, name, v, at)
			latest[name] = v + 1
		}
	}
	// The actor schema is not an action.
	mustCreateSchema(t, s, store.SchemaKindActor, "", 0, t0)
	list := func(p store.ListParams) (store.ListPage[store.ActionSchemas], error) {
		return s.ListActions(ctxOf(t), p)
	}
	for _, order := range []string{"", store.OrderAsc} {
		for _, limit := range []int{0, 3, 14} {
			t.Run(fmt.Sprintf("order=%s/limit=%d", order, limit), func(t *testing.T) {
				checkList(t, list, func(a store.ActionSchemas) string { return a.Name }, all, order, limit)
			})
		}
	}
	page, err := list(store.ListParams{Limit: 100, Order: store.OrderAsc})
	if err != nil {
		t.Fatalf("ListActions: %v", err)
	}
	for _, a := range page.Data {
		if a.Latest.Version != latest[a.Name] || a.Latest.Name != a.Name || a.Latest.Kind != store.SchemaKindAction ||
			!bytes.Equal(a.Latest.Body, schemaBody(a.Name, latest[a.Name]-1)) || !a.CreatedAt.Equal(first[a.Name]) {
			t.Errorf("ListActions: %s = latest v%d %s, created %s; want v%d, created %s",
				a.Name, a.Latest.Version, a.Latest.Body, a.CreatedAt, latest[a.Name], first[a.Name])
		}
	}
}

func testSchemaMismatch(t *testing.T, s store.Backend) {
	org := orgID("SM", 1)
	mustCreateOrg(t, s, org, t0)
	ap := newAppender(t, s, 7)
	// Every third event is recorded as a mismatch.
	var subs []store.Submission
	mismatched := map[string]bool{}
	for i := range 30 {
		sub := ap.sub(org)
		sub.Events[0].SchemaMismatch = i%3 == 0
		mismatched[sub.Events[0].ID] = sub.Events[0].SchemaMismatch
		subs = append(subs, sub)
	}
	ap.appendOK(t0, subs...)
	for id, want := range mismatched {
		e, err := s.Event(ctxOf(t), id)
		if err != nil {
			t.Fatalf("Event(%s): %v", id, err)
		}
		if e.SchemaMismatch != want {
			t.Errorf("Event(%s).SchemaMismatch = %v, want %v", id, e.SchemaMismatch, want)
		}
	}
	indexAll(t, s, 7)

	all := searchAll(t, s, store.EventQuery{OrganizationID: org, Order: store.OrderAsc})
	if len(all) != 30 {
		t.Fatalf("search without filter found %d events, want 30", len(all))
	}
	var mm []store.StoredEvent // the mismatched events, in order
	for _, e := range all {
		if e.SchemaMismatch != mismatched[e.ID] {
			t.Errorf("SearchEvents: %s SchemaMismatch = %v, want %v", e.ID, e.SchemaMismatch, mismatched[e.ID])
		}
		if mismatched[e.ID] {
			mm = append(mm, e)
		}
	}
	if len(mm) != 10 {
		t.Fatalf("fixture: %d mismatches, want 10", len(mm))
	}
	for _, tc := range []struct {
		name string
		q    store.EventQuery
		keep func(store.StoredEvent) bool
	}{
		{"alone", store.EventQuery{}, func(store.StoredEvent) bool { return true }},
		{"with an action", store.EventQuery{Actions: []string{actionOf(t, all[0])}},
			func(e store.StoredEvent) bool { return actionOf(t, e) == actionOf(t, all[0]) }},
		{"with actions", store.EventQuery{Actions: []string{actionOf(t, all[0]), actionOf(t, all[3])}},
			func(e store.StoredEvent) bool {
				return actionOf(t, e) == actionOf(t, all[0]) || actionOf(t, e) == actionOf(t, all[3])
			}},
		// Filters taken from mismatched events, so that each matches some.
		{"with an actor", store.EventQuery{ActorID: recordOf(t, mm[0]).Actor.ID},
			func(e store.StoredEvent) bool { return recordOf(t, e).Actor.ID == recordOf(t, mm[0]).Actor.ID }},
		{"with a target type", store.EventQuery{TargetType: firstTargetType(t, mm)},
			func(e store.StoredEvent) bool {
				return slices.ContainsFunc(recordOf(t, e).Targets, func(x event.Entity) bool { return x.Type == firstTargetType(t, mm) })
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range []string{store.OrderAsc, store.OrderDesc} {
				q := tc.q
				q.OrganizationID, q.SchemaMismatch, q.Order = org, true, order
				var exp []string
				for _, e := range all {
					if mismatched[e.ID] && tc.keep(e) {
						exp = append(exp, e.ID)
					}
				}
				if order == store.OrderDesc {
					exp = reversed(exp)
				}
				var got []string
				for _, e := range searchAll(t, s, q) {
					if !e.SchemaMismatch {
						t.Errorf("schema_mismatch search returned %s, which has no mismatch", e.ID)
					}
					got = append(got, e.ID)
				}
				if len(exp) == 0 {
					t.Fatalf("fixture: no mismatch matches %+v", q)
				}
				if !slices.Equal(got, exp) {
					t.Errorf("SearchEvents(%+v) = %v, want %v", q, got, exp)
				}
			}
		})
	}
}

// searchAll pages through every result of q, three at a time.
func searchAll(t *testing.T, s store.Backend, q store.EventQuery) []store.StoredEvent {
	t.Helper()
	q.Limit = 3
	var out []store.StoredEvent
	for range 1000 {
		page, err := s.SearchEvents(ctxOf(t), q)
		if err != nil {
			t.Fatalf("SearchEvents(%+v): %v", q, err)
		}
		out = append(out, page.Events...)
		if page.After == "" {
			return out
		}
		q.After = page.After
	}
	t.Fatalf("SearchEvents never ended")
	return nil
}

func recordOf(t *testing.T, e store.StoredEvent) *event.Record {
	t.Helper()
	rec, err := event.ParseRecord(e.Record)
	if err != nil {
		t.Fatalf("ParseRecord(%s): %v", e.ID, err)
	}
	return rec
}

func actionOf(t *testing.T, e store.StoredEvent) string { return recordOf(t, e).Action }

// firstTargetType is the type of the first target of the first event (in
// order) that has one.
func firstTargetType(t *testing.T, all []store.StoredEvent) string {
	t.Helper()
	for _, e := range all {
		if ts := recordOf(t, e).Targets; len(ts) > 0 {
			return ts[0].Type
		}
	}
	t.Fatalf("no event of the fixture has a target")
	return ""
}
