package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
)

// TestDropPartitionWaitsNotLong holds a lock on an expired partition, as a
// long query would: DropPartitions waits for it without holding ingest up,
// gives up after partitionWait without an error, and drops it at the next
// call once the lock is gone.
func TestDropPartitionWaitsNotLong(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A January two years before the real clock (which Open made partitions
	// for): old enough that no partition of the current months is in range.
	jan := time.Date(time.Now().UTC().Year()-2, 1, 10, 0, 0, 0, 0, time.UTC)
	janPart, yearGlob := partitionName("events", jan.AddDate(0, 0, -9)), fmt.Sprintf("event%%%dm0%%", jan.Year())
	const org = "org_locked"
	if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: jan, UpdatedAt: jan}); err != nil {
		t.Fatal(err)
	}
	d, err := event.ParseEvent([]byte(`{"action":"a.b","occurred_at":"`+jan.Format(time.RFC3339)+`","actor":{"id":"u","type":"user"},"targets":[{"id":"t","type":"team"}],"context":{"location":"x"}}`),
		jan, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: org, ID: event.NewID(jan), ReceivedAt: jan, Tail: d.Tail}}}
	if res, err := s.Append(ctx, []store.Submission{sub}, jan); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if err := s.EnsurePartitions(ctx, jan); err != nil {
		t.Fatal(err)
	}
	if err := s.Integrate(ctx, org, 0, 1, []ledger.TileData{{Tile: tlog.Tile{H: ledger.TileHeight, W: 1}, Data: make([]byte, 32)}}, []byte("note\n")); err != nil {
		t.Fatal(err)
	}

	blocker, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := blocker.QueryRow(ctx, `SELECT count(*) FROM `+janPart).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reading the partition: %d rows, %v", n, err)
	}
	// While the drop waits for January, ingest goes on: it must not queue
	// behind a lock the drop holds on the parent table.
	type result struct {
		drop store.PartitionDrop
		err  error
	}
	dropped := make(chan result, 1)
	go func() {
		drop, err := s.DropPartitions(ctx, jan.AddDate(0, 1, -9))
		dropped <- result{drop, err}
	}()
	waiting := func() bool {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	for deadline := time.Now().Add(time.Minute); !waiting(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the drop never waited for the locked partition")
		}
	}
	now := time.Now()
	sub = store.Submission{Events: []store.PendingEvent{{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}
	if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil || res[0].Events[0].Seq != 1 {
		t.Fatalf("Append while a drop waits: %v %+v", err, res)
	}
	if !waiting() {
		t.Error("the append waited until the drop gave up on the locked partition: ingest queued behind the drop")
	}
	if r := <-dropped; r.err != nil || len(r.drop.Partitions) != 0 {
		t.Errorf("DropPartitions while January is locked = %+v, %v; want nothing dropped and no error", r.drop, r.err)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	drop, err := s.DropPartitions(ctx, jan.AddDate(1, 0, -9))
	if err != nil || len(drop.Partitions) != 3 || drop.Partitions[0] != janPart || drop.Records != 1 {
		t.Errorf("DropPartitions once unlocked = %+v, %v; want January to March dropped, with January's 1 record", drop, err)
	}
	var left int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE $1`, yearGlob).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d partitions of that year left (events and event_targets), %v", left, err)
	}
	// The default partitions are never dropped, and ingest goes on.
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname IN ('events_default', 'event_targets_default')`).Scan(&left); err != nil || left != 2 {
		t.Errorf("%d default partitions left, %v; want 2", left, err)
	}
	now = time.Now()
	sub = store.Submission{Events: []store.PendingEvent{{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}
	if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil || res[0].Events[0].Seq != 2 {
		t.Fatalf("Append after the drop: %v %+v", err, res)
	}
}

// BenchmarkPruneRecords deletes 20,000 integrated records of one
// organization (each with two target rows) in batches of 1,000, the
// sweeper's default.
func BenchmarkPruneRecords(b *testing.B) {
	ctx := context.Background()
	const n = 20_000
	now := time.Now().UTC()
	d, err := event.ParseEvent([]byte(`{"action":"doc.viewed","occurred_at":"`+now.AddDate(0, -5, 0).Format(time.RFC3339)+`","actor":{"id":"u","type":"user","name":"U"},`+
		`"targets":[{"id":"d","type":"doc"},{"id":"t","type":"team"}],"context":{"location":"203.0.113.7"},"metadata":{"k":"some words to index"}}`),
		now, event.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(ctx, pgtest.New(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		org := fmt.Sprintf("org_bench%d", i)
		if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
		for done := 0; done < n; done += 4000 {
			var sub store.Submission
			for j := range 4000 {
				at := now.Add(-90 * 24 * time.Hour).Add(time.Duration(done+j) * time.Millisecond)
				sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(at), ReceivedAt: at, Tail: d.Tail})
			}
			if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil {
				b.Fatal(err, res[0].Err)
			}
		}
		var tiles []ledger.TileData
		for k := int64(0); k*256 < n; k++ {
			w := int(min(n-k*256, 256))
			tiles = append(tiles, ledger.TileData{Tile: tlog.Tile{H: ledger.TileHeight, N: k, W: w}, Data: make([]byte, 32*w)})
		}
		if err := s.Integrate(ctx, org, 0, n, tiles, []byte("note\n")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		total := 0
		for {
			k, err := s.PruneRecords(ctx, org, now.Add(-30*24*time.Hour), 1000)
			if err != nil {
				b.Fatal(err)
			}
			total += k
			if k < 1000 {
				break
			}
		}
		b.StopTimer()
		if total != n {
			b.Fatalf("pruned %d of %d", total, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestDropPartitionBySeqRange stores a log whose received_at disagrees with
// its seq at a month boundary, as replicas with clocks apart write it: seq 0
// is received in February by one replica's clock, seq 1 in January by
// another's. Dropping January then would leave seq 0 with a hole after it,
// so January stays until row deletes, in seq order, have taken seq 0 and 1;
// another organization's January records do not hold it up once they have.
func TestDropPartitionBySeqRange(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	feb := time.Date(time.Now().UTC().Year()-2, 2, 1, 0, 0, 0, 0, time.UTC)
	janPart := partitionName("events", feb.AddDate(0, -1, 0))
	d, err := event.ParseEvent([]byte(`{"action":"a.b","occurred_at":"`+feb.Format(time.RFC3339)+`","actor":{"id":"u","type":"user"},"targets":[{"id":"t","type":"team"}],"context":{"location":"x"}}`),
		feb, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	logs := []struct {
		org      string
		received []time.Time // by seq
	}{
		{"org_skewed", []time.Time{feb.Add(time.Second), feb.Add(-time.Second), feb.Add(24 * time.Hour)}},
		{"org_ordered", []time.Time{feb.AddDate(0, 0, -10), feb.AddDate(0, 0, -5), feb.AddDate(0, 0, 3)}},
	}
	for _, l := range logs {
		if err := s.CreateOrganization(ctx, store.Organization{ID: l.org, Name: l.org, CreatedAt: feb, UpdatedAt: feb}); err != nil {
			t.Fatal(err)
		}
		for _, at := range l.received {
			sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: l.org, ID: event.NewID(at), ReceivedAt: at, Tail: d.Tail}}}
			if res, err := s.Append(ctx, []store.Submission{sub}, at); err != nil || res[0].Err != nil {
				t.Fatal(err, res[0].Err)
			}
		}
		n := len(l.received)
		if err := s.Integrate(ctx, l.org, 0, int64(n), []ledger.TileData{{Tile: tlog.Tile{H: ledger.TileHeight, W: n}, Data: make([]byte, 32*n)}}, []byte("note\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EnsurePartitions(ctx, feb.AddDate(0, -1, 0)); err != nil {
		t.Fatal(err)
	}
	seqs := func(org string) []int64 {
		var got []int64
		if err := s.ReadRecords(ctx, org, 0, 100, func(seq int64, _ []byte) error { got = append(got, seq); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}

	// January has passed every retention, but org_skewed's seq 0 is in
	// February: January stays, and both logs stay whole.
	cutoff := feb.Add(time.Second) // seq 0 of org_skewed is not due yet
	if drop, err := s.DropPartitions(ctx, cutoff); err != nil || len(drop.Partitions) != 0 {
		t.Fatalf("DropPartitions with a record out of order = %+v, %v; want nothing dropped", drop, err)
	}
	for _, tc := range []struct {
		org  string
		want string
	}{{"org_skewed", "[0 1 2]"}, {"org_ordered", "[0 1 2]"}} {
		if got := fmt.Sprint(seqs(tc.org)); got != tc.want {
			t.Errorf("%s holds seqs %s after the refused drop, want %s", tc.org, got, tc.want)
		}
	}

	// Once seq 0 is due, row deletes take seq 0 and 1 (in seq order);
	// then January holds only org_ordered's first records and is dropped.
	cutoff = feb.Add(2 * time.Second)
	if n, err := s.PruneRecords(ctx, "org_skewed", cutoff, 1000); err != nil || n != 2 {
		t.Fatalf("PruneRecords(org_skewed) = %d, %v; want 2", n, err)
	}
	drop, err := s.DropPartitions(ctx, cutoff)
	if err != nil || len(drop.Partitions) != 1 || drop.Partitions[0] != janPart || drop.Records != 2 {
		t.Fatalf("DropPartitions once in order = %+v, %v; want %s with org_ordered's 2 records", drop, err, janPart)
	}
	for _, tc := range []struct {
		org  string
		want string
	}{{"org_skewed", "[2]"}, {"org_ordered", "[2]"}} {
		if got := fmt.Sprint(seqs(tc.org)); got != tc.want {
			t.Errorf("%s holds seqs %s after the drop, want %s", tc.org, got, tc.want)
		}
	}
}
