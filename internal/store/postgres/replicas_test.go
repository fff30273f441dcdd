package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// gen makes valid pending events from storetest.Event.
type gen struct {
	mu  sync.Mutex
	rng *rand.Rand
	n   int
}

func newGen(seed uint64) *gen { return &gen{rng: rand.New(rand.NewPCG(seed, 1))} }

func (g *gen) event(t testing.TB, org string, received time.Time) store.PendingEvent {
	t.Helper()
	g.mu.Lock()
	raw := storetest.Event(g.rng, g.n)
	g.n++
	g.mu.Unlock()
	d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseEvent: %v\n%s", err, raw)
	}
	return store.PendingEvent{OrganizationID: org, ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail}
}

func (g *gen) sub(t testing.TB, received time.Time, orgs ...string) store.Submission {
	t.Helper()
	var s store.Submission
	for _, o := range orgs {
		s.Events = append(s.Events, g.event(t, o, received))
	}
	return s
}

func createOrg(t testing.TB, s store.Store, id string) {
	t.Helper()
	now := time.Now()
	if err := s.CreateOrganization(context.Background(), store.Organization{ID: id, Name: id, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("CreateOrganization(%s): %v", id, err)
	}
}

// TestReplicasAppendConcurrently is eight replicas — eight stores, each
// with its own pool — appending to the same three organizations at once:
// single- and multi-organization submissions, and idempotent submissions
// that every replica receives at the same time (a client retrying against
// another replica). Every organization's seqs must come out as 0…n-1, every
// acknowledged event stored exactly once, and every duplicate answered with
// the one stored result.
func TestReplicasAppendConcurrently(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	first := openDSN(t, dsn)
	orgs := []string{"org_replica_a", "org_replica_b", "org_replica_c"}
	for _, o := range orgs {
		createOrg(t, first, o)
	}
	const replicas, calls = 8, 25
	stores := make([]*postgres.Store, replicas)
	for i := range stores {
		stores[i] = openDSN(t, dsn)
	}
	g := newGen(11)
	now := time.Now().UTC().Truncate(time.Millisecond)

	// Every replica's submissions are built first; the goroutines only
	// call Append, all starting together.
	work := make([][][]store.Submission, replicas)
	for w := range work {
		for c := range calls {
			shared := g.sub(t, now, orgs[c%3], orgs[(c+1)%3])
			shared.IdempotencyKey, shared.BodyHash = fmt.Sprintf("retry-%d", c), sha256.Sum256(fmt.Appendf(nil, "body %d", c))
			own := g.sub(t, now, orgs[w%3])
			own.IdempotencyKey, own.BodyHash = fmt.Sprintf("own-%d-%d", w, c), sha256.Sum256([]byte("own"))
			work[w] = append(work[w], []store.Submission{
				g.sub(t, now, orgs[(w+c)%3], orgs[w%3], orgs[(w+2*c)%3]),
				shared,
				g.sub(t, now, orgs[c%3]),
				own,
				shared, // the same request twice in one call
			})
		}
	}
	results := make([][][]store.AppendResult, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for _, subs := range work[w] {
				res, err := stores[w].Append(ctx, subs, now)
				if err != nil {
					t.Errorf("replica %d: Append: %v", w, err)
					return
				}
				results[w] = append(results[w], res)
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	stored := map[string]event.Accepted{} // event id → as acknowledged
	store1 := func(a event.Accepted) {
		if prev, ok := stored[a.ID]; ok && prev != a {
			t.Fatalf("event %s acknowledged as %+v and as %+v", a.ID, prev, a)
		}
		stored[a.ID] = a
	}
	for c := range calls {
		var sharedResult []event.Accepted
		storedBy := 0
		for w := range replicas {
			res := results[w][c]
			for i, r := range res {
				if r.Err != nil || len(r.Events) != len(work[w][c][i].Events) {
					t.Fatalf("replica %d call %d submission %d: %+v", w, c, i, r)
				}
				for _, a := range r.Events {
					store1(a)
				}
			}
			if res[0].Replayed || res[2].Replayed || res[3].Replayed {
				t.Errorf("replica %d call %d: a submission with no earlier copy was answered as a replay", w, c)
			}
			if !res[4].Replayed || !slices.Equal(res[4].Events, res[1].Events) {
				t.Errorf("replica %d call %d: the second copy in one call = %+v, want a replay of %+v", w, c, res[4], res[1])
			}
			if !res[1].Replayed {
				storedBy++
			}
			if sharedResult == nil {
				sharedResult = res[1].Events
			} else if !slices.Equal(sharedResult, res[1].Events) {
				t.Errorf("call %d: replicas answered the same idempotent request differently: %+v and %+v", c, sharedResult, res[1].Events)
			}
		}
		if storedBy != 1 {
			t.Errorf("call %d: %d replicas stored the idempotent request, want exactly 1", c, storedBy)
		}
	}

	// The database holds exactly the acknowledged events, with their seqs.
	seqs := storedSeqs(ctx, t, first, stored)
	total := 0
	for _, o := range orgs {
		ss := seqs[o]
		total += len(ss)
		if n, err := first.NextSeq(ctx, o); err != nil || n != int64(len(ss)) {
			t.Errorf("NextSeq(%s) = %d, %v; want %d", o, n, err, len(ss))
		}
	}
	// Per call: 3 + 1 + 1 events per replica, plus the shared request's 2 once.
	if want := calls * (replicas*5 + 2); total != want {
		t.Errorf("%d events stored, want %d", total, want)
	}
	for _, a := range stored {
		got, err := first.Event(ctx, a.ID)
		if err != nil || got.Seq != a.Seq || got.OrganizationID != a.OrganizationID {
			t.Fatalf("Event(%s) = %+v, %v; want seq %d of %s", a.ID, got, err, a.Seq, a.OrganizationID)
		}
	}
}

// TestConcurrentOpen starts several replicas at once on an empty database:
// the migration lock makes one migrate and the others wait, and every one
// of them starts.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.New(t)
	const replicas = 6
	stores := make([]*postgres.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = postgres.Open(context.Background(), dsn, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	// Each replica works, and they share one schema.
	createOrg(t, stores[0], "org_open")
	for i, s := range stores {
		if n, err := s.NextSeq(context.Background(), "org_open"); err != nil || n != 0 {
			t.Errorf("replica %d: NextSeq = %d, %v", i, n, err)
		}
	}
	var applied int
	if err := stores[0].Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM goose_db_version WHERE version_id > 0 AND is_applied`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	// Every migration file of the package, each recorded once.
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files found (%v)", err)
	}
	if applied != len(files) {
		t.Errorf("%d migrations recorded as applied, want %d (each once)", applied, len(files))
	}
}

// partitions returns the monthly partitions of table.
func partitions(t testing.TB, s *postgres.Store, table string) []string {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(),
		`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

func monthName(table string, t time.Time) string {
	return fmt.Sprintf("%s_y%04dm%02d", table, t.Year(), int(t.Month()))
}

func TestEnsurePartitions(t *testing.T) {
	ctx := context.Background()
	s := openFresh(t)
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for _, table := range []string{"events", "event_targets"} {
		want := []string{table + "_default", monthName(table, month), monthName(table, month.AddDate(0, 1, 0)), monthName(table, month.AddDate(0, 2, 0))}
		slices.Sort(want)
		if got := partitions(t, s, table); !slices.Equal(got, want) {
			t.Errorf("partitions of %s after Open = %v, want %v", table, got, want)
		}
	}

	// Events received in a month that has no partition go to the default
	// one; creating that month's partition later moves them into it.
	createOrg(t, s, "org_parts")
	g := newGen(3)
	later := month.AddDate(0, 5, 9)
	res, err := s.Append(ctx, []store.Submission{g.sub(t, later, "org_parts", "org_parts"), g.sub(t, now, "org_parts")}, now)
	if err != nil {
		t.Fatal(err)
	}
	countIn := func(table string) int {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countIn("events_default"); n != 2 {
		t.Fatalf("%d events in the default partition, want 2", n)
	}
	// Replicas doing it at once all succeed, and do it once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.EnsurePartitions(ctx, later)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("EnsurePartitions: %v", err)
		}
	}
	if n := countIn("events_default") + countIn("event_targets_default"); n != 0 {
		t.Errorf("%d rows left in the default partitions", n)
	}
	if n := countIn(monthName("events", later)); n != 2 {
		t.Errorf("%d events in %s, want 2", n, monthName("events", later))
	}
	if n := countIn(monthName("event_targets", later)); n < 2 {
		t.Errorf("%d targets in %s, want the events' targets", n, monthName("event_targets", later))
	}
	if got := len(partitions(t, s, "events")); got != 7 {
		t.Errorf("%d partitions of events, want 7", got)
	}
	// Everything is still found where it moved.
	for _, r := range res {
		for _, a := range r.Events {
			if e, err := s.Event(ctx, a.ID); err != nil || e.Seq != a.Seq {
				t.Errorf("Event(%s) after the move = %+v, %v", a.ID, e, err)
			}
		}
	}
	page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: "org_parts", Limit: 10})
	if err != nil || len(page.Events) != 3 {
		t.Errorf("search after the move = %d events, %v; want 3", len(page.Events), err)
	}
	// And idempotent.
	if err := s.EnsurePartitions(ctx, later); err != nil {
		t.Errorf("EnsurePartitions again: %v", err)
	}
}

// storedSeqs checks that the events table holds exactly the acknowledged
// events (event id → as acknowledged), each with the organization and seq
// it was acknowledged with, and that every organization's seqs run from 0
// without gaps or repeats; it returns each organization's seqs.
func storedSeqs(ctx context.Context, t *testing.T, s *postgres.Store, acked map[string]event.Accepted) map[string][]int64 {
	t.Helper()
	rows, err := s.Pool().Query(ctx, `SELECT organization_id, seq, id FROM events ORDER BY organization_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seqs := map[string][]int64{}
	count := 0
	for rows.Next() {
		var org, id string
		var seq int64
		if err := rows.Scan(&org, &seq, &id); err != nil {
			t.Fatal(err)
		}
		count++
		if a, ok := acked[id]; !ok {
			t.Errorf("event %s (%s seq %d) is stored but was never acknowledged", id, org, seq)
		} else if a.OrganizationID != org || a.Seq != seq {
			t.Errorf("event %s is stored as %s seq %d but was acknowledged as %s seq %d", id, org, seq, a.OrganizationID, a.Seq)
		}
		seqs[org] = append(seqs[org], seq)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if count != len(acked) {
		t.Errorf("%d events stored, %d acknowledged", count, len(acked))
	}
	for org, ss := range seqs {
		for i, v := range ss {
			if v != int64(i) {
				t.Fatalf("seqs of %s are not 0…%d without gaps or repeats: %v", org, len(ss)-1, ss)
			}
		}
	}
	return seqs
}
