package ledger_test

import (
	"bytes"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// oracle computes RFC 6962 roots with github.com/transparency-dev/merkle, an
// implementation independent of tlog: roots[n] is the root of the first n
// records.
type oracle struct {
	leaves [][]byte
	roots  [][]byte
	rng    *compact.Range
}

var hasher = rfc6962.DefaultHasher

func newOracle() *oracle {
	f := &compact.RangeFactory{Hash: hasher.HashChildren}
	return &oracle{roots: [][]byte{hasher.EmptyRoot()}, rng: f.NewEmptyRange(0)}
}

func (o *oracle) add(tb testing.TB, records ...[]byte) {
	tb.Helper()
	for _, r := range records {
		h := hasher.HashLeaf(r)
		o.leaves = append(o.leaves, h)
		if err := o.rng.Append(h, nil); err != nil {
			tb.Fatal(err)
		}
		root, err := o.rng.GetRootHash(nil)
		if err != nil {
			tb.Fatal(err)
		}
		o.roots = append(o.roots, root)
	}
}

func (o *oracle) root(n int64) tlog.Hash { return tlog.Hash(o.roots[n]) }

// checkInclusion verifies an inclusion proof with both implementations.
func (o *oracle) checkInclusion(p tlog.RecordProof, seq, size int64) (tlogErr, merkleErr error) {
	tlogErr = tlog.CheckRecord(p, size, o.root(size), seq, tlog.Hash(o.leaves[seq]))
	merkleErr = proof.VerifyInclusion(hasher, uint64(seq), uint64(size), o.leaves[seq], hashBytes(p), o.roots[size])
	return
}

// checkConsistency verifies a consistency proof with both implementations.
func (o *oracle) checkConsistency(p tlog.TreeProof, from, to int64) (tlogErr, merkleErr error) {
	if from > 0 {
		tlogErr = tlog.CheckTree(p, to, o.root(to), from, o.root(from))
	} else if len(p) != 0 {
		tlogErr = errNonEmpty
	}
	merkleErr = proof.VerifyConsistency(hasher, uint64(from), uint64(to), hashBytes(p), o.roots[from], o.roots[to])
	return
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errNonEmpty = constErr("proof from the empty tree must be empty")

func hashBytes[H ~[]tlog.Hash](p H) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i][:])
	}
	return out
}
