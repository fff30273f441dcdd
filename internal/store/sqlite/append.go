package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// idempotencyTTL is how long an Idempotency-Key is remembered (docs/DESIGN.md §5).
const idempotencyTTL = 24 * time.Hour

type appendStmts struct {
	orgSeq, setSeq, setSeqPending, idemGet, idemPut *sql.Stmt
	// insert[i] stores insertSizes[i] events in one statement.
	insert          [len(insertSizes)]*sql.Stmt
	lastPos         *sql.Stmt // on the read pool: max(pos), for every read of the tail
	streamPositions *sql.Stmt // on the read pool: the stream engine reads it up to 50 times a second
}

func (st *appendStmts) close() {
	for _, s := range append([]*sql.Stmt{st.orgSeq, st.setSeq, st.setSeqPending, st.idemGet, st.idemPut, st.lastPos, st.streamPositions}, st.insert[:]...) {
		if s != nil {
			s.Close()
		}
	}
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.write.PrepareContext(ctx, q)
		return st
	}
	s.stmts = appendStmts{
		orgSeq: prep(`SELECT next_seq, unintegrated FROM organizations WHERE id = ? AND deleted_at IS NULL`),
		// setSeq leaves the partial index organizations_unintegrated alone
		// (neither of its columns is set), so it is for a log that already
		// has pending records; setSeqPending enters the log in it
		// (00017_unintegrated_flag.sql).
		setSeq:        prep(`UPDATE organizations SET next_seq = ? WHERE id = ?`),
		setSeqPending: prep(`UPDATE organizations SET next_seq = ?, unintegrated = 1 WHERE id = ?`),
		idemGet:       prep(`SELECT body_hash, result FROM idempotency_keys WHERE organization_id = ? AND key = ? AND created_at > ?`),
		idemPut:       prep(`INSERT OR REPLACE INTO idempotency_keys (organization_id, key, body_hash, created_at, result) VALUES (?, ?, ?, ?, ?)`),
	}
	for i, n := range insertSizes {
		s.stmts.insert[i] = prep(insertSQL(n))
	}
	if err != nil {
		return fmt.Errorf("couldn't prepare statements: %w", err)
	}
	if s.stmts.lastPos, err = s.read.PrepareContext(ctx, `SELECT max(pos) FROM events`); err != nil {
		return fmt.Errorf("couldn't prepare statements: %w", err)
	}
	if s.stmts.streamPositions, err = s.read.PrepareContext(ctx, streamPositionsSQL); err != nil {
		return fmt.Errorf("couldn't prepare statements: %w", err)
	}
	return nil
}

// insertSizes are the numbers of events one INSERT stores, largest first:
// a commit's events go in as few statements as these make up (a statement
// costs several times one more row of VALUES), each prepared once.
var insertSizes = [...]int{32, 8, 1}

