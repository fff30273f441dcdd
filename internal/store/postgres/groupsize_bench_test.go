package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// BenchmarkAppendGroupSize splits the database's CPU on the append path
// into a part per commit and a part per event: group commits of 1, 10 and
// 30 single-event submissions over 10 organizations, as concurrent
// requests make them, reporting the backends' CPU (from /proc, when the
// server runs on this machine) per commit and per event. With fewer
// events per commit, as when replicas split the same load, the per-commit
// part weighs more per event (docs/SCALING.md). b.N is the number of
// commits.
//
//	TRAIL_TEST_DATABASE=postgres://… go test ./internal/store/postgres -run '^$' \
//		-bench AppendGroupSize -benchtime 300x
func BenchmarkAppendGroupSize(b *testing.B) {
	const orgs = 10
	for _, group := range []int{1, 10, 30} {
		b.Run(fmt.Sprintf("events=%d", group), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			evs := benchEvents(b, (b.N+1)*group)
			groups := make([][]store.Submission, b.N+1)
			for i := range groups {
				groups[i] = make([]store.Submission, group)
				for k := range group {
					j := i*group + k
					e := evs[j]
					groups[i][k].Events = []store.PendingEvent{{OrganizationID: benchOrg(j % orgs), ID: e.id, ReceivedAt: e.received, Tail: e.tail}}
				}
			}
			now := time.Now()
			if _, err := s.Append(ctx, groups[0], now); err != nil { // warm the pool and plans
				b.Fatal(err)
			}
			cpu0 := backendCPU(b, s)
			b.ResetTimer()
			for _, g := range groups[1:] {
				res, err := s.Append(ctx, g, now)
				if err != nil || res[0].Err != nil {
					b.Fatalf("Append: %v %v", err, res)
				}
			}
			b.StopTimer()
			if cpu0 == nil {
				return
			}
			var d time.Duration
			for pid, t := range backendCPU(b, s) {
				d += t - cpu0[pid]
			}
			b.ReportMetric(float64(d.Microseconds())/float64(b.N), "pg-µs/commit")
			b.ReportMetric(float64(d.Microseconds())/float64(b.N*group), "pg-µs/event")
		})
	}
}
