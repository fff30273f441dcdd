package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitionedTables are the tables partitioned by month of received_at.
// Their partitions share names and bounds, so retention drops a month of
// both together.
var partitionedTables = []string{"events", "event_targets"}

// partitionLockKey is the pg_advisory_xact_lock key that serialises
// partition changes across replicas ("trail:parts" in ASCII): CREATE TABLE
// IF NOT EXISTS alone is not safe against a concurrent create of the same
// name.
const partitionLockKey int64 = 0x747261696c3a7061

// partitionLockTimeout bounds how long creating a partition waits for the
// table locks it needs. Creating a partition locks its parent exclusively,
// which queues every append behind it: better to give up and try again at
// the next call (the DEFAULT partition takes the rows meanwhile) than to
// stall ingest behind a long query.
const partitionLockTimeout = 5 * time.Second

// monthsAhead is how many months of partitions EnsurePartitions keeps
// ready after the current one.
const monthsAhead = 2

// EnsurePartitions creates the monthly partitions of the current month of
// now (UTC) and of the next two, for every partitioned table, where they do
// not exist yet. It is idempotent and safe to call from several replicas
// at once; Open calls it, and a long-running server should call it
// periodically (daily is plenty) so that a partition always exists before
// its month begins.
//
// Rows that landed in a DEFAULT partition for a month that then gets its
// own partition (received while it did not exist, or with a clock far
// off) are moved into it in the same transaction.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	now = now.UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := range monthsAhead + 1 {
		from := start.AddDate(0, i, 0)
		for _, table := range partitionedTables {
			if err := s.ensurePartition(ctx, table, from, from.AddDate(0, 1, 0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// partitionName is the name of table's partition for the month starting at
// from: events_y2026m11.
func partitionName(table string, from time.Time) string {
	return fmt.Sprintf("%s_y%04dm%02d", table, from.Year(), int(from.Month()))
}

func (s *Store) ensurePartition(ctx context.Context, table string, from, to time.Time) error {
	name := partitionName(table, from)
	exists := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (bool, error) {
		var ok bool
		// A plain query of pg_class, not to_regclass: the latter reads the
		// catalog cache, which an advisory lock does not refresh, and
		// would miss a partition another replica just committed.
		err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace)`, name).Scan(&ok)
		return ok, err
	}
	if ok, err := exists(s.pool); err != nil {
		return fmt.Errorf("couldn't look for partition %s: %w", name, classify(err))
	} else if ok {
		return nil
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("couldn't begin creating partition %s: %w", name, classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, partitionLockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("couldn't create partition %s: %w", name, classify(err))
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockKey); err != nil {
		return fmt.Errorf("couldn't take the partition lock: %w", classify(err))
	}
	if ok, err := exists(tx); err != nil {
		return fmt.Errorf("couldn't look for partition %s: %w", name, classify(err))
	} else if ok {
		return nil // another replica created it meanwhile
	}
	// Bounds are written as literals: DDL takes no parameters.
	bounds := fmt.Sprintf(`FOR VALUES FROM ('%s') TO ('%s')`, from.Format(time.RFC3339), to.Format(time.RFC3339))
	ident := pgx.Identifier{name}.Sanitize()
	parent := pgx.Identifier{table}.Sanitize()
	deflt := pgx.Identifier{table + "_default"}.Sanitize()
	var stray bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+deflt+` WHERE received_at >= $1 AND received_at < $2)`, from, to).Scan(&stray); err != nil {
		return fmt.Errorf("couldn't check the default partition of %s: %w", table, classify(err))
	}
	var stmts []string
	if !stray {
		stmts = []string{`CREATE TABLE IF NOT EXISTS ` + ident + ` PARTITION OF ` + parent + ` ` + bounds}
	} else {
		// PostgreSQL refuses a partition whose rows are in the default
		// one: move them into a plain table first, then attach it.
		stmts = []string{
			`CREATE TABLE ` + ident + ` (LIKE ` + parent + ` INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)`,
			`WITH moved AS (DELETE FROM ` + deflt + ` WHERE received_at >= '` + from.Format(time.RFC3339) + `' AND received_at < '` + to.Format(time.RFC3339) + `' RETURNING *)
				INSERT INTO ` + ident + ` SELECT * FROM moved`,
			`ALTER TABLE ` + parent + ` ATTACH PARTITION ` + ident + ` ` + bounds,
		}
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("couldn't create partition %s: %w", name, classify(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("couldn't commit partition %s: %w", name, classify(err))
	}
	if stray {
		s.logger.Info("moved rows from the default partition into a new monthly one", "partition", name)
	}
	return nil
}
