package postgres_test

// Ingest throughput, beside the physical limit measured in the same run on
// the same server (absolute figures drift between machines and server
// settings; ratios to a baseline do not). Run with
//
//	go test ./internal/store/postgres -run '^$' -bench . -benchtime 50x -count 3
//
// b.N is the number of 1,000-event batches; every figure is in events/s.
// pgtest's throwaway server runs with fsync off, so commits cost no disk
// flush here: the figures are the CPU and I/O of the statements.

import (
	"bytes"
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

const (
	benchBatch = 1000 // events per transaction
	benchOrgs  = 100  // organizations, round-robin
)

type benchEvent struct {
	id       string
	received time.Time
	tail     []byte
}

var benchCache struct {
	sync.Mutex
	rng    *rand.Rand
	events []benchEvent
}

// benchEvents returns the first n events of one fixed sequence (event j
// belongs to organization j % benchOrgs), generating more when needed.
func benchEvents(b testing.TB, n int) []benchEvent {
	b.Helper()
	c := &benchCache
	c.Lock()
	defer c.Unlock()
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(2026, 11))
	}
	received := time.Now().UTC().Truncate(time.Millisecond)
	for j := len(c.events); j < n; j++ {
		d, err := event.ParseEvent(storetest.Event(c.rng, j), time.Now(), event.DefaultLimits())
		if err != nil {
			b.Fatalf("generated event %d is invalid: %v", j, err)
		}
		at := received.Add(time.Duration(j) * 50 * time.Microsecond).Truncate(time.Millisecond)
		c.events = append(c.events, benchEvent{id: event.NewID(at), received: at, tail: d.Tail})
	}
	return c.events[:n]
}

