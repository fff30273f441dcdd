package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// Checkpoint compaction (docs/SCALING.md, "Checkpoints"). The integrator
// stores one checkpoint per log per pass, about one per event. Proofs
// between any two sizes come from the tiles, not from stored notes, and
// exports and bundles carry the checkpoint they were made under, so old
// checkpoints can be thinned out; what a client loses is only the download
// of that exact note (GET …/log/checkpoint?size=N answers 404 and points at
// the newest one and a consistency proof). The policy:
//
//   - every checkpoint younger than CheckpointsKeepAll (24 h) stays;
//   - older, up to CheckpointsHourlyFor (90 days): the newest (largest) of
//     each hour stays;
//   - older still: the newest of each day stays;
//   - each log's newest checkpoint always stays, whatever its age (the
//     integrator checks every new tree against it, and the witnesses'
//     submissions start from it);
//   - a size that Options.KeepCheckpoint pins stays.
//
// Hours and days are UTC, of created_at (the integrating replica's clock).
// The walk goes in size order, a page at a time, and deletes a checkpoint
// only when the next larger one falls in the same hour or day: a clock
// step between replicas can leave two of a bucket, never none. The sweeper
// remembers per log where the final, daily part ends, and the next walk
// starts there (a restarted process walks the whole log once).

// compactPage is how many checkpoints compaction reads, and deletes at
// most, per transaction.
const compactPage = 1000

// bucketOf is the hour or day of created that keeps one checkpoint (daily
// says which), or ok false while every checkpoint of that age is kept.
func bucketOf(created, now time.Time, keepAll, hourlyFor time.Duration) (bucket time.Time, daily, ok bool) {
	age := now.Sub(created)
	switch {
	case age < keepAll:
		return time.Time{}, false, false
	case age < hourlyFor:
		return created.UTC().Truncate(time.Hour), false, true
	default:
		return dayOf(created), true, true
	}
}

func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// compaction is the state of one log's walk.
type compaction struct {
	now                time.Time
	keepAll, hourlyFor time.Duration
	keep               func(size int64) bool

	prev       store.StoredCheckpoint
	prevBucket time.Time
	prevDaily  bool
	havePrev   bool

	// settled is the last checkpoint met that stays for good: in the
	// daily range, and followed by one of a later day, also daily. Every
	// checkpoint before it is final too, so the next sweep's walk starts
	// there instead of at size 0.
	settled     store.StoredCheckpoint
	haveSettled bool
}

// start makes the walk begin after a settled checkpoint of an earlier
// walk.
func (c *compaction) start(settled store.StoredCheckpoint) {
	c.prev, c.prevBucket, c.prevDaily, c.havePrev = settled, dayOf(settled.CreatedAt), true, true
	c.settled, c.haveSettled = settled, true
}

// next takes the next checkpoint by size. It returns the size of the
// previous one if that can go (drop), and whether the walk is over (a
// checkpoint young enough to keep, and so every later one, is reached).
func (c *compaction) next(ck store.StoredCheckpoint) (drop int64, ok, done bool) {
	b, daily, old := bucketOf(ck.CreatedAt, c.now, c.keepAll, c.hourlyFor)
	if !old {
		return 0, false, true
	}
	if c.havePrev {
		switch {
		case c.prevBucket.Equal(b) && !c.keep(c.prev.Size):
			drop, ok = c.prev.Size, true
		case c.prevDaily && daily && !c.prevBucket.Equal(b):
			c.settled, c.haveSettled = c.prev, true
		}
	}
	c.prev, c.prevBucket, c.prevDaily, c.havePrev = ck, b, daily, true
	return drop, ok, false
}

// compactCheckpoints thins out org's old checkpoints; it returns how many
// it deleted.
func (s *Sweeper) compactCheckpoints(ctx context.Context, cc store.CheckpointCompactor, org string, now time.Time) (int64, error) {
	var pinned func(int64) bool
	if s.opts.KeepCheckpoint != nil {
		pinned = func(size int64) bool { return s.opts.KeepCheckpoint(org, size) }
	} else {
		pinned = func(int64) bool { return false }
	}
	c := compaction{now: now, keepAll: s.opts.CheckpointsKeepAll, hourlyFor: s.opts.CheckpointsHourlyFor, keep: pinned}
	after := int64(0)
	s.mu.Lock()
	if st, ok := s.settled[org]; ok {
		c.start(st)
		after = st.Size
	}
	s.mu.Unlock()
	defer func() {
		if c.haveSettled {
			s.mu.Lock()
			s.settled[org] = c.settled
			s.mu.Unlock()
		}
	}()
	var total int64
	for {
		page, err := cc.CheckpointsAfter(ctx, org, after, compactPage)
		if err != nil {
			return total, err
		}
		var drop []int64
		done := len(page) < compactPage
		for _, ck := range page {
			d, ok, end := c.next(ck)
			if ok {
				drop = append(drop, d)
			}
			if end {
				done = true
				break
			}
			after = ck.Size
		}
		n, err := cc.DeleteCheckpoints(ctx, org, drop)
		total += int64(n)
		s.metrics.checkpoints.Add(float64(n))
		if err != nil {
			return total, err
		}
		if done || ctx.Err() != nil {
			return total, ctx.Err()
		}
		if n == 0 {
			continue // only read: no need to leave the database to ingest
		}
		if err := s.pause(ctx); err != nil {
			return total, err
		}
	}
}

// compact runs compaction over every log that has checkpoints, when the
// store can; it goes on past a log that fails.
func (s *Sweeper) compact(ctx context.Context, orgs []string, now time.Time) (int64, error) {
	var cc store.CheckpointCompactor = s.st
	if s.opts.CheckpointsKeepAll < 0 {
		return 0, nil
	}
	var total int64
	var errs []error
	for _, org := range orgs {
		n, err := s.compactCheckpoints(ctx, cc, org, now)
		total += n
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrUnavailable) {
				return total, err
			}
			errs = append(errs, fmt.Errorf("couldn't compact the checkpoints of %s: %w", org, err))
		}
	}
	return total, errors.Join(errs...)
}
