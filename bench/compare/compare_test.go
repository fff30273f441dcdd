package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/bench"
)

func sampleMedians() map[key]cell {
	med := map[key]cell{}
	for i, c := range []int{1, 4, 16} {
		f := float64(i + 1)
		med[key{trailSQLite, c}] = cell{eventsPerS: 900 * f, p99ms: 5 * f, peakRSS: 40 << 20, cpuPerEvent: 150}
		med[key{httpCeiling, c}] = cell{eventsPerS: 3000 * f, p99ms: 1 * f, cpuPerEvent: 50}
		med[key{naiveHTTPSQLite, c}] = cell{eventsPerS: 1000 * f, p99ms: 6 * f, cpuPerEvent: 120}
		med[key{bench.BaselineSQLiteNaive, c}] = cell{eventsPerS: 4000 * f, p99ms: 2 * f}
		med[key{trailPostgres, c}] = cell{eventsPerS: 700 * f, p99ms: 3 * f}
		med[key{naiveHTTPPostgres, c}] = cell{eventsPerS: 1100 * f, p99ms: 7 * f}
		med[key{bench.BaselinePostgresNaive, c}] = cell{eventsPerS: 5000 * f, p99ms: 3 * f}
	}
	med[key{bench.BaselineSQLiteBare, 1}] = cell{eventsPerS: 56000, p99ms: 27}
	med[key{bench.BaselinePostgresCopy, 1}] = cell{eventsPerS: 46000, p99ms: 37}
	return med
}

func TestChartIsWellFormedSVG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.svg")
	if err := writeSVG(path, sampleMedians(), []int{1, 4, 16}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	dec := xml.NewDecoder(strings.NewReader(string(raw)))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	// Six systems on two panels; two ceilings; a point per level.
	if counts["polyline"] != 12 {
		t.Errorf("%d polylines, want 12", counts["polyline"])
	}
	if counts["circle"] != 12*3 {
		t.Errorf("%d points, want %d", counts["circle"], 12*3)
	}
	for _, s := range systems {
		if _, drawn := backendColor[s.backend]; !drawn {
			continue // the HTTP ceiling is in the table only
		}
		if !strings.Contains(string(raw), s.label) {
			t.Errorf("legend lacks %q", s.label)
		}
	}
}

func TestReportRatios(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "PERFORMANCE.md")
	if err := writeReport(out, filepath.Join(dir, "performance.svg"), sampleMedians(), []int{1, 4, 16},
		reportInfo{command: "bench/compare.sh", runs: 3, notes: "## Notes\n\nhand-written", querySeed: 1000, orgs: 2,
			queries: []queryRun{{backend: "sqlite", report: bench.Report{Concurrency: 4, Queries: []bench.QueryStats{
				{Kind: "newest", Requests: 10, Example: "limit=50", Latency: bench.Latency{P50Ms: 1, P90Ms: 1.5, P99Ms: 2}},
				{Kind: "actor_id", Requests: 12, Example: "actor_id=user_1", Latency: bench.Latency{P50Ms: 2, P90Ms: 3, P99Ms: 5}},
			}}}}}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Trail embedded (SQLite), HTTP | 4 | 1,800 | 10.0 | 0.90× | 0.03× | 0.30× | 150 | 40 MiB |",
		"| Trail on PostgreSQL, HTTP | 16 | 2,100 | 9.0 | 0.64× | 0.05× | 0.23× | — | — |",
		"| no-storage HTTP ceiling: decode the JSON body, answer 200 | 16 | 9,000 | 3.0 | — | — | — | 50 | — |",
		// × naive is taken against the naive app over HTTP, not the in-process loop.
		"| naive app over HTTP (SQLite): 1 INSERT per request | 4 | 2,000 | 12.0 | — | 0.04× | — | 120 | — |",
		"| naive SQLite: 1 INSERT per event per transaction | 4 | 8,000 | 4.0 | — | 0.14× | — | — | — |",
		"| bare SQLite: 1,000-row transactions, primary key only | 1 (batches) | 56,000 |",
		"![Throughput and p99 latency against concurrency](performance.svg)",
		"hand-written",
		"| sqlite | actor_id | 12 | 2.00 | 3.00 | 5.00 | 2.50× | `actor_id=user_1` |",
		"after storing 1,000 events over 2 organizations",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("report lacks %q:\n%s", want, raw)
		}
	}
}

func TestParseLevels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"1,4,16", "[1 4 16]", true},
		{"16, 1,1", "[1 16]", true},
		{"0", "", false},
		{"a", "", false},
	} {
		got, err := parseLevels(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseLevels(%q) error %v", tc.in, err)
			continue
		}
		if tc.ok && fmt.Sprint(got) != tc.want {
			t.Errorf("parseLevels(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}
