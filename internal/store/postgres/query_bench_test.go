package postgres_test

// First-page latency of filtered queries on a large store, beside a point
// read by primary key measured in the same run. The database is built once
// (it takes about half an hour for 10 million events) and reused:
//
//	TRAIL_BENCH_EVENTS=10000000 TRAIL_BENCH_DATABASE=postgres://…/trail_bench \
//	  go test ./internal/store/postgres -run '^$' -bench Query -benchtime 200x -timeout 2h
//
// Without TRAIL_BENCH_DATABASE it builds TRAIL_BENCH_EVENTS (default
// 100,000) events in a throwaway database. Half of the events belong to one
// organization (org_big), the rest to 99 others: every case runs on the big
// one and on a small one, because which plan is fast depends on it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/storetest"
)

func queryBenchOrg(j int) string {
	if j%2 == 0 {
		return "org_big"
	}
	return fmt.Sprintf("org_small_%02d", (j/2)%99)
}

// openQueryBench opens the benchmark database, filling it when it holds
// fewer than the wanted number of events.
func openQueryBench(b *testing.B) *postgres.Store {
	b.Helper()
	n := 100_000
	if v := os.Getenv("TRAIL_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 200 {
			b.Fatalf("TRAIL_BENCH_EVENTS=%q: want a number of events ≥ 200", v)
		}
	}
	dsn := os.Getenv("TRAIL_BENCH_DATABASE")
	if dsn == "" {
		dsn = pgtest.New(b)
	}
	ctx := context.Background()
	s := openDSN(b, dsn)
	var have int
	if err := s.Pool().QueryRow(ctx, `SELECT coalesce(sum(next_seq), 0) FROM organizations WHERE id = 'org_big' OR id LIKE 'org_small_%'`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have >= n {
		return s
	}
	if have > 0 {
		b.Fatalf("the benchmark database holds %d events, want %d: use an empty one", have, n)
	}
	b.Logf("building a database of %d events", n)
	// Received over the last three months, so that they fill partitions.
	recvStart := time.Now().UTC().AddDate(0, -3, 0)
	for _, at := range []time.Time{recvStart, recvStart.AddDate(0, 2, 0)} {
		if err := s.EnsurePartitions(ctx, at); err != nil {
			b.Fatal(err)
		}
	}
	for j := range 200 {
		if _, err := s.NextSeq(ctx, queryBenchOrg(j)); err != nil {
			createOrg(b, s, queryBenchOrg(j))
		}
	}
	const batch = 5000
	span := time.Duration(int64(90*24*time.Hour) / int64(n))
	var next, done atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for w := range 2 { // one builds a batch while the other's is written
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for {
				from := int(next.Add(batch)) - batch
				if from >= n {
					return
				}
				var sub store.Submission
				for j := from; j < min(from+batch, n); j++ {
					d, err := event.ParseEvent(storetest.Event(rng, j), time.Now(), event.DefaultLimits())
					if err != nil {
						b.Error(err)
						return
					}
					at := recvStart.Add(time.Duration(j) * span).Truncate(time.Millisecond)
					sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: queryBenchOrg(j), ID: event.NewID(at), ReceivedAt: at, Tail: d.Tail})
				}
				if _, err := s.Append(ctx, []store.Submission{sub}, time.Now()); err != nil {
					b.Error(err)
					return
				}
				if k := done.Add(int64(len(sub.Events))); k%1_000_000 < batch {
					b.Logf("%d events, %.0f/s", k, float64(k)/time.Since(began).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if _, err := s.Pool().Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkQuery(b *testing.B) {
	s := openQueryBench(b)
	ctx := context.Background()
	var actor, actorName, targetType, targetID, rareWord string
	if err := s.Pool().QueryRow(ctx, `SELECT actor_id, actor_name FROM events WHERE organization_id = 'org_big' ORDER BY occurred_at DESC, seq DESC LIMIT 1`).Scan(&actor, &actorName); err != nil {
		b.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT target_type, target_id FROM event_targets WHERE organization_id = 'org_big' ORDER BY occurred_at DESC, seq DESC LIMIT 1`).Scan(&targetType, &targetID); err != nil {
		b.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT substring(convert_from(record, 'UTF8') from '"request_id":"(req_[0-9A-Z]+)"') FROM events
		WHERE organization_id = 'org_big' AND position('request_id' in convert_from(record, 'UTF8')) > 0 ORDER BY occurred_at DESC, seq DESC LIMIT 1`).Scan(&rareWord); err != nil {
		b.Fatal(err)
	}
	var first, last time.Time
	if err := s.Pool().QueryRow(ctx, `SELECT min(occurred_at), max(occurred_at) FROM events WHERE organization_id = 'org_big'`).Scan(&first, &last); err != nil {
		b.Fatal(err)
	}
	mid := first.Add(last.Sub(first) / 2)
	cases := []struct {
		name string
		q    store.EventQuery
	}{
		{"All", store.EventQuery{}},
		{"AllAsc", store.EventQuery{Order: store.OrderAsc}},
		{"Range", store.EventQuery{From: mid, To: mid.Add(time.Hour)}},
		{"Action", store.EventQuery{Actions: []string{"user.signed_in"}}},
		{"ActionUnknown", store.EventQuery{Actions: []string{"nothing.happened"}}},
		{"ActionPrefix", store.EventQuery{ActionPrefixes: []string{"user."}}},
		{"ActionPrefixAndRange", store.EventQuery{ActionPrefixes: []string{"user."}, From: mid, To: mid.Add(time.Hour)}},
		{"ActorID", store.EventQuery{ActorID: actor}},
		{"ActorName", store.EventQuery{ActorName: actorName}},
		{"ActorIDAndAction", store.EventQuery{ActorID: actor, Actions: []string{"document.viewed"}}},
		{"TargetTypeAndID", store.EventQuery{TargetType: targetType, TargetID: targetID}},
		{"TargetID", store.EventQuery{TargetID: targetID}},
		{"TargetType", store.EventQuery{TargetType: "invoice"}},
		{"TargetTypeAndActor", store.EventQuery{TargetType: "invoice", ActorID: actor}},
		{"TextCommon", store.EventQuery{Text: "mozilla"}},
		{"TextMedium", store.EventQuery{Text: "enterprise"}},
		{"TextRare", store.EventQuery{Text: rareWord}},
		{"TextPrefix", store.EventQuery{Text: "offboard*"}},
		{"TextTwoWords", store.EventQuery{Text: "enterprise firefox"}},
		{"TextPhrase", store.EventQuery{Text: "policy violation"}},
		{"TextAndActor", store.EventQuery{Text: "enterprise", ActorID: actor}},
		{"TextNoMatch", store.EventQuery{Text: "xylophone"}},
		{"TextAndRange", store.EventQuery{Text: "enterprise", From: mid, To: mid.Add(time.Hour)}},
	}
	for _, org := range []string{"org_big", "org_small_07"} {
		b.Run(org+"/PrimaryKeyRead", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var rec []byte
				if err := s.Pool().QueryRow(ctx, `SELECT record FROM events WHERE organization_id = $1 AND seq = $2`, org, int64(i%1000)).Scan(&rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
		for _, c := range cases {
			q := c.q
			q.OrganizationID, q.Limit = org, 50
			b.Run(org+"/"+c.name, func(b *testing.B) {
				var page store.EventPage
				for i := 0; i < b.N; i++ {
					var err error
					if page, err = s.SearchEvents(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(page.Events)), "events")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
			})
		}
	}
}

// BenchmarkTextKinds measures free-text first pages by kind of word on a
// database seeded by `trail bench query --seed N` (docs/PERFORMANCE.md),
// one query at a time on one connection, so that the PostgreSQL backend's
// CPU time (from /proc, on the same machine) and the buffers it touched
// (pg_stat_database) are the page's own:
//
//	TRAIL_BENCH_TEXT_DATABASE='postgres://…/q1m?pool_max_conns=1' \
//	  go test ./internal/store/postgres -run '^$' -bench TextKinds -benchtime 1x
//
// Kinds: a user's id, in 1 % of an organization's events (the text query
// of `trail bench query`); a request id, in one event; a word in none; words
// in most events; a prefix matching 10 % of them.
func BenchmarkTextKinds(b *testing.B) {
	dsn := os.Getenv("TRAIL_BENCH_TEXT_DATABASE")
	if dsn == "" {
		b.Skip("TRAIL_BENCH_TEXT_DATABASE is not set")
	}
	s := openDSN(b, dsn)
	ctx := context.Background()
	pool := s.Pool()
	rows, err := pool.Query(ctx, `SELECT id FROM organizations WHERE id <> 'org_system' ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	type query struct{ org, text string }
	kinds := map[string][]query{}
	for k, org := range orgs {
		var actor string
		if err := pool.QueryRow(ctx, `SELECT actor_id FROM events WHERE organization_id = $1 AND actor_id LIKE 'user_%' LIMIT 1`, org).Scan(&actor); err != nil {
			b.Fatal(err)
		}
		var v int
		if _, err := fmt.Sscanf(actor, "user_%06d", &v); err != nil {
			b.Fatal(err)
		}
		for i := range 10 {
			kinds["OnePercent"] = append(kinds["OnePercent"], query{org, fmt.Sprintf("user_%06d", (v%10+10*((i*37+k*7)%100))%1000)})
		}
		r, err := pool.Query(ctx, `SELECT (regexp_match(search::text, '''(req_[0-9]+)'''))[1] FROM events
			WHERE organization_id = $1 AND seq % 4999 = 7 AND search::text LIKE '%req_%' LIMIT 10`, org)
		if err != nil {
			b.Fatal(err)
		}
		words, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		for _, w := range words {
			kinds["OneEvent"] = append(kinds["OneEvent"], query{org, w})
		}
		kinds["None"] = append(kinds["None"], query{org, "xylophone"}, query{org, "nothingatall"})
		kinds["Common"] = append(kinds["Common"], query{org, "user"}, query{org, "mozilla"}, query{org, "signed_in"})
		kinds["Prefix"] = append(kinds["Prefix"], query{org, fmt.Sprintf("user_0009%d*", v%10)}, query{org, fmt.Sprintf("user_0004%d*", v%10)})
	}
	var pid int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	cpu := func() time.Duration { // the backend's user and system time
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Skipf("the backend's CPU time: %v (run on the database's machine)", err)
		}
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	buffers := func() int64 {
		// Backends report their counts when idle, at most once a second.
		time.Sleep(1500 * time.Millisecond)
		var n int64
		if err := pool.QueryRow(ctx, `SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	for _, kind := range []string{"OnePercent", "OneEvent", "None", "Common", "Prefix"} {
		b.Run(kind, func(b *testing.B) {
			qs := kinds[kind]
			var lat []time.Duration
			var used time.Duration
			blocks := buffers()
			b.ResetTimer()
			for range b.N {
				for _, q := range qs {
					c0, t0 := cpu(), time.Now()
					if _, err := s.SearchEvents(ctx, store.EventQuery{OrganizationID: q.org, Text: q.text, Limit: 50}); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					used += cpu() - c0
				}
			}
			b.StopTimer()
			blocks = buffers() - blocks
			slices.Sort(lat)
			n := float64(len(lat))
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[int(0.99*(n-1))]), "p99-ms")
			b.ReportMetric(ms(used)/n, "pgcpu-ms/page")
			b.ReportMetric(float64(blocks)/n, "buffers/page")
		})
	}
}
