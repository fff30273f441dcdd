package retention

import (
	"fmt"
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
