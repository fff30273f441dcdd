package storetest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
)

// TestEventSize checks that Event's canonical records are the size the
// benchmarks claim (about 600–700 bytes) and that every one is valid.
func TestEventSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	const n = 2000
	total, lo, hi := 0, 1<<30, 0
	for i := range n {
		raw := Event(rng, i)
		d, err := event.ParseEvent(raw, now, event.DefaultLimits())
		if err != nil {
			t.Fatalf("Event(%d) is invalid: %v\n%s", i, err, raw)
		}
		a := event.Accepted{ID: event.NewID(now), OrganizationID: "org_" + ulidish(uint64(i%100)), Seq: int64(i), ReceivedAt: now}
		size := len(event.AppendRecord(nil, a, d.Tail))
		total += size
		lo, hi = min(lo, size), max(hi, size)
		if i == 0 {
			t.Logf("example record: %s", event.AppendRecord(nil, a, d.Tail))
		}
	}
	mean := total / n
	t.Logf("canonical record size: mean %d, min %d, max %d bytes", mean, lo, hi)
	if mean < 600 || mean > 700 {
		t.Errorf("mean canonical record size = %d bytes, want 600–700", mean)
	}
}

// TestEventDeterministic checks that the same seed gives the same events.
func TestEventDeterministic(t *testing.T) {
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for i := range 50 {
		if x, y := Event(a, i), Event(b, i); string(x) != string(y) {
			t.Fatalf("Event(%d) differs between two generators with the same seed:\n%s\n%s", i, x, y)
		}
	}
}
