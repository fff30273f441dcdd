package retention_test

import (
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

// BenchmarkIngestDuringSweep measures the latency of single-event appends
// (one organization, SQLite) while a sweep deletes 3 × 20,000 expired
// records, without a pause between batches and with the default one. It
// reports the appends' p99 and the sweep's duration: the pause trades a
// longer sweep for an ingest tail that stays near its idle value.
//
//	go test -run '^$' -bench IngestDuringSweep ./internal/retention/
func BenchmarkIngestDuringSweep(b *testing.B) {
	for _, pause := range []time.Duration{0, 50 * time.Millisecond} {
		b.Run("pause="+pause.String(), func(b *testing.B) {
			now := testclock.Now(b)
			var lat []time.Duration
			var sweeps time.Duration
			for range b.N {
				b.StopTimer()
				st := setup(b, now, 20000)
				if err := st.CreateOrganization(b.Context(), store.Organization{ID: "org_live", Name: "live", CreatedAt: now, UpdatedAt: now}); err != nil {
					b.Fatal(err)
				}
				d, err := event.ParseEvent([]byte(`{"action":"a.b","occurred_at":"`+testclock.Format(now)+`","actor":{"id":"u","type":"user"},"targets":[],"context":{"location":"x"}}`),
					now, event.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				sw := retention.New(st, retention.Options{BatchPause: pause, Now: func() time.Time { return now }}, nil, nil)
				b.StartTimer()
				done := make(chan time.Duration)
				go func() {
					start := time.Now()
					if _, err := sw.Sweep(b.Context()); err != nil {
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
					sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: "org_live", ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail}}}
					start := time.Now()
					if res, err := st.Append(b.Context(), []store.Submission{sub}, now); err != nil || res[0].Err != nil {
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
			b.ReportMetric(float64(len(lat))/float64(b.N), "appends/sweep")
			b.ReportMetric(sweeps.Seconds()/float64(b.N), "sweep-s")
		})
	}
}
