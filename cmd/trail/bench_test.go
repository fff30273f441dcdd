package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/bench"
	"github.com/trailaudit/trail/internal/trailtest"
)

const benchKey = "sk_bench_test_0123456789abcdefghij"

// runBench runs trail bench through its command, with --embedded starting
// the trail binary built for the tests.
func runBench(t *testing.T, args ...string) (bench.Report, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &benchCommand{stdout: &stdout, stderr: &stderr, executable: trailtest.Binary(t)}
	err := c.Run(trailtest.Context(t), args)
	var rep bench.Report
	if err == nil && strings.Contains(strings.Join(args, " "), "--json") && args[0] != "check" {
		if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
			t.Fatalf("trail bench %s: the output is not one JSON report: %v\n%s", strings.Join(args, " "), jerr, stdout.String())
		}
	}
	return rep, stdout.String() + stderr.String(), err
}

func checkLatency(t *testing.T, rep bench.Report) {
	t.Helper()
	l := rep.Latency
	if !(l.P50Ms > 0 && l.P90Ms >= l.P50Ms && l.P99Ms >= l.P90Ms && l.MaxMs >= l.P99Ms) || !l.Exact {
		t.Errorf("latency %+v: want 0 < p50 ≤ p90 ≤ p99 ≤ max, exact", l)
	}
	if rep.ServerRSS == nil || rep.ServerRSS.Bytes < 1<<20 || rep.ServerRSS.Source != "VmHWM" {
		t.Errorf("server peak RSS %+v: want the embedded server's VmHWM", rep.ServerRSS)
	}
}

func TestBenchIngestRecordAndCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	dir := t.TempDir()
	data, record := filepath.Join(dir, "data"), filepath.Join(dir, "record")
	rep, out, err := runBench(t, "ingest", "--embedded", "--data", data, "--api-key", benchKey,
		"--requests", "500", "--concurrency", "8", "--orgs", "3", "--json", "--record", record)
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	if rep.Mode != "ingest" || rep.Requests != 500 || rep.Errors != 0 || rep.Events != 500 || rep.RecordedEvents != 500 || rep.Loop != "closed" {
		t.Fatalf("report %+v: want 500 requests, 500 events recorded, no error", rep)
	}
	if rep.RequestsPerSecond <= 0 || rep.EventsPerSecond != rep.RequestsPerSecond || len(rep.ErrorsByStatus) != 0 {
		t.Errorf("throughput %v req/s, %v events/s, errors %v", rep.RequestsPerSecond, rep.EventsPerSecond, rep.ErrorsByStatus)
	}
	checkLatency(t, rep)

	check := []string{"check", "--embedded", "--data", data, "--api-key", benchKey, record}
	if _, out, err := runBench(t, check...); err != nil || !strings.Contains(out, "500 found, 0 missing, 0 stored more than once") {
		t.Fatalf("check of an untouched record: %v\n%s", err, out)
	}

	// An event never sent, listed as acknowledged: check must fail, with
	// exit status 1 from the real binary.
	f, err := os.OpenFile(record, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("org_01ZZZZZZZZZZZZZZZZZZZZZZZZ\t" + rep.RunID + "-999999\tevt_01ZZZZZZZZZZZZZZZZZZZZZZZZ\n")
	f.Close()
	_, out, err = runBench(t, check...)
	if err == nil || !strings.Contains(out, "1 missing") || !strings.Contains(out, "evt_01ZZZZZZZZZZZZZZZZZZZZZZZZ") {
		t.Fatalf("check of a tampered record: %v\n%s", err, out)
	}
	cmd := exec.Command(trailtest.Binary(t), append([]string{"bench"}, check...)...)
	bout, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(bout), "events were lost or duplicated") {
		t.Fatalf("trail bench check of a tampered record: %v, want exit status 1\n%s", err, bout)
	}
}

func TestBenchIngestBatchesOpenLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	rep, out, err := runBench(t, "ingest", "--embedded", "--rate", "200", "--duration", "2s", "--batch", "5",
		"--event-size", "2000", "--json")
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	// 200 a second for 2 s, started on schedule whatever the answers.
	if rep.Loop != "open" || rep.Requests < 380 || rep.Requests > 401 || rep.Errors != 0 || rep.Events != rep.Requests*5 {
		t.Fatalf("report %+v: want about 400 requests of 5 events, no error", rep)
	}
	if rep.EventBytes < 1900 || rep.EventBytes > 2050 {
		t.Errorf("events of %d bytes, want about 2000", rep.EventBytes)
	}
	checkLatency(t, rep)
}

func TestBenchQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	rep, out, err := runBench(t, "query", "--embedded", "--seed", "2000", "--requests", "210", "--concurrency", "4", "--json")
	if err != nil {
		t.Fatalf("query: %v\n%s", err, out)
	}
	if rep.Requests != 210 || rep.Errors != 0 || len(rep.Queries) != 7 {
		t.Fatalf("report %+v: want 210 requests over 7 kinds of query, no error", rep)
	}
	for _, q := range rep.Queries {
		if q.Requests != 30 || q.Errors != 0 || q.EmptyPages != 0 || q.Latency.P50Ms <= 0 {
			t.Errorf("%s: %+v: want 30 requests answering events", q.Kind, q)
		}
	}
	checkLatency(t, rep)
}

func TestBenchVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	rep, out, err := runBench(t, "verify", "--embedded", "--seed", "3000", "--runs", "2", "--json")
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	v := rep.Verify
	if v == nil || v.Records < 3000 || v.Bytes <= 0 || v.RecordsPerSec <= 0 || v.RatioToSHA256 <= 0 || v.Runs != 2 ||
		!strings.Contains(v.Verified, "none altered, none missing") {
		t.Fatalf("verify stats %+v", v)
	}
	// The table names the same measurements.
	_, out, err = runBench(t, "verify", "--embedded", "--seed", "500", "--runs", "1")
	if err != nil || !strings.Contains(out, "ledger.Verify") || !strings.Contains(out, "as long as sha256") {
		t.Fatalf("verify table: %v\n%s", err, out)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	t.Setenv("TRAIL_SERVER", "")
	t.Setenv("TRAIL_API_KEY", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "say what to measure"},
		{[]string{"bench", "load"}, `unknown bench command "load"`},
		{[]string{"bench", "ingest"}, "give --server URL"},
		{[]string{"bench", "ingest", "--embedded", "--server", "http://127.0.0.1:1"}, "not both"},
		{[]string{"bench", "ingest", "--server", "http://127.0.0.1:1"}, "--api-key is required"},
		{[]string{"bench", "ingest", "--server", "ftp://x", "--api-key", "k"}, "give the server's URL"},
		{[]string{"bench", "ingest", "--embedded", "--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"bench", "ingest", "--embedded", "--rate", "-5"}, "--rate must be"},
		{[]string{"bench", "ingest", "--embedded", "--duration", "5s", "--requests", "9"}, "--duration or --requests, not both"},
		{[]string{"bench", "ingest", "--embedded", "--requests", "0"}, "--requests must be at least 1"},
		{[]string{"bench", "ingest", "--embedded", "--batch", "1001"}, "--batch must be between 1 and 1000"},
		{[]string{"bench", "ingest", "--embedded", "--orgs", "0"}, "--orgs must be between"},
		{[]string{"bench", "ingest", "--embedded", "--event-size", "99999999"}, "--event-size must be between"},
		{[]string{"bench", "ingest", "--embedded", "--concurrency", "x"}, "invalid value"},
		{[]string{"bench", "ingest", "--embedded", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "ingest", "--server", "http://127.0.0.1:1", "--api-key", "k", "--data", "d"}, "--data is for --embedded"},
		{[]string{"bench", "query", "--embedded", "--limit", "101"}, "--limit must be between 1 and 100"},
		{[]string{"bench", "query", "--embedded", "--org", "org_1"}, "--embedded starts an empty one"},
		{[]string{"bench", "verify", "--server", "http://127.0.0.1:1", "--api-key", "k"}, "give --org ID"},
		{[]string{"bench", "verify", "--embedded", "--runs", "0"}, "--runs must be between"},
		{[]string{"bench", "check", "--server", "http://127.0.0.1:1", "--api-key", "k"}, "give one record file"},
		{[]string{"bench", "check", "--embedded", "f"}, "needs the --data DIR and --api-key KEY"},
		{[]string{"bench", "check", "--server", "http://127.0.0.1:1", "--api-key", "k", "/nonexistent/rec"}, "no such file"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit status %d, stderr:\n%s\nwant status 2 and a message with %q", code, stderr.String(), tc.want)
			}
		})
	}
}
