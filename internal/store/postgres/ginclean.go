package postgres

import (
	"context"
	"time"
)

// ginCleanInterval is how often a store that appends moves the pending
// entries of the free-text GIN indexes into the indexes proper.
//
// The GIN index on events.search keeps fastupdate on: an insert appends
// its entries to the index's pending list, which is cheap, and whoever
// finds the list over gin_pending_list_limit (4 MB by default) merges it
// into the index. Left to itself that is an append, which then does a
// large merge while it holds its organizations' rows locked: the spikes
// of commit latency docs/PERFORMANCE.md measures. Merging every
// ginCleanInterval, outside any append, keeps the list far below the
// limit, so appends only ever append to it (and searches, which read
// the whole list, stay fast).
const ginCleanInterval = 250 * time.Millisecond

// ginCleanSQL merges the pending list of every partition's GIN index in
// one statement (gin_clean_pending_list takes one index, not a
// partitioned one).
const ginCleanSQL = `SELECT coalesce(sum(gin_clean_pending_list(i.inhrelid::regclass)), 0)
	FROM pg_inherits i WHERE i.inhparent = 'events_search'::regclass`

// startGINCleaner starts the cleaner on the store's first append: a
// store opened by a command that never appends runs nothing.
func (s *Store) startGINCleaner() {
	s.cleaner.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.cleaner.stop, s.cleaner.done = cancel, make(chan struct{})
		go s.cleanGIN(ctx)
	})
}

func (s *Store) cleanGIN(ctx context.Context) {
	defer close(s.cleaner.done)
	t := time.NewTicker(ginCleanInterval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var pages int64
		if err := s.pool.QueryRow(ctx, ginCleanSQL).Scan(&pages); err != nil {
			if ctx.Err() != nil {
				return
			}
			// The database is away, this is a standby, or the role
			// does not own the index (gin_clean_pending_list asks
			// for that): appends then merge the list themselves, as
			// they would anyway.
			if failures++; failures == 1 || failures%240 == 0 {
				s.logger.Warn("couldn't merge the free-text index's pending entries", "failures", failures, "err", classify(err))
			}
			continue
		}
		failures = 0
	}
}

// stopGINCleaner stops the cleaner, if it was started, and waits for it.
func (s *Store) stopGINCleaner() {
	s.cleaner.once.Do(func() {}) // never start after Close
	if s.cleaner.stop != nil {
		s.cleaner.stop()
		<-s.cleaner.done
	}
}
