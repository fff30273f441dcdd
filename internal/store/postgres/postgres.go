package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"

	"github.com/trailaudit/trail/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the pg_advisory_lock key held while migrating: one
// fixed number for every Trail replica ("trail:migrate" in ASCII).
const migrationLockKey int64 = 0x747261696c3a6d67

// Store is the PostgreSQL implementation of store.Store, ledger.Storage and
// ledger.BatchStorage.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	// known caches what never changes once committed, to save a query in
	// the append transaction: organizations that exist (they are never
	// deleted) and (organization, action) pairs already listed in
	// organization_actions.
	known sync.Map // string (organization id) or actionKey → struct{}

	ping struct { // Ping's own connection
		mu   sync.Mutex
		conn *pgx.Conn
	}

	cleaner struct { // the GIN pending-list cleaner (ginclean.go)
		once sync.Once
		stop context.CancelFunc
		done chan struct{}
	}
}

type actionKey struct{ org, action string }

// Both backends implement the whole contract.
var _ store.Backend = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgx takes it), migrates it to the current schema and creates
// the event partitions of this month and the next two. It is for tests and
// tools that own their database; trail's commands open with OpenCurrent and
// migrate only when told to (Migrate).
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	pool, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	release, err := LockMigrations(ctx, pool, logger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	_, err = ApplyMigrations(ctx, pool)
	release()
	if err != nil {
		pool.Close()
		return nil, err
	}
	return newStore(ctx, pool, logger)
}

// OpenCurrent connects to the database at dsn as Open does, but changes no
// schema: a database with pending migrations (or none applied) is refused
// with store.ErrSchemaBehind, one migrated by a newer Trail with
// store.ErrSchemaTooNew, both naming the versions.
func OpenCurrent(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	pool, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	st, err := ReadSchemaStatus(ctx, pool)
	if err == nil {
		err = st.Check()
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return newStore(ctx, pool, logger)
}

// Connect opens the connection pool every Trail process uses, with the
// session settings the store relies on.
func Connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the database URL: %w", err)
	}
	// Plan every statement with its parameters: search predicates differ
	// by orders of magnitude in selectivity (a rare word or a common one),
	// and with monthly partitions a plan made for the actual values prunes
	// partitions at plan time.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	// An acknowledged event must survive a crash of the database server:
	// a commit returns only once its WAL is flushed, whatever the server's
	// default (synchronous_commit = off would lose the last commits).
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "trail"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to the database: %w", classify(err))
	}
	return pool, nil
}

func newStore(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{pool: pool, logger: logger}
	if err := s.EnsurePartitions(ctx, time.Now()); err != nil {
		// The DEFAULT partition takes every row meanwhile: a replica
		// that could not take the locks now (a long query holding them)
		// still starts, and the next call creates the partitions.
		if !errors.Is(err, store.ErrUnavailable) {
			pool.Close()
			return nil, err
		}
		logger.Warn("couldn't create event partitions ahead; events go to the default partition until they exist", "err", err)
	}
	return s, nil
}

// Pool is the connection pool, for work that coordinates replicas through
// the database (leases).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.stopGINCleaner()
	s.ping.mu.Lock()
	if s.ping.conn != nil {
		s.ping.conn.Close(context.Background())
		s.ping.conn = nil
	}
	s.ping.mu.Unlock()
	s.pool.Close()
	return nil
}

// Migrator returns the goose provider for this schema. It takes no lock
// itself: callers that may run beside another migrating process hold the
// migration lock (LockMigrations), as Open does.
func Migrator(db *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrationSource(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("couldn't load migrations: %w", err)
	}
	return p, nil
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Retries of a transaction the database aborted to resolve a conflict.
const (
	maxAttempts = 5
	retryBase   = 5 * time.Millisecond
)

// retry runs fn until it succeeds, fails for a reason other than a
// serialization failure or deadlock, or has been tried maxAttempts times;
// then such a failure is ErrUnavailable. fn must be a whole transaction:
// an aborted one stored nothing, so it can simply run again.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range maxAttempts {
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		d := retryBase << attempt
		d += rand.N(d)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
	}
	return fmt.Errorf("%w: still conflicting after %d attempts: %w", store.ErrUnavailable, maxAttempts, err)
}

// retryable reports whether err aborted a transaction only to resolve a
// conflict with another one.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// classify maps driver errors to the store's sentinels: unique violations
// are ErrConflict; a database that cannot be reached, is out of disk or
// connections, is shutting down or read-only (a failover in progress) is
// ErrUnavailable. Errors of the caller's context are left as they are.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case pe.Code == "23503": // foreign_key_violation: as SQLite reports it
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"), // insufficient resources: disk full, out of memory, too many connections
			pe.Code == "57P01",               // admin_shutdown
			pe.Code == "57P02",               // crash_shutdown
			pe.Code == "57P03",               // cannot_connect_now (starting up, recovering)
			pe.Code == "55P03",               // lock_not_available (lock_timeout)
			pe.Code == "25006",               // read_only_sql_transaction (a standby, mid-failover)
			pe.Code == "40001",               // serialization_failure, after retries
			pe.Code == "40P01":               // deadlock_detected, after retries
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	// SafeToRetry: the driver failed before sending anything, e.g. on a
	// connection the server had already closed ("conn closed").
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// Ping checks that the database answers a query, on a connection of its
// own: a pool busy with ingest (every connection in use) is not an
// unreachable database, and readiness must not say so.
func (s *Store) Ping(ctx context.Context) error {
	s.ping.mu.Lock()
	defer s.ping.mu.Unlock()
	if s.ping.conn == nil || s.ping.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return classify(err)
		}
		s.ping.conn = conn
	}
	if _, err := s.ping.conn.Exec(ctx, `SELECT 1`); err != nil {
		s.ping.conn.Close(context.WithoutCancel(ctx))
		s.ping.conn = nil
		return classify(err)
	}
	return nil
}
