package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/trailaudit/trail/internal/event"
)

// BenchmarkOneEventTransaction is the statements of a one-event append
// (read the organization's next seq, insert the event, advance next_seq,
// commit), with nothing else of Append around them, run two ways on the
// store's writer: through database/sql's Tx with prepared statements, as
// Append did, and on the driver's connection with BEGIN IMMEDIATE and
// COMMIT prepared once like the rest, as Append does (appendConn). The
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
				orgSeq := prep(orgSeqSQL)
				insert := prep(insertSQL(1))
				setSeqPending := prep(setSeqPendingSQL)
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
			// The driver's connection, as Append uses it (writertx.go).
			conn, err := s.write.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			err = conn.Raw(func(dc any) error {
				if err := s.stmts.writer.prepareOn(ctx, dc.(driver.Conn)); err != nil {
					return err
				}
				tx := &appendConn{ctx: ctx, st: &s.stmts.writer}
				row := make([]driver.Value, 2)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := tx.exec(tx.st.begin); err != nil {
						return err
					}
					if _, err := tx.queryRow(tx.st.orgSeq, row, org); err != nil {
						return err
					}
					next := row[0].(int64)
					res, err := tx.exec(tx.st.insert[len(insertSizes)-1], org, next, evs[i].id, record(i, next), false)
					if err != nil {
						return err
					}
					if _, err := res.LastInsertId(); err != nil {
						return err
					}
					if _, err := tx.exec(tx.st.setSeqPending, next+1, org); err != nil {
						return err
					}
					if err := tx.finish(nil); err != nil {
						return err
					}
				}
				b.StopTimer()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
