package sqlite

import (
	"slices"
	"testing"
)

func TestUnindexedEvents(t *testing.T) {
	rows := func(pos ...int64) []pendingRow {
		out := make([]pendingRow, len(pos))
		for i, p := range pos {
			out[i] = pendingRow{pos: p, record: make([]byte, 10)}
		}
		return out
	}
	positions := func(rs []pendingRow) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.pos)
		}
		return out
	}
	// Room for two of the rows above: a third drops the oldest.
	two := 2*heldSize(&pendingRow{record: make([]byte, 10)}) + 1
	for _, tc := range []struct {
		name   string
		budget int
		adds   [][]int64
		from   int64
		limit  int
		want   []int64
	}{
		{"all", 0, [][]int64{{1, 2}, {3}}, 0, 10, []int64{1, 2, 3}},
		{"limit", 0, [][]int64{{1, 2, 3}}, 0, 2, []int64{1, 2}},
		{"covered ones forgotten", 0, [][]int64{{1, 2, 3}}, 2, 10, []int64{3}},
		{"next position not held", 0, [][]int64{{3, 4}}, 1, 10, nil},
		{"stops at a gap", 0, [][]int64{{1, 2}, {5, 6}}, 0, 10, []int64{1, 2}},
		{"after the gap", 0, [][]int64{{1, 2}, {5, 6}}, 4, 10, []int64{5, 6}},
		{"budget drops the oldest", two, [][]int64{{1, 2, 3, 4}}, 0, 10, nil},
		{"budget keeps the newest", two, [][]int64{{1, 2, 3, 4}}, 2, 10, []int64{3, 4}},
		{"out of order starts over", 0, [][]int64{{5, 6}, {2, 3}}, 1, 10, []int64{2, 3}},
		{"all covered", 0, [][]int64{{1, 2}}, 7, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := unindexedEvents{budget: tc.budget}
			for _, a := range tc.adds {
				u.add(rows(a...))
			}
			if got := positions(u.run(tc.from, tc.limit)); !slices.Equal(got, tc.want) {
				t.Fatalf("run(%d, %d) = %v, want %v", tc.from, tc.limit, got, tc.want)
			}
			budget := tc.budget
			if budget == 0 {
				budget = unindexedBudget
			}
			if u.bytes < 0 || u.bytes > budget {
				t.Fatalf("%d bytes held, budget %d", u.bytes, budget)
			}
		})
	}
}

// TestUnindexedEventsReleases checks that covered events are let go of:
// the queue must not keep them (or their drafts) alive.
func TestUnindexedEventsReleases(t *testing.T) {
	var u unindexedEvents
	for p := int64(1); p <= 1000; p++ {
		u.add([]pendingRow{{pos: p, record: make([]byte, 100)}})
		if p%10 == 0 {
			if got := u.run(p-1, 10); len(got) != 1 || got[0].pos != p {
				t.Fatalf("run(%d) = %v", p-1, got)
			}
		}
	}
	u.run(1000, 10)
	if len(u.items)-u.head != 0 || u.bytes != 0 {
		t.Fatalf("%d events, %d bytes held after all were covered", len(u.items)-u.head, u.bytes)
	}
	for _, it := range u.items[:cap(u.items)] {
		if it.record != nil {
			t.Fatal("a covered event's record is still referenced")
		}
	}
}
