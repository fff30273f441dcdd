package sqlite

import (
	"context"
	"fmt"
	"math"

	"github.com/trailaudit/trail/internal/store"
)

// The backlog is the events accepted and not indexed yet. Reads cover it
// in Go (tail.go), at a cost that grows with it, so it is bounded: past
// maxBacklogEvents events, or maxBacklogBytes held in memory for them
// (WithBacklogMemory changes it),
// Append refuses new submissions with store.ErrUnavailable (503 with
// Retry-After to clients) until the indexer has caught up below the bound.
// Ingest never outruns search by more than that, and no read is ever
// answered from an incomplete index. The indexer takes about 30,000 events
// a second on two cores (docs/PERFORMANCE.md), so the bound is a few
// seconds of a sustained burst beyond that rate.
//
// A backlog this process does not hold in memory is another matter: the
// search file being rebuilt from the first event (after a migration, or
// when it did not match the database), or a restart behind. Refusing
// ingest for the minutes a rebuild takes would trade acceptance for
// search; instead ingest goes on, and a read whose tail would have to be
// read from the events table past the bound answers ErrUnavailable until
// the indexer is within it (readTailFromTable).
const (
	maxBacklogEvents = 100_000
	maxBacklogBytes  = 128 << 20
)

// admit refuses an Append while the backlog is at its bound. It reads the
// search file only when the marks in memory say the bound may be reached.
func (s *Store) admit(ctx context.Context) error {
	if s.backlogLimit < 0 {
		return nil // unbounded, for benchmarks of ingest alone
	}
	limit := s.backlogBound()
	last, mark := s.lastPos.Load(), s.indexedMark.Load()
	if last-mark < limit && s.unindexed.heldBytes() < s.opts.backlogBytes() {
		return nil
	}
	indexed, err := indexedPos(ctx, s.searchRead)
	if err != nil {
		return err
	}
	s.noteIndexed(indexed)
	events, bytes := last-indexed, s.unindexed.heldAfter(indexed)
	if events < limit && bytes < s.opts.backlogBytes() || !s.unindexed.holdsFrom(indexed+1) {
		return nil
	}
	return fmt.Errorf("%d accepted events (%d MiB) are waiting for the search indexer, the most Trail lets wait: %w: %w", events, bytes>>20, store.ErrBacklog, store.ErrUnavailable)
}

// backlogBound is the most events a read takes from the events table.
func (s *Store) backlogBound() int64 {
	switch {
	case s.backlogLimit < 0:
		return math.MaxInt64
	case s.backlogLimit > 0:
		return s.backlogLimit
	}
	return maxBacklogEvents
}

// noteIndexed records a high-water mark read or committed.
func (s *Store) noteIndexed(pos int64) {
	for {
		cur := s.indexedMark.Load()
		if pos <= cur || s.indexedMark.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// noteAppended records the last position committed.
func (s *Store) noteAppended(pos int64) {
	for {
		cur := s.lastPos.Load()
		if pos <= cur || s.lastPos.CompareAndSwap(cur, pos) {
			return
		}
	}
}
