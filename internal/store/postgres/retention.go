package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Retention returns org's own retention period, if it has one.
func (s *Store) Retention(ctx context.Context, org string) (int, bool, error) {
	var days *int32
	err := s.pool.QueryRow(ctx,
		`SELECT r.days FROM organizations o LEFT JOIN retention_settings r ON r.organization_id = o.id WHERE o.id = $1`, org).Scan(&days)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the retention of %s: %w", org, classify(err))
	}
	if days == nil {
		return 0, false, nil
	}
	return int(*days), true, nil
}

// SetRetention sets org's retention period.
func (s *Store) SetRetention(ctx context.Context, org string, days int, at time.Time) error {
	if days <= 0 {
		return fmt.Errorf("retention of %s: %d days: the period must be at least one day", org, days)
	}
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO retention_settings (organization_id, days, updated_at) SELECT id, $2, $3 FROM organizations WHERE id = $1
		ON CONFLICT (organization_id) DO UPDATE SET days = EXCLUDED.days, updated_at = EXCLUDED.updated_at`,
		org, days, at)
	if err != nil {
		return fmt.Errorf("couldn't set the retention of %s: %w", org, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}

// RetentionSettings returns every organization's own retention period.
func (s *Store) RetentionSettings(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT organization_id, days FROM retention_settings`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read retention settings: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var org string
		var days int32
		if err := rows.Scan(&org, &days); err != nil {
			return nil, fmt.Errorf("couldn't read a retention setting: %w", classify(err))
		}
		out[org] = int(days)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read retention settings: %w", classify(err))
	}
	return out, nil
}

