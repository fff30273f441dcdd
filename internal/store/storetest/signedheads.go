package storetest

import (
	"context"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// testSignedHeads checks ledger.HeadStorage: heads are read back ordered by
// origin, a larger head replaces an origin's, and a smaller or equal one
// never does (the fork guard's record only grows), also within one call.
func testSignedHeads[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	root := func(n byte) tlog.Hash {
		var h tlog.Hash
		for k := range h {
			h[k] = n + byte(k)
		}
		return h
	}
	head := func(origin string, size int64, n byte) ledger.SignedHead {
		return ledger.SignedHead{Origin: origin, Size: size, Hash: root(n)}
	}
	const a, b2, c = "trail.test/org_a", "trail.test/org_b", "other.example/org_a"
	steps := []struct {
		name  string
		heads []ledger.SignedHead
		want  []ledger.SignedHead
	}{
		{"none", nil, nil},
		{"first", []ledger.SignedHead{head(b2, 3, 1), head(a, 5, 2)},
			[]ledger.SignedHead{head(a, 5, 2), head(b2, 3, 1)}},
		{"larger replaces", []ledger.SignedHead{head(a, 9, 3), head(c, 1, 4)},
			[]ledger.SignedHead{head(c, 1, 4), head(a, 9, 3), head(b2, 3, 1)}},
		{"smaller and equal are ignored", []ledger.SignedHead{head(a, 7, 5), head(b2, 3, 6)},
			[]ledger.SignedHead{head(c, 1, 4), head(a, 9, 3), head(b2, 3, 1)}},
		{"the largest of one call wins", []ledger.SignedHead{head(b2, 8, 7), head(b2, 4, 8)},
			[]ledger.SignedHead{head(c, 1, 4), head(a, 9, 3), head(b2, 8, 7)}},
		{"size 0", []ledger.SignedHead{head("trail.test/org_z", 0, 9)},
			[]ledger.SignedHead{head(c, 1, 4), head(a, 9, 3), head(b2, 8, 7), head("trail.test/org_z", 0, 9)}},
	}
	for _, st := range steps {
		if err := s.RecordSignedHeads(ctx, st.heads); err != nil {
			t.Fatalf("RecordSignedHeads(%s): %v", st.name, err)
		}
		got, err := s.SignedHeads(ctx)
		if err != nil {
			t.Fatalf("SignedHeads after %s: %v", st.name, err)
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("SignedHeads after %s:\n got %v\nwant %v", st.name, got, st.want)
		}
	}
}
