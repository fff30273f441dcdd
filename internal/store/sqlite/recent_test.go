package sqlite

import (
	"bytes"
	"fmt"
	"testing"
)

func rec(org string, seq int64, size int) pendingRow {
	b := bytes.Repeat([]byte{'x'}, size)
	copy(b, fmt.Sprintf("%s/%d", org, seq))
	return pendingRow{org: org, seq: seq, record: b}
}

func TestRecentRecords(t *testing.T) {
	r := newRecentRecords()
	r.add([]pendingRow{rec("a", 0, 10), rec("b", 5, 10), rec("a", 1, 10), rec("a", 2, 10)})

	tests := []struct {
		name     string
		org      string
		from, to int64
		ok       bool
	}{
		{"whole", "a", 0, 3, true},
		{"middle", "a", 1, 2, true},
		{"empty range", "a", 3, 3, true},
		{"beyond", "a", 0, 4, false},
		{"before", "b", 4, 6, false},
		{"other org", "b", 5, 6, true},
		{"unknown org", "c", 0, 1, false},
	}
	for _, tt := range tests {
		got, ok := r.get(tt.org, tt.from, tt.to)
		if ok != tt.ok {
			t.Errorf("%s: get(%s, %d, %d) ok = %v, want %v", tt.name, tt.org, tt.from, tt.to, ok, tt.ok)
			continue
		}
		for i, g := range got {
			if want := fmt.Sprintf("%s/%d", tt.org, tt.from+int64(i)); !bytes.HasPrefix(g, []byte(want)) {
				t.Errorf("%s: record %d is %q, want %s", tt.name, i, g[:8], want)
			}
		}
	}

	// Another process appended seq 3: the cache starts over at 4.
	r.add([]pendingRow{rec("a", 4, 10)})
	if _, ok := r.get("a", 2, 3); ok {
		t.Error("records before a gap are still served")
	}
	if _, ok := r.get("a", 4, 5); !ok {
		t.Error("the record after a gap is not served")
	}

	// Integrated records are dropped.
	r.trim("b", 6)
	if _, ok := r.get("b", 5, 6); ok {
		t.Error("an integrated record is still held")
	}

	// The byte budget evicts oldest first and never serves a partial range.
	big := newRecentRecords()
	per := recentBudget / 4
	for seq := range int64(6) {
		big.add([]pendingRow{rec("a", seq, per)})
	}
	if _, ok := big.get("a", 0, 6); ok {
		t.Error("more than the budget is held")
	}
	if _, ok := big.get("a", 3, 6); !ok {
		t.Error("the newest records were evicted")
	}
	if big.bytes > recentBudget {
		t.Errorf("holding %d bytes, budget %d", big.bytes, recentBudget)
	}
}
