package export_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestExportPostgres runs exports through River on PostgreSQL: two
// services on one database (two replicas), each export done once, and a
// job whose replica died (left running, its export silent for two
// minutes) rescued by the other.
func TestExportPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	st, err := postgres.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer := newTestSigner(t)
	in, err := ledger.NewIntegrator(st, signer, "trail.test", ledger.Options{DataDir: t.TempDir(), Interval: 5 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	appendEvents(t, st, "org_pg", 500)
	if err := in.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // shared by both "replicas"
	newSvc := func() *export.Service {
		svc, err := export.NewPostgres(ctx, st.Pool(), export.Config{Exports: st, Log: st, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a, b := newSvc(), newSvc()
	for _, svc := range []*export.Service{a, b} {
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Stop(context.Background()) })
	}
	var ids []string
	for i := range 4 {
		format := export.FormatCSV
		if i%2 == 1 {
			format = export.FormatNDJSON
		}
		e, err := a.Create(ctx, "org_pg", format, store.ExportFilter{Actions: []string{"a1"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	for _, id := range ids {
		e := wait(t, b, id)
		if e.State != store.ExportReady || e.Exported != 167 {
			t.Fatalf("export %+v; want ready with 167 events", e)
		}
		if e.Format == export.FormatNDJSON {
			f, err := os.Open(b.Path(e))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := ledger.Verify(f, signer.VerifierKey(), ledger.VerifyOptions{})
			f.Close()
			if err != nil || rep.Records != 167 {
				t.Fatalf("NDJSON export: %v, %d records\n%s", err, rep.Records, rep.String())
			}
		}
	}
	var jobs, exports int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT args->>'export_id') FROM river_job WHERE kind = 'trail_export'`).Scan(&jobs, &exports); err != nil {
		t.Fatal(err)
	}
	if jobs != len(ids) || exports != len(ids) {
		t.Errorf("%d export jobs for %d exports, want one job for each of %d", jobs, exports, len(ids))
	}

	// A replica dies mid-export: its job stays running and its export
	// stops moving. Another replica's rescue makes the job run again.
	a.Stop(ctx)
	b.Stop(ctx)
	e, err := a.Create(ctx, "org_pg", export.FormatCSV, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE args->>'export_id' = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE exports SET updated_at = now() - interval '3 minutes' WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	c := newSvc()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	if e = wait(t, c, e.ID); e.State != store.ExportReady || e.Exported != 500 {
		t.Fatalf("rescued export %+v; want ready with all 500 events", e)
	}
}
