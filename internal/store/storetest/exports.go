package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// RunExports runs the conformance cases of store.ExportStore. open returns
// a fresh, empty, migrated export store (closed by t.Cleanup).
func runExports(t *testing.T, open func(t *testing.T) store.ExportStore) {
	t.Run("CreateAndRead", func(t *testing.T) { testExportCreate(t, open(t)) })
	t.Run("EnqueueFailureStoresNothing", func(t *testing.T) { testExportRollback(t, open(t)) })
	t.Run("ProgressAndFinish", func(t *testing.T) { testExportFinish(t, open(t)) })
	t.Run("Expire", func(t *testing.T) { testExportExpire(t, open(t)) })
	t.Run("ExpireOrganization", func(t *testing.T) { testExportExpireOrganization(t, open(t)) })
}

// testExportExpireOrganization checks the exports of one organization,
// listed and expired together when it is deleted.
func testExportExpireOrganization(t *testing.T, s store.ExportStore) {
	ctx := ctxOf(t)
	other := newExport(9, t0)
	other.OrganizationID = orgID("X", 2)
	mustCreateExport(t, s, other)
	for i := 1; i <= 3; i++ {
		mustCreateExport(t, s, newExport(i, t0.Add(time.Duration(i)*time.Second)))
	}
	ready := newExport(2, t0)
	ready.State, ready.Size = store.ExportReady, 10
	if _, err := s.FinishExport(ctx, ready, t0); err != nil {
		t.Fatal(err)
	}
	list, err := s.OrganizationExports(ctx, orgID("X", 1))
	if err != nil || len(list) != 3 || list[0].ID != newExport(1, t0).ID || list[1].State != store.ExportReady {
		t.Fatalf("OrganizationExports = %+v, %v; want 3, oldest first", list, err)
	}
	for round, want := range []int64{3, 0} {
		if n, err := s.ExpireOrganizationExports(ctx, orgID("X", 1), t0.Add(time.Minute)); err != nil || n != want {
			t.Errorf("ExpireOrganizationExports round %d = %d, %v; want %d", round, n, err, want)
		}
	}
	list, err = s.OrganizationExports(ctx, orgID("X", 1))
	if err != nil || len(list) != 3 {
		t.Fatalf("OrganizationExports after expiring = %+v, %v", list, err)
	}
	for _, e := range list {
		if e.State != store.ExportExpired {
			t.Errorf("export %s is %s after ExpireOrganizationExports, want expired", e.ID, e.State)
		}
	}
	if e, err := s.Export(ctx, other.ID); err != nil || e.State != store.ExportPending {
		t.Errorf("another organization's export = %+v, %v; want it pending still", e, err)
	}
}

func newExport(i int, created time.Time) store.Export {
	return store.Export{
		ID: fmt.Sprintf("audit_log_export_01JT%022d", i), OrganizationID: orgID("X", 1), Format: "csv",
		Filter: store.ExportFilter{RangeStart: t0, RangeEnd: t0.Add(time.Hour), Actions: []string{"user.signed_in", "a,b"},
			ActorNames: []string{"Ada"}, ActorIDs: []string{"user_1", "user_2"}, Targets: []string{"team"}},
		UpTo: 1234, State: store.ExportPending, CreatedAt: created, UpdatedAt: created,
	}
}

func mustCreateExport(t *testing.T, s store.ExportStore, e store.Export) {
	t.Helper()
	called := false
	err := s.CreateExport(ctxOf(t), e, func(ctx context.Context, tx any) error {
		called = tx != nil
		return nil
	})
	if err != nil {
		t.Fatalf("CreateExport: %v", err)
	}
	if !called {
		t.Fatal("CreateExport did not call enqueue with its transaction")
	}
}

