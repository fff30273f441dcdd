package export

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/trailaudit/trail/internal/lograte"
	"github.com/trailaudit/trail/internal/store"
)

// Exports run as River jobs (github.com/riverqueue/river): one job library
// with a SQLite and a PostgreSQL driver, jobs inserted in the transaction
// that stores the export, retries with backoff, each job worked by one
// process at a time (PostgreSQL: FOR UPDATE SKIP LOCKED), and its tables
// migrated by rivermigrate.

// jobArgs is an export job: produce the file of one export.
type jobArgs struct {
	ExportID string `json:"export_id"`
}

// jobKind is the River kind of export jobs.
const jobKind = "trail_export"

func (jobArgs) Kind() string { return jobKind }

// maxAttempts is how many times an export job runs before its export is
// marked error.
const maxAttempts = 5

type worker struct {
	river.WorkerDefaults[jobArgs]
	s *Service
}

func (w *worker) Timeout(*river.Job[jobArgs]) time.Duration { return w.s.cfg.JobTimeout }

func (w *worker) Work(ctx context.Context, job *river.Job[jobArgs]) error {
	err := w.s.Run(ctx, job.Args.ExportID)
	if err != nil && job.Attempt >= job.MaxAttempts {
		w.s.log.Error("export failed for good", "export_id", job.Args.ExportID, "attempts", job.Attempt, "err", err)
		e, gerr := w.s.cfg.Exports.Export(context.WithoutCancel(ctx), job.Args.ExportID)
		if gerr == nil {
			e.State, e.Error = "error", "the export failed "+fmt.Sprint(job.Attempt)+" times; the operator's log has the reasons"
			if _, ferr := w.s.cfg.Exports.FinishExport(context.WithoutCancel(ctx), e, w.s.cfg.Now()); ferr != nil {
				return errors.Join(err, ferr)
			}
		}
	}
	return err
}

// warnOnly passes on River's warnings and errors; its informational
// lines (client started, periodic job counts) are noise in Trail's log.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return warnOnly{w.Handler.WithAttrs(attrs)}
}

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.Handler.WithGroup(name)} }

// riverConfig is River's configuration. pollOnly leaves out River's
// notifier: its SQLite listener reads the notification table 20 times a
// second whether or not anything happens, while the exports file has no
// other process to hear from, and the queue is polled every
// FetchPollInterval anyway (docs/PERFORMANCE.md, "The request path's
// fixed costs").
func riverConfig(s *Service, pollOnly bool) *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker{s: s})
	return &river.Config{
		Queues: map[string]river.QueueConfig{
			// Two exports at a time per process: each reads the log as
			// fast as a core allows.
			river.QueueDefault: {MaxWorkers: 2},
		},
		Workers: workers,
		// Neither SQLite nor a pooled PostgreSQL connection wakes the
		// queue on insert here: it polls. An empty poll writes nothing.
		FetchPollInterval:    200 * time.Millisecond,
		PollOnly:             pollOnly,
		JobTimeout:           s.cfg.JobTimeout,
		RescueStuckJobsAfter: s.cfg.JobTimeout + time.Minute,
		// River logs each failed poll of its queue; in a database outage
		// that is several lines a second per process. One a minute per
		// message, with the count of those dropped, says as much.
		Logger:      slog.New(lograte.New(warnOnly{s.log.With("component", "river").Handler()}, time.Minute, nil)),
		MaxAttempts: maxAttempts,
	}
}

// riverQueue is River with either driver.
type riverQueue[TTx any] struct {
	client *river.Client[TTx]
	asTx   func(tx any) (TTx, bool)
	// rescueFn makes jobs whose worker is gone runnable again.
	rescueFn func(ctx context.Context, now time.Time) error
}

func (q *riverQueue[TTx]) enqueue(ctx context.Context, tx any, id string) error {
	t, ok := q.asTx(tx)
	if !ok {
		return fmt.Errorf("export: the store passed a %T, not the transaction River needs", tx)
	}
	if _, err := q.client.InsertTx(ctx, t, jobArgs{ExportID: id}, nil); err != nil {
		return fmt.Errorf("couldn't queue export job %s: %w", id, err)
	}
	return nil
}

func (q *riverQueue[TTx]) start(ctx context.Context) error {
	return q.client.Start(context.WithoutCancel(ctx))
}

func (q *riverQueue[TTx]) stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if ctx.Err() != nil {
		// Past the deadline: cancel the running jobs (River retries
		// them after the restart).
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return q.client.StopAndCancel(sctx)
	}
	return err
}

func (q *riverQueue[TTx]) rescue(ctx context.Context, now time.Time) error {
	return q.rescueFn(ctx, now)
}

func migrateRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) ([]store.Migration, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	if _, err := riverStatus(ctx, driver); errors.Is(err, store.ErrSchemaTooNew) {
		return nil, err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't migrate River's job tables: %w", err)
	}
	var applied []store.Migration
	for _, v := range res.Versions {
		applied = append(applied, store.Migration{Version: int64(v.Version), Name: "river " + v.Name})
	}
	return applied, nil
}

// riverStatus reads which of River's migrations the database has.
func riverStatus[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) (store.SchemaStatus, error) {
	st := store.SchemaStatus{What: "River"}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return st, err
	}
	all := m.AllVersions()
	if len(all) > 0 {
		st.Latest = int64(all[len(all)-1].Version)
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		// A version this River does not know: migrated by a newer one.
		return st, fmt.Errorf("%w: River's job tables carry a migration this binary does not know (%v); run a trail release at least as new as the one that migrated them", store.ErrSchemaTooNew, err)
	}
	done := map[int]bool{}
	for _, v := range existing {
		done[v.Version] = true
		st.Current = max(st.Current, int64(v.Version))
	}
	for _, v := range all {
		if !done[v.Version] {
			st.Pending = append(st.Pending, store.Migration{Version: int64(v.Version), Name: "river " + v.Name})
		}
	}
	return st, nil
}

