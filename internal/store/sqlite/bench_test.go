package sqlite

// Ingest and indexing throughput, each beside the physical limit measured in
// the same run (docs/PERFORMANCE.md: absolute figures drift between machines,
// ratios to a baseline do not). Run with
//
//	go test ./internal/store/sqlite -run '^$' -bench . -benchtime 20x -count 3
//
// b.N is the number of 1,000-event batches; every figure is in events/s.

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

const (
	benchBatch = 1000 // events per transaction
	benchOrgs  = 100  // organizations, round-robin
	indexBatch = 5000 // what ingest.Indexer uses
)

// benchEvent is one generated event, the same in every benchmark: event j
// belongs to organization j % benchOrgs.
type benchEvent struct {
	id       string
	received time.Time
	tail     []byte
	draft    *event.Draft
}

var benchCache struct {
	sync.Mutex
	rng    *rand.Rand
	events []benchEvent
}

// benchEvents returns the first n events of one fixed sequence, generating
// more when needed (outside any timer: callers stop it).
func benchEvents(b *testing.B, n int) []benchEvent {
	b.Helper()
	c := &benchCache
	c.Lock()
	defer c.Unlock()
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(2026, 11))
	}
	received := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for j := len(c.events); j < n; j++ {
		d, err := event.ParseEvent(storetest.Event(c.rng, j), time.Now(), event.DefaultLimits())
		if err != nil {
			b.Fatalf("generated event %d is invalid: %v", j, err)
		}
		at := received.Add(time.Duration(j) * 50 * time.Microsecond).Truncate(time.Millisecond)
		c.events = append(c.events, benchEvent{id: event.NewID(at), received: at, tail: d.Tail, draft: d})
	}
	return c.events[:n]
}

func benchOrg(i int) string { return fmt.Sprintf("org_01JBENCH%018d", i) }

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// openBench opens a fresh store with benchOrgs organizations.
func openBench(b *testing.B) *Store {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "trail.db"), nil)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	// These benchmarks measure ingest and indexing apart: Append must not
	// wait for an indexer that is not running.
	s.backlogLimit = -1
	now := time.Now()
	for i := range benchOrgs {
		if err := s.CreateOrganization(ctx, store.Organization{ID: benchOrg(i), Name: "bench", CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatalf("CreateOrganization: %v", err)
		}
	}
	return s
}

// submissions cuts the first n×benchBatch events into n submissions of
// benchBatch events.
func submissions(b *testing.B, n int) [][]store.Submission {
	b.Helper()
	evs := benchEvents(b, n*benchBatch)
	out := make([][]store.Submission, n)
	for i := range out {
		var sub store.Submission
		sub.Events = make([]store.PendingEvent, benchBatch)
		for k := range benchBatch {
			j := i*benchBatch + k
			e := evs[j]
			sub.Events[k] = store.PendingEvent{OrganizationID: benchOrg(j % benchOrgs), ID: e.id, ReceivedAt: e.received, Tail: e.tail, Draft: e.draft}
		}
		out[i] = []store.Submission{sub}
	}
	return out
}

// BenchmarkBareInsert is the physical limit: the same records into a table
// holding nothing but them, under its primary key (organization_id, seq),
// through a connection with the store's write pragmas, 1,000 rows a
// transaction.
func BenchmarkBareInsert(b *testing.B) {
	ctx := context.Background()
	db := openBare(b)
	evs := benchEvents(b, b.N*benchBatch)
	next := make([]int64, benchOrgs)
	var buf []byte
	size := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO bare (organization_id, seq, record) VALUES (?, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		for k := range benchBatch {
			j := i*benchBatch + k
			org := j % benchOrgs
			a := event.Accepted{ID: evs[j].id, OrganizationID: benchOrg(org), Seq: next[org], ReceivedAt: evs[j].received}
			next[org]++
			buf = event.AppendRecord(buf[:0], a, evs[j].tail)
			size += len(buf)
			if _, err := ins.ExecContext(ctx, a.OrganizationID, a.Seq, buf); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
	b.ReportMetric(float64(size)/float64(b.N*benchBatch), "B/record")
}

// openBare opens a fresh file with one table holding nothing but records
// under their primary key (organization_id, seq), through one connection
// with the store's write pragmas: the baselines' database.
func openBare(b *testing.B) *sql.DB {
	b.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(b.TempDir(), "bare.db"), false, true, 256<<20))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(context.Background(), `CREATE TABLE bare (organization_id TEXT, seq INTEGER, record BLOB, PRIMARY KEY (organization_id, seq))`); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkAppend is Store.Append of 1,000-event submissions, one a
// transaction, search indexing not included.
func BenchmarkAppend(b *testing.B) {
	s := openBench(b)
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
}

// BenchmarkAppendWithIntegrator is BenchmarkAppend while the ledger
// integrator extends every organization's tree and signs checkpoints beside
// it, woken after each commit as in trail serve: the cost of the verifiable
// log to ingest. The clock stops when the last Append returns; lag-ms is how
// long the integrator then took to cover every event.
func BenchmarkAppendWithIntegrator(b *testing.B) {
	s := openBench(b)
	subs := submissions(b, b.N)
	ctx := context.Background()
	now := time.Now()
	dir := b.TempDir()
	signer, err := ledger.LoadOrCreateSigner(dir, "bench.example")
	if err != nil {
		b.Fatal(err)
	}
	in, err := ledger.NewIntegrator(s, signer, "bench.example/log", ledger.Options{DataDir: dir, Interval: 250 * time.Millisecond}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer in.Stop()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := s.Append(ctx, subs[i], now)
		if err != nil || res[0].Err != nil {
			b.Fatalf("Append: %v %v", err, res)
		}
		in.Wake()
	}
	b.StopTimer()
	reportRate(b, b.N*benchBatch)
	done := time.Now()
	if err := in.WaitIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(done).Milliseconds()), "lag-ms")
}

