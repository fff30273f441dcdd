package sqlite

// First-page latency of filtered queries on a large store, beside a point
// read by primary key measured in the same run. The store is built once (it
// takes minutes for millions of events) and reused:
//
//	TRAIL_BENCH_EVENTS=10000000 TRAIL_BENCH_DIR=/var/tmp/trail-bench \
//	  go test ./internal/store/sqlite -run '^$' -bench Query -benchtime 2000x -timeout 2h
//
// Without TRAIL_BENCH_EVENTS it uses 100,000 events in a temporary directory.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

const queryBenchOrgs = 100

// openQueryBench opens (building when needed) a store holding n indexed
// events of queryBenchOrgs organizations, event j in organization j % orgs.
func openQueryBench(b *testing.B) (*Store, int) {
	b.Helper()
	n := 100_000
	if v := os.Getenv("TRAIL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < queryBenchOrgs {
			b.Fatalf("TRAIL_BENCH_EVENTS=%q: want a number of events ≥ %d", v, queryBenchOrgs)
		}
	}
	dir := os.Getenv("TRAIL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("query-%d.db", n))
	ctx := context.Background()
	s, err := Open(ctx, path, nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	have, err := s.NextSeq(ctx, benchOrg(0))
	if err != nil {
		have = -1
	}
	if have < 0 {
		for o := range queryBenchOrgs {
			if err := s.CreateOrganization(ctx, store.Organization{ID: benchOrg(o), Name: benchOrg(o), CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
				b.Fatalf("CreateOrganization: %v", err)
			}
		}
		have = 0
	}
	total := int(have) * queryBenchOrgs
	if total < n {
		b.Logf("building a store of %d events in %s (from %d)…", n, path, total)
		rng := rand.New(rand.NewPCG(10, uint64(total)))
		received := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
		start := time.Now()
		for j := total; j < n; {
			var sub store.Submission
			for ; j < n && len(sub.Events) < 1000; j++ {
				d, err := event.ParseEvent(storetest.Event(rng, j), time.Now(), event.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				at := received.Add(time.Duration(j) * time.Millisecond)
				sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: benchOrg(j % queryBenchOrgs), ID: event.NewID(at), ReceivedAt: at, Tail: d.Tail})
			}
			if _, err := s.Append(ctx, []store.Submission{sub}, time.Now()); err != nil {
				b.Fatalf("Append: %v", err)
			}
			if j%50_000 < 1000 { // within the backlog's bound
				if _, err := s.IndexPending(ctx, 100_000); err != nil {
					b.Fatalf("IndexPending: %v", err)
				}
				b.Logf("%d events, %s", j, time.Since(start).Round(time.Second))
			}
		}
	}
	for {
		k, err := s.IndexPending(ctx, 100_000)
		if err != nil {
			b.Fatalf("IndexPending: %v", err)
		}
		if k == 0 {
			break
		}
	}
	return s, n
}

func BenchmarkQuery(b *testing.B) {
	s, n := openQueryBench(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	perOrg := int64(n / queryBenchOrgs)

	// Values to filter on, taken from stored events so most queries match.
	sample := func(org string) *event.Record {
		ev, err := s.eventsBySeq(ctx, org, []int64{rng.Int64N(perOrg)})
		if err != nil || len(ev) != 1 {
			b.Fatalf("sample: %v", err)
		}
		d, err := event.ParseRecord(ev[0].Record)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	queries := []struct {
		name string
		make func(org string, d *event.Record) store.EventQuery
	}{
		{"newest", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org}
		}},
		{"action", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, Actions: []string{d.Action}}
		}},
		{"action-prefix", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, ActionPrefixes: []string{"user."}}
		}},
		{"actor", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, ActorID: d.Actor.ID}
		}},
		{"actor-name", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, ActorName: d.Actor.Name}
		}},
		{"target", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, TargetType: d.Targets[0].Type, TargetID: d.Targets[0].ID}
		}},
		{"target-id", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, TargetID: d.Targets[0].ID}
		}},
		{"target-type", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, TargetType: d.Targets[0].Type}
		}},
		{"text", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, Text: d.Actor.Name}
		}},
		{"action+actor+range", func(org string, d *event.Record) store.EventQuery {
			return store.EventQuery{OrganizationID: org, Actions: []string{d.Action}, ActorID: d.Actor.ID,
				From: d.OccurredAt.Add(-30 * 24 * time.Hour), To: d.OccurredAt.Add(time.Hour)}
		}},
	}

	measure := func(b *testing.B, one func(org string, d *event.Record) error) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			org := benchOrg(rng.IntN(queryBenchOrgs))
			d := sample(org)
			b.StartTimer()
			start := time.Now()
			if err := one(org, d); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	}

	// The baseline: one record by primary key.
	b.Run("baseline-point-read", func(b *testing.B) {
		measure(b, func(org string, d *event.Record) error {
			_, err := s.eventsBySeq(ctx, org, []int64{rng.Int64N(perOrg)})
			return err
		})
	})
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			measure(b, func(org string, d *event.Record) error {
				page, err := s.SearchEvents(ctx, q.make(org, d))
				if err == nil && len(page.Events) == 0 && q.name != "action-prefix" {
					return fmt.Errorf("%s found nothing for a stored event's own values", q.name)
				}
				return err
			})
		})
	}
}

