// Command compare measures Trail's ingest against its baselines on this
// machine, in one run, and writes docs/PERFORMANCE.md with a chart.
//
// It runs, at each concurrency and several times over (interleaved, so that
// a noisy minute does not favour one system): Trail embedded (a real
// `trail serve` on SQLite, driven over HTTP by `trail bench ingest`'s
// engine), Trail on PostgreSQL (the same, with --database), and the
// baselines of package bench — the naive one-INSERT-per-event-per-transaction
// approach on SQLite and on PostgreSQL, in process and as the naive app over
// HTTP (a process of its own, one INSERT per request: the baseline Trail's
// ratios are taken against), and the bare ceilings (1,000-row transactions
// into a table with only a primary key; COPY on PostgreSQL).
// PostgreSQL is a throwaway server started here with its default
// durability (fsync on). Beside them, the no-storage HTTP ceiling: a Go
// server (this program again, in a process of its own) that decodes each
// event's JSON body and answers 200, driven by the same client; for single
// events it is the limit that matters.
//
// Usage: go run ./bench/compare [-duration 10s] [-runs 3] [-concurrency 1,4,16,64]
// (bench/compare.sh does that and names the output files).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trailaudit/trail/internal/bench"
	"github.com/trailaudit/trail/internal/pgtest"
)

// The systems compared, in the order the table lists them.
const (
	trailSQLite   = "trail-sqlite"
	trailPostgres = "trail-postgres"
	httpCeiling   = "http-ceiling"
	// The naive app over HTTP (bench.NaiveApp), in a process of its own.
	naiveHTTPSQLite   = "naive-http-sqlite"
	naiveHTTPPostgres = "naive-http-postgres"
)

var systems = []struct {
	name, label, backend string
	ceiling              bool // measured once per run, not per concurrency
}{
	{httpCeiling, "no-storage HTTP ceiling: decode the JSON body, answer 200", "http", false},
	{trailSQLite, "Trail embedded (SQLite), HTTP", "sqlite", false},
	{naiveHTTPSQLite, "naive app over HTTP (SQLite): 1 INSERT per request", "sqlite", false},
	{bench.BaselineSQLiteNaive, "naive SQLite: 1 INSERT per event per transaction", "sqlite", false},
	{bench.BaselineSQLiteBare, "bare SQLite: 1,000-row transactions, primary key only", "sqlite", true},
	{trailPostgres, "Trail on PostgreSQL, HTTP", "postgres", false},
	{naiveHTTPPostgres, "naive app over HTTP (PostgreSQL): 1 INSERT per request", "postgres", false},
	{bench.BaselinePostgresNaive, "naive PostgreSQL: 1 INSERT per event, autocommit", "postgres", false},
	{bench.BaselinePostgresCopy, "bare PostgreSQL: COPY of 1,000 rows, primary key only", "postgres", true},
}

type measurement struct {
	system      string
	concurrency int
	eventsPerS  float64
	p99ms       float64
	errors      int64
	peakRSS     int64
	cpuPerEvent float64 // server CPU µs per acknowledged event; 0 if unknown
}

