package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// testCosignatures checks ledger.CosignatureStorage: cosignatures are read
// back per checkpoint and per witness's largest, a second one of the same
// checkpoint and witness replaces the first, and witness sizes keep the last
// stored.
func testCosignatures[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	const w1, w2 = "w1.example+0a0b0c0d+AAAA", "w2.example+01020304+BBBB"
	cs := func(org string, size int64, w, line string) ledger.Cosignature {
		return ledger.Cosignature{OrganizationID: org, Size: size, Witness: w, Line: line}
	}
	steps := []struct {
		name   string
		cosigs []ledger.Cosignature
		sizes  []ledger.WitnessSize
	}{
		{"first", []ledger.Cosignature{cs("org_a", 5, w2, "— w2 c1\n"), cs("org_a", 5, w1, "— w1 a\n")},
			[]ledger.WitnessSize{{Witness: w1, Origin: "trail.test/org_a", Size: 5}, {Witness: w2, Origin: "trail.test/org_a", Size: 5}}},
		{"replaced and later", []ledger.Cosignature{cs("org_a", 5, w2, "— w2 c\n"), cs("org_a", 9, w1, "— w1 b\n"), cs("org_b", 3, w1, "— w1 x\n")},
			[]ledger.WitnessSize{{Witness: w1, Origin: "trail.test/org_a", Size: 7}, {Witness: w1, Origin: "trail.test/org_a", Size: 9}}},
		{"sizes only", nil, []ledger.WitnessSize{{Witness: w2, Origin: "trail.test/org_b", Size: 4}}},
		{"nothing", nil, nil},
	}
	for _, st := range steps {
		if err := s.StoreCosignatures(ctx, st.cosigs, st.sizes); err != nil {
			t.Fatalf("StoreCosignatures(%s): %v", st.name, err)
		}
	}
	reads := []struct {
		name string
		read func() ([]ledger.Cosignature, error)
		want []ledger.Cosignature
	}{
		{"org_a size 5", func() ([]ledger.Cosignature, error) { return s.Cosignatures(ctx, "org_a", 5) },
			[]ledger.Cosignature{cs("org_a", 5, w1, "— w1 a\n"), cs("org_a", 5, w2, "— w2 c\n")}},
		{"org_a size 9", func() ([]ledger.Cosignature, error) { return s.Cosignatures(ctx, "org_a", 9) },
			[]ledger.Cosignature{cs("org_a", 9, w1, "— w1 b\n")}},
		{"org_a size 6", func() ([]ledger.Cosignature, error) { return s.Cosignatures(ctx, "org_a", 6) }, nil},
		{"org_c size 5", func() ([]ledger.Cosignature, error) { return s.Cosignatures(ctx, "org_c", 5) }, nil},
		{"org_a latest", func() ([]ledger.Cosignature, error) { return s.LatestCosignatures(ctx, "org_a") },
			[]ledger.Cosignature{cs("org_a", 9, w1, "— w1 b\n"), cs("org_a", 5, w2, "— w2 c\n")}},
		{"org_b latest", func() ([]ledger.Cosignature, error) { return s.LatestCosignatures(ctx, "org_b") },
			[]ledger.Cosignature{cs("org_b", 3, w1, "— w1 x\n")}},
		{"org_c latest", func() ([]ledger.Cosignature, error) { return s.LatestCosignatures(ctx, "org_c") }, nil},
	}
	for _, r := range reads {
		got, err := r.read()
		if err != nil || !slices.Equal(got, r.want) {
			t.Errorf("%s: got %+v, %v; want %+v", r.name, got, err, r.want)
		}
	}
	sizes := []struct {
		witness, origin string
		want            int64
	}{
		{w1, "trail.test/org_a", 9},
		{w2, "trail.test/org_a", 5},
		{w2, "trail.test/org_b", 4},
		{w1, "trail.test/org_b", 0},
		{w1, "trail.test/org_none", 0},
	}
	for _, c := range sizes {
		if got, err := s.WitnessSize(ctx, c.witness, c.origin); err != nil || got != c.want {
			t.Errorf("WitnessSize(%s, %s) = %d, %v; want %d", c.witness, c.origin, got, err, c.want)
		}
	}
}
