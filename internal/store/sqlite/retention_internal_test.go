package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

// TestPruneLeavesNoSearchRows prunes while the indexer indexes the same
// records in small batches, then counts what is left of the organization
// in every search table. Search results alone cannot show a stale entry
// (eventsBySeq drops entries whose record is gone), but counts and
// histograms would.
func TestPruneLeavesNoSearchRows(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := testclock.Must()
	const org, n = "org_Stale", 400
	if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var sub store.Submission
	for i := range n {
		received := now.Add(-90 * 24 * time.Hour).Add(time.Duration(i) * time.Millisecond)
		raw := fmt.Sprintf(`{"action":"doc.viewed","occurred_at":%q,"actor":{"id":"u%d","type":"user"},`+
			`"targets":[{"id":"d%d","type":"doc"},{"id":"t","type":"team"}],"context":{"location":"x"}}`,
			received.Add(-time.Duration(i%3)*time.Second).Format(time.RFC3339Nano), i, i)
		d, err := event.ParseEvent([]byte(raw), now, event.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		pe := store.PendingEvent{OrganizationID: org, ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail}
		if i%2 == 0 {
			pe.Draft = d // indexed from the draft, pruned from the record
		}
		sub.Events = append(sub.Events, pe)
	}
	if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	var tiles []ledger.TileData
	for k := int64(0); k*256 < n; k++ {
		w := int(min(n-k*256, 256))
		tiles = append(tiles, ledger.TileData{Tile: tlog.Tile{H: ledger.TileHeight, N: k, W: w}, Data: make([]byte, 32*w)})
	}
	if err := s.Integrate(ctx, org, 0, n, tiles, []byte("note\n")); err != nil {
		t.Fatal(err)
	}

	// Between the two commits of each prune, the indexer runs: it must
	// find nothing there that is about to be deleted.
	betweenPruneCommits = func() {
		if _, err := s.IndexPending(ctx, 5); err != nil {
			t.Error(err)
		}
	}
	defer func() { betweenPruneCommits = nil }()
	done, errc := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			if _, err := s.IndexPending(ctx, 7); err != nil {
				errc <- err
				return
			}
		}
	}()
	deleted := 0
	for i := 0; deleted < n && i < 1_000_000; i++ {
		k, err := s.PruneRecords(ctx, org, now.Add(-30*24*time.Hour), 3)
		if err != nil {
			t.Fatal(err)
		}
		deleted += k
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for {
		k, err := s.IndexPending(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
	}
	if deleted != n {
		t.Fatalf("pruned %d of %d records", deleted, n)
	}
	for _, q := range []string{
		`SELECT count(*) FROM events WHERE organization_id = ?`,
		`SELECT count(*) FROM event_search WHERE organization_id = ?`,
	} {
		db := s.searchRead
		if strings.Contains(q, "FROM events") {
			db = s.read
		}
		var left int
		if err := db.QueryRowContext(ctx, q, org).Scan(&left); err != nil || left != 0 {
			t.Errorf("%s: %d rows left, %v", q, left, err)
		}
	}
	var text int
	if err := s.searchRead.QueryRowContext(ctx, `SELECT count(*) FROM event_fts WHERE event_fts MATCH ?`,
		facetTermOf(facetOrganization, org)).Scan(&text); err != nil || text != 0 {
		t.Errorf("full-text entries left: %d, %v", text, err)
	}
	// The organization was the only one: no term of any entry may be
	// left. A contentless 'delete' with other values than were inserted
	// would leave those terms behind.
	if _, err := s.searchWrite.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.fts_terms USING fts5vocab(main, event_fts, 'row')`); err != nil {
		t.Fatal(err)
	}
	var terms int
	var sample string
	if err := s.searchWrite.QueryRowContext(ctx, `SELECT count(*), coalesce(max(term), '') FROM temp.fts_terms`).Scan(&terms, &sample); err != nil || terms != 0 {
		t.Errorf("%d full-text terms left (e.g. %q), %v", terms, sample, err)
	}
}

// BenchmarkPruneRecords deletes 20,000 indexed, integrated records of one
// organization in batches of 1,000 (the sweeper's default), search entries
// included.
func BenchmarkPruneRecords(b *testing.B) {
	ctx := context.Background()
	const n = 20_000
	now := testclock.Must()
	d, err := event.ParseEvent([]byte(`{"action":"doc.viewed","occurred_at":"`+testclock.Format(now.AddDate(0, -5, 0))+`","actor":{"id":"u","type":"user","name":"U"},`+
		`"targets":[{"id":"d","type":"doc"},{"id":"t","type":"team"}],"context":{"location":"203.0.113.7"},"metadata":{"k":"some words to index"}}`),
		now, event.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(ctx, filepath.Join(b.TempDir(), "trail.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
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
		for {
			k, err := s.IndexPending(ctx, 5000)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
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
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
