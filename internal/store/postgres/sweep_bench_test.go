package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
)

// BenchmarkIngestDuringSweep measures single-event appends to one
// organization while the retention sweeper deletes 20,000 expired records
// (each with two target rows) of another, without a pause between batches
// and with the default one. It reports the appends' p99 and the sweep's
// duration: the pause trades a longer sweep for an ingest tail near its
// idle value (internal/retention has the same on SQLite).
//
//	go test -run '^$' -bench IngestDuringSweep ./internal/store/postgres/
func BenchmarkIngestDuringSweep(b *testing.B) {
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
	const live = "org_live"
	if err := s.CreateOrganization(ctx, store.Organization{ID: live, Name: live, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	round := 0
	for _, pause := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run("pause="+pause.String(), func(b *testing.B) {
			var lat []time.Duration
			var sweeps time.Duration
			for range b.N {
				b.StopTimer()
				round++
				org := fmt.Sprintf("org_sweep%d", round)
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
				sw := retention.New(s, retention.Options{BatchPause: pause, CheckpointsKeepAll: -1, Now: func() time.Time { return now }}, nil, nil)
				b.StartTimer()
				done := make(chan time.Duration)
				go func() {
					start := time.Now()
					if _, err := sw.Sweep(ctx); err != nil {
						b.Error(err)
					}
					done <- time.Since(start)
				}()
			ingest:
				for {
					select {
					case d := <-done:
						sweeps += d
						break ingest
					default:
					}
					sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: live, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}
					start := time.Now()
					if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || res[0].Err != nil {
						b.Fatal(err, res[0].Err)
					}
					lat = append(lat, time.Since(start))
				}
			}
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "append-p99-µs")
			b.ReportMetric(sweeps.Seconds()/float64(b.N), "sweep-s")
		})
	}
}
