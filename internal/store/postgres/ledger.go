package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// recordBatch is how many records one ReadRecords query reads: each batch
// is its own statement, so a long export neither holds one snapshot open
// (which would hold back vacuum) nor buffers the whole range.
const recordBatch = 4096

// PendingLogs lists the logs with records not yet integrated. It scans the
// organizations table: an index on next_seq or integrated_size (even a
// partial one) would turn every append's UPDATE into a non-HOT update.
func (s *Store) PendingLogs(ctx context.Context) ([]ledger.LogState, error) {
	return s.logStates(ctx, "pending logs",
		`SELECT id, integrated_size, next_seq FROM organizations WHERE next_seq > integrated_size`)
}

// IntegratedLogs lists the logs with at least one integrated record.
func (s *Store) IntegratedLogs(ctx context.Context) ([]ledger.LogState, error) {
	return s.logStates(ctx, "integrated logs",
		`SELECT id, integrated_size, next_seq FROM organizations WHERE integrated_size > 0`)
}

func (s *Store) logStates(ctx context.Context, what, query string) ([]ledger.LogState, error) {
	rows, err := s.pool.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, classify(err))
	}
	var out []ledger.LogState
	var st ledger.LogState
	if _, err := pgx.ForEachRow(rows, []any{&st.OrganizationID, &st.IntegratedSize, &st.NextSeq}, func() error {
		out = append(out, st)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, classify(err))
	}
	return out, nil
}

// LogState returns one organization's log state.
func (s *Store) LogState(ctx context.Context, org string) (ledger.LogState, error) {
	st := ledger.LogState{OrganizationID: org}
	err := s.pool.QueryRow(ctx, `SELECT integrated_size, next_seq FROM organizations WHERE id = $1`, org).
		Scan(&st.IntegratedSize, &st.NextSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("couldn't read log state of %s: %w", org, classify(err))
	}
	return st, nil
}

// ReadRecords streams records [from, to) of org in seq order, in batches of
// recordBatch along the primary key (organization_id, seq, received_at).
func (s *Store) ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error {
	for from < to {
		n, last, err := s.readRecordBatch(ctx, org, from, to, fn)
		if err != nil || n < recordBatch {
			return err
		}
		from = last + 1
	}
	return nil
}

func (s *Store) readRecordBatch(ctx context.Context, org string, from, to int64, fn func(int64, []byte) error) (n int, last int64, err error) {
	rows, done, err := s.queryGeneric(ctx,
		`SELECT seq, record FROM events WHERE organization_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq LIMIT $4`,
		org, from, to, recordBatch)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read records %d–%d of %s: %w", from, to-1, org, classify(err))
	}
	defer func() {
		rows.Close()
		if derr := done(); derr != nil && err == nil {
			err = fmt.Errorf("couldn't read records %d–%d of %s: %w", from, to-1, org, classify(derr))
		}
	}()
	for rows.Next() {
		// RawValues are only valid until the next row, as fn is told.
		raw := rows.RawValues()
		if err := rows.Scan(&last, nil); err != nil {
			return n, last, fmt.Errorf("couldn't read a record of %s: %w", org, err)
		}
		if err := fn(last, raw[1]); err != nil {
			return n, last, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, last, fmt.Errorf("couldn't read records %d–%d of %s: %w", from, to-1, org, classify(err))
	}
	return n, last, nil
}

// ReadTiles reads the stored (widest) version of each tile, in one query.
func (s *Store) ReadTiles(ctx context.Context, org string, tiles []tlog.Tile) ([][]byte, error) {
	levels, ns := make([]int32, len(tiles)), make([]int64, len(tiles))
	for i, t := range tiles {
		if t.H != ledger.TileHeight {
			return nil, fmt.Errorf("tile %s of %s: only height %d is stored", t.Path(), org, ledger.TileHeight)
		}
		levels[i], ns[i] = int32(t.L), t.N
	}
	rows, err := s.pool.Query(ctx,
		`SELECT u.i, t.data FROM unnest($2::int[], $3::bigint[]) WITH ORDINALITY AS u(level, n, i)
		JOIN ledger_tiles t ON t.organization_id = $1 AND t.level = u.level AND t.n = u.n`, org, levels, ns)
	if err != nil {
		return nil, fmt.Errorf("couldn't read tiles of %s: %w", org, classify(err))
	}
	out := make([][]byte, len(tiles))
	var i int64
	var data []byte
	if _, err := pgx.ForEachRow(rows, []any{&i, &data}, func() error {
		out[i-1] = data
		data = nil
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't read tiles of %s: %w", org, classify(err))
	}
	for i, t := range tiles {
		if len(out[i]) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s of %s holds %d hashes, want at least %d: %w", t.Path(), org, len(out[i])/tlog.HashSize, t.W, store.ErrNotFound)
		}
	}
	return out, nil
}