func testExportCreate(t *testing.T, s store.ExportStore) {
	e := newExport(1, t0)
	mustCreateExport(t, s, e)
	got, err := s.Export(ctxOf(t), e.ID)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if got.ID != e.ID || got.OrganizationID != e.OrganizationID || got.Format != e.Format || got.UpTo != e.UpTo ||
		got.State != store.ExportPending || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) ||
		!got.Filter.RangeStart.Equal(e.Filter.RangeStart) || !got.Filter.RangeEnd.Equal(e.Filter.RangeEnd) ||
		!slices.Equal(got.Filter.Actions, e.Filter.Actions) || !slices.Equal(got.Filter.ActorNames, e.Filter.ActorNames) ||
		!slices.Equal(got.Filter.ActorIDs, e.Filter.ActorIDs) || !slices.Equal(got.Filter.Targets, e.Filter.Targets) {
		t.Errorf("Export read back as %+v, stored %+v", got, e)
	}
	if err := s.CreateExport(ctxOf(t), e, func(context.Context, any) error { return nil }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("creating export %s twice: %v, want ErrConflict", e.ID, err)
	}
	if _, err := s.Export(ctxOf(t), "audit_log_export_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Export of an unknown id: %v, want ErrNotFound", err)
	}
}

func testExportRollback(t *testing.T, s store.ExportStore) {
	e := newExport(2, t0)
	boom := errors.New("queue refused")
	if err := s.CreateExport(ctxOf(t), e, func(context.Context, any) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("CreateExport with a failing enqueue: %v, want its error", err)
	}
	if _, err := s.Export(ctxOf(t), e.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a failed enqueue the export exists (err %v): the export and its job must be stored together", err)
	}
}

func testExportFinish(t *testing.T, s store.ExportStore) {
	e := newExport(3, t0)
	mustCreateExport(t, s, e)
	t1 := t0.Add(time.Second)
	if err := s.UpdateExportProgress(ctxOf(t), e.ID, 500, 7, t1); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Export(ctxOf(t), e.ID)
	if got.Processed != 500 || got.Exported != 7 || !got.UpdatedAt.Equal(t1) {
		t.Errorf("after progress: %+v", got)
	}
	e.State, e.Processed, e.Exported, e.Size = store.ExportReady, 1234, 9, 4096
	if ok, err := s.FinishExport(ctxOf(t), e, t1.Add(time.Second)); err != nil || !ok {
		t.Fatalf("FinishExport = %v, %v", ok, err)
	}
	got, _ = s.Export(ctxOf(t), e.ID)
	if got.State != store.ExportReady || got.Processed != 1234 || got.Exported != 9 || got.Size != 4096 {
		t.Errorf("after finish: %+v", got)
	}
	// Only a pending export moves: a second finish (a job run twice) and
	// late progress change nothing.
	e.State, e.Error = store.ExportError, "late"
	if ok, err := s.FinishExport(ctxOf(t), e, t1.Add(2*time.Second)); err != nil || ok {
		t.Errorf("finishing a ready export = %v, %v; want false, nil", ok, err)
	}
	if err := s.UpdateExportProgress(ctxOf(t), e.ID, 1, 1, t1); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Export(ctxOf(t), e.ID)
	if got.State != store.ExportReady || got.Processed != 1234 || got.Error != "" {
		t.Errorf("a ready export changed: %+v", got)
	}
}

func testExportExpire(t *testing.T, s store.ExportStore) {
	old, fresh, failed, pending := newExport(4, t0), newExport(5, t0.Add(2*time.Hour)), newExport(6, t0), newExport(7, t0)
	for _, e := range []store.Export{old, fresh, failed, pending} {
		mustCreateExport(t, s, e)
	}
	for _, e := range []store.Export{old, fresh} {
		e.State = store.ExportReady
		if _, err := s.FinishExport(ctxOf(t), e, t0); err != nil {
			t.Fatal(err)
		}
	}
	failed.State, failed.Error = store.ExportError, "boom"
	if _, err := s.FinishExport(ctxOf(t), failed, t0); err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(time.Hour)
	expired, err := s.ExpireExports(ctxOf(t), cutoff, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range expired {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	if want := []string{old.ID, failed.ID}; !slices.Equal(ids, want) {
		t.Errorf("expired %v, want %v (ready or error, created before the cutoff; never pending)", ids, want)
	}
	for id, want := range map[string]string{old.ID: store.ExportExpired, fresh.ID: store.ExportReady, failed.ID: store.ExportExpired, pending.ID: store.ExportPending} {
		if got, _ := s.Export(ctxOf(t), id); got.State != want {
			t.Errorf("%s is %s, want %s", id, got.State, want)
		}
	}
	if again, err := s.ExpireExports(ctxOf(t), cutoff, cutoff); err != nil || len(again) != 0 {
		t.Errorf("expiring again: %d, %v; want none", len(again), err)
	}
}