// BenchmarkAppendAndIndex is Append as in BenchmarkAppend while IndexPending
// runs in another goroutine, as the background indexer does (passes of up
// to indexBatch events, woken after each commit). The clock stops when
// every event is searchable. max-lag-events is the largest number of
// acknowledged events not yet searchable seen after a commit;
// max-unsearchable-ms the longest any acknowledged event waited to become
// searchable; max-append-ms the longest Append; drain-ms how long indexing
// took to catch up after the last Append returned.
func BenchmarkAppendAndIndex(b *testing.B) {
	s := openBench(b)
	subs := submissions(b, b.N)
	ctx := context.Background()
	now := time.Now()
	total := int64(b.N * benchBatch)

	var appended, indexed atomic.Int64
	var maxLag int64
	// acked[i] is when batch i was acknowledged; the indexer goroutine
	// measures, after each pass, how long the batches it completed waited.
	acked := make([]atomic.Int64, b.N)
	var maxWait time.Duration
	wake := make(chan struct{}, 1)
	finished := make(chan struct{}) // closed after the last Append
	result := make(chan error, 1)
	b.ResetTimer()
	go func() {
		waited := 0 // batches whose wait is measured
		for {
			n, err := s.IndexPending(ctx, indexBatch)
			if err != nil {
				result <- err
				return
			}
			done := indexed.Add(int64(n))
			if n > 0 {
				now := time.Now()
				for ; waited < int(done/benchBatch); waited++ {
					// 0: searchable before Append had even returned.
					if t := acked[waited].Load(); t != 0 {
						maxWait = max(maxWait, now.Sub(time.Unix(0, t)))
					}
				}
				continue
			}
			if indexed.Load() == total {
				result <- nil
				return
			}
			select {
			case <-wake:
			case <-finished:
			}
		}
	}()
	var maxAppend time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := s.Append(ctx, subs[i], now)
		if err != nil || res[0].Err != nil {
			b.Fatalf("Append: %v %v", err, res)
		}
		maxAppend = max(maxAppend, time.Since(start))
		acked[i].Store(time.Now().UnixNano())
		lag := appended.Add(benchBatch) - indexed.Load()
		maxLag = max(maxLag, lag)
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	appendDone := time.Now()
	close(finished)
	if err := <-result; err != nil {
		b.Fatalf("IndexPending: %v", err)
	}
	b.StopTimer()
	drain := time.Since(appendDone)
	reportRate(b, int(total))
	b.ReportMetric(float64(maxLag), "max-lag-events")
	b.ReportMetric(float64(maxWait.Milliseconds()), "max-unsearchable-ms")
	b.ReportMetric(float64(maxAppend.Milliseconds()), "max-append-ms")
	b.ReportMetric(float64(drain.Milliseconds()), "drain-ms")
}

// BenchmarkIndexPending is indexing alone: b.N×1,000 appended events (not
// timed), then IndexPending in batches of indexBatch until it reports 0,
// with the events read back from the table as after a restart (table) or
// taken as just committed (memory; every event held, whatever the budget).
func BenchmarkIndexPending(b *testing.B) {
	for _, from := range []string{"table", "memory"} {
		b.Run("from="+from, func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			now := time.Now()
			if from == "memory" {
				s.unindexed.budget = math.MaxInt
			}
			for _, sub := range submissions(b, b.N) {
				if _, err := s.Append(ctx, sub, now); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			if from == "table" {
				s.unindexed = unindexedEvents{}
			}
			b.ResetTimer()
			n := 0
			for {
				k, err := s.IndexPending(ctx, indexBatch)
				if err != nil {
					b.Fatalf("IndexPending: %v", err)
				}
				if k == 0 {
					break
				}
				n += k
			}
			b.StopTimer()
			if n != b.N*benchBatch {
				b.Fatalf("indexed %d events, want %d", n, b.N*benchBatch)
			}
			reportRate(b, n)
		})
	}
}