func benchOrg(i int) string { return fmt.Sprintf("org_01JBENCH%018d", i) }

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func openBench(b *testing.B) *postgres.Store {
	b.Helper()
	s := openFresh(b)
	now := time.Now()
	for i := range benchOrgs {
		if err := s.CreateOrganization(context.Background(), store.Organization{ID: benchOrg(i), Name: "bench", CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatalf("CreateOrganization: %v", err)
		}
	}
	return s
}

// submissions cuts the first n×benchBatch events into n submissions.
func submissions(b testing.TB, n int) [][]store.Submission {
	b.Helper()
	evs := benchEvents(b, n*benchBatch)
	out := make([][]store.Submission, n)
	for i := range out {
		var sub store.Submission
		sub.Events = make([]store.PendingEvent, benchBatch)
		for k := range benchBatch {
			j := i*benchBatch + k
			e := evs[j]
			sub.Events[k] = store.PendingEvent{OrganizationID: benchOrg(j % benchOrgs), ID: e.id, ReceivedAt: e.received, Tail: e.tail}
		}
		out[i] = []store.Submission{sub}
	}
	return out
}

// bareRows returns the records of batch i as the store would write them,
// with their organizations and seqs.
func bareRows(evs []benchEvent, i int, next []int64) [][]any {
	rows := make([][]any, benchBatch)
	for k := range benchBatch {
		j := i*benchBatch + k
		org := j % benchOrgs
		a := event.Accepted{ID: evs[j].id, OrganizationID: benchOrg(org), Seq: next[org], ReceivedAt: evs[j].received}
		next[org]++
		rows[k] = []any{a.OrganizationID, a.Seq, event.AppendRecord(nil, a, evs[j].tail)}
	}
	return rows
}

// openBare creates a table holding nothing but the records, under the
// primary key (organization_id, seq), on a fresh database.
func openBare(b *testing.B) *pgx.Conn {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.New(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `CREATE TABLE bare (organization_id text COLLATE "C", seq bigint, record bytea, PRIMARY KEY (organization_id, seq))`); err != nil {
		b.Fatal(err)
	}
	return conn
}

// BenchmarkBareCopy is the physical limit: the same records COPYed into a
// table with only a primary key, 1,000 rows a transaction, records encoded
// as Append encodes them.
func BenchmarkBareCopy(b *testing.B) {
	ctx := context.Background()
	conn := openBare(b)
	evs := benchEvents(b, b.N*benchBatch)
	next := make([]int64, benchOrgs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows := bareRows(evs, i, next)
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bare"}, []string{"organization_id", "seq", "record"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
}

// BenchmarkBareUnnest is BenchmarkBareCopy with one INSERT … SELECT FROM
// unnest of three arrays per batch instead of COPY: the other way to send
// a batch in one statement.
func BenchmarkBareUnnest(b *testing.B) {
	ctx := context.Background()
	conn := openBare(b)
	evs := benchEvents(b, b.N*benchBatch)
	next := make([]int64, benchOrgs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows := bareRows(evs, i, next)
		orgs, seqs, records := make([]string, len(rows)), make([]int64, len(rows)), make([][]byte, len(rows))
		for k, r := range rows {
			orgs[k], seqs[k], records[k] = r[0].(string), r[1].(int64), r[2].([]byte)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bare SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])`, orgs, seqs, records); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
}

// BenchmarkAppend is Store.Append of 1,000-event submissions, one a
// transaction, search columns, targets and full-text vector included.
// "noindexes" drops the search indexes first (keeping the primary keys and
// the id index): the difference is what maintaining them in the ingest
// transaction costs, which is what indexing after the fact would move out
// of it.
func BenchmarkAppend(b *testing.B) {
	for _, variant := range []string{"all", "noindexes"} {
		b.Run("indexes="+variant, func(b *testing.B) {
			s := openBench(b)
			if variant == "noindexes" {
				for _, ix := range []string{"events_org_time", "events_action", "events_actor_id", "events_actor_name", "events_search", "event_targets_type", "event_targets_id"} {
					if _, err := s.Pool().Exec(context.Background(), `DROP INDEX `+ix); err != nil {
						b.Fatal(err)
					}
				}
			}
			subs := submissions(b, b.N)
			ctx := context.Background()
			now := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := s.Append(ctx, subs[i], now)
				if err != nil || res[0].Err != nil {
					b.Fatalf("Append: %v %v", err, res)
				}
			}
			b.StopTimer()
			reportRate(b, b.N*benchBatch)
		})
	}
}

// BenchmarkAppendParallel is BenchmarkAppend from four replicas at once
// (four stores, each its own pool), every batch spanning all organizations:
// how the per-organization row locks let concurrent writers proceed.
func BenchmarkAppendParallel(b *testing.B) {
	const replicas = 4
	dsn := pgtest.New(b)
	first := openDSN(b, dsn)
	now := time.Now()
	for i := range benchOrgs {
		if err := first.CreateOrganization(context.Background(), store.Organization{ID: benchOrg(i), Name: "bench", CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	stores := make([]*postgres.Store, replicas)
	for i := range stores {
		stores[i] = openDSN(b, dsn)
	}
	subs := submissions(b, b.N)
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	for r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; i < b.N; i += replicas {
				res, err := stores[r].Append(ctx, subs[i], now)
				if err != nil || res[0].Err != nil {
					b.Errorf("Append: %v %v", err, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
}

// BenchmarkCopySameIndexes is the baseline the ingest target is stated
// against: the very rows Append stores (events with their search columns
// and vector, and targets), computed before the clock starts, COPYed into
// the same schema with the same indexes, 1,000 events a transaction —
// storing without sequencing, idempotency or checks.
func BenchmarkCopySameIndexes(b *testing.B) {
	s := openBench(b)
	ctx := context.Background()
	next := map[string]int64{}
	type batch struct{ events, targets [][]any }
	batches := make([]batch, b.N)
	for i, subs := range submissions(b, b.N) {
		ev, tg, err := postgres.BaselineRows(subs, next)
		if err != nil {
			b.Fatal(err)
		}
		batches[i] = batch{ev, tg}
	}
	b.ResetTimer()
	for _, bt := range batches {
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, postgres.EventColumns, pgx.CopyFromRows(bt.events)); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_targets"}, postgres.TargetColumns, pgx.CopyFromRows(bt.targets)); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
}

// BenchmarkNaiveInsert is what most applications do: one INSERT per event
// (and one per target), each event its own transaction, from 16
// connections, into the same schema and indexes, rows computed before the
// clock starts.
func BenchmarkNaiveInsert(b *testing.B) {
	const conns = 16
	s := openBench(b)
	ctx := context.Background()
	next := map[string]int64{}
	var events, targets [][]any
	for _, subs := range submissions(b, b.N) {
		ev, tg, err := postgres.BaselineRows(subs, next)
		if err != nil {
			b.Fatal(err)
		}
		events, targets = append(events, ev...), append(targets, tg...)
	}
	byEvent := map[string][][]any{} // organization_id/seq → its target rows
	for _, t := range targets {
		k := fmt.Sprint(t[3], "/", t[0])
		byEvent[k] = append(byEvent[k], t)
	}
	insEvent := `INSERT INTO events (` + strings.Join(postgres.EventColumns, ", ") + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	insTarget := `INSERT INTO event_targets (` + strings.Join(postgres.TargetColumns, ", ") + `) VALUES ($1, $2, $3, $4, $5, $6)`
	var work sync.WaitGroup
	var failed atomic.Value
	next64 := atomic.Int64{}
	b.ResetTimer()
	for range conns {
		work.Add(1)
		go func() {
			defer work.Done()
			for {
				i := next64.Add(1) - 1
				if i >= int64(len(events)) {
					return
				}
				e := events[i]
				err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, insEvent, e...); err != nil {
						return err
					}
					for _, t := range byEvent[fmt.Sprint(e[3], "/", e[0])] {
						if _, err := tx.Exec(ctx, insTarget, t...); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	work.Wait()
	b.StopTimer()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	reportRate(b, len(events))
}

// appendIndexes are the indexes of events and event_targets (their
// partitioned parents) that BenchmarkAppendIndexCost drops one at a time.
var appendIndexes = []string{
	"events_pkey", "events_id", "events_org_time", "events_action", "events_actor_id", "events_actor_name",
	"events_search", "events_schema_mismatch",
	"event_targets_pkey", "event_targets_type", "event_targets_id",
}

// BenchmarkAppendIndexCost is what each index of the event tables costs
// the append: Store.Append of group commits as concurrent single-event
// requests make them (benchGroup submissions of one event over benchGroupOrgs
// organizations), on a fresh database with every index ("all") and with
// each one dropped in turn. Besides time per event it reports the
// database's CPU per event (its backends' /proc times, when the server
// runs on this machine) and WAL bytes per event. Run against a server
// with fsync on and pg_stat_statements loaded:
//
//	TRAIL_TEST_DATABASE=postgres://… go test ./internal/store/postgres -run '^$' \
//		-bench AppendIndexCost -benchtime 1000x -count 3
func BenchmarkAppendIndexCost(b *testing.B) {
	const benchGroup, benchGroupOrgs = 30, 10
	for _, drop := range append([]string{"none"}, appendIndexes...) {
		b.Run("drop="+drop, func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			var have []string
			rows, err := s.Pool().Query(ctx, `SELECT indexrelid::regclass::text FROM pg_index
				WHERE indrelid IN ('events'::regclass, 'event_targets'::regclass) ORDER BY 1`)
			if err == nil {
				have, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil {
				b.Fatal(err)
			}
			if !slices.Equal(have, slices.Sorted(slices.Values(appendIndexes))) {
				b.Fatalf("the event tables' indexes are %v: update appendIndexes", have)
			}
			switch {
			case drop == "none":
			case strings.HasSuffix(drop, "_pkey"):
				table := strings.TrimSuffix(drop, "_pkey")
				if _, err := s.Pool().Exec(ctx, `ALTER TABLE `+table+` DROP CONSTRAINT `+drop); err != nil {
					b.Fatal(err)
				}
			default:
				if _, err := s.Pool().Exec(ctx, `DROP INDEX `+drop); err != nil {
					b.Fatal(err)
				}
			}
			evs := benchEvents(b, b.N*benchGroup)
			groups := make([][]store.Submission, b.N)
			for i := range groups {
				groups[i] = make([]store.Submission, benchGroup)
				for k := range benchGroup {
					j := i*benchGroup + k
					e := evs[j]
					groups[i][k].Events = []store.PendingEvent{{OrganizationID: benchOrg(j % benchGroupOrgs), ID: e.id, ReceivedAt: e.received, Tail: e.tail}}
				}
			}
			now := time.Now()
			// One warm-up append: the pool's connections and cached plans.
			if _, err := s.Append(ctx, groups[0][:1], now); err != nil {
				b.Fatal(err)
			}
			groups[0] = groups[0][1:]
			cpu0, wal0 := backendCPU(b, s), walLSN(b, s)
			b.ResetTimer()
			for i := range groups {
				res, err := s.Append(ctx, groups[i], now)
				if err != nil || res[0].Err != nil {
					b.Fatalf("Append: %v %v", err, res)
				}
			}
			b.StopTimer()
			n := float64(b.N*benchGroup - 1)
			cpu1, wal1 := backendCPU(b, s), walLSN(b, s)
			if cpu0 != nil {
				var d time.Duration
				for pid, t := range cpu1 {
					d += t - cpu0[pid]
				}
				b.ReportMetric(float64(d.Microseconds())/n, "pg-µs/event")
			}
			var wal int64
			if err := s.Pool().QueryRow(ctx, `SELECT pg_wal_lsn_diff($1, $2)::bigint`, wal1, wal0).Scan(&wal); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(wal)/n, "WAL-B/event")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/n, "µs/event")
		})
	}
}

// backendCPU returns the CPU time of each backend serving the store's
// database, read from /proc (nil when the server is not on this machine).
func backendCPU(b *testing.B, s *postgres.Store) map[int]time.Duration {
	b.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		// utime and stime are fields 14 and 15, in clock ticks (100 Hz
		// on Linux); the command name, field 2, ends with ')'.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(u+st) * 10 * time.Millisecond
	}
	return out
}

func walLSN(b *testing.B, s *postgres.Store) string {
	b.Helper()
	var lsn string
	if err := s.Pool().QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		b.Fatal(err)
	}
	return lsn
}

// BenchmarkAppendAgainstCopy is the batch goal's measurement: Store.Append
// of 1,000-event submissions against a bare COPY of the same records (the
// bytes Append stores, with their organizations and seqs) into a table with
// only a primary key, on the same server, in alternating rounds so that
// both see the same load. A third arm, "schema", COPYs the very rows Append
// stores (search columns, vector, targets; computed before the clock
// starts) into Trail's schema and indexes in a second fresh database: what
// the schema costs without Trail's sequencing, checks and encoding. Each
// round runs appendRoundBatches batches of each arm, the order rotating
// every round. b.N is the number of rounds; it reports each arm's events/s
// over all rounds and the median of the rounds' ratios to the bare COPY.
// Point TRAIL_TEST_DATABASE at a server with fsync on to include commits'
// flushes:
//
//	TRAIL_TEST_DATABASE=postgres://… go test ./internal/store/postgres -run '^$' \
//		-bench AppendAgainstCopy -benchtime 6x
func BenchmarkAppendAgainstCopy(b *testing.B) {
	const appendRoundBatches = 5
	ctx := context.Background()
	s, schema := openBench(b), openBench(b)
	if _, err := s.Pool().Exec(ctx, `CREATE TABLE bare (organization_id text COLLATE "C", seq bigint, record bytea, PRIMARY KEY (organization_id, seq))`); err != nil {
		b.Fatal(err)
	}
	batches := b.N * appendRoundBatches
	subs := submissions(b, batches)
	evs := benchEvents(b, batches*benchBatch)
	next := make([]int64, benchOrgs)
	bare := make([][][]any, batches)
	type rows struct{ events, targets [][]any }
	same := make([]rows, batches)
	nextSame := map[string]int64{}
	for i := range bare {
		bare[i] = bareRows(evs, i, next)
		ev, tg, err := postgres.BaselineRows(subs[i], nextSame)
		if err != nil {
			b.Fatal(err)
		}
		same[i] = rows{ev, tg}
	}
	now := time.Now()
	copyIn := func(st *postgres.Store, table string, cols []string, rs ...[][]any) {
		tx, err := st.Pool().Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for k, r := range rs {
			tbl, cl := table, cols
			if k == 1 {
				tbl, cl = "event_targets", postgres.TargetColumns
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{tbl}, cl, pgx.CopyFromRows(r)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	arms := []func(int){
		func(i int) { // Trail's append
			res, err := s.Append(ctx, subs[i], now)
			if err != nil || res[0].Err != nil {
				b.Fatalf("Append: %v %v", err, res)
			}
		},
		func(i int) { copyIn(s, "bare", []string{"organization_id", "seq", "record"}, bare[i]) },
		func(i int) { copyIn(schema, "events", postgres.EventColumns, same[i].events, same[i].targets) },
	}
	took := make([]time.Duration, len(arms))
	ratios := [][]float64{make([]float64, b.N), make([]float64, b.N)} // append, schema ÷ bare
	b.ResetTimer()
	for r := 0; r < b.N; r++ {
		round := make([]time.Duration, len(arms))
		for k := range arms {
			a := (r + k) % len(arms)
			start := time.Now()
			for j := range appendRoundBatches {
				arms[a](r*appendRoundBatches + j)
			}
			round[a] = time.Since(start)
			took[a] += round[a]
		}
		// Equal events in each arm: the ratio of rates is that of times.
		ratios[0][r] = round[1].Seconds() / round[0].Seconds()
		ratios[1][r] = round[1].Seconds() / round[2].Seconds()
	}
	b.StopTimer()
	n := float64(batches * benchBatch)
	b.ReportMetric(n/took[0].Seconds(), "append-events/s")
	b.ReportMetric(n/took[1].Seconds(), "copy-events/s")
	b.ReportMetric(n/took[2].Seconds(), "schema-events/s")
	for k, name := range []string{"append/copy", "schema/copy"} {
		slices.Sort(ratios[k])
		b.ReportMetric(ratios[k][len(ratios[k])/2], name)
	}
}
