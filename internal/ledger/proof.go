package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Errors of proof requests, for the HTTP layer to map to 4xx.
var (
	// ErrInvalidRange means the arguments cannot describe a proof:
	// a seq not below the tree size, from > to, negative values.
	ErrInvalidRange = errors.New("invalid range")
	// ErrNotIntegrated means a tree size beyond what is integrated (and
	// signed) so far; it may become valid within about a second.
	ErrNotIntegrated = errors.New("tree size is beyond the integrated log")
)

// InclusionProof returns the RFC 6962 audit path proving that record seq is in
// org's tree of the given size (check it with tlog.CheckRecord against the
// root of a checkpoint of that size).
func InclusionProof(ctx context.Context, s Storage, org string, seq, size int64) (tlog.RecordProof, error) {
	if seq < 0 || seq >= size {
		return nil, fmt.Errorf("seq %d is not in a tree of size %d: %w", seq, size, ErrInvalidRange)
	}
	if err := checkIntegrated(ctx, s, org, size); err != nil {
		return nil, err
	}
	p, err := tlog.ProveRecord(size, seq, newHashReader(ctx, s, org))
	if err != nil {
		return nil, fmt.Errorf("couldn't prove record %d of %s in tree size %d: %w", seq, org, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof that org's tree of
// size from is a prefix of its tree of size to (check it with
// tlog.CheckTree). It is empty when from is 0 or from = to.
func ConsistencyProof(ctx context.Context, s Storage, org string, from, to int64) (tlog.TreeProof, error) {
	if from < 0 || from > to {
		return nil, fmt.Errorf("tree size %d is not at most tree size %d: %w", from, to, ErrInvalidRange)
	}
	if err := checkIntegrated(ctx, s, org, to); err != nil {
		return nil, err
	}
	if from == 0 {
		// Every tree extends the empty one (RFC 9162 §2.1.4): nothing to prove.
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(to, from, newHashReader(ctx, s, org))
	if err != nil {
		return nil, fmt.Errorf("couldn't prove tree size %d of %s consistent with size %d: %w", from, org, to, err)
	}
	return p, nil
}

func checkIntegrated(ctx context.Context, s Storage, org string, size int64) error {
	st, err := s.LogState(ctx, org)
	if err != nil {
		return fmt.Errorf("couldn't read log state of %s: %w", org, err)
	}
	if size > st.IntegratedSize {
		return fmt.Errorf("tree size %d of %s: %d records are integrated so far: %w", size, org, st.IntegratedSize, ErrNotIntegrated)
	}
	return nil
}
