package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// recordBatch is how many records one ReadRecords query reads. Each batch is
// its own read transaction, so a long export does not pin one WAL snapshot
// (which would keep the WAL from being checkpointed).
const recordBatch = 4096

// PendingLogs lists the logs with records not yet integrated, through the
// partial index organizations_unintegrated (a flag the append sets and the
// integrator clears: 00017_unintegrated_flag.sql).
func (s *Store) PendingLogs(ctx context.Context) ([]ledger.LogState, error) {
	return s.logStates(ctx, "pending logs",
		`SELECT id, integrated_size, next_seq FROM organizations WHERE unintegrated AND next_seq > integrated_size`)
}

// IntegratedLogs lists the logs with at least one integrated record.
func (s *Store) IntegratedLogs(ctx context.Context) ([]ledger.LogState, error) {
	return s.logStates(ctx, "integrated logs",
		`SELECT id, integrated_size, next_seq FROM organizations WHERE integrated_size > 0`)
}

func (s *Store) logStates(ctx context.Context, what, query string) ([]ledger.LogState, error) {
	rows, err := s.read.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, classify(err))
	}
	defer rows.Close()
	var out []ledger.LogState
	for rows.Next() {
		var st ledger.LogState
		if err := rows.Scan(&st.OrganizationID, &st.IntegratedSize, &st.NextSeq); err != nil {
			return nil, fmt.Errorf("couldn't read %s: %w", what, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list %s: %w", what, classify(err))
	}
	return out, nil
}

// LogState returns one organization's log state.
func (s *Store) LogState(ctx context.Context, org string) (ledger.LogState, error) {
	st := ledger.LogState{OrganizationID: org}
	err := s.read.QueryRowContext(ctx, `SELECT integrated_size, next_seq FROM organizations WHERE id = ?`, org).
		Scan(&st.IntegratedSize, &st.NextSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("couldn't read log state of %s: %w", org, classify(err))
	}
	return st, nil
}

// ReadRecords streams records [from, to) of org in seq order, in batches of
// recordBatch along the (organization_id, seq) index.
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
	rows, err := s.read.QueryContext(ctx,
		`SELECT seq, record FROM events WHERE organization_id = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?`,
		org, from, to, recordBatch)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read records %d–%d of %s: %w", from, to-1, org, classify(err))
	}
	defer rows.Close()
	var record sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&last, &record); err != nil {
			return n, last, fmt.Errorf("couldn't read a record of %s: %w", org, err)
		}
		if err := fn(last, record); err != nil {
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
	out := make([][]byte, len(tiles))
	const chunk = 200
	for start := 0; start < len(tiles); start += chunk {
		part := tiles[start:min(start+chunk, len(tiles))]
		if err := s.readTiles(ctx, org, part, out[start:]); err != nil {
			return nil, err
		}
	}
	for i, t := range tiles {
		if len(out[i]) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s of %s holds %d hashes, want at least %d: %w", t.Path(), org, len(out[i])/tlog.HashSize, t.W, store.ErrNotFound)
		}
	}
	return out, nil
}

func (s *Store) readTiles(ctx context.Context, org string, tiles []tlog.Tile, out [][]byte) error {
	values := make([]string, len(tiles))
	args := make([]any, 0, 1+2*len(tiles))
	args = append(args, org)
	for i, t := range tiles {
		if t.H != ledger.TileHeight {
			return fmt.Errorf("tile %s of %s: only height %d is stored", t.Path(), org, ledger.TileHeight)
		}
		values[i] = "(?, ?)"
		args = append(args, t.L, t.N)
	}
	rows, err := s.read.QueryContext(ctx,
		// A row-value IN list is one primary-key lookup per tile; ORed
		// terms with parameters make SQLite scan the organization's tiles.
		`SELECT level, n, data FROM ledger_tiles WHERE organization_id = ? AND (level, n) IN (VALUES `+strings.Join(values, ", ")+`)`, args...)
	if err != nil {
		return fmt.Errorf("couldn't read tiles of %s: %w", org, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var level int
		var n int64
		var data []byte
		if err := rows.Scan(&level, &n, &data); err != nil {
			return fmt.Errorf("couldn't read a tile of %s: %w", org, err)
		}
		for i, t := range tiles {
			if t.L == level && t.N == n {
				out[i] = data
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("couldn't read tiles of %s: %w", org, classify(err))
	}
	return nil
}

// Integrate stores tiles, checkpoint and the new integrated size in one
// IMMEDIATE transaction, if the integrated size is still oldSize.
func (s *Store) Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []ledger.TileData, checkpoint []byte) error {
	errs, err := s.IntegrateBatch(ctx, []ledger.Integration{{
		OrganizationID: org, OldSize: oldSize, NewSize: newSize, Tiles: tiles, Checkpoint: checkpoint,
	}})
	if err != nil {
		return err
	}
	return errs[0]
}

// IntegrateBatch stores several logs' integrations in one IMMEDIATE
// transaction (one commit, not synced: see unsynced); an integration whose
// compare-and-swap fails is skipped.
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
	errs := make([]error, len(batch))
	err := s.unsynced(ctx, "integration", func(tx *sql.Tx) error {
		return integrateAll(ctx, tx, batch, errs)
	})
	if err != nil {
		return nil, err
	}
	for i, in := range batch {
		if errs[i] == nil {
			s.recent.trim(in.OrganizationID, in.NewSize)
		}
	}
	return errs, nil
}

// unsynced runs fn in one IMMEDIATE transaction on the writer connection
// with synchronous=NORMAL: the commit is written to the WAL but not synced,
// which the next durable commit on the connection (an append's, with
// synchronous=FULL), or the next WAL checkpoint, does for it and for every
// frame before it. A power loss before then loses the transaction whole and
// never anything after it. Only the integrator's writes go this way: what
// they store is recomputed from records that were durable before the
// integrator read them, and the fork guard's record in the data directory
// is synced before they run (docs/ARCHITECTURE.md, "The integrator's
// commits are not synced"). Ingest's commits keep paying the fsync; this
// spares the writer one per integration pass, held while appends wait.
func (s *Store) unsynced(ctx context.Context, what string, fn func(*sql.Tx) error) (err error) {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("couldn't take the write connection for the %s: %w", what, classify(err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return fmt.Errorf("couldn't set up the %s: %w", what, classify(err))
	}
	defer func() {
		// The connection goes back to the pool durable, or not at all:
		// appends on it must sync.
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn }) //nolint:errcheck // discards the connection
			if err == nil {
				err = fmt.Errorf("couldn't make the write connection durable again after the %s: %w", what, classify(rerr))
			}
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't begin the %s: %w", what, classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	// If the process dies before this returns, the transaction is either
	// wholly in the WAL or not at all; the integrator re-reads the state.
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't commit the %s: %w", what, classify(err))
	}
	return nil
}

