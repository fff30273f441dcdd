package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// BenchmarkAppendOne is Store.Append of one event per transaction, one
// organization: the commit a lone client's request waits for.
func BenchmarkAppendOne(b *testing.B) {
	s := openBench(b)
	evs := benchEvents(b, b.N)
	ctx := context.Background()
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := evs[i]
		sub := store.Submission{Events: []store.PendingEvent{{OrganizationID: benchOrg(0), ID: e.id, ReceivedAt: e.received, Tail: e.tail, Draft: e.draft}}}
		res, err := s.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			b.Fatalf("Append: %v %v", err, res)
		}
	}
}

// BenchmarkNaiveOne is one autocommit INSERT per event of the same record
// into a primary-key-only table, durable: the naive app's commit.
func BenchmarkNaiveOne(b *testing.B) {
	ctx := context.Background()
	db := openBare(b)
	ins, err := db.PrepareContext(ctx, `INSERT INTO bare (organization_id, seq, record) VALUES (?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(b, b.N)
	var buf []byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := event.Accepted{ID: evs[i].id, OrganizationID: benchOrg(0), Seq: int64(i), ReceivedAt: evs[i].received}
		buf = event.AppendRecord(buf[:0], a, evs[i].tail)
		if _, err := ins.ExecContext(ctx, a.OrganizationID, a.Seq, buf); err != nil {
			b.Fatal(err)
		}
	}
}
