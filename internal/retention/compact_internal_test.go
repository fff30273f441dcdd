package retention

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// TestCompactionPolicy walks checkpoint series (size order, with their
// ages) through the policy: which sizes go.
func TestCompactionPolicy(t *testing.T) {
	// now is 12:30 UTC on some day; ages are before it.
	now := time.Date(2031, 5, 17, 12, 30, 0, 0, time.UTC)
	const (
		h = time.Hour
		d = 24 * time.Hour
	)
	for _, tc := range []struct {
		name string
		ages []time.Duration // of sizes 1, 2, 3, … in turn
		keep []int64         // pinned sizes
		want string          // sizes dropped
	}{
		{"all young", []time.Duration{3 * h, 2 * h, h, 0}, nil, "[]"},
		{"one per hour between a day and 90 days", []time.Duration{
			30*h + 25*time.Minute, 30*h + 20*time.Minute, 30*h + 5*time.Minute, // 06:05–06:25 yesterday
			29*h + 20*time.Minute, // 07:10: an hour of its own
			h}, nil, "[1 2]"},
		{"one per day past 90 days", []time.Duration{
			100*d + 2*h, 100*d + h, 100 * d, // one day (10:30, 11:30, 12:30)
			99*d + 11*h, // 01:30 of the next day: a day of its own
			2 * h}, nil, "[1 2]"},
		{"the newest of a series stays however old", []time.Duration{200 * d, 200*d - time.Minute}, nil, "[1]"},
		{"a young checkpoint ends the walk", []time.Duration{50 * h, 50*h - time.Minute, 2 * h, 50 * h}, nil, "[1]"},
		{"pinned sizes stay", []time.Duration{
			30*h + 25*time.Minute, 30*h + 20*time.Minute, 30*h + 10*time.Minute, 30*h + 5*time.Minute}, []int64{2}, "[1 3]"},
		{"a clock step keeps one per run of a bucket", []time.Duration{
			30*h + 20*time.Minute, 29*h + 20*time.Minute, 30*h + 10*time.Minute, 30*h + 5*time.Minute}, nil, "[3]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compaction{now: now, keepAll: 24 * h, hourlyFor: 90 * d, keep: func(size int64) bool {
				for _, k := range tc.keep {
					if k == size {
						return true
					}
				}
				return false
			}}
			dropped := []int64{}
			for i, age := range tc.ages {
				drop, ok, done := c.next(store.StoredCheckpoint{Size: int64(i + 1), CreatedAt: now.Add(-age)})
				if ok {
					dropped = append(dropped, drop)
				}
				if done {
					break
				}
			}
			if got := fmt.Sprint(dropped); got != tc.want {
				t.Errorf("dropped %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCompactionResumesFromSettled: a walk that starts where an earlier
// walk found the final part to end deletes exactly what a walk from size 0
// would, sweep after sweep, as checkpoints age from the hourly range into
// the daily one.
func TestCompactionResumesFromSettled(t *testing.T) {
	start := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	const (
		h = time.Hour
		d = 24 * time.Hour
	)
	// A checkpoint every 37 minutes for 200 days, with a replica's clock
	// stepping back now and then.
	var all []store.StoredCheckpoint
	at := start
	for size := int64(1); at.Before(start.Add(200 * d)); size++ {
		created := at
		if size%97 == 0 {
			created = at.Add(-50 * time.Minute)
		}
		all = append(all, store.StoredCheckpoint{Size: size, CreatedAt: created})
		at = at.Add(37 * time.Minute)
	}
	walk := func(cks []store.StoredCheckpoint, now time.Time, from *store.StoredCheckpoint) (map[int64]bool, *store.StoredCheckpoint) {
		c := compaction{now: now, keepAll: d, hourlyFor: 90 * d, keep: func(int64) bool { return false }}
		if from != nil {
			c.start(*from)
		}
		drop := map[int64]bool{}
		for _, ck := range cks {
			if from != nil && ck.Size <= from.Size {
				continue
			}
			n, ok, done := c.next(ck)
			if ok {
				drop[n] = true
			}
			if done {
				break
			}
		}
		if !c.haveSettled {
			return drop, nil
		}
		s := c.settled
		return drop, &s
	}
	remove := func(cks []store.StoredCheckpoint, drop map[int64]bool) []store.StoredCheckpoint {
		var out []store.StoredCheckpoint
		for _, ck := range cks {
			if !drop[ck.Size] {
				out = append(out, ck)
			}
		}
		return out
	}
	kept := all
	var settled *store.StoredCheckpoint
	for now := start.Add(100 * d); now.Before(start.Add(220 * d)); now = now.Add(7*d + 5*h) {
		full, _ := walk(kept, now, nil)
		resumed, next := walk(kept, now, settled)
		if fmt.Sprint(sortedKeys(full)) != fmt.Sprint(sortedKeys(resumed)) {
			t.Fatalf("at %s: resumed from %v the walk drops %d checkpoints, from 0 it drops %d", now, settled, len(resumed), len(full))
		}
		if next != nil {
			settled = next
		}
		kept = remove(kept, full)
	}
	if settled == nil {
		t.Fatal("no walk found a settled checkpoint")
	}
	if len(kept) >= len(all)/3 { // about 1.6 checkpoints an hour: compaction keeps one an hour, then a day
		t.Errorf("%d of %d checkpoints kept", len(kept), len(all))
	}
}

func sortedKeys(m map[int64]bool) []int64 {
	var out []int64
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
