package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
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
	lastPos         *sql.Stmt // on the read pool: max(pos), for every read of the tail
	streamPositions *sql.Stmt // on the read pool: the stream engine reads it up to 50 times a second
	// writer is the append's statements on the writer's driver connection
	// (writertx.go), used only while Append holds that connection.
	writer appendDriverStmts
}

func (st *appendStmts) close() {
	for _, s := range []*sql.Stmt{st.lastPos, st.streamPositions} {
		if s != nil {
			s.Close()
		}
	}
	st.writer.close()
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
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
func (s *Store) insertEvents(tx *appendConn, rows []pendingRow) error {
	args := make([]any, 0, 5*insertSizes[0])
	for len(rows) > 0 {
		k := 0
		for insertSizes[k] > len(rows) {
			k++
		}
		n := insertSizes[k]
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.org, r.seq, r.id, r.record, r.mismatch)
		}
		res, err := tx.exec(tx.st.insert[k], args...)
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
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't take the writer's connection: %w", classify(err))
	}
	defer conn.Close()
	var (
		results []store.AppendResult
		fresh   []pendingRow
	)
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("the SQLite driver's connection is a %T", dc)
		}
		if err := s.stmts.writer.prepareOn(ctx, c); err != nil {
			return err
		}
		tx := &appendConn{ctx: ctx, st: &s.stmts.writer}
		if _, err := tx.exec(tx.st.begin); err != nil {
			return fmt.Errorf("couldn't begin append transaction: %w", classify(err))
		}
		var err error
		results, fresh, err = s.appendIn(tx, subs, now)
		// If the process dies before this returns, nothing was
		// acknowledged: the transaction is either wholly in the WAL (and
		// the events simply have no waiting client) or not at all.
		if err := tx.finish(err); err != nil {
			return fmt.Errorf("couldn't append %d submissions: %w", len(subs), classify(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.recent.add(fresh)
	s.unindexed.add(fresh)
	if len(fresh) > 0 {
		s.noteAppended(fresh[len(fresh)-1].pos)
	}
	return results, nil
}

// appendIn does Append's work inside its transaction and returns the
// results and the rows stored.
func (s *Store) appendIn(tx *appendConn, subs []store.Submission, now time.Time) ([]store.AppendResult, []pendingRow, error) {
	results := make([]store.AppendResult, len(subs))
	next := map[string]int64{}    // organization → next seq, for the organizations of this batch
	before := map[string]logRow{} // organization → its row as the batch found it
	row := make([]driver.Value, 2)
	known := func(org string) (bool, error) {
		if _, ok := next[org]; ok {
			return true, nil
		}
		found, err := tx.queryRow(tx.st.orgSeq, row, org)
		if err != nil {
			return false, fmt.Errorf("couldn't read log size of %s: %w", org, classify(err))
		}
		if !found {
			return false, nil
		}
		r, err := logRowOf(row)
		if err != nil {
			return false, fmt.Errorf("couldn't read log size of %s: %w", org, err)
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
			prev, hash, ok, err := s.idempotentResult(tx, k, now)
			if err != nil {
				return nil, nil, err
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
				return nil, nil, err
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
			fresh = append(fresh, pendingRow{org: a.OrganizationID, seq: a.Seq, id: a.ID, record: rec, mismatch: e.SchemaMismatch, draft: e.TailDraft()})
			accepted[j] = a
		}
		results[i].Events = accepted
		if sub.IdempotencyKey != "" {
			k := keyOf(sub)
			inBatch[k] = i
			if err := s.rememberIdempotent(tx, k, sub.BodyHash, accepted, now); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := s.insertEvents(tx, fresh); err != nil {
		return nil, nil, err
	}
	for org, n := range next {
		st := tx.st.setSeqPending
		switch b := before[org]; {
		case n == b.next: // checked, but its submission was refused
			continue
		case b.unintegrated:
			st = tx.st.setSeq
		}
		if _, err := tx.exec(st, n, org); err != nil {
			return nil, nil, fmt.Errorf("couldn't advance log of %s: %w", org, classify(err))
		}
	}
	return results, fresh, nil
}

// logRowOf reads an organization's row as orgSeq returns it.
func logRowOf(row []driver.Value) (logRow, error) {
	next, ok1 := row[0].(int64)
	flag, ok2 := row[1].(int64)
	if !ok1 || !ok2 {
		return logRow{}, fmt.Errorf("unexpected next_seq %T and unintegrated %T", row[0], row[1])
	}
	return logRow{next: next, unintegrated: flag != 0}, nil
}

// idempotentResult is the remembered result of k and the hash of the body
// that stored it; false when k is not remembered (or expired).
func (s *Store) idempotentResult(tx *appendConn, k idemKey, now time.Time) ([]event.Accepted, [32]byte, bool, error) {
	var hash [32]byte
	row := make([]driver.Value, 2)
	found, err := tx.queryRow(tx.st.idemGet, row, k.org, k.key, ms(now.Add(-idempotencyTTL)))
	if err != nil {
		return nil, hash, false, fmt.Errorf("couldn't look up idempotency key: %w", classify(err))
	}
	if !found {
		return nil, hash, false, nil
	}
	hashBytes, raw := bytesOf(row[0]), bytesOf(row[1])
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

// bytesOf is a BLOB or TEXT column's bytes as the driver returns them.
func bytesOf(v driver.Value) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

func (s *Store) rememberIdempotent(tx *appendConn, k idemKey, hash [32]byte, accepted []event.Accepted, now time.Time) error {
	stored := make([]acceptedJSON, len(accepted))
	for i, a := range accepted {
		stored[i] = acceptedJSON{a.ID, a.OrganizationID, a.Seq, a.ReceivedAt}
	}
	raw, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("couldn't encode idempotent result: %w", err)
	}
	// OR REPLACE: an expired entry with the same key is overwritten.
	if _, err := tx.exec(tx.st.idemPut, k.org, k.key, hash[:], ms(now), raw); err != nil {
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
