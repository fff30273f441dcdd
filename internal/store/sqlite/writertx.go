package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strings"
)

// appendConn is an append's transaction, run on the writer's driver
// connection rather than through database/sql's Tx. A Tx starts a
// goroutine to watch its context and wakes it at the end, and the driver
// parses BEGIN again at each one: on a lone client's one-event commit
// that was about a fifth of the time (docs/PERFORMANCE.md, "One client:
// what database/sql's transaction costs"). Here BEGIN IMMEDIATE, COMMIT
// and ROLLBACK are prepared once per connection like the append's own
// statements. database/sql still owns the connection: Append borrows it
// with Conn.Raw, so every other writer waits for it as it waited for the
// Tx, and a connection left in an unknown state is handed back as bad,
// which closes it.
type appendConn struct {
	ctx context.Context
	st  *appendDriverStmts
}

// appendDriverStmts are the append's statements prepared on one driver
// connection; they are prepared again when database/sql has replaced
// the connection.
type appendDriverStmts struct {
	conn                          driver.Conn
	begin, commit, rollback       driver.Stmt
	orgSeq, setSeq, setSeqPending driver.Stmt
	idemGet, idemPut              driver.Stmt
	insert                        [len(insertSizes)]driver.Stmt
}

func (st *appendDriverStmts) all() []driver.Stmt {
	return append([]driver.Stmt{st.begin, st.commit, st.rollback, st.orgSeq, st.setSeq, st.setSeqPending, st.idemGet, st.idemPut}, st.insert[:]...)
}

func (st *appendDriverStmts) close() {
	for _, s := range st.all() {
		if s != nil {
			s.Close()
		}
	}
	*st = appendDriverStmts{}
}

// prepareOn prepares the statements on c unless they already are. A
// different c means database/sql closed the one they were prepared on
// (after a failure it was told of, since the writer's connection never
// expires): the driver cannot finalize statements after closing their
// connection, so they are let go, a few kilobytes left to the closed
// connection. finish closes them itself before it has a connection
// closed.
func (st *appendDriverStmts) prepareOn(ctx context.Context, c driver.Conn) error {
	if st.conn == c {
		return nil
	}
	*st = appendDriverStmts{}
	pc, ok := c.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("the SQLite driver's connection (%T) cannot prepare statements with a context", c)
	}
	var err error
	prep := func(q string) driver.Stmt {
		if err != nil {
			return nil
		}
		var s driver.Stmt
		if s, err = pc.PrepareContext(ctx, q); err != nil {
			err = fmt.Errorf("couldn't prepare %q: %w", q, err)
		}
		return s
	}
	*st = appendDriverStmts{
		begin:    prep(`BEGIN IMMEDIATE`),
		commit:   prep(`COMMIT`),
		rollback: prep(`ROLLBACK`),
		orgSeq:   prep(orgSeqSQL),
		// setSeq leaves the partial index organizations_unintegrated alone
		// (neither of its columns is set), so it is for a log that already
		// has pending records; setSeqPending enters the log in it
		// (00017_unintegrated_flag.sql).
		setSeq:        prep(`UPDATE organizations SET next_seq = ? WHERE id = ?`),
		setSeqPending: prep(setSeqPendingSQL),
		idemGet:       prep(`SELECT body_hash, result FROM idempotency_keys WHERE organization_id = ? AND key = ? AND created_at > ?`),
		idemPut:       prep(`INSERT OR REPLACE INTO idempotency_keys (organization_id, key, body_hash, created_at, result) VALUES (?, ?, ?, ?, ?)`),
	}
	for i, n := range insertSizes {
		st.insert[i] = prep(insertSQL(n))
	}
	if err != nil {
		for _, s := range st.all() {
			if s != nil {
				s.Close()
			}
		}
		*st = appendDriverStmts{}
		return err
	}
	st.conn = c
	return nil
}

// The statements that read and advance an organization's log in an
// append (BenchmarkOneEventTransaction runs them through database/sql too).
const (
	orgSeqSQL        = `SELECT next_seq, unintegrated FROM organizations WHERE id = ? AND deleted_at IS NULL`
	setSeqPendingSQL = `UPDATE organizations SET next_seq = ?, unintegrated = 1 WHERE id = ?`
)

// named turns args into the driver's arguments. Every value the append
// binds is already one the driver takes (string, int64, bool, []byte).
func named(args []any) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}

func (t *appendConn) exec(s driver.Stmt, args ...any) (driver.Result, error) {
	return s.(driver.StmtExecContext).ExecContext(t.ctx, named(args))
}

// queryRow reads the first row of s into dest; false when there is none.
func (t *appendConn) queryRow(s driver.Stmt, dest []driver.Value, args ...any) (bool, error) {
	rows, err := s.(driver.StmtQueryContext).QueryContext(t.ctx, named(args))
	if err != nil {
		return false, err
	}
	err = rows.Next(dest)
	if cerr := rows.Close(); cerr != nil && (err == nil || err == io.EOF) {
		return false, cerr
	}
	if err == io.EOF {
		return false, nil
	}
	return err == nil, err
}

// finish ends the transaction: it commits when err is nil, and otherwise
// rolls back and returns err. A commit or rollback that fails leaves the
// connection in a state this code cannot know, so the error then also
// says driver.ErrBadConn, and database/sql closes the connection.
func (t *appendConn) finish(err error) error {
	if err == nil {
		if _, err = t.exec(t.st.commit); err == nil {
			return nil
		}
		err = fmt.Errorf("couldn't commit: %w", err)
	}
	if _, rerr := t.exec(t.st.rollback); rerr != nil && !noTransaction(rerr) {
		t.st.close()
		return fmt.Errorf("%w (and the rollback failed: %v; the connection is closed: %w)", err, rerr, driver.ErrBadConn)
	}
	return err
}

// noTransaction says that a ROLLBACK found no transaction: a statement
// with OR ROLLBACK, or a failed COMMIT, already ended it.
func noTransaction(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no transaction is active")
}
