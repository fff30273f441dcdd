package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// TestProofsProperty grows logs by random amounts with random batch sizes,
// and after each integration checks random inclusion and consistency proofs
// with tlog and with transparency-dev/merkle, and that tampered proofs fail.
func TestProofsProperty(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seed  uint64
		first int // records before the random steps (crosses tile levels)
		steps int
	}{
		{"small", 1, 0, 40},
		{"medium", 2, 3000, 25},
		{"level2", 3, 70_000, 8}, // beyond 65,536 leaves: level-2 tiles
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 99))
			m := newMemStorage()
			signer := newSigner(t)
			i := startIntegrator(t, m, signer, t.TempDir(), ledger.Options{Batch: 1 + rng.IntN(5000)})
			const org = "org_prop"
			o := newOracle()
			var n int64
			grow := func(k int) {
				addRecords(m, org, k)
				for s := n; s < n+int64(k); s++ {
					o.add(t, record(org, s))
				}
				n += int64(k)
				waitIdle(t, i)
			}
			if tc.first > 0 {
				grow(tc.first)
			}
			for range tc.steps {
				grow(rng.IntN(rng.IntN(2000) + 1))
				if n == 0 {
					continue
				}
				if c := latest(t, m, signer, org); c.Size != n || c.Hash != o.root(n) {
					t.Fatalf("checkpoint (%d, %s), want (%d, %s)", c.Size, c.Hash, n, o.root(n))
				}
				for range 25 {
					size := 1 + rng.Int64N(n)
					checkInclusion(t, rng, m, o, org, rng.Int64N(size), size)
					to := rng.Int64N(n + 1)
					checkConsistency(t, rng, m, o, org, rng.Int64N(to+1), to)
				}
			}
			// Every checkpoint ever signed commits to the right tree.
			m.Mu.Lock()
			sizes := slices.Sorted(func(yield func(int64) bool) {
				for s := range m.Logs[org].Checkpoints {
					if !yield(s) {
						return
					}
				}
			})
			m.Mu.Unlock()
			for _, s := range sizes {
				msg, err := m.Checkpoint(context.Background(), org, s)
				if err != nil {
					t.Fatal(err)
				}
				c, err := ledger.ParseCheckpoint(msg, signer.Verifier())
				if err != nil || c.Size != s || c.Hash != o.root(s) {
					t.Fatalf("checkpoint %d: %+v %v, want root %s", s, c, err, o.root(s))
				}
			}
		})
	}
}

func checkInclusion(t *testing.T, rng *rand.Rand, s ledger.Storage, o *oracle, org string, seq, size int64) {
	t.Helper()
	p, err := ledger.InclusionProof(context.Background(), s, org, seq, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d): %v", seq, size, err)
	}
	if e1, e2 := o.checkInclusion(p, seq, size); e1 != nil || e2 != nil {
		t.Fatalf("inclusion of %d in %d does not verify: tlog %v, merkle %v", seq, size, e1, e2)
	}
	var tampered []tlog.RecordProof
	if len(p) > 0 {
		flipped := slices.Clone(p)
		k := rng.IntN(len(p))
		flipped[k][rng.IntN(tlog.HashSize)] ^= 1 << rng.IntN(8)
		tampered = append(tampered, flipped, p[:len(p)-1], p[1:])
	}
	tampered = append(tampered, append(slices.Clone(p), tlog.Hash{1}))
	for _, bad := range tampered {
		if e1, e2 := o.checkInclusion(bad, seq, size); e1 == nil || e2 == nil {
			t.Fatalf("tampered inclusion proof of %d in %d verifies: tlog %v, merkle %v", seq, size, e1, e2)
		}
	}
	if size > 1 {
		wrong := (seq + 1 + rng.Int64N(size-1)) % size
		e1 := tlog.CheckRecord(p, size, o.root(size), wrong, tlog.Hash(o.leaves[seq]))
		o2 := *o
		o2.leaves = slices.Clone(o.leaves)
		o2.leaves[wrong] = o.leaves[seq]
		_, e2 := o2.checkInclusion(p, wrong, size)
		if e1 == nil || e2 == nil {
			t.Fatalf("inclusion proof of %d in %d verifies for index %d: tlog %v, merkle %v", seq, size, wrong, e1, e2)
		}
	}
}

func checkConsistency(t *testing.T, rng *rand.Rand, s ledger.Storage, o *oracle, org string, from, to int64) {
	t.Helper()
	p, err := ledger.ConsistencyProof(context.Background(), s, org, from, to)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d): %v", from, to, err)
	}
	if e1, e2 := o.checkConsistency(p, from, to); e1 != nil || e2 != nil {
		t.Fatalf("consistency %d→%d does not verify: tlog %v, merkle %v", from, to, e1, e2)
	}
	if len(p) > 0 {
		flipped := slices.Clone(p)
		flipped[rng.IntN(len(p))][rng.IntN(tlog.HashSize)] ^= 1 << rng.IntN(8)
		for _, bad := range []tlog.TreeProof{flipped, p[:len(p)-1], append(slices.Clone(p), tlog.Hash{2})} {
			if e1, e2 := o.checkConsistency(bad, from, to); e1 == nil || e2 == nil {
				t.Fatalf("tampered consistency proof %d→%d verifies: tlog %v, merkle %v", from, to, e1, e2)
			}
		}
	}
	if from > 0 && to > 2 {
		wrong := 1 + (from+rng.Int64N(to-2))%(to-1) // in [1, to), ≠ from
		if wrong == from {
			wrong = from%(to-1) + 1
		}
		if wrong != from {
			if e1, e2 := o.checkConsistency(p, wrong, to); e1 == nil || e2 == nil {
				t.Fatalf("consistency proof %d→%d verifies from %d: tlog %v, merkle %v", from, to, wrong, e1, e2)
			}
		}
	}
}

func TestProofErrors(t *testing.T) {
	ctx := context.Background()
	m := newMemStorage()
	i := startIntegrator(t, m, newSigner(t), t.TempDir(), ledger.Options{})
	addRecords(m, "org_e", 10)
	waitIdle(t, i)
	i.Stop()
	addRecords(m, "org_e", 5) // accepted, not integrated
	for _, tc := range []struct {
		name      string
		err       error
		inclusion bool
		a, b      int64
	}{
		{"seq = size", ledger.ErrInvalidRange, true, 10, 10},
		{"seq > size", ledger.ErrInvalidRange, true, 11, 10},
		{"negative seq", ledger.ErrInvalidRange, true, -1, 10},
		{"size beyond integrated", ledger.ErrNotIntegrated, true, 3, 11},
		{"from > to", ledger.ErrInvalidRange, false, 5, 4},
		{"negative from", ledger.ErrInvalidRange, false, -1, 4},
		{"to beyond integrated", ledger.ErrNotIntegrated, false, 1, 11},
	} {
		var err error
		if tc.inclusion {
			_, err = ledger.InclusionProof(ctx, m, "org_e", tc.a, tc.b)
		} else {
			_, err = ledger.ConsistencyProof(ctx, m, "org_e", tc.a, tc.b)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := ledger.InclusionProof(ctx, m, "org_unknown", 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown organization: err = %v, want store.ErrNotFound", err)
	}
	for _, tc := range [][2]int64{{0, 10}, {10, 10}, {0, 0}} {
		p, err := ledger.ConsistencyProof(ctx, m, "org_e", tc[0], tc[1])
		if err != nil || len(p) != 0 {
			t.Errorf("ConsistencyProof(%d, %d) = %v, %v; want an empty proof", tc[0], tc[1], p, err)
		}
	}
}
