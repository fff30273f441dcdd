package storetest

import (
	"sync"
	"testing"

	"github.com/trailaudit/trail/internal/store"
)

// RunDeployment is the conformance suite of store.DeploymentStore.
func runDeployment(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("ClaimSetting", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		if got, err := s.ClaimSetting(ctx, "log_origin", "a.example/trail"); err != nil || got != "a.example/trail" {
			t.Fatalf("first claim = %q, %v; want the claimed value", got, err)
		}
		if got, err := s.ClaimSetting(ctx, "log_origin", "b.example/trail"); err != nil || got != "a.example/trail" {
			t.Fatalf("second claim = %q, %v; want the first value", got, err)
		}
		if err := s.SetSetting(ctx, "log_origin", "c.example/trail"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClaimSetting(ctx, "log_origin", "d.example/trail"); err != nil || got != "c.example/trail" {
			t.Fatalf("claim after set = %q, %v; want the set value", got, err)
		}
		all, err := s.Settings(ctx)
		if err != nil || len(all) != 1 || all["log_origin"] != "c.example/trail" {
			t.Fatalf("Settings = %v, %v", all, err)
		}
	})
	t.Run("ClaimsAtOnce", func(t *testing.T) {
		// Replicas started together each claim their own value: all of
		// them must be told the same one.
		s := open(t)
		ctx := ctxOf(t)
		var wg sync.WaitGroup
		got := make([]string, 8)
		errs := make([]error, 8)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = s.ClaimSetting(ctx, "signing_key", string(rune('a'+i)))
			}()
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i] != got[0] {
				t.Fatalf("concurrent claims answered %q (errors %v): want one value for all", got, errs)
			}
		}
	})
}

// runLeases is the conformance case of store.LeaseStore that every backend
// shares: a fresh database has no lease (package lease's own tests check
// what a holder writes, on PostgreSQL, where leases exist).
func runLeases(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	leases, err := s.Leases(ctxOf(t))
	if err != nil || len(leases) != 0 {
		t.Fatalf("Leases on a fresh database = %+v, %v; want none", leases, err)
	}
}