// Integrate stores tiles, checkpoint and the new integrated size in one
// transaction, if the integrated size is still oldSize.
func (s *Store) Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []ledger.TileData, checkpoint []byte) error {
	errs, err := s.IntegrateBatch(ctx, []ledger.Integration{{
		OrganizationID: org, OldSize: oldSize, NewSize: newSize, Tiles: tiles, Checkpoint: checkpoint,
	}})
	if err != nil {
		return err
	}
	return errs[0]
}

// IntegrateBatch stores several logs' integrations in one transaction (one
// commit); an integration whose compare-and-swap fails is skipped.
// Organizations are updated in id order, the order Append locks them in,
// so that the two never deadlock.
func (s *Store) IntegrateBatch(ctx context.Context, batch []ledger.Integration) ([]error, error) {
	for _, in := range batch {
		if in.NewSize <= in.OldSize {
			return nil, fmt.Errorf("integrating %s from size %d to %d: the tree must grow", in.OrganizationID, in.OldSize, in.NewSize)
		}
		for _, t := range in.Tiles {
			if t.Tile.H != ledger.TileHeight || t.Tile.W < 1 || t.Tile.W*tlog.HashSize != len(t.Data) {
				return nil, fmt.Errorf("tile %s of %s has %d bytes of data: not a height-%d tile of that width",
					t.Tile.Path(), in.OrganizationID, len(t.Data), ledger.TileHeight)
			}
		}
	}
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return strings.Compare(batch[a].OrganizationID, batch[b].OrganizationID)
	})
	var errs []error
	err := retry(ctx, func() error {
		var err error
		errs, err = s.integrateTx(ctx, batch, order)
		return err
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// integrateSQL stores a batch of integrations in one statement: the
// compare-and-swap of each organization's integrated size, and the tiles
// and checkpoint of those that won. It runs as its own transaction in one
// round trip, so the organizations' rows (which appends lock too) are
// locked in id order and held only while it runs and commits, not across
// several round trips. It returns the organizations that won.
const integrateSQL = `WITH locked AS (
	SELECT id FROM organizations WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE
), won AS (
	UPDATE organizations o SET integrated_size = u.new
	FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(id, new, old), locked l
	WHERE o.id = u.id AND l.id = u.id AND o.integrated_size = u.old AND o.next_seq >= u.new
	RETURNING o.id
), tiles AS (
	INSERT INTO ledger_tiles (organization_id, level, n, width, data)
	SELECT t.org, t.level, t.n, t.width, t.data
	FROM unnest($4::text[], $5::int[], $6::bigint[], $7::int[], $8::bytea[]) AS t(org, level, n, width, data)
	JOIN won w ON w.id = t.org
	ON CONFLICT (organization_id, level, n) DO UPDATE SET width = excluded.width, data = excluded.data
), checkpoints AS (
	INSERT INTO ledger_checkpoints (organization_id, size, note, created_at)
	SELECT c.org, c.size, c.note, $11
	FROM unnest($1::text[], $9::bigint[], $10::bytea[]) AS c(org, size, note)
	JOIN won w ON w.id = c.org
)
SELECT id FROM won`

func (s *Store) integrateTx(ctx context.Context, batch []ledger.Integration, order []int) ([]error, error) {
	// One integration per organization per statement: a second one
	// (which the integrator never sends) goes in a statement of its own.
	var orgs, torgs []string
	var news, olds, ns []int64
	var levels, widths []int32
	var data, notes [][]byte
	var rest []int
	for _, i := range order {
		in := batch[i]
		if len(orgs) > 0 && orgs[len(orgs)-1] == in.OrganizationID {
			rest = append(rest, i)
			continue
		}
		orgs, news, olds, notes = append(orgs, in.OrganizationID), append(news, in.NewSize), append(olds, in.OldSize), append(notes, in.Checkpoint)
		for _, t := range distinctTiles(in.Tiles) {
			torgs, levels, ns = append(torgs, in.OrganizationID), append(levels, int32(t.Tile.L)), append(ns, t.Tile.N)
			widths, data = append(widths, int32(t.Tile.W)), append(data, t.Data)
		}
	}
	// If the process dies before this returns, the statement either
	// committed or did not; the integrator re-reads the state.
	rows, done, err := s.queryGeneric(ctx, integrateSQL, orgs, news, olds, torgs, levels, ns, widths, data, news, notes, time.Now())
	if err != nil {
		return nil, fmt.Errorf("couldn't integrate %d logs: %w", len(orgs), classify(err))
	}
	won, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if derr := done(); err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't integrate %d logs: %w", len(orgs), classify(err))
	}
	errs := make([]error, len(batch))
	for _, i := range order {
		if slices.Contains(rest, i) {
			continue
		}
		in := batch[i]
		if slices.Contains(won, in.OrganizationID) {
			continue
		}
		st, err := s.LogState(ctx, in.OrganizationID)
		if errors.Is(err, store.ErrNotFound) {
			errs[i] = err
			continue
		}
		if err != nil {
			return nil, err
		}
		errs[i] = fmt.Errorf("log of %s is at integrated size %d with %d records, not %d with at least %d: %w",
			in.OrganizationID, st.IntegratedSize, st.NextSeq, in.OldSize, in.NewSize, ledger.ErrSizeChanged)
	}
	if len(rest) > 0 {
		sub := make([]ledger.Integration, len(rest))
		for j, i := range rest {
			sub[j] = batch[i]
		}
		subOrder := make([]int, len(sub))
		for j := range subOrder {
			subOrder[j] = j
		}
		more, err := s.integrateTx(ctx, sub, subOrder)
		if err != nil {
			return nil, err
		}
		for j, i := range rest {
			errs[i] = more[j]
		}
	}
	return errs, nil
}

// distinctTiles returns tiles sorted by (level, n), keeping for each the
// one given last, as writing them one after the other would: one INSERT …
// ON CONFLICT cannot update the same row twice.
func distinctTiles(tiles []ledger.TileData) []ledger.TileData {
	sorted := slices.SortedStableFunc(slices.Values(tiles), func(a, b ledger.TileData) int {
		return cmp.Or(cmp.Compare(a.Tile.L, b.Tile.L), cmp.Compare(a.Tile.N, b.Tile.N))
	})
	out := sorted[:0]
	for i, t := range sorted {
		if i+1 < len(sorted) && sorted[i+1].Tile.L == t.Tile.L && sorted[i+1].Tile.N == t.Tile.N {
			continue
		}
		out = append(out, t)
	}
	return out
}

// LatestCheckpoint returns the checkpoint of org's largest tree.
func (s *Store) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	return s.checkpoint(ctx, fmt.Sprintf("newest checkpoint of %s", org),
		`SELECT note FROM ledger_checkpoints WHERE organization_id = $1 ORDER BY size DESC LIMIT 1`, org)
}