// integrateAll applies the batch's integrations inside tx, setting errs[i]
// to integration i's own failure; an error fails the transaction.
func integrateAll(ctx context.Context, tx *sql.Tx, batch []ledger.Integration, errs []error) (err error) {

	// Prepared once for the batch: a pass may store a thousand logs, and
	// parsing the statements again for each was a fifth of its cost.
	var st integrateStmts
	for _, p := range []struct {
		stmt **sql.Stmt
		text string
	}{
		// unintegrated stays set while records remain beyond the new size.
		{&st.advance, `UPDATE organizations SET integrated_size = ?1, unintegrated = next_seq > ?1 WHERE id = ?2 AND integrated_size = ?3 AND next_seq >= ?1`},
		{&st.put, `INSERT INTO ledger_tiles (organization_id, level, n, width, data) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (organization_id, level, n) DO UPDATE SET width = excluded.width, data = excluded.data`},
		{&st.checkpoint, `INSERT INTO ledger_checkpoints (organization_id, size, note, created_at) VALUES (?, ?, ?, ?)`},
	} {
		if *p.stmt, err = tx.PrepareContext(ctx, p.text); err != nil {
			return fmt.Errorf("couldn't prepare the integration's statements: %w", classify(err))
		}
		defer (*p.stmt).Close()
	}
	now := ms(time.Now())
	for i, in := range batch {
		if errs[i], err = integrateOne(ctx, tx, &st, in, now); err != nil {
			return err
		}
	}
	return nil
}

// integrateStmts are the statements of an integration, prepared in its
// transaction.
type integrateStmts struct {
	advance, put, checkpoint *sql.Stmt
}

// integrateOne applies one integration inside tx. It returns the
// integration's own failure (compare-and-swap lost, unknown organization)
// as skip, and a failure of the transaction as err.
func integrateOne(ctx context.Context, tx *sql.Tx, st *integrateStmts, in ledger.Integration, now int64) (skip, err error) {
	org := in.OrganizationID
	res, err := st.advance.ExecContext(ctx, in.NewSize, org, in.OldSize)
	if err != nil {
		return nil, fmt.Errorf("couldn't advance integrated size of %s: %w", org, classify(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		var cur, next int64
		err := tx.QueryRowContext(ctx, `SELECT integrated_size, next_seq FROM organizations WHERE id = ?`, org).Scan(&cur, &next)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("organization %s: %w", org, store.ErrNotFound), nil
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't read log state of %s: %w", org, classify(err))
		}
		return fmt.Errorf("log of %s is at integrated size %d with %d records, not %d with at least %d: %w",
			org, cur, next, in.OldSize, in.NewSize, ledger.ErrSizeChanged), nil
	}
	for _, t := range in.Tiles {
		if _, err := st.put.ExecContext(ctx, org, t.Tile.L, t.Tile.N, t.Tile.W, t.Data); err != nil {
			return nil, fmt.Errorf("couldn't store tile %s of %s: %w", t.Tile.Path(), org, classify(err))
		}
	}
	if _, err := st.checkpoint.ExecContext(ctx, org, in.NewSize, string(in.Checkpoint), now); err != nil {
		return nil, fmt.Errorf("couldn't store checkpoint %d of %s: %w", in.NewSize, org, classify(err))
	}
	return nil, nil
}

// LatestCheckpoint returns the checkpoint of org's largest tree.
func (s *Store) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	return s.checkpoint(ctx, org, fmt.Sprintf("newest checkpoint of %s", org),
		`SELECT note FROM ledger_checkpoints WHERE organization_id = ? ORDER BY size DESC LIMIT 1`, org)
}

// Checkpoint returns the checkpoint of org's tree of exactly this size.
func (s *Store) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	return s.checkpoint(ctx, org, fmt.Sprintf("checkpoint %d of %s", size, org),
		`SELECT note FROM ledger_checkpoints WHERE organization_id = ? AND size = ?`, org, size)
}

func (s *Store) checkpoint(ctx context.Context, org, what, query string, args ...any) ([]byte, error) {
	var note []byte
	err := s.read.QueryRowContext(ctx, query, args...).Scan(&note)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", what, classify(err))
	}
	return note, nil
}
