package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEventsAreValidAndSized(t *testing.T) {
	natural := naturalEventSize()
	for _, size := range []int{0, 100, natural + 5, 1000, 4096, 20000, MaxEventSize} {
		e := NewEvents("run1run1run1", []string{"org_a", "org_b"}, size)
		got := len(e.Event(nil, 7))
		want := max(size, natural)
		// Padding comes in whole keys, and events differ by a few bytes
		// (action names, actor numbers).
		if got > want+8 || got < want-padKeyOverhead {
			t.Errorf("--event-size %d: event of %d bytes, want about %d", size, got, want)
		}
		var single struct {
			OrganizationID string `json:"organization_id"`
			Event          struct {
				Action   string            `json:"action"`
				Metadata map[string]any    `json:"metadata"`
				Actor    map[string]any    `json:"actor"`
				Targets  []json.RawMessage `json:"targets"`
			} `json:"event"`
		}
		if err := json.Unmarshal(e.Single(7), &single); err != nil {
			t.Fatalf("--event-size %d: single body is not JSON: %v", size, err)
		}
		if single.OrganizationID != "org_b" || single.Event.Metadata["bench_id"] != "run1run1run1-7" || len(single.Event.Metadata) > 50 {
			t.Errorf("--event-size %d: org %q bench_id %v, %d metadata keys", size, single.OrganizationID, single.Event.Metadata["bench_id"], len(single.Event.Metadata))
		}
		for k, v := range single.Event.Metadata {
			if s, ok := v.(string); len(k) > 40 || ok && len(s) > 500 {
				t.Errorf("metadata %q breaks the limits", k)
			}
		}
		var batch struct {
			Events []struct {
				OrganizationID string          `json:"organization_id"`
				Event          json.RawMessage `json:"event"`
			} `json:"events"`
		}
		if err := json.Unmarshal(e.Batch(10, 3), &batch); err != nil || len(batch.Events) != 3 || batch.Events[1].OrganizationID != "org_b" {
			t.Fatalf("--event-size %d: batch body: %v, %+v", size, err, batch)
		}
	}
}

func TestBenchIDs(t *testing.T) {
	for _, tc := range []struct {
		id, run string
		ok      bool
	}{
		{BenchID("abc123", 42), "abc123", true},
		{"abc-def-7", "abc-def", true},
		{"abc", "", false},
		{"-7", "", false},
		{"abc-x", "", false},
	} {
		run, ok := RunOf(tc.id)
		if run != tc.run || ok != tc.ok {
			t.Errorf("RunOf(%q) = %q, %v; want %q, %v", tc.id, run, ok, tc.run, tc.ok)
		}
	}
}

func TestMetricValue(t *testing.T) {
	text := []byte("# HELP process_resident_memory_bytes x\n# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_other 1\nprocess_resident_memory_bytes 4.5056e+07\ntrail_x{a=\"b\"} 3\n")
	for _, tc := range []struct {
		name string
		want float64
		ok   bool
	}{
		{"process_resident_memory_bytes", 45056000, true},
		{"process_resident_memory_bytes_other", 1, true},
		{"trail_x", 0, false},
		{"missing", 0, false},
	} {
		got, ok := metricValue(text, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHeldValues(t *testing.T) {
	// With n organizations, organization k holds events j ≡ k (mod n), and
	// so only the values j mod m with j ≡ k: held must pick one of those.
	for _, n := range []int{1, 2, 3, 4, 8, 10} {
		for _, m := range []int64{5, 50, 1000} {
			for k := range n {
				have := map[int64]bool{}
				for j := int64(k); j < int64(n)*m; j += int64(n) {
					have[j%m] = true
				}
				for v := range m {
					if h := held(v, m, k, n); !have[h] {
						t.Fatalf("n=%d m=%d k=%d: held(%d) = %d, which organization %d does not hold", n, m, k, v, h, k)
					}
				}
			}
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	r, err := CreateRecord(path, "run9", "embedded")
	if err != nil {
		t.Fatal(err)
	}
	r.Add("org_a", "run9-0", "")
	r.Add("org_b", "run9-1", "evt_1")
	if err := r.Close(); err != nil || r.Count() != 2 {
		t.Fatalf("close: %v, count %d", err, r.Count())
	}
	h, evs, err := ReadRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []RecordedEvent{{Org: "org_a", BenchID: "run9-0", Line: 2}, {Org: "org_b", BenchID: "run9-1", ID: "evt_1", Line: 3}}
	if h.RunID != "run9" || len(evs) != 2 || evs[0] != want[0] || evs[1] != want[1] {
		t.Fatalf("read %+v %+v", h, evs)
	}
}

func TestReadRecordRefuses(t *testing.T) {
	header := `{"format":"trail-bench-record","version":1,"run_id":"r"}` + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "empty"},
		{"not a record", "hello\n", "not a file written by trail bench"},
		{"newer version", `{"format":"trail-bench-record","version":2}` + "\n", "version 2"},
		{"short line", header + "org_a\tr-1\n", "want ORGANIZATION"},
		{"no identity", header + "org_a\t\t-\n", "want ORGANIZATION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rec")
			os.WriteFile(path, []byte(tc.text), 0o600)
			if _, _, err := ReadRecord(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestCPUOf(t *testing.T) {
	for _, tc := range []struct {
		seconds          float64
		elapsed          time.Duration
		requests, events int64
		want             CPU
	}{
		{2, 10 * time.Second, 10_000, 10_000, CPU{Seconds: 2, Cores: 0.2, MicrosPerRequest: 200, MicrosPerEvent: 200}},
		{3, 2 * time.Second, 100, 100_000, CPU{Seconds: 3, Cores: 1.5, MicrosPerRequest: 30_000, MicrosPerEvent: 30}},
		{1, 0, 10, 0, CPU{Seconds: 1, MicrosPerRequest: 100_000}},
	} {
		got := cpuOf(tc.seconds, tc.elapsed, tc.requests, tc.events)
		tc.want.Source = "process_cpu_seconds_total"
		if *got != tc.want {
			t.Errorf("cpuOf(%v, %v, %d, %d) = %+v, want %+v", tc.seconds, tc.elapsed, tc.requests, tc.events, *got, tc.want)
		}
	}
}