// BenchmarkQueryUnindexed measures first pages while events wait for the
// indexer: on a store of indexed events (as BenchmarkQuery's), it appends
// a backlog of 0, 10,000 and 100,000 events to one organization, the worst
// case (every one of them is that organization's), and queries that
// organization before the indexer runs ("unindexed-N") and again once it
// has indexed them ("indexed-N"), in the same run:
//
//	go test ./internal/store/sqlite -run '^$' -bench QueryUnindexed -benchtime 200x -timeout 1h
func BenchmarkQueryUnindexed(b *testing.B) {
	s, _ := openQueryBench(b)
	ctx := context.Background()
	org := benchOrg(0)
	rng := rand.New(rand.NewPCG(5, 6))
	next := time.Now()
	for _, backlog := range []int{0, 10_000, 100_000} {
		// The backlog, appended as the API does (drafts and all), in
		// batches of 1000.
		var last *event.Draft
		for j := 0; j < backlog; {
			var sub store.Submission
			for ; j < backlog && len(sub.Events) < 1000; j++ {
				next = next.Add(time.Millisecond)
				d, err := event.ParseEvent(storetest.Event(rng, j), next, event.DefaultLimits())
				if err != nil {
					b.Fatal(err)
				}
				sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(next), ReceivedAt: next, Tail: d.Tail, Draft: d})
				last = d
			}
			if _, err := s.Append(ctx, []store.Submission{sub}, time.Now()); err != nil {
				b.Fatalf("Append: %v", err)
			}
		}
		if last == nil { // filter on the newest event's values
			page, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 1})
			if err != nil || len(page.Events) != 1 {
				b.Fatalf("SearchEvents: %v", err)
			}
			rec, err := event.ParseRecord(page.Events[0].Record)
			if err != nil {
				b.Fatal(err)
			}
			last = &rec.Draft
		}
		queries := []struct {
			name string
			q    store.EventQuery
		}{
			{"newest", store.EventQuery{OrganizationID: org}},
			{"actor", store.EventQuery{OrganizationID: org, ActorID: last.Actor.ID}},
			{"action-prefix", store.EventQuery{OrganizationID: org, ActionPrefixes: []string{"user."}}},
			{"text", store.EventQuery{OrganizationID: org, Text: last.Actor.Name}},
		}
		for _, state := range []string{"unindexed", "indexed"} {
			if state == "indexed" {
				for {
					k, err := s.IndexPending(ctx, 100_000)
					if err != nil {
						b.Fatalf("IndexPending: %v", err)
					}
					if k == 0 {
						break
					}
				}
			} else if backlog == 0 {
				continue // the same as indexed-0
			}
			for _, q := range queries {
				b.Run(fmt.Sprintf("%s-%d/%s", state, backlog, q.name), func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					for b.Loop() {
						start := time.Now()
						page, err := s.SearchEvents(ctx, q.q)
						if err != nil || len(page.Events) == 0 {
							b.Fatalf("SearchEvents(%s): %d events, %v", q.name, len(page.Events), err)
						}
						lat = append(lat, time.Since(start))
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
				})
			}
		}
	}
}
