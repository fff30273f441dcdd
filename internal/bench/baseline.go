package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	_ "modernc.org/sqlite" // the driver Trail's embedded store uses

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/loadgen"
)

// The baselines answer "compared with what?": the same event rows stored
// by the database alone, without Trail. Each runs in process, with no HTTP
// in front, so they are what an application would pay writing to its own
// database from its request handler (naive) or what the database can take
// at best (bare).
const (
	// BaselineSQLiteNaive: one INSERT per event, each its own
	// transaction, from concurrent connections (WAL, synchronous=FULL):
	// what most applications do.
	BaselineSQLiteNaive = "sqlite-naive"
	// BaselineSQLiteBare: one connection inserting 1,000 rows a
	// transaction into a table under its primary key only: the ceiling.
	BaselineSQLiteBare = "sqlite-bare"
	// BaselinePostgresNaive: one INSERT per event, autocommit, from a pool
	// of concurrent connections.
	BaselinePostgresNaive = "postgres-naive"
	// BaselinePostgresCopy: COPY of 1,000 rows a transaction from one
	// connection into a table under its primary key only: the ceiling.
	BaselinePostgresCopy = "postgres-copy"
)

// baselineBatch is the rows a transaction of the bare baselines.
const baselineBatch = 1000

// BaselineOptions configure a baseline run.
type BaselineOptions struct {
	Kind        string
	Concurrency int           // connections inserting at once (naive kinds)
	Duration    time.Duration // how long to insert
	Orgs        int           // organizations the rows are spread over
	EventSize   int           // as IngestOptions.EventSize
	// Dir holds the SQLite file (SQLite kinds); Database is the
	// postgres:// URL of an empty database (PostgreSQL kinds).
	Dir      string
	Database string
	Live     *loadgen.Counters
}

// baselineRows makes the rows the baselines insert: the canonical records
// Trail would store for the events `trail bench ingest` sends.
type baselineRows struct {
	gen   *Events
	limit event.Limits
	seqs  []atomic.Int64 // next seq per organization
	start time.Time
}

func newBaselineRows(runID string, orgs, size int) *baselineRows {
	names := make([]string, orgs)
	for i := range names {
		names[i] = fmt.Sprintf("org_%s_%d", runID, i)
	}
	return &baselineRows{gen: NewEvents(runID, names, size), limit: event.DefaultLimits(),
		seqs: make([]atomic.Int64, orgs), start: time.Now()}
}

// row returns event i's organization, id, seq and canonical record.
func (r *baselineRows) row(i int64, buf []byte) (org, id string, seq int64, received time.Time, record []byte, err error) {
	received = time.Now().UTC()
	org, d, err := event.ParseCreate(r.gen.Single(i), received, r.limit)
	if err != nil {
		return "", "", 0, received, nil, fmt.Errorf("bench event %d does not parse: %w", i, err)
	}
	orgIdx := int(i % int64(len(r.seqs)))
	seq = r.seqs[orgIdx].Add(1) - 1
	id = "evt_" + ulid.Make().String()
	a := event.Accepted{ID: id, OrganizationID: org, Seq: seq, ReceivedAt: received}
	return org, id, seq, received, event.AppendRecord(buf[:0], a, d.Tail), nil
}

// Baseline runs one baseline and reports it like an ingest run: events are
// rows, a request is one insert (naive) or one transaction of 1,000 rows
// (bare).
func Baseline(ctx context.Context, opts BaselineOptions) (Report, error) {
	rep := Report{Mode: "baseline", RunID: NewRunID(), Target: opts.Kind, Loop: "closed",
		Concurrency: opts.Concurrency, Orgs: opts.Orgs}
	rows := newBaselineRows(rep.RunID, max(opts.Orgs, 1), opts.EventSize)
	rep.EventBytes = len(rows.gen.Event(nil, 0))
	var (
		res loadgen.Result
		per = 1
		err error
	)
	switch opts.Kind {
	case BaselineSQLiteNaive:
		res, err = sqliteNaive(ctx, opts, rows)
	case BaselineSQLiteBare:
		per, rep.Batch, rep.Concurrency = baselineBatch, baselineBatch, 1
		res, err = sqliteBare(ctx, opts, rows)
	case BaselinePostgresNaive:
		res, err = postgresNaive(ctx, opts, rows)
	case BaselinePostgresCopy:
		per, rep.Batch, rep.Concurrency = baselineBatch, baselineBatch, 1
		res, err = postgresCopy(ctx, opts, rows)
	default:
		return rep, fmt.Errorf("unknown baseline %q", opts.Kind)
	}
	if err != nil {
		return rep, err
	}
	rep.fill(res, per)
	return rep, nil
}

