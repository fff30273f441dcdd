package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/trailaudit/trail/internal/store"
)

// lockPoll is how often a process waiting for an advisory lock tries it
// again, and lockLogEvery how often it says so in the log.
const (
	lockPoll     = 250 * time.Millisecond
	lockLogEvery = 10 * time.Second
)

// LockMigrations takes the migration lock, which every process that
// migrates this schema holds while it does, and returns the function that
// releases it. While another process holds it, it logs who, every few
// seconds, and keeps waiting until ctx ends.
func LockMigrations(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (release func(), err error) {
	return AdvisoryLock(ctx, pool, migrationLockKey, "migration lock", logger)
}

// AdvisoryLock takes the session advisory lock key on a connection of its
// own (named after this process, so that others waiting can say who holds
// it) and returns the function that releases it by closing the connection.
// If this process dies, the server releases the lock with the session.
// While the lock is held elsewhere it logs "waiting for the <what> held by
// …" at once and every lockLogEvery, and keeps trying until ctx ends.
func AdvisoryLock(ctx context.Context, pool *pgxpool.Pool, key int64, what string, logger *slog.Logger) (release func(), err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := pool.Config().ConnConfig.Copy()
	host, _ := os.Hostname()
	cfg.RuntimeParams["application_name"] = "trail migrate " + host + ":" + strconv.Itoa(os.Getpid())
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to take the %s: %w", what, classify(err))
	}
	release = func() { conn.Close(context.Background()) }
	start := time.Now()
	var logged time.Time
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			release()
			return nil, fmt.Errorf("couldn't take the %s: %w", what, classify(err))
		}
		if ok {
			if !logged.IsZero() {
				logger.Info("took the "+what, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return release, nil
		}
		if logged.IsZero() || time.Since(logged) >= lockLogEvery {
			logger.Warn("waiting for the "+what+" held by "+lockHolder(ctx, conn, key), "waiting", time.Since(start).Round(time.Second).String())
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("gave up waiting for the %s: %w", what, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// lockHolder describes the session holding the advisory lock key: its
// application name (for Trail, the host and process id), client address
// and process id on the server.
func lockHolder(ctx context.Context, conn *pgx.Conn, key int64) string {
	var app, addr string
	var pid int
	var since time.Time
	// A bigint advisory lock is listed with its high half as classid, its
	// low half as objid and objsubid 1.
	err := conn.QueryRow(ctx, `SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.classid = (($1::bigint >> 32) & 4294967295)::bigint::oid
		  AND l.objid = ($1::bigint & 4294967295)::bigint::oid
		LIMIT 1`, key).Scan(&pid, &app, &addr, &since)
	if err != nil {
		return "another session"
	}
	if app == "" {
		app = "a session"
	}
	return fmt.Sprintf("%q (server pid %d, from %s, connected %s)", app, pid, addr, since.UTC().Format(time.RFC3339))
}

// ReadSchemaStatus reads which migrations the database has, changing
// nothing (no lock is taken: a status read while another process migrates
// may show some of its migrations applied).
func ReadSchemaStatus(ctx context.Context, pool *pgxpool.Pool) (store.SchemaStatus, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := Migrator(db)
	if err != nil {
		return store.SchemaStatus{}, err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return store.SchemaStatus{}, fmt.Errorf("couldn't read the database schema version: %w", classify(err))
	}
	var applied []int64
	if exists {
		rows, err := pool.Query(ctx, `SELECT version_id FROM goose_db_version WHERE is_applied AND version_id > 0`)
		if err != nil {
			return store.SchemaStatus{}, fmt.Errorf("couldn't read the database schema version: %w", classify(err))
		}
		if applied, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return store.SchemaStatus{}, fmt.Errorf("couldn't read the database schema version: %w", classify(err))
		}
	}
	return store.NewSchemaStatus("Trail", applied, p), nil
}

// ApplyMigrations applies the pending migrations and returns them; the
// caller holds the migration lock (LockMigrations). A schema newer than
// this binary is refused (store.ErrSchemaTooNew) and left alone.
func ApplyMigrations(ctx context.Context, pool *pgxpool.Pool) ([]store.Migration, error) {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return applyGoose(ctx, db)
}

func applyGoose(ctx context.Context, db *sql.DB) ([]store.Migration, error) {
	p, err := Migrator(db)
	if err != nil {
		return nil, err
	}
	if err := store.CheckSchemaVersion(ctx, p); err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	var applied []store.Migration
	for _, r := range results {
		if r.Error == nil && r.Source != nil {
			applied = append(applied, store.Migration{Version: r.Source.Version, Name: path.Base(r.Source.Path)})
		}
	}
	if err != nil {
		return applied, fmt.Errorf("couldn't migrate the database: %w", classify(err))
	}
	return applied, nil
}