// PruneRecords deletes the due records at the start of org's log, with their
// target rows (the search columns and the text vector are in the events rows
// themselves), in one transaction.
func (s *Store) PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var integrated int64
	// A held archive (store.ArchiveStore) bounds what may go, as the
	// integrated size does.
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN a.held THEN least(o.integrated_size, a.archived_to) ELSE o.integrated_size END
		FROM organizations o LEFT JOIN archive_state a ON a.organization_id = o.id WHERE o.id = $1`, org).Scan(&integrated)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read the log state of %s: %w", org, classify(err))
	}
	// Most calls find nothing due: decide that from the first stored
	// record's key (an index-only probe per partition) before reading
	// records.
	var first time.Time
	err = s.pool.QueryRow(ctx, `SELECT received_at FROM events WHERE organization_id = $1 AND seq < $2 ORDER BY seq LIMIT 1`,
		org, integrated).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read the first record of %s: %w", org, classify(err))
	}
	if !first.Before(cutoff) {
		return 0, nil
	}

	var n int
	err = retry(ctx, func() error {
		var err error
		n, err = s.pruneTx(ctx, org, integrated, cutoff, limit)
		return err
	})
	return n, err
}

func (s *Store) pruneTx(ctx context.Context, org string, integrated int64, cutoff time.Time, limit int) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't begin pruning %s: %w", org, classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit

	rows, err := tx.Query(ctx,
		`SELECT seq, received_at, occurred_at, record FROM events WHERE organization_id = $1 AND seq < $2 ORDER BY seq LIMIT $3`,
		org, integrated, limit)
	if err != nil {
		return 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	var (
		n                  int
		lo, hi             int64
		minRecv, maxRecv   time.Time
		tTypes, tIDs       []string
		tOccurred, tRecv   []time.Time
		tSeqs              []int64
		seq                int64
		received, occurred time.Time
		raw                []byte
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &received, &occurred, &raw); err != nil {
			rows.Close()
			return 0, fmt.Errorf("couldn't read a record of %s: %w", org, classify(err))
		}
		if !received.Before(cutoff) {
			break
		}
		rec, err := event.ParseRecord(raw)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("couldn't parse stored record %s/%d: %w", org, seq, err)
		}
		if n == 0 {
			lo, minRecv, maxRecv = seq, received, received
		}
		hi = seq
		minRecv, maxRecv = minTime(minRecv, received), maxTime(maxRecv, received)
		for _, t := range rec.Targets {
			tTypes, tIDs = append(tTypes, t.Type), append(tIDs, t.ID)
			tOccurred, tSeqs, tRecv = append(tOccurred, occurred), append(tSeqs, seq), append(tRecv, received)
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("couldn't read records of %s: %w", org, classify(err))
	}
	if n == 0 {
		return 0, nil
	}
	// The received_at bounds let the planner prune to the partitions
	// holding these records.
	if len(tSeqs) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM event_targets t
			USING unnest($2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::timestamptz[]) AS d (target_type, target_id, occurred_at, seq, received_at)
			WHERE t.organization_id = $1 AND t.target_type = d.target_type AND t.target_id = d.target_id
			AND t.occurred_at = d.occurred_at AND t.seq = d.seq AND t.received_at = d.received_at
			AND t.received_at >= $7 AND t.received_at <= $8`,
			org, tTypes, tIDs, tOccurred, tSeqs, tRecv, minRecv, maxRecv); err != nil {
			return 0, fmt.Errorf("couldn't delete target rows of %d records of %s: %w", n, org, classify(err))
		}
	}
	// The due records are the first stored ones, contiguous in stored
	// order, so the range holds exactly them.
	if _, err := tx.Exec(ctx, `DELETE FROM events WHERE organization_id = $1 AND seq >= $2 AND seq <= $3
		AND received_at >= $4 AND received_at <= $5`, org, lo, hi, minRecv, maxRecv); err != nil {
		return 0, fmt.Errorf("couldn't delete %d records of %s: %w", n, org, classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("couldn't commit the deletion of %d records of %s: %w", n, org, classify(err))
	}
	return n, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Dropping a partition locks it and then its parent table exclusively; the
// parent's lock queues every append behind it. So the partition is locked
// first, on its own (nobody writes to a past month: waiting there holds up
// no one), for at most partitionWait; then the drop waits for the parent at
// most parentWait, which bounds how long ingest can stall behind it. A
// partition that cannot be locked in time is left for the next sweep.
const (
	partitionWait = 2 * time.Second
	parentWait    = 200 * time.Millisecond
)

// monthlyPartition is one month's partition of events.
type monthlyPartition struct {
	name     string
	from, to time.Time
}

// DropPartitions drops the monthly partitions of events and event_targets
// that end at or before cutoff and hold only integrated records, oldest
// first, and only where dropping cuts no hole in a log: each
// organization's records in the partition must be the first ones it has
// stored (see dropPartitionTx). The DEFAULT partitions are never dropped (their rows go through
// PruneRecords).
func (s *Store) DropPartitions(ctx context.Context, cutoff time.Time) (store.PartitionDrop, error) {
	var out store.PartitionDrop
	parts, err := s.monthlyPartitions(ctx)
	if err != nil {
		return out, err
	}
	for _, p := range parts {
		if p.to.After(cutoff) {
			break
		}
		n, dropped, err := s.dropPartition(ctx, p)
		if err != nil {
			return out, err
		}
		if dropped {
			out.Partitions = append(out.Partitions, p.name)
			out.Records += n
		}
	}
	return out, nil
}

// monthlyPartitions lists the partitions of events that EnsurePartitions
// created, oldest first.
func (s *Store) monthlyPartitions(ctx context.Context) ([]monthlyPartition, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = 'events' AND p.relnamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the event partitions: %w", classify(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("couldn't list the event partitions: %w", classify(err))
	}
	var parts []monthlyPartition
	for _, name := range names {
		var y, m int
		if _, err := fmt.Sscanf(name, "events_y%04dm%02d", &y, &m); err != nil || m < 1 || m > 12 {
			continue // the default partition, or one Trail did not create
		}
		from := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
		if partitionName("events", from) != name {
			continue
		}
		parts = append(parts, monthlyPartition{name: name, from: from, to: from.AddDate(0, 1, 0)})
	}
	slices.SortFunc(parts, func(a, b monthlyPartition) int { return a.from.Compare(b.from) })
	return parts, nil
}