func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR ROLLBACK INTO events (organization_id, seq, id, record, schema_mismatch) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?)`)
	}
	return b.String()
}

// insertEvents stores rows, in order, in as few statements as insertSizes
// allow, and sets each row's pos. OR ROLLBACK: a failed insert fails the
// whole append anyway, and without it SQLite keeps a statement journal of
// every page a statement of several rows changes, to undo that statement
// alone — which cost more than the statements saved. The rows of one INSERT
// get consecutive positions in the order of its VALUES: events.pos is an AUTOINCREMENT
// rowid, each new one one more than the largest ever used, and the append
// transaction holds SQLite's write lock.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, rows []pendingRow) error {
	var stmts [len(insertSizes)]*sql.Stmt
	args := make([]any, 0, 5*insertSizes[0])
	for len(rows) > 0 {
		k := 0
		for insertSizes[k] > len(rows) {
			k++
		}
		n := insertSizes[k]
		if stmts[k] == nil {
			stmts[k] = tx.StmtContext(ctx, s.stmts.insert[k])
		}
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.org, r.seq, r.id, r.record, r.mismatch)
		}
		res, err := stmts[k].ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("couldn't insert one of the %d events %s … %s: %w", n, rows[0].id, rows[n-1].id, classify(err))
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("couldn't read the positions of events %s to %s: %w", rows[0].id, rows[n-1].id, classify(err))
		}
		for i := range rows[:n] {
			rows[i].pos = last - int64(n-1-i)
		}
		rows = rows[n:]
	}
	return nil
}

// logRow is what an append reads of an organization's row: the log's size
// and whether it has records the integrator has not integrated yet.
type logRow struct {
	next         int64
	unintegrated bool
}

// acceptedJSON is how an idempotent result is remembered.
type acceptedJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Seq            int64     `json:"seq"`
	ReceivedAt     time.Time `json:"received_at"`
}

// idemKey is an idempotency key as stored: org is the organization of the
// submission's first event.
type idemKey struct {
	org, key string
}

func keyOf(sub *store.Submission) idemKey {
	k := idemKey{key: sub.IdempotencyKey}
	if len(sub.Events) > 0 {
		k.org = sub.Events[0].OrganizationID
	}
	return k
}

// Append stores submissions in one IMMEDIATE transaction: seqs are read and
// advanced under SQLite's single writer lock, so they are contiguous and no two
// events of an organization can share one, even with a CLI process writing to
// the same file.
func (s *Store) Append(ctx context.Context, subs []store.Submission, now time.Time) ([]store.AppendResult, error) {
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	results := make([]store.AppendResult, len(subs))
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't begin append transaction: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	orgSeq := tx.StmtContext(ctx, s.stmts.orgSeq)

	next := map[string]int64{}    // organization → next seq, for the organizations of this batch
	before := map[string]logRow{} // organization → its row as the batch found it
	known := func(org string) (bool, error) {
		if _, ok := next[org]; ok {
			return true, nil
		}
		var r logRow
		err := orgSeq.QueryRowContext(ctx, org).Scan(&r.next, &r.unintegrated)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("couldn't read log size of %s: %w", org, classify(err))
		}
		next[org], before[org] = r.next, r
		return true, nil
	}

	inBatch := map[idemKey]int{} // idempotency key → index of the submission that stored it
	n := 0
	for _, sub := range subs {
		n += len(sub.Events)
	}
	fresh := make([]pendingRow, 0, n) // for the integrator's and the indexer's caches
	for i := range subs {
		sub := &subs[i]
		if sub.IdempotencyKey != "" {
			k := keyOf(sub)
			if j, ok := inBatch[k]; ok {
				results[i] = store.AppendResult{Events: results[j].Events, Replayed: true, BodyMismatch: subs[j].BodyHash != sub.BodyHash}
				continue
			}
			prev, hash, ok, err := s.idempotentResult(ctx, tx, k, now)
			if err != nil {
				return nil, err
			}
			if ok {
				results[i] = store.AppendResult{Events: prev, Replayed: true, BodyMismatch: hash != sub.BodyHash}
				continue
			}
		}
		// Check every organization first so a failing submission stores nothing.
		var missing string
		for _, e := range sub.Events {
			ok, err := known(e.OrganizationID)
			if err != nil {
				return nil, err
			}
			if !ok {
				missing = e.OrganizationID
				break
			}
		}
		if missing != "" {
			results[i].Err = fmt.Errorf("organization %s: %w", missing, store.ErrNotFound)
			continue
		}
		accepted := make([]event.Accepted, len(sub.Events))
		for j, e := range sub.Events {
			a := event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, Seq: next[e.OrganizationID], ReceivedAt: e.ReceivedAt}
			next[e.OrganizationID]++
			// Each record gets its own buffer: the integrator's cache
			// keeps it after the commit. The rows are inserted after this
			// loop, all together (insertEvents sets their pos).
			rec := event.AppendRecord(make([]byte, 0, event.RecordSize(a, len(e.Tail))), a, e.Tail)
			fresh = append(fresh, pendingRow{org: a.OrganizationID, seq: a.Seq, id: a.ID, record: rec, mismatch: e.SchemaMismatch, draft: draftOf(e)})
			accepted[j] = a
		}
		results[i].Events = accepted
		if sub.IdempotencyKey != "" {
			k := keyOf(sub)
			inBatch[k] = i
			if err := s.rememberIdempotent(ctx, tx, k, sub.BodyHash, accepted, now); err != nil {
				return nil, err
			}
		}
	}
	if err := s.insertEvents(ctx, tx, fresh); err != nil {
		return nil, err
	}
	var setSeq, setSeqPending *sql.Stmt
	for org, n := range next {
		var st *sql.Stmt
		switch b := before[org]; {
		case n == b.next: // checked, but its submission was refused
			continue
		case b.unintegrated:
			if setSeq == nil {
				setSeq = tx.StmtContext(ctx, s.stmts.setSeq)
			}
			st = setSeq
		default:
			if setSeqPending == nil {
				setSeqPending = tx.StmtContext(ctx, s.stmts.setSeqPending)
			}
			st = setSeqPending
		}
		if _, err := st.ExecContext(ctx, n, org); err != nil {
			return nil, fmt.Errorf("couldn't advance log of %s: %w", org, classify(err))
		}
	}
	// If the process dies before this returns, nothing was acknowledged: the
	// transaction is either wholly in the WAL (and the events simply have no
	// waiting client) or not at all.
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("couldn't commit %d submissions: %w", len(subs), classify(err))
	}
	s.recent.add(fresh)
	s.unindexed.add(fresh)
	if len(fresh) > 0 {
		s.noteAppended(fresh[len(fresh)-1].pos)
	}
	return results, nil
}

// draftOf is e's draft if it is the event e's tail encodes (the record is
// the truth; a caller's mistake must not reach the search index).
func draftOf(e store.PendingEvent) *event.Draft {
	if e.Draft == nil || !bytes.Equal(e.Draft.Tail, e.Tail) {
		return nil
	}
	return e.Draft
}

// idempotentResult is the remembered result of k and the hash of the body
// that stored it; false when k is not remembered (or expired).
func (s *Store) idempotentResult(ctx context.Context, tx *sql.Tx, k idemKey, now time.Time) ([]event.Accepted, [32]byte, bool, error) {
	var raw, hashBytes []byte
	var hash [32]byte
	err := tx.StmtContext(ctx, s.stmts.idemGet).QueryRowContext(ctx, k.org, k.key, ms(now.Add(-idempotencyTTL))).Scan(&hashBytes, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, hash, false, nil
	}
	if err != nil {
		return nil, hash, false, fmt.Errorf("couldn't look up idempotency key: %w", classify(err))
	}
	copy(hash[:], hashBytes)
	var stored []acceptedJSON
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, hash, false, fmt.Errorf("couldn't decode remembered result of idempotency key: %w", err)
	}
	out := make([]event.Accepted, len(stored))
	for i, a := range stored {
		out[i] = event.Accepted{ID: a.ID, OrganizationID: a.OrganizationID, Seq: a.Seq, ReceivedAt: a.ReceivedAt.UTC()}
	}
	return out, hash, true, nil
}

func (s *Store) rememberIdempotent(ctx context.Context, tx *sql.Tx, k idemKey, hash [32]byte, accepted []event.Accepted, now time.Time) error {
	stored := make([]acceptedJSON, len(accepted))
	for i, a := range accepted {
		stored[i] = acceptedJSON{a.ID, a.OrganizationID, a.Seq, a.ReceivedAt}
	}
	raw, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("couldn't encode idempotent result: %w", err)
	}
	// OR REPLACE: an expired entry with the same key is overwritten.
	if _, err := tx.StmtContext(ctx, s.stmts.idemPut).ExecContext(ctx, k.org, k.key, hash[:], ms(now), raw); err != nil {
		return fmt.Errorf("couldn't remember idempotency key: %w", classify(err))
	}
	return nil
}

// ExpireIdempotencyKeys deletes keys created before cutoff.
func (s *Store) ExpireIdempotencyKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("couldn't expire idempotency keys: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Event returns one event by id.
func (s *Store) Event(ctx context.Context, id string) (store.StoredEvent, error) {
	var e store.StoredEvent
	err := s.read.QueryRowContext(ctx, `SELECT organization_id, seq, id, record, schema_mismatch FROM events WHERE id = ?`, id).
		Scan(&e.OrganizationID, &e.Seq, &e.ID, &e.Record, &e.SchemaMismatch)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("couldn't read event %s: %w", id, classify(err))
	}
	return e, nil
}
