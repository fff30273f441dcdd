package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/store/storetest"
)

// TestLedgerConformance runs the shared ledger storage suite; the tests of
// ledger_test.go are the SQLite-specific ones (query plans, a tampered or
// restored file).
func TestLedgerConformance(t *testing.T) {
	storetest.RunLedger(t, storetest.LedgerBackend{
		Open: func(t *testing.T) storetest.LedgerStore {
			return lgOpen(t, filepath.Join(t.TempDir(), "trail.db"))
		},
		DeleteRecord: func(t *testing.T, s storetest.LedgerStore, org string, seq int64) {
			if _, err := s.(*Store).write.ExecContext(context.Background(), `DELETE FROM events WHERE organization_id = ? AND seq = ?`, org, seq); err != nil {
				t.Fatal(err)
			}
		},
		InsertCheckpoint: func(t *testing.T, s storetest.LedgerStore, org string, size int64, note string) {
			if _, err := s.(*Store).write.ExecContext(context.Background(), `INSERT INTO ledger_checkpoints VALUES (?, ?, ?, 0)`, org, size, note); err != nil {
				t.Fatal(err)
			}
		},
	})
}
