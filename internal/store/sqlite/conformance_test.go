package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/storetest"
)

// TestConformance runs the shared suite of store.Backend; the other tests
// of this package are the SQLite-specific ones (query plans, the search
// file, a tampered or restored file).
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Driver[*Store]{
		Open: func(t *testing.T) *Store {
			s, err := Open(t.Context(), filepath.Join(t.TempDir(), "trail.db"), nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			return s
		},
		OpenExports: func(t *testing.T) store.ExportStore {
			x, err := OpenExports(t.Context(), ExportsPath(filepath.Join(t.TempDir(), "trail.db")))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { x.Close() })
			return x
		},
		DeleteRecord: func(t *testing.T, s *Store, org string, seq int64) {
			if _, err := s.write.ExecContext(context.Background(), `DELETE FROM events WHERE organization_id = ? AND seq = ?`, org, seq); err != nil {
				t.Fatal(err)
			}
		},
		InsertCheckpoint: func(t *testing.T, s *Store, org string, size int64, note string) {
			if _, err := s.write.ExecContext(context.Background(), `INSERT INTO ledger_checkpoints VALUES (?, ?, ?, 0)`, org, size, note); err != nil {
				t.Fatal(err)
			}
		},
		Sweeper: func(s *Store, days, batch int, now func() time.Time) storetest.Sweep {
			sw := retention.New(s, retention.Options{DefaultDays: days, BatchSize: batch, Now: now}, nil, nil)
			return func(ctx context.Context) (int64, []string, error) {
				res, err := sw.Sweep(ctx)
				return res.Records, res.Partitions, err
			}
		},
	})
}
