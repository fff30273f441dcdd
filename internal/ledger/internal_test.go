package ledger

import (
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestRecordKey(t *testing.T) {
	for _, tc := range []struct {
		line      string
		seq       int64
		orgOK, ok bool
	}{
		{`{"id":"evt_1","organization_id":"org_a","seq":42,"received_at":"x"}`, 42, true, true},
		{`{"id":"evt_1","organization_id":"org_a","seq":0}`, 0, true, true},
		{`{"id":"evt_1","organization_id":"org_b","seq":7,"x":1}`, 7, false, true},
		// Not canonical: read through encoding/json.
		{`{"seq":9,"organization_id":"org_a"}`, 9, true, true},
		{`{"id":"evt_1","organization_id":"org_\u0061","seq":3,"x":1}`, 3, true, true},
		{`{"id":"evt_1","organization_id":"org_a","seq":03,"x":1}`, 0, false, false},
		{`{"id":"evt_1","organization_id":"org_a","seq":-3,"x":1}`, 0, false, false},
		{`{"id":"evt_1","organization_id":"org_a"}`, 0, false, false},
		{`hello`, 0, false, false},
		{``, 0, false, false},
	} {
		seq, orgOK, ok := recordKey([]byte(tc.line), "org_a")
		if seq != tc.seq || orgOK != tc.orgOK || ok != tc.ok {
			t.Errorf("recordKey(%s) = %d %v %v, want %d %v %v", tc.line, seq, orgOK, ok, tc.seq, tc.orgOK, tc.ok)
		}
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1204331: "1,204,331", -12345: "-12,345"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestGroupEnd(t *testing.T) {
	for _, tc := range [][3]int64{{0, 1000, 256}, {255, 1000, 256}, {256, 1000, 512}, {900, 1000, 1000}, {5, 7, 7}} {
		if got := groupEnd(tc[0], tc[1]); got != tc[2] {
			t.Errorf("groupEnd(%d, %d) = %d, want %d", tc[0], tc[1], got, tc[2])
		}
	}
}

// TestTreeBuilderMemory checks that recomputing a tree keeps only the
// hashes tlog will read again: O(log n), not O(n).
func TestTreeBuilderMemory(t *testing.T) {
	tb, err := newTreeBuilder(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	peak := 0
	for i := range 100_000 {
		if err := tb.add(tlog.RecordHash([]byte{byte(i), byte(i >> 8), byte(i >> 16)})); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, len(tb.hashes))
	}
	if peak > 20 {
		t.Errorf("tree builder held %d hashes at once", peak)
	}
	if _, err := newTreeBuilder(5, nil); err == nil {
		t.Error("a range starting at 5 with no left hashes was accepted")
	}
	if _, err := newTreeBuilder(0, []tlog.Hash{{}}); err == nil {
		t.Error("a range starting at 0 with left hashes was accepted")
	}
}

// TestLogInterval checks that LogInterval stretches to keep waiting logs
// near LogRate checkpoints a second, never beyond MaxLogInterval.
func TestLogInterval(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		waiting int
		want    time.Duration
	}{
		{name: "no interval", opts: Options{}, waiting: 1000, want: 0},
		{name: "few logs", opts: Options{LogInterval: 750 * time.Millisecond}, waiting: 10, want: 750 * time.Millisecond},
		{name: "at the rate", opts: Options{LogInterval: 750 * time.Millisecond}, waiting: 375, want: 750 * time.Millisecond},
		{name: "stretched", opts: Options{LogInterval: 750 * time.Millisecond}, waiting: 500, want: time.Second},
		{name: "capped", opts: Options{LogInterval: 750 * time.Millisecond}, waiting: 1000, want: 1125 * time.Millisecond},
		{name: "own rate and cap", opts: Options{LogInterval: time.Second, LogRate: 100, MaxLogInterval: 5 * time.Second}, waiting: 300, want: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.DataDir = t.TempDir()
			i, err := NewIntegrator(nil, nil, "example.com/log", tc.opts, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := i.logInterval(tc.waiting); got != tc.want {
				t.Errorf("logInterval(%d) = %v, want %v", tc.waiting, got, tc.want)
			}
		})
	}
}
