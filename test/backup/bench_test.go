package backup_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/bench"
	"github.com/trailaudit/trail/internal/trailtest"
)

// BenchmarkReplication measures, in one run and on this machine, what
// --replicate costs (docs/PERFORMANCE.md, "Replication"):
//
//   - ingest throughput of trail bench ingest (closed loop, 16 clients,
//     batches of 100) against a server without and with replication to a
//     directory and to an S3 server in this process, alternated;
//
//   - the publication delay replication adds to checkpoints (p50, p99 from
//     trail_checkpoint_publication_delay_seconds) at 5,000 events/s;
//
//   - trail restore's rate from each replica, beside copying the restored
//     file and (for the directory) the replica's files.
//
//     go test ./test/backup -run '^$' -bench Replication -benchtime 1x
//
// TRAIL_BENCH_TARGETS=s3 (or file) measures only that target beside none,
// TRAIL_BENCH_ROUNDS sets the alternated rounds (default 2; the ratios
// reported are then medians of the rounds' ratios), TRAIL_BENCH_QUICK=1
// skips the publication delay and restore, and TRAIL_BENCH_PROFILE=DIR
// writes a CPU profile of each server's ingest there.
// TRAIL_BENCH_CANDIDATE=NAME=VALUE adds, after each target, the same target
// with that variable in the server's environment (a test-only setting,
// cmd/trail/testknobs.go), so that a candidate setting is measured in the
// same rounds as the default. Several variables of one candidate are
// separated by spaces, several candidates by semicolons
// ("A=1;A=2 B=3": candidate1 and candidate2).
func BenchmarkReplication(b *testing.B) {
	dur := 15 * time.Second
	if d := os.Getenv("TRAIL_BENCH_DURATION"); d != "" {
		var err error
		if dur, err = time.ParseDuration(d); err != nil {
			b.Fatal(err)
		}
	}
	s3 := newFakeS3(b)
	for range b.N {
		modes := []struct {
			name string
			r    *replica
			env  []string
		}{
			{"off", nil, nil},
			{"file", &replica{url: "file://" + filepath.Join(b.TempDir(), "replica")}, nil},
			{"s3", &replica{url: "s3://trail-backups/bench-" + strconv.FormatInt(time.Now().UnixNano(), 36), endpoint: s3.url, s3: s3}, nil},
		}
		if t := os.Getenv("TRAIL_BENCH_TARGETS"); t != "" {
			kept := slices.Clone(modes[:1])
			for _, m := range modes[1:] {
				if slices.Contains(strings.Split(t, ","), m.name) {
					kept = append(kept, m)
				}
			}
			modes = kept
		}
		if c := os.Getenv("TRAIL_BENCH_CANDIDATE"); c != "" {
			cands := strings.Split(c, ";")
			kept := slices.Clone(modes[:1])
			for _, m := range modes[1:] {
				kept = append(kept, m)
				for i, vars := range cands {
					cand := m
					cand.name += "+candidate"
					if len(cands) > 1 {
						cand.name += strconv.Itoa(i + 1)
					}
					cand.env = strings.Fields(vars)
					kept = append(kept, cand)
				}
			}
			modes = kept
		}
		rounds := 2
		if r := os.Getenv("TRAIL_BENCH_ROUNDS"); r != "" {
			var err error
			if rounds, err = strconv.Atoi(r); err != nil || rounds < 1 {
				b.Fatalf("TRAIL_BENCH_ROUNDS=%q: want a positive number", r)
			}
		}
		profDir := os.Getenv("TRAIL_BENCH_PROFILE")
		// Rounds alternate the configurations, so that a machine's drift
		// shows; each round's ratio is taken against that round's run
		// without replication. Every other round runs them in reverse
		// order: on a machine whose rate drifts during a run, the
		// configuration that always ran second would always look slower.
		best := map[string]float64{}
		ratios, perCPU := map[string][]float64{}, map[string][]float64{}
		for round := range rounds {
			order := slices.Clone(modes)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			rates, efficiency := map[string]float64{}, map[string]float64{}
			for _, m := range order {
				opts := trailtest.Options{Env: append(env(), m.env...), Args: []string{"--log-level", "error"}}
				if m.r != nil {
					// A replica of its own: each server starts with a
					// new database.
					r := *m.r
					r.url += "-" + strconv.Itoa(round) + "-" + strings.ReplaceAll(m.name, "+", "-")
					opts.Args = append(opts.Args, r.args()...)
				}
				if profDir != "" {
					opts.Args = append(opts.Args, "--pprof")
				}
				srv := trailtest.Start(b, opts)
				var prof chan struct{}
				if profDir != "" {
					prof = profile(b, srv, filepath.Join(profDir, fmt.Sprintf("%s-%d.pprof", m.name, round)), dur*4/5)
				}
				benchCPU, stolen := cpuTime(b), stolenTime()
				eps := ingest(b, srv, "--concurrency", "16", "--batch", "100", "--duration", dur.String())
				benchCPU, stolen = cpuTime(b)-benchCPU, stolenTime()-stolen
				if prof != nil {
					<-prof
				}
				best[m.name] = max(best[m.name], eps)
				rates[m.name] = eps
				// CPU beside the rate: the server's own, and this
				// process's, which serves the S3 target's requests
				// (ingest runs in a process of its own).
				serverCPU := counterSum(b, srv, "process_cpu_seconds_total")
				if serverCPU > 0 {
					efficiency[m.name] = eps / serverCPU
				}
				cpu := fmt.Sprintf("server CPU %.2f s, benchmark process (S3 server) %.2f s, stolen from the machine %.2f s",
					serverCPU, benchCPU.Seconds(), stolen.Seconds())
				if m.r != nil {
					n := counterSum(b, srv, "trail_replication_checkpoints_total")
					secs := counterSum(b, srv, "trail_replication_checkpoint_seconds_total")
					failed := counterSum(b, srv, `trail_replication_rounds_total{result="error"}`)
					b.Logf("round %d, replication %s: %.0f events/s; %s; %.0f WAL checkpoints, %.3f s in them; %.0f rounds failed", round, m.name, eps, cpu, n, secs, failed)
				} else {
					b.Logf("round %d, replication %s: %.0f events/s; %s", round, m.name, eps, cpu)
				}
				srv.Stop(b)
			}
			for _, m := range modes[1:] {
				ratios[m.name] = append(ratios[m.name], rates[m.name]/rates["off"])
				perCPU[m.name] = append(perCPU[m.name], efficiency[m.name]/efficiency["off"])
			}
		}
		b.ReportMetric(best["off"], "events/s-off")
		for _, m := range modes[1:] {
			b.Logf("replication %s ÷ off, round by round: %.2f (median %.2f)", m.name, ratios[m.name], median(ratios[m.name]))
			// The server is CPU-bound at this load: events per second of
			// its CPU is the same comparison, less moved by rounds in
			// which the machine lent its cores elsewhere.
			b.Logf("replication %s ÷ off, events per second of server CPU, round by round: %.2f (median %.2f)", m.name, perCPU[m.name], median(perCPU[m.name]))
			b.ReportMetric(median(ratios[m.name]), "ratio-"+m.name)
		}
		if os.Getenv("TRAIL_BENCH_QUICK") != "" {
			continue
		}

		// Publication delay at 5,000 events/s (50 requests of 100 a
		// second; TRAIL_BENCH_RATE sets another rate of requests), beside
		// the integrator's own lag in the same run.
		rate := "50"
		if r := os.Getenv("TRAIL_BENCH_RATE"); r != "" {
			rate = r
		}
		for _, m := range modes[1:] {
			srv := trailtest.Start(b, trailtest.Options{Env: append(env(), m.env...), Args: append([]string{"--log-level", "error"}, m.r.args()...)})
			eps := ingest(b, srv, "--rate", rate, "--batch", "100", "--duration", (2 * dur).String())
			p50, p99, n := delayQuantiles(b, srv, "trail_checkpoint_publication_delay_seconds")
			l50, l99, _ := delayQuantiles(b, srv, "trail_ledger_lag_seconds")
			b.Logf("replication %s at %.0f events/s: publication delay p50 ≤ %.3f s, p99 ≤ %.3f s over %d checkpoints; integrator lag p50 ≤ %.3f s, p99 ≤ %.3f s",
				m.name, eps, p50, p99, n, l50, l99)
			b.ReportMetric(p99, "p99-delay-s-"+m.name)
			srv.Stop(b)
			// Restore from the replica, beside copying bytes.
			data := filepath.Join(b.TempDir(), "restored")
			start := time.Now()
			code, out, errOut := trail(b, restoreArgs(*m.r, data)...)
			took := time.Since(start)
			if code != 0 {
				b.Fatalf("restore: %d %s %s", code, out, errOut)
			}
			var events int64
			if m := restoredEvents.FindStringSubmatch(out); m != nil {
				events, _ = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
			}
			size := fileSize(b, filepath.Join(data, "trail.db"))
			copyTook := copyFile(b, filepath.Join(data, "trail.db"), filepath.Join(b.TempDir(), "copy.db"))
			line := fmt.Sprintf("restore from %s: %d events (%.1f MiB) in %s = %.0f events/s; copying the restored file: %s",
				m.name, events, float64(size)/(1<<20), took.Round(time.Millisecond), float64(events)/took.Seconds(), copyTook.Round(time.Millisecond))
			if m.r.s3 == nil {
				dir := strings.TrimPrefix(m.r.url, "file://")
				n, t := copyTree(b, dir, filepath.Join(b.TempDir(), "replica-copy"))
				line += fmt.Sprintf("; copying the replica's %.1f MiB: %s", float64(n)/(1<<20), t.Round(time.Millisecond))
			}
			b.Log(line)
			b.ReportMetric(float64(events)/took.Seconds(), "restore-events/s-"+m.name)
		}
	}
}