// dropPartition drops one month of events and event_targets, if every
// record in it is integrated. records is how many records it held, counted
// from each organization's seq range in it (contiguous: records are
// received in seq order and retention deletes a prefix of each log), with
// an index probe per organization rather than a scan of the partition.
func (s *Store) dropPartition(ctx context.Context, p monthlyPartition) (records int64, dropped bool, err error) {
	ident := pgx.Identifier{p.name}.Sanitize()
	targets := pgx.Identifier{partitionName("event_targets", p.from)}.Sanitize()
	records, dropped, err = s.dropPartitionTx(ctx, p, ident, targets)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		s.logger.Info("couldn't lock an expired partition quickly; dropping it at a later sweep", "partition", p.name)
		return 0, false, nil
	}
	return records, dropped, err
}

func (s *Store) dropPartitionTx(ctx context.Context, p monthlyPartition, ident, targets string) (records int64, dropped bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't begin dropping partition %s: %w", p.name, classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, partitionWait.Milliseconds())); err != nil {
		return 0, false, fmt.Errorf("couldn't drop partition %s: %w", p.name, classify(err))
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockKey); err != nil {
		return 0, false, fmt.Errorf("couldn't take the partition lock: %w", classify(err))
	}
	var hasTargets bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace)`,
		partitionName("event_targets", p.from)).Scan(&hasTargets); err != nil {
		return 0, false, fmt.Errorf("couldn't look for the targets of partition %s: %w", p.name, classify(err))
	}
	tables := ident
	if hasTargets {
		tables = targets + ", " + ident
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+tables+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return 0, false, fmt.Errorf("couldn't lock partition %s: %w", p.name, classify(err))
	}
	var unintegrated bool
	err = tx.QueryRow(ctx, `SELECT coalesce(bool_or(x.hi >= o.integrated_size), false), coalesce(sum(x.hi - x.lo + 1), 0)
		FROM organizations o, LATERAL (SELECT min(e.seq) AS lo, max(e.seq) AS hi FROM `+ident+` e WHERE e.organization_id = o.id) x
		WHERE x.lo IS NOT NULL`).Scan(&unintegrated, &records)
	if err != nil {
		return 0, false, fmt.Errorf("couldn't inspect partition %s: %w", p.name, classify(err))
	}
	if unintegrated {
		s.logger.Warn("not dropping an expired partition: it holds records not yet integrated into their Merkle trees", "partition", p.name)
		return 0, false, nil
	}
	// received_at comes from each replica's clock while seq is the
	// database's order, so a log's records need not sort by month: a
	// record with an earlier seq can sit in a later partition (or in the
	// default one, or in an older partition not dropped yet). Dropping
	// this one would then leave that record stored with a hole after it.
	// Drop only if, for every organization, the partition's records are
	// the first ones stored (no record elsewhere with a smaller seq than
	// its largest here); otherwise leave it, and the straggler, once due,
	// to PruneRecords, which deletes in seq order.
	var holeOrg string
	// One index probe per organization: LATERAL … ORDER BY seq LIMIT 1
	// keeps the planner on (organization_id, seq) in each other partition
	// (the received_at bounds prune this one) rather than a join over
	// every row.
	err = tx.QueryRow(ctx, `SELECT o.id FROM organizations o,
		LATERAL (SELECT max(e.seq) AS hi FROM `+ident+` e WHERE e.organization_id = o.id) x,
		LATERAL (SELECT e.seq FROM events e WHERE e.organization_id = o.id AND e.seq < x.hi
			AND (e.received_at < $1 OR e.received_at >= $2) ORDER BY e.seq LIMIT 1) y
		WHERE x.hi IS NOT NULL
		LIMIT 1`, p.from, p.to).Scan(&holeOrg)
	if err == nil {
		s.logger.Info("not dropping an expired partition yet: a log has a record with an earlier seq outside it (received out of order across replicas' clocks); row deletes take it in seq order first",
			"partition", p.name, "organization_id", holeOrg)
		return 0, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("couldn't check partition %s for records out of order: %w", p.name, classify(err))
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, parentWait.Milliseconds())); err != nil {
		return 0, false, fmt.Errorf("couldn't drop partition %s: %w", p.name, classify(err))
	}
	// If the process dies before this commits, nothing is dropped and
	// the next sweep tries again.
	if _, err := tx.Exec(ctx, `DROP TABLE `+tables); err != nil {
		return 0, false, fmt.Errorf("couldn't drop partition %s: %w", p.name, classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("couldn't commit dropping partition %s: %w", p.name, classify(err))
	}
	return records, true, nil
}
