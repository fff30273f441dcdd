package ops_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/trailtest"
)

// A graceful stop signs what it acknowledged last: right after the
// process exits, every organization's stored checkpoint covers every
// record, so nothing acknowledged waits for the next start to be in the
// signed history (docs/OPERATIONS.md).
func TestStopSignsEverythingAcknowledged(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			data := t.TempDir()
			var srv *trailtest.Server
			var open func() (ledger.Storage, func())
			switch backend {
			case "sqlite":
				srv = trailtest.Start(t, trailtest.Options{Data: data})
				open = func() (ledger.Storage, func()) {
					st, err := sqlite.OpenCurrent(ctx, filepath.Join(data, "trail.db"), nil)
					if err != nil {
						t.Fatal(err)
					}
					return st, func() { st.Close() }
				}
			case "postgres":
				f := newFleet(t)
				srv = f.start(t, trailtest.Binary(t), data)
				open = func() (ledger.Storage, func()) {
					st, err := postgres.OpenCurrent(ctx, f.dsn, nil)
					if err != nil {
						t.Fatal(err)
					}
					return st, func() { st.Close() }
				}
			}
			dumpOnFailure(t, func() []*trailtest.Server { return []*trailtest.Server{srv} })
			orgs := createOrgs(t, srv, 3)
			tr := newTracker()
			// Several rounds, the last one right before the stop: a trickle
			// is signed at most every LogInterval, so without a last pass
			// at the stop the final events would be left unsigned.
			for range 5 {
				if a, ok := tr.batch(srv.URL, srv.Key, orgs, 7); !ok {
					t.Fatalf("ingest: %d %v %s", a.code, a.err, a.body)
				}
			}
			if err := srv.Stop(t); err != nil {
				t.Fatalf("trail serve exited with %v\n%s", err, srv.Logs())
			}
			st, done := open()
			defer done()
			for _, org := range orgs {
				ls, err := st.LogState(ctx, org)
				if err != nil {
					t.Fatalf("log state of %s: %v", org, err)
				}
				if ls.IntegratedSize != ls.NextSeq || ls.NextSeq == 0 {
					t.Errorf("%s after the stop: %d of %d records covered by the stored checkpoint; want all", org, ls.IntegratedSize, ls.NextSeq)
				}
			}
		})
	}
}
