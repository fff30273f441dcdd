package storetest

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

func keyID(i int) string { return fmt.Sprintf("key_01JT%022d", i) }

func testKey(i int, org string, created time.Time) store.APIKey {
	secret := fmt.Sprintf("sk_test_%040d", i)
	return store.APIKey{
		ID:             keyID(i),
		Name:           fmt.Sprintf("key %d", i),
		Hash:           sha256.Sum256([]byte(secret)),
		Prefix:         secret[:12],
		Scopes:         []string{"events:write", "events:read"},
		OrganizationID: org,
		CreatedAt:      created,
	}
}

func checkKey(t *testing.T, got, want store.APIKey) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Hash != want.Hash || got.Prefix != want.Prefix ||
		!slices.Equal(got.Scopes, want.Scopes) || got.OrganizationID != want.OrganizationID ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.RevokedAt, want.RevokedAt) {
		t.Errorf("API key = %+v\nwant %+v", got, want)
	}
}

func testAPIKeys(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("CreateAndRead", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		org := mustCreateOrg(t, s, orgID("K", 1), t0).ID
		if n, err := s.CountAPIKeys(ctx); err != nil || n != 0 {
			t.Fatalf("CountAPIKeys on a fresh store = %d, %v; want 0, nil", n, err)
		}
		keys := []store.APIKey{
			testKey(1, "", t0),
			testKey(2, org, t0.Add(time.Millisecond)),
		}
		keys[1].Scopes = []string{"admin"}
		for _, k := range keys {
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
			}
		}
		for _, k := range keys {
			got, err := s.APIKey(ctx, k.ID)
			if err != nil {
				t.Fatalf("APIKey(%s): %v", k.ID, err)
			}
			checkKey(t, got, k)
			got, err = s.APIKeyByHash(ctx, k.Hash)
			if err != nil {
				t.Fatalf("APIKeyByHash(%x): %v", k.Hash, err)
			}
			checkKey(t, got, k)
		}
		if n, err := s.CountAPIKeys(ctx); err != nil || n != len(keys) {
			t.Errorf("CountAPIKeys = %d, %v; want %d, nil", n, err, len(keys))
		}

		_, err := s.APIKey(ctx, "key_unknown")
		wantErr(t, "APIKey(unknown)", err, store.ErrNotFound)
		_, err = s.APIKeyByHash(ctx, sha256.Sum256([]byte("sk_unknown")))
		wantErr(t, "APIKeyByHash(unknown)", err, store.ErrNotFound)

		dupID := testKey(3, "", t0)
		dupID.ID = keys[0].ID
		wantErr(t, "CreateAPIKey with an existing id", s.CreateAPIKey(ctx, dupID), store.ErrConflict)
		dupHash := testKey(4, "", t0)
		dupHash.Hash = keys[1].Hash
		wantErr(t, "CreateAPIKey with an existing hash", s.CreateAPIKey(ctx, dupHash), store.ErrConflict)
		if n, err := s.CountAPIKeys(ctx); err != nil || n != len(keys) {
			t.Errorf("CountAPIKeys after rejected creates = %d, %v; want %d, nil", n, err, len(keys))
		}
		// The key that lost the race for a hash did not replace the winner.
		if got, err := s.APIKeyByHash(ctx, keys[1].Hash); err != nil || got.ID != keys[1].ID {
			t.Errorf("APIKeyByHash after a duplicate = %+v, %v; want %s", got, err, keys[1].ID)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		k := testKey(1, "", t0)
		other := testKey(2, "", t0)
		for _, k := range []store.APIKey{k, other} {
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
		}
		first, second := t0.Add(time.Hour), t0.Add(2*time.Hour)
		if err := s.RevokeAPIKey(ctx, k.ID, first); err != nil {
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID, second); err != nil {
			t.Fatalf("RevokeAPIKey a second time: %v (revoking twice is not an error)", err)
		}
		k.RevokedAt = first // the first revocation is kept
		got, err := s.APIKey(ctx, k.ID)
		if err != nil {
			t.Fatalf("APIKey: %v", err)
		}
		checkKey(t, got, k)
		// A revoked key is still found by its hash (to answer "revoked", not "unknown").
		got, err = s.APIKeyByHash(ctx, k.Hash)
		if err != nil {
			t.Fatalf("APIKeyByHash of a revoked key: %v", err)
		}
		checkKey(t, got, k)
		// Other keys are untouched.
		got, err = s.APIKey(ctx, other.ID)
		if err != nil {
			t.Fatalf("APIKey: %v", err)
		}
		checkKey(t, got, other)
		// Revoked keys still count.
		if n, err := s.CountAPIKeys(ctx); err != nil || n != 2 {
			t.Errorf("CountAPIKeys = %d, %v; want 2, nil", n, err)
		}
		wantErr(t, "RevokeAPIKey(unknown)", s.RevokeAPIKey(ctx, "key_unknown", first), store.ErrNotFound)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		ctx := ctxOf(t)
		orgA := mustCreateOrg(t, s, orgID("K", 1), t0).ID
		orgB := mustCreateOrg(t, s, orgID("K", 2), t0).ID
		var all, ofA []string
		for i := range 17 {
			org := ""
			switch i % 3 {
			case 1:
				org = orgA
			case 2:
				org = orgB
			}
			k := testKey(i, org, t0.Add(time.Duration(i)*time.Millisecond))
			if err := s.CreateAPIKey(ctx, k); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
			all = append(all, k.ID)
			if org == orgA {
				ofA = append(ofA, k.ID)
			}
		}
		if err := s.RevokeAPIKey(ctx, all[4], t0); err != nil { // revoked keys are listed too
			t.Fatalf("RevokeAPIKey: %v", err)
		}
		id := func(k store.APIKey) string { return k.ID }
		for _, c := range listCases {
			t.Run(c.name, func(t *testing.T) {
				checkList(t, func(p store.ListParams) (store.ListPage[store.APIKey], error) {
					return s.ListAPIKeys(ctxOf(t), p)
				}, id, all, c.order, c.limit)
			})
			t.Run("Organization"+c.name, func(t *testing.T) {
				checkList(t, func(p store.ListParams) (store.ListPage[store.APIKey], error) {
					p.OrganizationID = orgA
					return s.ListAPIKeys(ctxOf(t), p)
				}, id, ofA, c.order, c.limit)
			})
		}
		t.Run("Fields", func(t *testing.T) {
			page, err := s.ListAPIKeys(ctx, store.ListParams{Order: store.OrderAsc, Limit: 100})
			if err != nil || len(page.Data) != len(all) {
				t.Fatalf("ListAPIKeys = %d keys, %v; want %d", len(page.Data), err, len(all))
			}
			want := testKey(4, orgA, t0.Add(4*time.Millisecond))
			want.RevokedAt = t0
			checkKey(t, page.Data[4], want)
		})
		t.Run("UnknownOrganization", func(t *testing.T) {
			page, err := s.ListAPIKeys(ctx, store.ListParams{OrganizationID: "org_unknown", Limit: 10})
			if err != nil || len(page.Data) != 0 {
				t.Errorf("ListAPIKeys(org_unknown) = %+v, %v; want an empty page", page, err)
			}
		})
	})
}