// prepareRiver migrates River's tables, or with cfg.RiverSchemaChecked
// checks that they need nothing.
func prepareRiver[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], cfg Config, migrate func() error) error {
	if !cfg.RiverSchemaChecked {
		return migrate()
	}
	st, err := riverStatus(ctx, driver)
	if err != nil {
		return err
	}
	return st.Check()
}

// RiverStatusPostgres reads where River's tables in pool's database stand.
func RiverStatusPostgres(ctx context.Context, pool *pgxpool.Pool) (store.SchemaStatus, error) {
	return riverStatus(ctx, riverpgxv5.New(pool))
}

// MigrateRiverPostgres applies River's pending migrations in pool's
// database; the caller holds RiverMigrationLock (and may hold Trail's own).
func MigrateRiverPostgres(ctx context.Context, pool *pgxpool.Pool) ([]store.Migration, error) {
	return migrateRiver(ctx, riverpgxv5.New(pool))
}

// RiverStatusSQLite reads where River's tables in the exports file stand.
func RiverStatusSQLite(ctx context.Context, db *sql.DB) (store.SchemaStatus, error) {
	return riverStatus(ctx, riversqlite.New(db))
}

// MigrateRiverSQLite applies River's pending migrations in the exports
// file.
func MigrateRiverSQLite(ctx context.Context, db *sql.DB) ([]store.Migration, error) {
	return migrateRiver(ctx, riversqlite.New(db))
}

// NewSQLite returns a Service whose jobs are kept by River in db, the
// exports file (sqlite.Exports.DB), which is used by this process alone.
func NewSQLite(ctx context.Context, db *sql.DB, cfg Config) (*Service, error) {
	s, err := newService(cfg)
	if err != nil {
		return nil, err
	}
	driver := riversqlite.New(db)
	if err := prepareRiver(ctx, driver, cfg, func() error { _, err := migrateRiver(ctx, driver); return err }); err != nil {
		return nil, err
	}
	client, err := river.NewClient(driver, riverConfig(s, true))
	if err != nil {
		return nil, fmt.Errorf("couldn't create the River client: %w", err)
	}
	started := false
	s.queue = &riverQueue[*sql.Tx]{client: client,
		asTx: func(tx any) (*sql.Tx, bool) { t, ok := tx.(*sql.Tx); return t, ok },
		// The exports file belongs to this one process: before its
		// queue starts, a job still marked running was interrupted by
		// a crash or a kill, and runs again at once (rather than after
		// River's stuck-job timeout).
		rescueFn: func(ctx context.Context, now time.Time) error {
			if started {
				return nil
			}
			started = true
			res, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running' AND kind = ?`, jobKind)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				s.log.Warn("resuming export jobs interrupted by the last shutdown", "jobs", n)
			}
			return nil
		}}
	return s, nil
}

// RiverMigrationLock is the advisory lock held while River's tables are
// migrated, so that processes started together migrate one after another.
const RiverMigrationLock int64 = 0x747261696c3a7276 // "trail:rv"

// migrateRiverLocked migrates River's tables holding RiverMigrationLock
// (without the waiting log of `trail migrate`: tests use it).
func migrateRiverLocked(ctx context.Context, pool *pgxpool.Pool, driver *riverpgxv5.Driver) error {
	// The lock is held by a session of its own while rivermigrate
	// migrates through the pool; if this process dies, it goes with the
	// session.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("couldn't connect to migrate River's job tables: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, RiverMigrationLock); err != nil {
		return fmt.Errorf("couldn't take the lock to migrate River's job tables: %w", err)
	}
	_, err = migrateRiver(ctx, driver)
	if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, RiverMigrationLock); err == nil && uerr != nil {
		err = fmt.Errorf("couldn't release the lock after migrating River's job tables: %w", uerr)
	}
	return err
}

// NewPostgres returns a Service whose jobs River keeps in the PostgreSQL
// database of pool, shared by every replica: each job is worked by one
// replica at a time.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Service, error) {
	s, err := newService(cfg)
	if err != nil {
		return nil, err
	}
	driver := riverpgxv5.New(pool)
	if err := prepareRiver(ctx, driver, cfg, func() error { return migrateRiverLocked(ctx, pool, driver) }); err != nil {
		return nil, err
	}
	client, err := river.NewClient(driver, riverConfig(s, false))
	if err != nil {
		return nil, fmt.Errorf("couldn't create the River client: %w", err)
	}
	s.queue = &riverQueue[pgx.Tx]{client: client,
		asTx: func(tx any) (pgx.Tx, bool) { t, ok := tx.(pgx.Tx); return t, ok },
		// A running job records its progress every second; one whose
		// export has not moved for two minutes lost its replica (killed,
		// or cut off from the database): it runs again, on whichever
		// replica takes it, long before River's stuck-job rescue.
		rescueFn: func(ctx context.Context, now time.Time) error {
			tag, err := pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = $1
				WHERE state = 'running' AND kind = $2 AND args->>'export_id' IN (
					SELECT id FROM exports WHERE state = 'pending' AND updated_at < $3)`,
				now, jobKind, now.Add(-2*time.Minute))
			if err != nil {
				return err
			}
			if n := tag.RowsAffected(); n > 0 {
				s.log.Warn("resuming export jobs whose replica stopped working on them", "jobs", n)
			}
			return nil
		}}
	return s, nil
}
