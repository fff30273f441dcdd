package sqlite_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/store/storetest"
	"github.com/trailaudit/trail/internal/testclock"
)

// openAt opens the store at path and closes it when t ends.
func openAt(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("sqlite.Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// appendElsewhere is a store whose events are appended through another
// Store on the same file, as by another process: what it has not indexed
// yet it reads from the events table, not from its own memory.
type appendElsewhere struct {
	*sqlite.Store
	appender *sqlite.Store
}

func (s appendElsewhere) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	return s.appender.Append(ctx, subs, now)
}

// TestSearchConformanceFromTable runs the search cases with the events
// not indexed yet read from the events table.
func TestSearchConformanceFromTable(t *testing.T) {
	storetest.RunSearch(t, func(t *testing.T) appendElsewhere {
		path := filepath.Join(t.TempDir(), "trail.db")
		return appendElsewhere{Store: openAt(t, path), appender: openAt(t, path)}
	})
}

var t0 = testclock.Must().Add(-(100*24*time.Hour + 535*time.Millisecond))

// gen makes valid pending events from storetest.Event and remembers their
// tails, to check stored records.
type gen struct {
	rng   *rand.Rand
	n     int
	tails map[string][]byte
	// at, when set, replaces every event's occurred_at.
	at time.Time
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 1)), tails: map[string][]byte{}}
}

func (g *gen) event(t *testing.T, org string) store.PendingEvent {
	t.Helper()
	raw := storetest.Event(g.rng, g.n)
	g.n++
	if !g.at.IsZero() {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		m["occurred_at"] = g.at.Format(time.RFC3339Nano)
		raw, _ = json.Marshal(m)
	}
	d, err := event.ParseEvent(raw, t0, event.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseEvent: %v\n%s", err, raw)
	}
	received := t0.Add(time.Duration(g.n) * time.Millisecond)
	e := store.PendingEvent{OrganizationID: org, ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail}
	g.tails[e.ID] = d.Tail
	return e
}

// sub returns a submission of n events, organizations taken in turn.
func (g *gen) sub(t *testing.T, n int, orgs ...string) store.Submission {
	t.Helper()
	var s store.Submission
	for i := range n {
		s.Events = append(s.Events, g.event(t, orgs[i%len(orgs)]))
	}
	return s
}

func appendOK(t *testing.T, s store.Store, now time.Time, subs ...store.Submission) []store.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), subs, now)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("Append: submission %d: %v", i, r.Err)
		}
	}
	return res
}