func main() {
	var (
		out         = flag.String("out", "docs/PERFORMANCE.md", "Markdown report to write")
		svg         = flag.String("svg", "docs/performance.svg", "chart to write (SVG)")
		notes       = flag.String("notes", "bench/compare/notes.md", "hand-written notes (profiles) included in the report")
		duration    = flag.Duration("duration", 10*time.Second, "length of each measurement")
		runs        = flag.Int("runs", 3, "measurements of each cell; the report gives their median")
		concurrency = flag.String("concurrency", "1,4,16,64", "client counts to measure")
		orgs        = flag.Int("orgs", 10, "organizations the events are spread over")
		trailBin    = flag.String("trail", "", "trail binary to measure (default: built from this checkout)")
		querySeed   = flag.Int64("query-seed", 1_000_000, "events stored before the query runs (0 skips them)")
		queryConc   = flag.Int("query-concurrency", 4, "clients of the query runs")
		ceilingAddr = flag.String("serve-ceiling", "", "serve the no-storage HTTP ceiling on this address and do nothing else (how this program runs it in a process of its own)")
		only        = flag.String("systems", "", "comma-separated systems to measure (default all: "+systemNames()+")")
		naiveAddr   = flag.String("serve-naive", "", "serve the naive app over HTTP on this address and do nothing else (one INSERT per request; for wrk beside trail serve)")
		naiveDB     = flag.String("naive-database", "", "with -serve-naive: a postgres:// URL or a SQLite file path")
		naiveConns  = flag.Int("naive-connections", 64, "with -serve-naive: the app's database connections")
	)
	flag.Parse()
	if *ceilingAddr != "" {
		if err := serveCeiling(*ceilingAddr); err != nil {
			fatal(err)
		}
		return
	}
	if *naiveAddr != "" {
		if err := serveNaive(*naiveAddr, *naiveDB, *naiveConns); err != nil {
			fatal(err)
		}
		return
	}
	levels, err := parseLevels(*concurrency)
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "trail-compare-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)
	bin := *trailBin
	if bin == "" {
		bin = filepath.Join(tmp, "trail")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/trail")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal(fmt.Errorf("building trail: %w", err))
		}
	}
	pg, err := pgtest.Start()
	if err != nil {
		fatal(fmt.Errorf("starting a throwaway PostgreSQL: %w", err))
	}
	defer pg.Stop()

	started := time.Now()
	var all []measurement
	dbs := 0
	newDB := func() (string, error) {
		dbs++
		return pg.CreateDatabase(ctx, fmt.Sprintf("compare_%d", dbs))
	}
	for run := 1; run <= *runs; run++ {
		for _, sys := range systems {
			if *only != "" && !slices.Contains(strings.Split(*only, ","), sys.name) {
				continue
			}
			cs := levels
			if sys.ceiling {
				cs = []int{1}
			}
			for _, c := range cs {
				if ctx.Err() != nil {
					fatal(ctx.Err())
				}
				fmt.Fprintf(os.Stderr, "run %d/%d: %s, %d clients … ", run, *runs, sys.name, c)
				m, err := measure(ctx, sys.name, c, *duration, *orgs, bin, tmp, newDB)
				if err != nil {
					fatal(fmt.Errorf("%s at %d clients: %w", sys.name, c, err))
				}
				fmt.Fprintf(os.Stderr, "%.0f events/s, p99 %.1f ms\n", m.eventsPerS, m.p99ms)
				all = append(all, m)
			}
		}
	}
	var queries []queryRun
	if *querySeed > 0 {
		for _, backend := range []string{"sqlite", "postgres"} {
			fmt.Fprintf(os.Stderr, "query run on %s: storing %d events, then searching for %s … ", backend, *querySeed, *duration)
			q, err := measureQueries(ctx, backend, *querySeed, *queryConc, *duration, *orgs, bin, newDB)
			if err != nil {
				fatal(fmt.Errorf("query run on %s: %w", backend, err))
			}
			fmt.Fprintf(os.Stderr, "%d searches\n", q.report.Requests)
			queries = append(queries, q)
		}
	}
	notesText, _ := os.ReadFile(*notes)
	med := medians(all)
	cmdline := "bench/compare.sh " + strings.Join(os.Args[1:], " ")
	if err := writeSVG(*svg, med, levels); err != nil {
		fatal(err)
	}
	if err := writeReport(*out, *svg, med, levels, reportInfo{
		command: strings.TrimSpace(cmdline), duration: *duration, runs: *runs, orgs: *orgs,
		took: time.Since(started), notes: string(notesText), queries: queries, querySeed: *querySeed,
	}); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", *out, *svg)
}

// systemNames lists the systems -systems can name.
func systemNames() string {
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = s.name
	}
	return strings.Join(names, ",")
}