// BenchmarkHeldEvent is the heap one accepted event costs while it waits
// for the indexer: 20,000 events appended in batches of benchBatch from
// drafts parsed from their JSON as the API parses them and dropped after
// the Append, none indexed. held-B/event is the heap's growth after a GC
// per event (it includes the integrator's few bytes of bookkeeping per
// record, which shares the record); counted-B/event is what the backlog's
// budget counts for it (heldSize).
func BenchmarkHeldEvent(b *testing.B) {
	const n = 20 * benchBatch
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s := openBench(b)
		s.unindexed.budget = math.MaxInt
		rng := rand.New(rand.NewPCG(2026, 11))
		received := time.Now().Truncate(time.Millisecond)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for i := range n / benchBatch {
			var sub store.Submission
			for k := range benchBatch {
				j := i*benchBatch + k
				d, err := event.ParseEvent(storetest.Event(rng, j), received, event.DefaultLimits())
				if err != nil {
					b.Fatalf("generated event %d is invalid: %v", j, err)
				}
				sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: benchOrg(j % benchOrgs), ID: event.NewID(received), ReceivedAt: received, Tail: d.Tail, Draft: d})
			}
			if _, err := s.Append(ctx, []store.Submission{sub}, received); err != nil {
				b.Fatalf("Append: %v", err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if held := s.unindexed.heldAfter(0); held == 0 {
			b.Fatal("no event held")
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "held-B/event")
		b.ReportMetric(float64(s.unindexed.heldBytes())/n, "counted-B/event")
		runtime.KeepAlive(s)
		s.Close()
	}
}

// BenchmarkIndexAutomerge is BenchmarkIndexPending (from memory) with
// FTS5's automerge at 4, 8 (what the search file sets) and 16 segments a
// level: the process's CPU per event over the passes (getrusage), and the
// rows of event_fts_data (segment pages and structure) at the end.
func BenchmarkIndexAutomerge(b *testing.B) {
	for _, merge := range []int{8, 16, 4} {
		b.Run(fmt.Sprintf("automerge=%d", merge), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			if _, err := s.searchWrite.ExecContext(ctx, `INSERT INTO event_fts (event_fts, rank) VALUES ('automerge', ?)`, merge); err != nil {
				b.Fatal(err)
			}
			s.unindexed.budget = math.MaxInt
			for _, sub := range submissions(b, b.N) {
				if _, err := s.Append(ctx, sub, time.Now()); err != nil {
					b.Fatalf("Append: %v", err)
				}
			}
			cpu0, _ := processCost(b)
			b.ResetTimer()
			n := 0
			for {
				k, err := s.IndexPending(ctx, indexBatch)
				if err != nil {
					b.Fatalf("IndexPending: %v", err)
				}
				if k == 0 {
					break
				}
				n += k
			}
			b.StopTimer()
			cpu1, _ := processCost(b)
			var rows int
			if err := s.searchRead.QueryRowContext(ctx, `SELECT count(*) FROM event_fts_data`).Scan(&rows); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "cpu-µs/ev")
			b.ReportMetric(float64(rows), "fts-rows")
		})
	}
}

// BenchmarkSearchTokens counts the full-text tokens of the benchmarks'
// events (storetest.Event, as BenchmarkIndexPending indexes them) by
// field, as unicode61 makes them (textmatch.go). b.N is the number of
// events; every figure is per event.
func BenchmarkSearchTokens(b *testing.B) {
	evs := benchEvents(b, b.N)
	var z tokenizer
	count := func(s string) int {
		z.reset()
		z.add(s)
		return z.n()
	}
	fields := map[string]int{}
	for _, e := range evs {
		d := e.draft
		all := count(string(d.AppendSearchText(nil)))
		actor := count(d.Actor.ID) + count(d.Actor.Type) + count(d.Actor.Name)
		targets := 0
		for _, t := range d.Targets {
			targets += count(t.ID) + count(t.Type) + count(t.Name)
		}
		fields["action"] += count(d.Action)
		fields["actor"] += actor
		fields["targets"] += targets
		fields["location"] += count(d.Location)
		fields["agent"] += count(d.UserAgent)
		fields["metadata"] += all - count(d.Action) - actor - targets - count(d.Location) - count(d.UserAgent)
		fields["text"] += all
	}
	for k, v := range fields {
		b.ReportMetric(float64(v)/float64(b.N), k+"-tok/ev")
	}
}