func createOrg(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.CreateOrganization(context.Background(), store.Organization{ID: id, Name: id, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatalf("CreateOrganization(%s): %v", id, err)
	}
}

func nextSeq(t *testing.T, s store.Store, org string) int64 {
	t.Helper()
	n, err := s.NextSeq(context.Background(), org)
	if err != nil {
		t.Fatalf("NextSeq(%s): %v", org, err)
	}
	return n
}

// indexAll runs IndexPending until it reports 0 and returns how many it indexed.
func indexAll(t *testing.T, s *sqlite.Store, batch int) int {
	t.Helper()
	total := 0
	for {
		n, err := s.IndexPending(context.Background(), batch)
		if err != nil {
			t.Fatalf("IndexPending: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// searchAll walks every page of q and returns the events in order.
func searchAll(t *testing.T, s store.Store, q store.EventQuery) []store.StoredEvent {
	t.Helper()
	var out []store.StoredEvent
	for {
		page, err := s.SearchEvents(context.Background(), q)
		if err != nil {
			t.Fatalf("SearchEvents(%+v): %v", q, err)
		}
		out = append(out, page.Events...)
		if page.After == "" {
			return out
		}
		q.After = page.After
	}
}

func checkStored(t *testing.T, s store.Store, g *gen, accepted []event.Accepted) {
	t.Helper()
	for _, a := range accepted {
		got, err := s.Event(context.Background(), a.ID)
		if err != nil {
			t.Fatalf("Event(%s): %v", a.ID, err)
		}
		if want := event.AppendRecord(nil, a, g.tails[a.ID]); got.Seq != a.Seq || got.OrganizationID != a.OrganizationID || !bytes.Equal(got.Record, want) {
			t.Fatalf("Event(%s) = %d %s %s\nwant %d %s %s", a.ID, got.Seq, got.OrganizationID, got.Record, a.Seq, a.OrganizationID, want)
		}
	}
}

func seqsOf(evs []store.StoredEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func TestReopenContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "trail.db") // the directory is created too
	ctx := context.Background()
	g := newGen(1)
	const a, b = "org_reopen_a", "org_reopen_b"

	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	createOrg(t, s, a)
	createOrg(t, s, b)
	key := store.APIKey{ID: "key_reopen", Name: "k", Hash: [32]byte{1, 2, 3}, Prefix: "sk_", Scopes: []string{"admin"}, CreatedAt: t0}
	if err := s.CreateAPIKey(ctx, key); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	idem := g.sub(t, 3, a, b)
	idem.IdempotencyKey, idem.BodyHash = "retry-me", [32]byte{9}
	var accepted []event.Accepted
	for _, r := range appendOK(t, s, t0, idem, g.sub(t, 7, a, b, a)) {
		accepted = append(accepted, r.Events...)
	}
	first := accepted[:3]
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openAt(t, path)
	if _, err := s.Organization(ctx, a); err != nil {
		t.Errorf("Organization after reopen: %v", err)
	}
	if _, err := s.Organization(ctx, store.SystemOrganizationID); err != nil {
		t.Errorf("system organization after reopen: %v", err)
	}
	if k, err := s.APIKeyByHash(ctx, key.Hash); err != nil || k.ID != key.ID {
		t.Errorf("APIKeyByHash after reopen = %+v, %v", k, err)
	}
	checkStored(t, s, g, accepted)
	wantA, wantB := int64(0), int64(0)
	for _, ev := range accepted {
		if ev.OrganizationID == a {
			wantA++
		} else {
			wantB++
		}
	}
	if na, nb := nextSeq(t, s, a), nextSeq(t, s, b); na != wantA || nb != wantB {
		t.Fatalf("NextSeq after reopen = %d, %d; want %d, %d", na, nb, wantA, wantB)
	}
	// The idempotency key survived.
	retry := g.sub(t, 3, a, b)
	retry.IdempotencyKey, retry.BodyHash = idem.IdempotencyKey, idem.BodyHash
	if r := appendOK(t, s, t0.Add(time.Hour), retry)[0]; !r.Replayed || len(r.Events) != 3 || r.Events[0].ID != first[0].ID {
		t.Errorf("replay after reopen = %+v, want the first result", r)
	}
	// Seqs continue where they stopped.
	more := appendOK(t, s, t0, g.sub(t, 4, a))[0].Events
	for i, ev := range more {
		if ev.Seq != wantA+int64(i) {
			t.Errorf("event %d after reopen got seq %d, want %d", i, ev.Seq, wantA+int64(i))
		}
	}
	checkStored(t, s, g, more)
	indexAll(t, s, 100)
	got := searchAll(t, s, store.EventQuery{OrganizationID: a, Order: store.OrderAsc, Limit: 100})
	if int64(len(got)) != wantA+4 {
		t.Errorf("search after reopen found %d events of %s, want %d", len(got), a, wantA+4)
	}
}

// SearchLag counts the events the indexer has not reached and says when the
// oldest of them was received.
func TestSearchLag(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, filepath.Join(t.TempDir(), "trail.db"))
	g := newGen(3)
	const org = "org_lag"
	createOrg(t, s, org)
	if lag, err := s.SearchLag(ctx); err != nil || lag != (store.SearchLag{}) {
		t.Fatalf("SearchLag of an empty store = %+v, %v", lag, err)
	}
	var received []time.Time // of each event, in pos order
	for range 3 {
		sub := g.sub(t, 10, org)
		for _, ev := range sub.Events {
			received = append(received, ev.ReceivedAt)
		}
		appendOK(t, s, t0, sub)
	}
	for _, step := range []struct {
		index  int // IndexPending(index) first; 0: none
		events int64
		oldest time.Time
	}{
		{0, 30, received[0]},
		{10, 20, received[10]},
		{5, 15, received[15]},
		{15, 0, time.Time{}},
	} {
		if step.index > 0 {
			if n, err := s.IndexPending(ctx, step.index); err != nil || n != step.index {
				t.Fatalf("IndexPending(%d) = %d, %v", step.index, n, err)
			}
		}
		lag, err := s.SearchLag(ctx)
		if err != nil || lag.Events != step.events || !lag.Oldest.Equal(step.oldest) {
			t.Errorf("SearchLag = %+v, %v; want %d events, the oldest received at %v", lag, err, step.events, step.oldest)
		}
	}
}

func TestIndexerResumesAfterReopen(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		before int // events indexed before closing
	}{
		{"NothingIndexed", 0},
		{"PartlyIndexed", 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trail.db")
			g := newGen(2)
			const org = "org_resume"
			s, err := sqlite.Open(ctx, path, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			createOrg(t, s, org)
			for range 3 {
				appendOK(t, s, t0, g.sub(t, 10, org))
			}
			if c.before > 0 {
				if n, err := s.IndexPending(ctx, c.before); err != nil || n != c.before {
					t.Fatalf("IndexPending(%d) = %d, %v", c.before, n, err)
				}
			}
			if lag, err := s.IndexLag(ctx); err != nil || lag != int64(30-c.before) {
				t.Errorf("IndexLag before closing = %d, %v; want %d", lag, err, 30-c.before)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			s = openAt(t, path)
			if lag, err := s.IndexLag(ctx); err != nil || lag != int64(30-c.before) {
				t.Errorf("IndexLag after reopening = %d, %v; want %d", lag, err, 30-c.before)
			}
			if n := indexAll(t, s, 1000); n != 30-c.before {
				t.Errorf("after reopening, IndexPending indexed %d events, want %d (each exactly once)", n, 30-c.before)
			}
			if lag, err := s.IndexLag(ctx); err != nil || lag != 0 {
				t.Errorf("IndexLag after indexing = %d, %v; want 0", lag, err)
			}
			got := searchAll(t, s, store.EventQuery{OrganizationID: org, Limit: 100})
			seqs := seqsOf(got)
			slices.Sort(seqs)
			if len(seqs) != 30 || seqs[0] != 0 || seqs[29] != 29 || len(slices.Compact(seqs)) != 30 {
				t.Errorf("search after resuming found seqs %v, want 0…29 once each", seqsOf(got))
			}
		})
	}
}

func TestSameMillisecondKeepsSeqOrder(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "trail.db"))
	const a, b = "org_ms_a", "org_ms_b"
	createOrg(t, s, a)
	createOrg(t, s, b)
	g := newGen(3)
	g.at = t0.Add(-30*24*time.Hour + 123*time.Millisecond).Truncate(time.Millisecond)
	// 3,000 events of two organizations in one millisecond, appended in six
	// calls, indexed in batches that straddle them.
	for i := range 6 {
		appendOK(t, s, t0, g.sub(t, 250, a, b), g.sub(t, 250, b, a, b))
		if i%2 == 1 {
			if _, err := s.IndexPending(context.Background(), 700); err != nil {
				t.Fatalf("IndexPending: %v", err)
			}
		}
	}
	indexAll(t, s, 700)

	for _, org := range []string{a, b} {
		n := nextSeq(t, s, org)
		for _, q := range []store.EventQuery{
			{},
			{From: g.at, To: g.at.Add(time.Millisecond)},
			{ActionPrefixes: []string{"user.", "document."}},
			{Text: "Mozilla"},
		} {
			q.OrganizationID, q.Limit = org, 100
			for _, order := range []string{store.OrderAsc, store.OrderDesc} {
				q.Order = order
				seqs := seqsOf(searchAll(t, s, q))
				if q.Text == "" && len(q.ActionPrefixes) == 0 && int64(len(seqs)) != n {
					t.Errorf("%+v: %d events, want %d", q, len(seqs), n)
				}
				if len(seqs) < 100 {
					t.Errorf("%+v: only %d events", q, len(seqs))
				}
				cmpSeq := func(x, y int64) int { return cmp.Compare(x, y) }
				if order == store.OrderDesc {
					cmpSeq = func(x, y int64) int { return cmp.Compare(y, x) }
				}
				if !slices.IsSortedFunc(seqs, cmpSeq) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
					t.Errorf("%+v: events of one millisecond not in strict seq order: %v", q, seqs)
				}
			}
		}
	}
}

