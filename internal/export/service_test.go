package export_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/export"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// epoch is ten days before the tests start, on the real clock that the
// export service reads: events from it on, a minute apart, stay in the past
// whatever the date.
var epoch = time.Now().UTC().Truncate(time.Minute).Add(-10 * 24 * time.Hour)

// fixture is a SQLite store with an integrator and an export service.
type fixture struct {
	st     *sqlite.Store
	xs     *sqlite.Exports
	svc    *export.Service
	signer *ledger.Signer
	in     *ledger.Integrator
	dir    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer := newTestSigner(t)
	in, err := ledger.NewIntegrator(st, signer, "trail.test", ledger.Options{DataDir: dir, Interval: 5 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Stop)
	xs, err := sqlite.OpenExports(ctx, sqlite.ExportsPath(st.Path()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xs.Close() })
	f := &fixture{st: st, xs: xs, signer: signer, in: in, dir: filepath.Join(dir, "exports")}
	f.svc = f.service(t)
	return f
}

func (f *fixture) service(t testing.TB) *export.Service {
	svc, err := export.NewSQLite(context.Background(), f.xs.DB(), export.Config{Exports: f.xs, Log: f.st, Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (f *fixture) start(t *testing.T, svc *export.Service) {
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop(context.Background()) })
}

// add appends n events to org (see appendEvents) and waits for them to be
// integrated.
func (f *fixture) add(t *testing.T, org string, n int) {
	t.Helper()
	appendEvents(t, f.st, org, n)
	if err := f.in.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// appendEvents appends n events to org (created if need be): event i has
// action a<i%3>, actor user_<i%5> and a target of type t<i%2>, and
// occurred i minutes after epoch.
func appendEvents(t testing.TB, st store.Store, org string, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Organization(ctx, org); err != nil {
		if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: epoch, UpdatedAt: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	var sub store.Submission
	now := time.Now()
	for i := range n {
		raw := fmt.Sprintf(`{"action":"a%d","occurred_at":%q,"actor":{"id":"user_%d","type":"user","name":"Name %d"},`+
			`"targets":[{"id":"x","type":"t%d"}],"context":{"location":"203.0.113.7"}}`,
			i%3, epoch.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i%5, i%5, i%2)
		d, err := event.ParseEvent([]byte(raw), now, event.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
	}
	res, err := st.Append(ctx, []store.Submission{sub}, now)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Append: %v %v", err, res[0].Err)
	}
}

func newTestSigner(t testing.TB) *ledger.Signer {
	skey, _, err := note.GenerateKey(rand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// wait polls the export until it leaves pending.
func wait(t *testing.T, svc *export.Service, id string) store.Export {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		e, err := svc.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.State != store.ExportPending {
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("export %s still pending: %+v", id, e)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestExportCSV(t *testing.T) {
	f := newFixture(t)
	f.start(t, f.svc)
	f.add(t, "org_a", 300)
	f.add(t, "org_b", 10)
	for _, tc := range []struct {
		name   string
		filter store.ExportFilter
		want   int
	}{
		{"everything", store.ExportFilter{}, 300},
		{"range", store.ExportFilter{RangeStart: epoch.Add(10 * time.Minute), RangeEnd: epoch.Add(20 * time.Minute)}, 10},
		{"actions", store.ExportFilter{Actions: []string{"a0", "a1"}}, 200},
		{"actor ids", store.ExportFilter{ActorIDs: []string{"user_1"}}, 60},
		{"actor names", store.ExportFilter{ActorNames: []string{"Name 2", "Name 3"}}, 120},
		{"targets", store.ExportFilter{Targets: []string{"t1"}}, 150},
		{"combined", store.ExportFilter{Actions: []string{"a0"}, Targets: []string{"t0"}, RangeEnd: epoch.Add(60 * time.Minute)}, 10},
		{"nothing", store.ExportFilter{Actions: []string{"none"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := f.svc.Create(context.Background(), "org_a", export.FormatCSV, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			e = wait(t, f.svc, e.ID)
			if e.State != store.ExportReady || e.Exported != int64(tc.want) || e.Processed != 300 || e.UpTo != 300 {
				t.Fatalf("export %+v; want ready with %d of 300 events", e, tc.want)
			}
			raw, err := os.ReadFile(f.svc.Path(e))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(raw)) != e.Size {
				t.Errorf("file has %d bytes, export says %d", len(raw), e.Size)
			}
			rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.want+1 {
				t.Fatalf("%d rows, want %d and a header", len(rows)-1, tc.want)
			}
			for _, row := range rows[1:] {
				if tc.filter.Actions != nil && row[2] != tc.filter.Actions[0] && (len(tc.filter.Actions) < 2 || row[2] != tc.filter.Actions[1]) {
					t.Errorf("row of action %s in an export of %v", row[2], tc.filter.Actions)
				}
			}
		})
	}
}

func TestExportNDJSONVerifies(t *testing.T) {
	f := newFixture(t)
	f.start(t, f.svc)
	f.add(t, "org_a", 1000)
	e, err := f.svc.Create(context.Background(), "org_a", export.FormatNDJSON, store.ExportFilter{Actions: []string{"a1"}})
	if err != nil {
		t.Fatal(err)
	}
	e = wait(t, f.svc, e.ID)
	if e.State != store.ExportReady || e.Exported != 333 {
		t.Fatalf("export %+v; want ready with 333 events", e)
	}
	file, err := os.Open(f.svc.Path(e))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	rep, err := ledger.Verify(file, f.signer.VerifierKey(), ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("the NDJSON export does not verify: %v\n%s", err, rep.String())
	}
	if rep.Records != 333 || !rep.Subset {
		t.Errorf("verified %d records (subset %v), want 333", rep.Records, rep.Subset)
	}
}

// An export of a date range that starts late in a long log reads the log
// from the first event that may be in it, not from the start, in both
// formats; what it exports is the same, and the NDJSON bundle verifies.
func TestExportSkipsToTheRange(t *testing.T) {
	f := newFixture(t)
	f.start(t, f.svc)
	f.add(t, "org_a", 6000) // event i occurred i minutes after epoch
	for {                   // the search file says where the range starts
		n, err := f.st.IndexPending(context.Background(), 10_000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	for _, tc := range []struct {
		name          string
		format        string
		filter        store.ExportFilter
		read, matched int64
	}{
		{"late start", export.FormatCSV, store.ExportFilter{RangeStart: epoch.Add(5000 * time.Minute)}, 1000, 1000},
		{"late start and end", export.FormatCSV, store.ExportFilter{RangeStart: epoch.Add(4500 * time.Minute), RangeEnd: epoch.Add(4600 * time.Minute)}, 1500, 100},
		{"late start, NDJSON", export.FormatNDJSON, store.ExportFilter{RangeStart: epoch.Add(5000 * time.Minute), Actions: []string{"a1"}}, 1000, 333},
		// More than a quarter of the log: one sequential read is cheaper.
		{"early start", export.FormatCSV, store.ExportFilter{RangeStart: epoch.Add(1000 * time.Minute)}, 6000, 5000},
		{"no start", export.FormatCSV, store.ExportFilter{RangeEnd: epoch.Add(10 * time.Minute)}, 6000, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := f.svc.Create(context.Background(), "org_a", tc.format, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			e = wait(t, f.svc, e.ID)
			if e.State != store.ExportReady || e.Processed != tc.read || e.Exported != tc.matched {
				t.Fatalf("export %+v; want ready, %d events read, %d exported", e, tc.read, tc.matched)
			}
			file := mustOpen(t, f.svc.Path(e))
			defer file.Close()
			if tc.format == export.FormatNDJSON {
				rep, err := ledger.Verify(file, f.signer.VerifierKey(), ledger.VerifyOptions{})
				if err != nil || rep.Records != tc.matched {
					t.Fatalf("the bundle verifies %d records (%v), want %d\n%s", rep.Records, err, tc.matched, rep.String())
				}
				return
			}
			rows, err := csv.NewReader(file).ReadAll()
			if err != nil || int64(len(rows)) != tc.matched+1 {
				t.Fatalf("%d CSV rows (%v), want %d and a header", len(rows)-1, err, tc.matched)
			}
		})
	}
}

// TestExportResumesAfterCrash leaves a job marked running, as a process
// killed mid-export does, and checks that the next start runs it to ready.
func TestExportResumesAfterCrash(t *testing.T) {
	f := newFixture(t)
	f.add(t, "org_a", 50)
	e, err := f.svc.Create(context.Background(), "org_a", export.FormatCSV, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// The job was fetched by a worker that then died.
	if _, err := f.xs.DB().Exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = CURRENT_TIMESTAMP WHERE kind = 'trail_export'`); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	partial := f.svc.Path(e) + ".1.partial"
	if err := os.WriteFile(partial, []byte("id,occurred_at\r\nhalf a ro"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.start(t, f.svc)
	e = wait(t, f.svc, e.ID)
	if e.State != store.ExportReady || e.Exported != 50 {
		t.Fatalf("after the restart: %+v; want ready with 50 events", e)
	}
	rows, err := csv.NewReader(mustOpen(t, f.svc.Path(e))).ReadAll()
	if err != nil || len(rows) != 51 {
		t.Fatalf("file: %d rows, %v; want 51", len(rows), err)
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

func TestSweepExpires(t *testing.T) {
	f := newFixture(t)
	f.add(t, "org_a", 5)
	now := time.Now()
	var clock atomic.Int64 // the service's clock, moved by the test
	clock.Store(now.UnixNano())
	svc, err := export.NewSQLite(context.Background(), f.xs.DB(), export.Config{Exports: f.xs, Log: f.st, Dir: f.dir,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	f.start(t, svc)
	e, err := svc.Create(context.Background(), "org_a", export.FormatCSV, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	e = wait(t, svc, e.ID)
	if _, err := os.Stat(svc.Path(e)); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("Sweep of a fresh export = %d, %v", n, err)
	}
	clock.Store(now.Add(export.Lifetime + time.Second).UnixNano())
	if n, err := svc.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("Sweep after 24 h = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(svc.Path(e)); !os.IsNotExist(err) {
		t.Errorf("the expired export's file is still there: %v", err)
	}
	if got, _ := svc.Get(context.Background(), e.ID); got.State != store.ExportExpired {
		t.Errorf("state %s, want expired", got.State)
	}
}