// Checkpoint returns the checkpoint of org's tree of exactly this size.
func (s *Store) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	return s.checkpoint(ctx, fmt.Sprintf("checkpoint %d of %s", size, org),
		`SELECT note FROM ledger_checkpoints WHERE organization_id = $1 AND size = $2`, org, size)
}

func (s *Store) checkpoint(ctx context.Context, what, query string, args ...any) ([]byte, error) {
	var note []byte
	err := s.pool.QueryRow(ctx, query, args...).Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", what, classify(err))
	}
	return note, nil
}

// SetLogRefused records why org's log is refused ("" clears it); see
// ledger.RefusalStorage. Appends to org fail while it is set.
func (s *Store) SetLogRefused(ctx context.Context, org, reason string) error {
	var v *string
	if reason != "" {
		v = &reason
	}
	if _, err := s.pool.Exec(ctx, `UPDATE organizations SET log_refused = $2 WHERE id = $1`, org, v); err != nil {
		return fmt.Errorf("couldn't record the refusal of the log of %s: %w", org, classify(err))
	}
	return nil
}

// RefusedLogs returns the refusals SetLogRefused recorded.
func (s *Store) RefusedLogs(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, log_refused FROM organizations WHERE log_refused IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the refused logs: %w", classify(err))
	}
	out := map[string]string{}
	var org, why string
	if _, err := pgx.ForEachRow(rows, []any{&org, &why}, func() error { out[org] = why; return nil }); err != nil {
		return nil, fmt.Errorf("couldn't read the refused logs: %w", classify(err))
	}
	return out, nil
}

// queryGeneric runs one statement with plan_cache_mode = force_generic_plan,
// between a SET and a RESET in the same round trip and implicit
// transaction (a failed statement rolls the SET back): planned once per
// connection, not at every call as the session's force_custom_plan
// (Connect) would. It is for statements of the write path whose plan does
// not depend on their arguments and that run per commit or per integrator
// pass, where planning cost the database as much as running them
// (docs/PERFORMANCE.md, "PostgreSQL: the append's CPU"). The caller closes
// rows, then calls done, which returns the connection and any error
// after the rows (the commit's among them).
func (s *Store) queryGeneric(ctx context.Context, sql string, args ...any) (rows pgx.Rows, done func() error, err error) {
	b := &pgx.Batch{}
	b.Queue(`SET plan_cache_mode = force_generic_plan`)
	b.Queue(sql, args...)
	b.Queue(`RESET plan_cache_mode`)
	br := s.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, nil, err
	}
	if rows, err = br.Query(); err != nil {
		br.Close()
		return nil, nil, err
	}
	return rows, br.Close, nil
}