// closedLoop runs op from n workers for d, timing each call.
func closedLoop(ctx context.Context, n int, d time.Duration, live *loadgen.Counters, op func(ctx context.Context, i int64) error) loadgen.Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		next   atomic.Int64
		mu     sync.Mutex
		res    = loadgen.Result{ByStatus: map[int]int64{}, Samples: loadgen.NewSamples(loadgen.DefaultMaxSamples)}
		wg     sync.WaitGroup
		start  = time.Now()
		errs   atomic.Int64
		first  atomic.Value
		counts atomic.Int64
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := loadgen.NewSamples(loadgen.DefaultMaxSamples / max(n, 1))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				t0 := time.Now()
				err := op(ctx, i)
				if ctx.Err() != nil && err != nil {
					break // cut off by the end of the run, not a failure
				}
				counts.Add(1)
				if live != nil {
					live.Sent.Add(1)
					live.Answered.Add(1)
				}
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err.Error())
					if live != nil {
						live.Failed.Add(1)
					}
					continue
				}
				local.Add(time.Since(t0))
			}
			mu.Lock()
			res.Samples.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests, res.Errors = counts.Load(), errs.Load()
	if f, ok := first.Load().(string); ok {
		res.FirstErr = f
	}
	if res.Errors > 0 {
		res.ByStatus[0] = res.Errors
	}
	return res
}

func sqliteDSN(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(60000)"} {
		q.Add("_pragma", p)
	}
	return "file:" + path + "?" + q.Encode()
}

func sqliteNaive(ctx context.Context, opts BaselineOptions, rows *baselineRows) (loadgen.Result, error) {
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(opts.Dir, "naive.db")))
	if err != nil {
		return loadgen.Result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(opts.Concurrency)
	db.SetMaxIdleConns(opts.Concurrency)
	if _, err := db.ExecContext(ctx, `CREATE TABLE audit_events (
		pk INTEGER PRIMARY KEY, organization_id TEXT NOT NULL, id TEXT NOT NULL,
		received_at TEXT NOT NULL, record BLOB NOT NULL)`); err != nil {
		return loadgen.Result{}, fmt.Errorf("creating the naive SQLite table: %w", err)
	}
	return closedLoop(ctx, opts.Concurrency, opts.Duration, opts.Live, func(ctx context.Context, i int64) error {
		org, id, _, received, rec, err := rows.row(i, nil)
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, `INSERT INTO audit_events (organization_id, id, received_at, record) VALUES (?, ?, ?, ?)`,
			org, id, received.Format(time.RFC3339Nano), rec)
		return err
	}), nil
}

func sqliteBare(ctx context.Context, opts BaselineOptions, rows *baselineRows) (loadgen.Result, error) {
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(opts.Dir, "bare.db")))
	if err != nil {
		return loadgen.Result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE bare (organization_id TEXT, seq INTEGER, id TEXT, record BLOB,
		PRIMARY KEY (organization_id, seq)) WITHOUT ROWID`); err != nil {
		return loadgen.Result{}, fmt.Errorf("creating the bare SQLite table: %w", err)
	}
	var buf []byte
	return closedLoop(ctx, 1, opts.Duration, opts.Live, func(ctx context.Context, i int64) error {
		tx, err := db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ins, err := tx.Prepare(`INSERT INTO bare (organization_id, seq, id, record) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for k := range int64(baselineBatch) {
			var org, id string
			var seq int64
			if org, id, seq, _, buf, err = rows.row(i*baselineBatch+k, buf); err != nil {
				return err
			}
			if _, err := ins.Exec(org, seq, id, buf); err != nil {
				return err
			}
		}
		return tx.Commit()
	}), nil
}

func postgresNaive(ctx context.Context, opts BaselineOptions, rows *baselineRows) (loadgen.Result, error) {
	cfg, err := pgxpool.ParseConfig(opts.Database)
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("database URL: %w", err)
	}
	cfg.MaxConns = int32(opts.Concurrency)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE audit_events (
		pk bigserial PRIMARY KEY, organization_id text NOT NULL, id text NOT NULL,
		received_at timestamptz NOT NULL, record bytea NOT NULL)`); err != nil {
		return loadgen.Result{}, fmt.Errorf("creating the naive PostgreSQL table: %w", err)
	}
	return closedLoop(ctx, opts.Concurrency, opts.Duration, opts.Live, func(ctx context.Context, i int64) error {
		org, id, _, received, rec, err := rows.row(i, nil)
		if err != nil {
			return err
		}
		_, err = pool.Exec(ctx, `INSERT INTO audit_events (organization_id, id, received_at, record) VALUES ($1, $2, $3, $4)`,
			org, id, received, rec)
		return err
	}), nil
}

func postgresCopy(ctx context.Context, opts BaselineOptions, rows *baselineRows) (loadgen.Result, error) {
	conn, err := pgx.Connect(ctx, opts.Database)
	if err != nil {
		return loadgen.Result{}, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE bare (organization_id text, seq bigint, id text, received_at timestamptz, record bytea,
		PRIMARY KEY (organization_id, seq))`); err != nil {
		return loadgen.Result{}, fmt.Errorf("creating the bare PostgreSQL table: %w", err)
	}
	return closedLoop(ctx, 1, opts.Duration, opts.Live, func(ctx context.Context, i int64) error {
		batch := make([][]any, baselineBatch)
		for k := range batch {
			org, id, seq, received, rec, err := rows.row(i*baselineBatch+int64(k), nil)
			if err != nil {
				return err
			}
			batch[k] = []any{org, seq, id, received, rec}
		}
		// COPY is one statement: its own transaction, durable at return.
		n, err := conn.CopyFrom(context.WithoutCancel(ctx), pgx.Identifier{"bare"},
			[]string{"organization_id", "seq", "id", "received_at", "record"}, pgx.CopyFromRows(batch))
		if err == nil && n != baselineBatch {
			err = errors.New("COPY stored fewer rows than sent")
		}
		return err
	}), nil
}