// median returns the middle of xs (the mean of the two middle ones for an
// even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// profile writes a CPU profile of srv (served with --pprof) over d to
// path, in the background; the channel closes when it is written.
func profile(b *testing.B, srv *trailtest.Server, path string, d time.Duration) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", srv.MetricsURL, int(max(d.Seconds(), 1))))
		if err != nil {
			b.Logf("profile: %v", err)
			return
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		if err == nil {
			err = os.WriteFile(path, data, 0o600)
		}
		if err != nil {
			b.Logf("profile: %v", err)
		}
	}()
	return done
}

// stolenTime is the CPU time the machine lent to other guests since boot
// (bench.StolenCPU), zero where the kernel does not say. A run during
// which it grows by seconds measured a machine that was not ours,
// whatever the configuration.
func stolenTime() time.Duration {
	d, _ := bench.StolenCPU()
	return d
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var restoredEvents = regexp.MustCompile(`Restored [0-9]+ logs \(([0-9,]+) events\)`)

// ingest runs trail bench ingest against srv and returns its events/s.
func ingest(b *testing.B, srv *trailtest.Server, args ...string) float64 {
	b.Helper()
	cmd := exec.Command(trailtest.Binary(b), append([]string{"bench", "ingest", "--server", srv.URL, "--api-key", srv.Key, "--json"}, args...)...)
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("trail bench ingest: %v\n%s", err, out)
	}
	var r struct {
		EventsPerSecond float64 `json:"events_per_second"`
		Errors          int64   `json:"errors"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatalf("trail bench ingest: %v\n%s", err, out)
	}
	if r.Errors > 0 { // a machine that cannot keep up refuses some (503)
		b.Logf("trail bench ingest: %d requests refused", r.Errors)
	}
	return r.EventsPerSecond
}

// delayQuantiles reads p50 and p99 of a histogram on /metrics (upper
// bucket bounds).
func delayQuantiles(b *testing.B, srv *trailtest.Server, name string) (p50, p99 float64, n int64) {
	b.Helper()
	data := metricsText(b, srv)
	type bucket struct {
		le    float64
		count int64
	}
	var buckets []bucket
	for line := range strings.SplitSeq(data, "\n") {
		rest, ok := strings.CutPrefix(line, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		v := math.Inf(1)
		if le != "+Inf" {
			v, _ = strconv.ParseFloat(le, 64)
		}
		c, _ := strconv.ParseInt(count, 10, 64)
		buckets = append(buckets, bucket{v, c})
	}
	if len(buckets) == 0 {
		b.Fatalf("no histogram %s on /metrics", name)
	}
	n = buckets[len(buckets)-1].count
	q := func(f float64) float64 {
		for _, bk := range buckets {
			if float64(bk.count) >= f*float64(n) {
				return bk.le
			}
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99), n
}

// counterSum reads a counter on /metrics, summed over its labels.
func counterSum(b *testing.B, srv *trailtest.Server, name string) float64 {
	b.Helper()
	data := metricsText(b, srv)
	var n float64
	for line := range strings.SplitSeq(data, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			// name may carry labels: name{label="value"}
			if i := strings.LastIndexByte(rest, ' '); i >= 0 {
				v, _ := strconv.ParseFloat(rest[i+1:], 64)
				n += v
			}
		}
	}
	return n
}

func fileSize(b *testing.B, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// copyFile copies src to dst, synced, as a plain file copy would, and
// returns how long it took.
func copyFile(b *testing.B, src, dst string) time.Duration {
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Sync(); err != nil {
		b.Fatal(err)
	}
	out.Close()
	return time.Since(start)
}

// copyTree copies every file under src to dst, synced, and returns the
// bytes copied and how long it took.
func copyTree(b *testing.B, src, dst string) (int64, time.Duration) {
	start := time.Now()
	var n int64
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return err
		}
		copyFile(b, p, out)
		n += fileSize(b, p)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n, time.Since(start)
}