func parseLevels(s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-concurrency: %q is not a positive number", f)
		}
		levels = append(levels, n)
	}
	slices.Sort(levels)
	return slices.Compact(levels), nil
}

// measure runs one cell on fresh storage.
func measure(ctx context.Context, system string, c int, d time.Duration, orgs int, bin, tmp string, newDB func() (string, error)) (measurement, error) {
	m := measurement{system: system, concurrency: c}
	var rep bench.Report
	switch system {
	case httpCeiling:
		var err error
		if rep, m.cpuPerEvent, err = measureOwnProcess(ctx, "ceiling on ", c, d, orgs, "-serve-ceiling", "127.0.0.1:0"); err != nil {
			return m, err
		}
	case naiveHTTPSQLite, naiveHTTPPostgres:
		var database string
		if system == naiveHTTPPostgres {
			dsn, err := newDB()
			if err != nil {
				return m, err
			}
			database = dsn
		} else {
			dir, err := os.MkdirTemp(tmp, system+"-")
			if err != nil {
				return m, err
			}
			defer os.RemoveAll(dir)
			database = filepath.Join(dir, "naive.db")
		}
		// As many connections as clients, like the in-process naive approach.
		var err error
		if rep, m.cpuPerEvent, err = measureOwnProcess(ctx, "naive app on ", c, d, orgs,
			"-serve-naive", "127.0.0.1:0", "-naive-database", database, "-naive-connections", strconv.Itoa(c)); err != nil {
			return m, err
		}
	case trailSQLite, trailPostgres:
		opts := bench.EmbeddedOptions{Executable: bin}
		if system == trailPostgres {
			dsn, err := newDB()
			if err != nil {
				return m, err
			}
			opts.Args = []string{"--database", dsn, "--log-origin", "bench.trail.example/audit"}
		}
		srv, err := bench.StartEmbedded(ctx, opts)
		if err != nil {
			return m, err
		}
		client, err := bench.NewClient(srv.URL, srv.Key, c, "trail-bench-compare")
		if err != nil {
			return m, errors.Join(err, srv.Stop())
		}
		client.MetricsBase = srv.MetricsURL // the server's CPU per event
		rep, err = bench.Ingest(ctx, client, bench.IngestOptions{
			Load: bench.Load{Concurrency: c, Duration: d}, Orgs: orgs, Target: "embedded"})
		stopErr := srv.Stop()
		if err != nil {
			return m, fmt.Errorf("%w\nserver log:\n%s", err, srv.Logs())
		}
		if stopErr != nil {
			return m, fmt.Errorf("stopping the server: %w", stopErr)
		}
		m.peakRSS = srv.PeakRSS()
		if rep.ServerCPU != nil {
			m.cpuPerEvent = rep.ServerCPU.MicrosPerEvent
		}
	default:
		opts := bench.BaselineOptions{Kind: system, Concurrency: c, Duration: d, Orgs: orgs}
		if strings.HasPrefix(system, "postgres") {
			dsn, err := newDB()
			if err != nil {
				return m, err
			}
			opts.Database = dsn
		} else {
			dir, err := os.MkdirTemp(tmp, system+"-")
			if err != nil {
				return m, err
			}
			defer os.RemoveAll(dir)
			opts.Dir = dir
		}
		var err error
		if rep, err = bench.Baseline(ctx, opts); err != nil {
			return m, err
		}
	}
	m.eventsPerS, m.p99ms, m.errors = rep.EventsPerSecond, rep.Latency.P99Ms, rep.Errors
	if rep.Errors > 0 {
		return m, fmt.Errorf("%d errors (first: %s)", rep.Errors, rep.FirstError)
	}
	return m, nil
}

// serveCeiling serves the no-storage HTTP ceiling on addr, saying where on
// its first line of output, until it is told to stop.
func serveCeiling(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("ceiling on http://%s\n", ln.Addr())
	return bench.ServeCeiling(ctx, ln)
}

