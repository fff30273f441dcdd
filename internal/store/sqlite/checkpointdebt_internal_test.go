package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestCheckpointDebt checks that pages committed to the WAL but not yet
// copied into the file count as debt, and that a checkpoint pays it.
func TestCheckpointDebt(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.stopCheckpoints() // this test checkpoints by hand
	checkpoint := func() {
		t.Helper()
		for _, db := range []*sql.DB{s.write, s.searchWrite} {
			var busy, logFrames, done int
			if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil || busy != 0 {
				t.Fatalf("checkpoint: busy %d, %v", busy, err)
			}
		}
	}
	checkpoint()
	debt := func() int64 {
		t.Helper()
		n, err := s.CheckpointDebt(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := debt(); n != 0 {
		t.Fatalf("debt after a checkpoint = %d, want 0", n)
	}
	const grown = 2 << 20
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE debt_probe (b BLOB); INSERT INTO debt_probe VALUES (zeroblob(?))`, grown); err != nil {
		t.Fatal(err)
	}
	if n := debt(); n < grown {
		t.Errorf("debt with %d bytes committed to the WAL only = %d, want at least that", grown, n)
	}
	checkpoint()
	if n := debt(); n != 0 {
		t.Errorf("debt after checkpointing = %d, want 0", n)
	}
}
