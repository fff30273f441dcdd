package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"testing"

	"github.com/trailaudit/trail/internal/event"
)

// BenchmarkOneEventTransaction is the statements of a one-event append
// (read the organization's next seq, insert the event, advance next_seq,
// commit), with nothing else of Append around them, run two ways on the
// store's writer: through database/sql's Tx with the store's prepared
// statements, as Append does, and on the driver's connection directly,
// with BEGIN IMMEDIATE and COMMIT prepared once like the rest. The
// difference is what database/sql's transaction and a BEGIN parsed at
// each call cost a lone client's commit (docs/PERFORMANCE.md, "One
// client: what database/sql's transaction costs").
func BenchmarkOneEventTransaction(b *testing.B) {
	for _, way := range []string{"database-sql", "driver"} {
		b.Run("via="+way, func(b *testing.B) {
			s := openBench(b)
			defer func() {
				var n, next int64
				if err := s.write.QueryRowContext(context.Background(), `SELECT (SELECT count(*) FROM events), (SELECT next_seq FROM organizations WHERE id = ?)`, benchOrg(0)).Scan(&n, &next); err != nil {
					b.Fatal(err)
				}
				if n != int64(b.N) || next != int64(b.N) {
					b.Fatalf("%d events stored and next_seq %d after %d transactions", n, next, b.N)
				}
			}()
			ctx := context.Background()
			evs := benchEvents(b, b.N)
			org := benchOrg(0)
			record := func(i int, seq int64) []byte {
				a := event.Accepted{ID: evs[i].id, OrganizationID: org, Seq: seq, ReceivedAt: evs[i].received}
				return event.AppendRecord(nil, a, evs[i].tail)
			}
			if way == "database-sql" {
				var err error
				prep := func(q string) *sql.Stmt {
					if err != nil {
						return nil
					}
					var st *sql.Stmt
					st, err = s.write.PrepareContext(ctx, q)
					return st
				}
				orgSeq := prep(`SELECT next_seq, unintegrated FROM organizations WHERE id = ? AND deleted_at IS NULL`)
				insert := prep(insertSQL(1))
				setSeqPending := prep(`UPDATE organizations SET next_seq = ?, unintegrated = 1 WHERE id = ?`)
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					tx, err := s.write.BeginTx(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					var next int64
					var unintegrated bool
					if err := tx.StmtContext(ctx, orgSeq).QueryRowContext(ctx, org).Scan(&next, &unintegrated); err != nil {
						b.Fatal(err)
					}
					res, err := tx.StmtContext(ctx, insert).ExecContext(ctx, org, next, evs[i].id, record(i, next), false)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := res.LastInsertId(); err != nil {
						b.Fatal(err)
					}
					if _, err := tx.StmtContext(ctx, setSeqPending).ExecContext(ctx, next+1, org); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			conn, err := s.write.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			err = conn.Raw(func(dc any) error {
				c, ok := dc.(driver.ConnPrepareContext)
				if !ok {
					return errors.New("the driver's connection cannot prepare with a context")
				}
				prep := func(q string) driver.Stmt {
					if err != nil {
						return nil
					}
					var st driver.Stmt
					st, err = c.PrepareContext(ctx, q)
					return st
				}
				begin, commit := prep("BEGIN IMMEDIATE"), prep("COMMIT")
				orgSeq := prep(`SELECT next_seq, unintegrated FROM organizations WHERE id = ? AND deleted_at IS NULL`)
				ins := prep(insertSQL(1))
				setSeq := prep(`UPDATE organizations SET next_seq = ?, unintegrated = 1 WHERE id = ?`)
				if err != nil {
					return err
				}
				exec := func(st driver.Stmt, args ...driver.NamedValue) (driver.Result, error) {
					return st.(driver.StmtExecContext).ExecContext(ctx, args)
				}
				arg := func(vs ...any) []driver.NamedValue {
					out := make([]driver.NamedValue, len(vs))
					for i, v := range vs {
						out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
					}
					return out
				}
				dest := make([]driver.Value, 2)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := exec(begin); err != nil {
						return err
					}
					rows, err := orgSeq.(driver.StmtQueryContext).QueryContext(ctx, arg(org))
					if err != nil {
						return err
					}
					if err := rows.Next(dest); err != nil && err != io.EOF {
						return err
					}
					next := dest[0].(int64)
					if err := rows.Close(); err != nil {
						return err
					}
					res, err := exec(ins, arg(org, next, evs[i].id, record(i, next), false)...)
					if err != nil {
						return err
					}
					if _, err := res.LastInsertId(); err != nil {
						return err
					}
					if _, err := exec(setSeq, arg(next+1, org)...); err != nil {
						return err
					}
					if _, err := exec(commit); err != nil {
						return err
					}
				}
				b.StopTimer()
				for _, st := range []driver.Stmt{begin, commit, orgSeq, ins, setSeq} {
					st.Close()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