// The search file is a projection: deleted, or swapped for one built from
// another database or from a later state of this one (a restored backup),
// it is rebuilt from the events and answers exactly as before.
func TestSearchIndexRebuilds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	g := newGen(7)

	open := func(path string) *sqlite.Store {
		s, err := sqlite.Open(ctx, path, nil)
		if err != nil {
			t.Fatalf("Open(%s): %v", path, err)
		}
		return s
	}
	a, b := open(pathA), open(pathB)
	createOrg(t, a, "org_a")
	createOrg(t, b, "org_a")
	appendOK(t, a, t0, g.sub(t, 50, "org_a"))
	appendOK(t, b, t0, g.sub(t, 20, "org_a"))
	indexAll(t, a, 1000)
	indexAll(t, b, 1000)
	want := seqsOf(searchAll(t, b, store.EventQuery{OrganizationID: "org_a", Order: store.OrderAsc}))
	if len(want) != 20 {
		t.Fatalf("b holds %d searchable events, want 20", len(want))
	}
	a.Close()
	b.Close()

	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, corrupt := range map[string]func(){
		"deleted": func() { os.Remove(sqlite.SearchPath(pathB)) },
		"other database": func() {
			copyFile(sqlite.SearchPath(pathA), sqlite.SearchPath(pathB))
		},
	} {
		t.Run(name, func(t *testing.T) {
			for _, suffix := range []string{"-wal", "-shm"} {
				os.Remove(sqlite.SearchPath(pathB) + suffix)
			}
			corrupt()
			s := openAt(t, pathB)
			lag, err := s.IndexLag(ctx)
			if err != nil || lag != 20 {
				t.Fatalf("IndexLag after reopening = %d, %v; want 20 (a full rebuild)", lag, err)
			}
			if n := indexAll(t, s, 7); n != 20 {
				t.Fatalf("rebuild indexed %d events, want 20", n)
			}
			got := seqsOf(searchAll(t, s, store.EventQuery{OrganizationID: "org_a", Order: store.OrderAsc}))
			if !slices.Equal(got, want) {
				t.Fatalf("after rebuild search = %v, want %v", got, want)
			}
			s.Close()
		})
	}
}

// Both database files (and their WAL files) hold key hashes and events:
// readable by the owner only.
func TestFilesArePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trail.db")
	s := openAt(t, path)
	createOrg(t, s, "org_a")
	for _, p := range []string{path, path + "-wal", sqlite.SearchPath(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
}
