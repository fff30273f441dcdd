package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

// TestUnsyncedLeavesWriterDurable checks that the integrator's unsynced
// transactions hand the writer connection back with synchronous=FULL,
// whether they commit, skip their work or fail: ingest's commits on the
// same connection must stay durable.
func TestUnsyncedLeavesWriterDurable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	head := ledger.SignedHead{Origin: "example.com/org_a", Size: 3}
	for _, tc := range []struct {
		name    string
		run     func() error
		wantErr bool
	}{
		{name: "heads recorded", run: func() error { return s.RecordSignedHeads(ctx, []ledger.SignedHead{head}) }},
		{name: "integration skipped", run: func() error {
			errs, err := s.IntegrateBatch(ctx, []ledger.Integration{{OrganizationID: "org_none", OldSize: 0, NewSize: 1, Checkpoint: []byte("c")}})
			if err == nil && errs[0] == nil {
				t.Error("integrating an unknown organization succeeded")
			}
			return err
		}},
		{name: "cancelled", wantErr: true, run: func() error { return s.RecordSignedHeads(cancelled, []ledger.SignedHead{head}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var level int
			if err := s.write.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&level); err != nil {
				t.Fatal(err)
			}
			if level != 2 {
				t.Errorf("writer's synchronous = %d after the transaction, want 2 (FULL)", level)
			}
		})
	}
	heads, err := s.SignedHeads(ctx)
	if err != nil || len(heads) != 1 || heads[0] != head {
		t.Errorf("SignedHeads = %v, %v; want %v", heads, err, head)
	}
}