// serveNaive serves the naive app (bench.NaiveApp) on addr over database,
// saying where on its first line of output, until it is told to stop.
func serveNaive(addr, database string, conns int) error {
	if database == "" {
		return errors.New("-serve-naive needs -naive-database (a postgres:// URL or a SQLite file path)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := bench.NewNaiveApp(ctx, database, conns)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("naive app on http://%s\n", ln.Addr())
	return bench.ServeHandler(ctx, ln, app)
}

// measureOwnProcess runs this program again with args (the ceiling or the
// naive app, which say where they listen on their first line, after
// prefix), drives the ingest load against it, and returns the report and
// that process's CPU per event.
func measureOwnProcess(ctx context.Context, prefix string, c int, d time.Duration, orgs int, args ...string) (bench.Report, float64, error) {
	self, err := os.Executable()
	if err != nil {
		return bench.Report{}, 0, err
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return bench.Report{}, 0, err
	}
	if err := cmd.Start(); err != nil {
		return bench.Report{}, 0, fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	base, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if err != nil || !ok {
		return bench.Report{}, 0, fmt.Errorf("%s did not say where it listens (%q): %v", strings.Join(args, " "), line, err)
	}
	client, err := bench.NewClient(base, "sk_ceiling", c, "trail-bench-compare")
	if err != nil {
		return bench.Report{}, 0, err
	}
	ids := make([]string, orgs)
	for i := range ids {
		ids[i] = fmt.Sprintf("org_ceiling_%d", i)
	}
	before, _ := bench.ProcessCPU(cmd.Process.Pid)
	rep, err := bench.Ingest(ctx, client, bench.IngestOptions{Load: bench.Load{Concurrency: c, Duration: d}, OrgIDs: ids, Target: "ceiling"})
	if err != nil {
		return rep, 0, err
	}
	after, ok := bench.ProcessCPU(cmd.Process.Pid)
	if !ok || rep.Events == 0 {
		return rep, 0, nil
	}
	return rep, float64((after - before).Microseconds()) / float64(rep.Events), nil
}

// cell is the median of one system at one concurrency.
type cell struct {
	eventsPerS, p99ms float64
	cpuPerEvent       float64 // µs; 0 if unknown
	peakRSS           int64
	n                 int
}

type key struct {
	system      string
	concurrency int
}

func medians(all []measurement) map[key]cell {
	groups := map[key][]measurement{}
	for _, m := range all {
		k := key{m.system, m.concurrency}
		groups[k] = append(groups[k], m)
	}
	out := map[key]cell{}
	for k, ms := range groups {
		eps := make([]float64, len(ms))
		p99 := make([]float64, len(ms))
		var cpu []float64
		var rss int64
		for i, m := range ms {
			eps[i], p99[i] = m.eventsPerS, m.p99ms
			if m.cpuPerEvent > 0 {
				cpu = append(cpu, m.cpuPerEvent)
			}
			rss = max(rss, m.peakRSS)
		}
		out[k] = cell{eventsPerS: median(eps), p99ms: median(p99), cpuPerEvent: median(cpu), peakRSS: rss, n: len(ms)}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type reportInfo struct {
	command   string
	duration  time.Duration
	runs      int
	orgs      int
	took      time.Duration
	notes     string
	queries   []queryRun
	querySeed int64
}

// queryRun is `trail bench query` against one backend.
type queryRun struct {
	backend string
	report  bench.Report
}

// measureQueries stores seed events in a fresh Trail (batches of 1,000),
// waits for the search index, and runs the query mix of `trail bench query`.
func measureQueries(ctx context.Context, backend string, seed int64, c int, d time.Duration, orgs int, bin string, newDB func() (string, error)) (queryRun, error) {
	q := queryRun{backend: backend}
	opts := bench.EmbeddedOptions{Executable: bin}
	if backend == "postgres" {
		dsn, err := newDB()
		if err != nil {
			return q, err
		}
		opts.Args = []string{"--database", dsn, "--log-origin", "bench.trail.example/audit"}
	}
	srv, err := bench.StartEmbedded(ctx, opts)
	if err != nil {
		return q, err
	}
	client, err := bench.NewClient(srv.URL, srv.Key, max(c, 8), "trail-bench-compare")
	if err != nil {
		return q, errors.Join(err, srv.Stop())
	}
	q.report, err = bench.Query(ctx, client, bench.QueryOptions{Load: bench.Load{Concurrency: c, Duration: d},
		OrgCount: orgs, Seed: seed, Limit: 50, Target: "embedded"})
	stopErr := srv.Stop()
	if err != nil {
		return q, fmt.Errorf("%w\nserver log:\n%s", err, srv.Logs())
	}
	if stopErr != nil {
		return q, fmt.Errorf("stopping the server: %w", stopErr)
	}
	if q.report.Errors > 0 {
		return q, fmt.Errorf("%d failed searches (first: %s)", q.report.Errors, q.report.FirstError)
	}
	return q, nil
}

// machine describes this machine in a line or two.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	pgVersion := ""
	if out, err := exec.Command("sh", "-c", "ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1").Output(); err == nil && len(out) > 0 {
		if v, err := exec.Command(filepath.Join(strings.TrimSpace(string(out)), "postgres"), "--version").Output(); err == nil {
			pgVersion = "; " + strings.TrimSpace(string(v))
		}
	}
	return fmt.Sprintf("%s, %d logical CPUs%s; Linux %s; %s%s", cpu, runtime.NumCPU(), mem,
		strings.TrimSpace(string(kernel)), runtime.Version(), pgVersion)
}

func writeReport(path, svgPath string, med map[key]cell, levels []int, info reportInfo) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Performance\n\n")
	p("<!-- Generated by bench/compare.sh (bench/compare/main.go); do not edit by hand: rerun it. Hand-written notes come from bench/compare/notes.md. -->\n\n")
	p("How fast Trail ingests, next to what the same machine does without it. Every figure below comes from one run of\n\n")
	p("```sh\n%s\n```\n\n", info.command)
	p("on %s, on %s. Each cell is the median of %d measurements of %s each, interleaved (all systems at every concurrency, then again), with %d organizations; the run took %s.\n\n",
		machine(), time.Now().UTC().Format("2006-01-02"), info.runs, info.duration, info.orgs, info.took.Round(time.Second))
	p("- **Trail**: a real `trail serve` (fresh data directory or database for each measurement) driven over loopback HTTP by `trail bench ingest`'s engine: closed loop, each client sending one event (`POST /audit_logs/events`, the WorkOS call) and waiting for its answer. An event is acknowledged only once durable, with its seq, search indexing and Merkle integration behind it.\n")
	p("- **naive app over HTTP**: what most applications do, and the baseline of × naive — a Go `net/http` server in a process of its own that decodes each event's JSON body and stores it with one `INSERT`, its own transaction, from as many connections as clients (SQLite in WAL mode with synchronous=FULL; PostgreSQL with its default durability), driven by the same client as Trail.\n")
	p("- **naive**: the same `INSERT`s in process, without HTTP: what the storage alone does.\n")
	p("- **bare**: the ceiling — one connection storing the same records 1,000 a transaction into a table with only its primary key (SQLite `INSERT`s; PostgreSQL `COPY`). Its latency is that of a 1,000-row transaction.\n")
	p("- **no-storage HTTP ceiling**: a Go `net/http` server in a process of its own that decodes each event's JSON body and answers 200, storing nothing, driven by the same client: what single events over HTTP cost before anything is done with them.\n\n")
	p("![Throughput and p99 latency against concurrency](%s)\n\n", relPath(path, svgPath))

	p("| system | clients | events/s | p99 ms | × naive | × bare | × HTTP ceiling | server CPU µs/event | peak RSS |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, sys := range systems {
		cs := levels
		if sys.ceiling {
			cs = []int{1}
		}
		for _, c := range cs {
			m, ok := med[key{sys.name, c}]
			if !ok {
				continue
			}
			naive, bare, ceil, cpu := "—", "—", "—", "—"
			if strings.HasPrefix(sys.name, "trail-") {
				if h, ok := med[key{httpCeiling, c}]; ok && h.eventsPerS > 0 {
					ceil = fmt.Sprintf("%.2f×", m.eventsPerS/h.eventsPerS)
				}
			}
			if m.cpuPerEvent > 0 {
				cpu = fmt.Sprintf("%.0f", m.cpuPerEvent)
			}
			if strings.HasPrefix(sys.name, "trail-") {
				if n, ok := med[key{naiveOf(sys.backend), c}]; ok && n.eventsPerS > 0 {
					naive = fmt.Sprintf("%.2f×", m.eventsPerS/n.eventsPerS)
				}
			}
			if !sys.ceiling && sys.name != httpCeiling {
				if c0, ok := med[key{bareOf(sys.backend), 1}]; ok && c0.eventsPerS > 0 {
					bare = fmt.Sprintf("%.2f×", m.eventsPerS/c0.eventsPerS)
				}
			}
			clients := strconv.Itoa(c)
			if sys.ceiling {
				clients = "1 (batches)"
			}
			rss := "—"
			if m.peakRSS > 0 {
				rss = fmt.Sprintf("%.0f MiB", float64(m.peakRSS)/(1<<20))
			}
			p("| %s | %s | %s | %.1f | %s | %s | %s | %s | %s |\n", sys.label, clients, thousands(m.eventsPerS), m.p99ms, naive, bare, ceil, cpu, rss)
		}
	}
	p("\n× naive: Trail's events/s divided by the naive app's over HTTP on the same database at the same concurrency. × bare: events/s divided by the bare ceiling of the same database. × HTTP ceiling: events/s divided by the no-storage HTTP ceiling's at the same concurrency. Server CPU: the server process's user and system time over the measurement, per acknowledged event (Trail: its `process_cpu_seconds_total`; the ceiling: `/proc`).\n\n")
	if len(info.queries) > 0 {
		p("## Queries\n\n")
		p("First pages (50 events) of `GET /v1/events` over HTTP, the mix of `trail bench query` (%d clients, %s), after storing %s events over %d organizations in a fresh Trail. The baseline is the unfiltered newest page of the same run: × newest is a filter's p99 over it.\n\n",
			info.queries[0].report.Concurrency, info.duration, thousands(float64(info.querySeed)), info.orgs)
		p("| backend | filter | searches | p50 ms | p90 ms | p99 ms | × newest | example |\n")
		p("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, q := range info.queries {
			var newest float64
			for _, k := range q.report.Queries {
				if k.Kind == "newest" {
					newest = k.Latency.P99Ms
				}
			}
			for _, k := range q.report.Queries {
				ratio := "—"
				if newest > 0 && k.Kind != "newest" {
					ratio = fmt.Sprintf("%.2f×", k.Latency.P99Ms/newest)
				}
				p("| %s | %s | %s | %.2f | %.2f | %.2f | %s | `%s` |\n", q.backend, k.Kind, thousands(float64(k.Requests)),
					k.Latency.P50Ms, k.Latency.P90Ms, k.Latency.P99Ms, ratio, k.Example)
			}
		}
		p("\n")
	}
	if strings.TrimSpace(info.notes) != "" {
		p("%s\n", strings.TrimSpace(info.notes))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func naiveOf(backend string) string {
	if backend == "postgres" {
		return naiveHTTPPostgres
	}
	return naiveHTTPSQLite
}

func bareOf(backend string) string {
	if backend == "postgres" {
		return bench.BaselinePostgresCopy
	}
	return bench.BaselineSQLiteBare
}

func relPath(from, to string) string {
	rel, err := filepath.Rel(filepath.Dir(from), to)
	if err != nil {
		return to
	}
	return filepath.ToSlash(rel)
}

// thousands formats v rounded, with thin separators: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}
