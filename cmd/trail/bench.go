package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/bench"
	"github.com/trailaudit/trail/internal/loadgen"
)

// benchCommand is `trail bench`: a load generator in the binary, like
// pgbench or redis-benchmark, against a running server or a private one it
// starts itself.
type benchCommand struct {
	stdout, stderr io.Writer
	// executable is the trail binary --embedded runs; "" means this one.
	executable string
}

const benchUsage = `Usage:
  trail bench ingest [--batch N] [--orgs K] [--event-size BYTES] [--record FILE] LOAD TARGET
  trail bench query  [--seed N] [--orgs K | --org ID,…] [--limit N] LOAD TARGET
  trail bench verify [--seed N | --org ID] [--runs N] TARGET
  trail bench export [--seed N | --org ID] [--format csv|ndjson] TARGET
  trail bench check  TARGET FILE

LOAD:   --concurrency C (closed loop, default 16) or --rate R (open loop: R requests
        started a second whatever the answers; latency counts from each scheduled start),
        for --duration D (default 10s) or --requests N
TARGET: --server URL --api-key KEY (a running server; TRAIL_SERVER, TRAIL_API_KEY)
        or --embedded [--data DIR] [-- SERVE_FLAGS…] (a private trail serve on a temporary
        data directory, stopped at the end)

ingest  sends single events (POST /audit_logs/events), or batches of N (POST /v1/events/batch),
        spread over K new organizations; --record FILE lists every acknowledged event
query   searches first pages of GET /v1/events with a mix of filters (action, action prefix,
        actor, target, free text, time range), after storing --seed N events
verify  pulls a bundle of one organization's log and times ledger.Verify over it beside
        SHA-256 of the same file
export  exports one organization's whole log (POST /audit_logs/exports) and times it against
        reading the same records raw (the log bundle); with --embedded the server is restarted
        after seeding, so its peak RSS is the export's
check   reads a --record FILE and checks every acknowledged event is stored exactly once
        (exit status 1 if one is missing or duplicated)

Every command prints a table at the end, or one JSON object with --json; run
'trail bench COMMAND -h' for all its flags.`

func (c *benchCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("say what to measure: ingest, query, verify or check\n\n%s", benchUsage)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(c.stderr, benchUsage)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\nFlags of trail bench %s:\n", benchUsage, args[0])
		fs.PrintDefaults()
	}
	switch args[0] {
	case "ingest":
		return c.ingest(ctx, fs, args[1:])
	case "query":
		return c.query(ctx, fs, args[1:])
	case "verify":
		return c.verify(ctx, fs, args[1:])
	case "export":
		return c.export(ctx, fs, args[1:])
	case "check":
		return c.check(ctx, fs, args[1:])
	}
	return usagef("unknown bench command %q: use ingest, query, verify or check", args[0])
}

// benchTarget names the server a benchmark measures.
type benchTarget struct {
	server, apiKey string
	metrics        string // --metrics-url: the server's operator listener
	embedded       bool
	data           string
	json           bool
	serveArgs      []string
}

func (t *benchTarget) register(fs *flag.FlagSet) {
	setting{fs}.StringVar(&t.server, "server", "TRAIL_SERVER", "", "URL of a running Trail server")
	setting{fs}.StringVar(&t.metrics, "metrics-url", "TRAIL_METRICS_URL", "", "with --server: URL of its operator listener (trail serve --metrics-listen), to sample its memory and wait for its search index; default none")
	setting{fs}.StringVar(&t.apiKey, "api-key", "TRAIL_API_KEY", "", "API key (admin scope, to create organizations); with --embedded, the server's bootstrap key (default: a random one)")
	fs.BoolVar(&t.embedded, "embedded", false, "start a private trail serve for the run and stop it at the end")
	fs.StringVar(&t.data, "data", "", "with --embedded: the server's data directory, kept afterwards (default: a temporary one, removed)")
	fs.BoolVar(&t.json, "json", false, "print the results as one JSON object instead of a table")
}

// check validates the target flags; rest is what follows the flags (after
// "--", trail serve flags for --embedded).
func (t *benchTarget) check(fs *flag.FlagSet) error {
	explicit := flagSet(fs, "server")
	switch {
	case t.embedded && explicit:
		return usagef("give --server URL or --embedded, not both")
	case t.embedded:
		t.server = ""
	case t.server == "":
		return usagef("give --server URL (or TRAIL_SERVER) of a running Trail server, or --embedded to start a private one")
	case t.data != "":
		return usagef("--data is for --embedded: the data directory of the server it starts")
	default:
		u, err := url.Parse(t.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--server %q: give the server's URL, e.g. http://127.0.0.1:8080", t.server)
		}
		if t.apiKey == "" {
			return usagef("--api-key is required with --server (or TRAIL_API_KEY): an admin key of that server")
		}
		if len(t.serveArgs) > 0 {
			return usagef("flags after -- are for the server --embedded starts; with --server there is none")
		}
	}
	return nil
}

// benchServer is a target ready to use: a client, and what to stop and
// measure at the end.
type benchServer struct {
	client   *bench.Client
	name     string
	embedded *bench.Embedded
	sampler  *bench.RSSSampler
}

// open starts the embedded server, or starts sampling the given one's RSS.
func (c *benchCommand) open(ctx context.Context, t *benchTarget, concurrency int) (*benchServer, error) {
	if !t.embedded {
		cl, err := bench.NewClient(t.server, t.apiKey, concurrency, "trail-bench/"+version)
		if err != nil {
			return nil, usagef("--server %q: %v", t.server, err)
		}
		s := &benchServer{client: cl, name: t.server}
		s.client.MetricsBase = t.metrics
		s.sampler = bench.SampleRSS(ctx, s.client, 500*time.Millisecond)
		return s, nil
	}
	exe := c.executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("couldn't find the trail binary to start the embedded server: %w", err)
		}
	}
	e, err := bench.StartEmbedded(ctx, bench.EmbeddedOptions{Executable: exe, Data: t.data, Key: t.apiKey, Args: t.serveArgs})
	if err != nil {
		return nil, err
	}
	cl, err := bench.NewClient(e.URL, e.Key, concurrency, "trail-bench/"+version)
	if err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	s := &benchServer{client: cl, name: "embedded", embedded: e}
	s.client.MetricsBase = e.MetricsURL
	return s, nil
}

// close stops the server (or the sampling) and returns its peak RSS.
func (s *benchServer) close() (*bench.RSS, error) {
	if s.embedded != nil {
		err := s.embedded.Stop()
		if peak := s.embedded.PeakRSS(); peak > 0 {
			return &bench.RSS{Bytes: peak, Source: "VmHWM"}, err
		}
		return nil, err
	}
	peak, n := s.sampler.Stop()
	if n == 0 {
		return nil, nil
	}
	return &bench.RSS{Bytes: peak, Source: "sampled", Samples: n}, nil
}

// benchLoad are the flags that shape the load.
type benchLoad struct {
	concurrency int
	rate        float64
	duration    time.Duration
	requests    int64
}

func (l *benchLoad) register(fs *flag.FlagSet) {
	fs.IntVar(&l.concurrency, "concurrency", 16, "closed loop: clients, each sending its next request when the last is answered; with --rate: most requests in flight (default 256 then)")
	fs.Float64Var(&l.rate, "rate", 0, "open loop: start this many requests a second, whatever the answers")
	fs.DurationVar(&l.duration, "duration", 0, "run for this long (default 10s unless --requests is given)")
	fs.Int64Var(&l.requests, "requests", 0, "send this many requests")
}

func (l *benchLoad) check(fs *flag.FlagSet) (bench.Load, error) {
	switch {
	case flagSet(fs, "duration") && flagSet(fs, "requests"):
		return bench.Load{}, usagef("give --duration or --requests, not both")
	case l.concurrency < 1:
		return bench.Load{}, usagef("--concurrency must be at least 1, not %d", l.concurrency)
	case l.rate < 0 || (flagSet(fs, "rate") && l.rate == 0):
		return bench.Load{}, usagef("--rate must be a number of requests per second above 0")
	case l.duration < 0 || (flagSet(fs, "duration") && l.duration == 0):
		return bench.Load{}, usagef("--duration must be a positive duration such as 30s")
	case l.requests < 0 || (flagSet(fs, "requests") && l.requests == 0):
		return bench.Load{}, usagef("--requests must be at least 1")
	}
	out := bench.Load{Concurrency: l.concurrency, Rate: l.rate, Duration: l.duration, Requests: l.requests}
	if out.Requests == 0 && out.Duration == 0 {
		out.Duration = 10 * time.Second
	}
	if out.Rate > 0 && !flagSet(fs, "concurrency") {
		out.Concurrency = 256
	}
	return out, nil
}

// parseBench parses flags, allowing "-- SERVE_FLAGS…" at the end and
// positional arguments only where the command takes them.
func parseBench(fs *flag.FlagSet, args []string, t *benchTarget) ([]string, error) {
	for i, a := range args {
		if a == "--" {
			args, t.serveArgs = args[:i], args[i+1:]
			break
		}
	}
	return parseInterleaved(fs, args)
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// liveProgress redraws a progress line from the run's counters until the
// returned function is called.
func (c *benchCommand) liveProgress(live *loadgen.Counters, what func() string) func() {
	prog := newProgress(c.stderr)
	if prog.w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-done:
				prog.clear()
				return
			case now := <-t.C:
				if w := what(); w != "" {
					prog.update(" %s", w)
					continue
				}
				n := live.Answered.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				prog.update(" %s requests  %s req/s  %s errors", commas(n), commas(int64(rate+0.5)), commas(live.Failed.Load()))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// finish stops the server, adds its peak RSS to the report and prints it.
func (c *benchCommand) finish(ctx context.Context, srv *benchServer, t *benchTarget, rep bench.Report, runErr error) error {
	rss, stopErr := srv.close()
	rep.ServerRSS = rss
	if runErr != nil {
		if srv.embedded != nil && ctx.Err() == nil {
			if logs := srv.embedded.Logs(); logs != "" {
				runErr = fmt.Errorf("%w\nthe embedded server's log ends:\n%s", runErr, logs)
			}
		}
		return runErr
	}
	if t.json {
		enc := json.NewEncoder(c.stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(c.stdout); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return stopErr
}

func (c *benchCommand) ingest(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var t benchTarget
	var l benchLoad
	t.register(fs)
	l.register(fs)
	batch := fs.Int("batch", 0, "send batches of N events (POST /v1/events/batch, 1–1000) instead of single events")
	orgs := fs.Int("orgs", 1, "organizations to create first and spread the events over")
	size := fs.Int("event-size", 0, "pad each event's metadata to about this many bytes of JSON (default: its natural ~600)")
	record := fs.String("record", "", "write every acknowledged event (organization, bench_id, id) to FILE, for trail bench check")
	pos, err := parseBench(fs, args, &t)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	load, err := l.check(fs)
	if err != nil {
		return err
	}
	switch {
	case *batch < 0 || *batch > 1000:
		return usagef("--batch must be between 1 and 1000 events (0 for single events), not %d", *batch)
	case *orgs < 1 || *orgs > 10000:
		return usagef("--orgs must be between 1 and 10000, not %d", *orgs)
	case *size < 0 || *size > bench.MaxEventSize:
		return usagef("--event-size must be between 0 and %d bytes (50 metadata values of at most 500 characters), not %d", bench.MaxEventSize, *size)
	}
	srv, err := c.open(ctx, &t, load.Concurrency)
	if err != nil {
		return err
	}
	live := &loadgen.Counters{}
	stop := c.liveProgress(live, func() string { return "" })
	rep, err := bench.Ingest(ctx, srv.client, bench.IngestOptions{Load: load, Batch: *batch, Orgs: *orgs,
		EventSize: *size, Record: *record, Target: srv.name, Live: live})
	stop()
	return c.finish(ctx, srv, &t, rep, err)
}

func (c *benchCommand) query(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var t benchTarget
	var l benchLoad
	t.register(fs)
	l.register(fs)
	seedN := fs.Int64("seed", -1, "store this many events first, spread over the last day (default 10000 with --embedded, 0 with --server)")
	orgCount := fs.Int("orgs", 4, "organizations to create for --seed")
	orgList := fs.String("org", "", "comma-separated organizations to search (default: the seeded ones, else the server's first 100)")
	limit := fs.Int("limit", 10, "page size (1–100)")
	pos, err := parseBench(fs, args, &t)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	load, err := l.check(fs)
	if err != nil {
		return err
	}
	var orgs []string
	for _, o := range strings.Split(*orgList, ",") {
		if o = strings.TrimSpace(o); o != "" {
			orgs = append(orgs, o)
		}
	}
	switch {
	case *limit < 1 || *limit > 100:
		return usagef("--limit must be between 1 and 100, not %d", *limit)
	case *orgCount < 1 || *orgCount > 10000:
		return usagef("--orgs must be between 1 and 10000, not %d", *orgCount)
	case flagSet(fs, "seed") && *seedN < 0:
		return usagef("--seed must be a number of events, 0 or more")
	case *seedN < 0 && t.embedded:
		*seedN = 10000
	case *seedN < 0:
		*seedN = 0
	}
	if t.embedded && len(orgs) > 0 && t.data == "" {
		return usagef("--org names organizations of an existing server, but --embedded starts an empty one: use --seed, or --data DIR of an earlier run")
	}
	srv, err := c.open(ctx, &t, load.Concurrency)
	if err != nil {
		return err
	}
	live := &loadgen.Counters{}
	var mu sync.Mutex
	status := ""
	stop := c.liveProgress(live, func() string { mu.Lock(); defer mu.Unlock(); return status })
	rep, err := bench.Query(ctx, srv.client, bench.QueryOptions{Load: load, Orgs: orgs, OrgCount: *orgCount, Seed: *seedN,
		Limit: *limit, Target: srv.name, Live: live, Seeding: func(started bool) {
			mu.Lock()
			defer mu.Unlock()
			status = ""
			if started {
				status = fmt.Sprintf("storing %s events to search, and waiting for them to be indexed", commas(*seedN))
			}
		}})
	stop()
	return c.finish(ctx, srv, &t, rep, err)
}

func (c *benchCommand) verify(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var t benchTarget
	t.register(fs)
	seedN := fs.Int64("seed", -1, "store this many events first (default 50000 with --embedded, 0 with --server)")
	org := fs.String("org", "", "organization whose log to pull (default with --seed: a new one)")
	runs := fs.Int("runs", 3, "time verify and sha256 this many times each and keep the best")
	pos, err := parseBench(fs, args, &t)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	switch {
	case *runs < 1 || *runs > 100:
		return usagef("--runs must be between 1 and 100, not %d", *runs)
	case flagSet(fs, "seed") && *seedN < 0:
		return usagef("--seed must be a number of events, 0 or more")
	case *seedN < 0 && t.embedded:
		*seedN = 50000
	case *seedN < 0:
		*seedN = 0
	}
	if *seedN == 0 && *org == "" {
		return usagef("give --org ID, the organization whose log to verify, or --seed N to store events first")
	}
	srv, err := c.open(ctx, &t, 4)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	status := ""
	stop := c.liveProgress(&loadgen.Counters{}, func() string { mu.Lock(); defer mu.Unlock(); return status })
	rep, err := bench.Verify(ctx, srv.client, bench.VerifyOptions{Org: *org, Seed: *seedN, Runs: *runs, Target: srv.name,
		Step: func(s string) { mu.Lock(); defer mu.Unlock(); status = s + "…" }})
	stop()
	return c.finish(ctx, srv, &t, rep, err)
}

func (c *benchCommand) check(ctx context.Context, fs *flag.FlagSet, args []string) (err error) {
	var t benchTarget
	t.register(fs)
	pos, err := parseBench(fs, args, &t)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one record file (written by trail bench ingest --record FILE)")
	}
	if err := t.check(fs); err != nil {
		return err
	}
	if t.embedded && (t.data == "" || !flagSet(fs, "api-key") && os.Getenv("TRAIL_API_KEY") == "") {
		return usagef("with --embedded, check needs the --data DIR and --api-key KEY the ingest run used: a new server holds no events")
	}
	if _, err := os.Stat(pos[0]); err != nil {
		return usageError{err}
	}
	srv, err := c.open(ctx, &t, 4)
	if err != nil {
		return err
	}
	defer func() {
		if _, serr := srv.close(); err == nil && serr != nil {
			err = serr
		}
	}()
	prog := newProgress(c.stderr)
	res, err := bench.Check(ctx, srv.client, pos[0], func(n int64) { prog.update(" read %s records", commas(n)) })
	prog.clear()
	if err != nil {
		return err
	}
	if t.json {
		if err := json.NewEncoder(c.stdout).Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "%s acknowledged events of run %s in %s: %s found, %s missing, %s stored more than once (%s records read).\n",
			commas(res.Acknowledged), res.RunID, plural(int64(res.Organizations), "organization"), commas(res.Found),
			commas(res.Missing), commas(res.Duplicated), commas(res.Scanned))
		if res.Unacknowledged > 0 {
			fmt.Fprintf(c.stdout, "%s events of the run are stored but were not acknowledged (requests cut off or timed out): allowed.\n", commas(res.Unacknowledged))
		}
		for _, e := range res.Examples {
			fmt.Fprintln(c.stdout, "  "+e)
		}
	}
	if !res.OK() {
		return errors.New("events were lost or duplicated")
	}
	return nil
}

func (c *benchCommand) export(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var t benchTarget
	t.register(fs)
	seedN := fs.Int64("seed", -1, "store this many events first (default 100000 with --embedded, 0 with --server)")
	org := fs.String("org", "", "organization to export (default with --seed: a new one)")
	format := fs.String("format", "csv", "export format: csv or ndjson")
	pos, err := parseBench(fs, args, &t)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if err := t.check(fs); err != nil {
		return err
	}
	switch {
	case *format != "csv" && *format != "ndjson":
		return usagef("--format must be csv or ndjson, not %q", *format)
	case flagSet(fs, "seed") && *seedN < 0:
		return usagef("--seed must be a number of events, 0 or more")
	case *seedN < 0 && t.embedded:
		*seedN = 100000
	case *seedN < 0:
		*seedN = 0
	}
	if *seedN == 0 && *org == "" {
		return usagef("give --org ID, the organization to export, or --seed N to store events first")
	}
	// The embedded server is restarted after seeding: it keeps its data,
	// so the data directory must outlive the first process.
	if t.embedded && t.data == "" {
		dir, err := os.MkdirTemp("", "trail-bench-export-")
		if err != nil {
			return fmt.Errorf("couldn't create a data directory for the embedded server: %w", err)
		}
		defer os.RemoveAll(dir)
		t.data = dir
	}
	srv, err := c.open(ctx, &t, 4)
	if err != nil {
		return err
	}
	opts := bench.ExportOptions{Org: *org, Seed: *seedN, Format: *format, Target: srv.name}
	if t.embedded {
		opts.Restart = func(ctx context.Context) (*bench.Client, error) {
			key := srv.embedded.Key
			if err := srv.embedded.Stop(); err != nil {
				return nil, fmt.Errorf("couldn't stop the embedded server after seeding: %w", err)
			}
			t.apiKey = key
			next, err := c.open(ctx, &t, 4)
			if err != nil {
				return nil, err
			}
			*srv = *next
			// Measure the export alone: once the new process has done
			// its start-up work (WAL recovery, indexing the last events),
			// its peak RSS starts over.
			if err := srv.embedded.WaitIdle(ctx, 2*time.Second, 15*time.Minute); err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				// Measured anyway; the peak may include that work.
				fmt.Fprintf(c.stderr, "trail bench export: %v; measuring anyway\n", err)
			}
			srv.embedded.ResetPeakRSS()
			return srv.client, nil
		}
	}
	var mu sync.Mutex
	status := ""
	stop := c.liveProgress(&loadgen.Counters{}, func() string { mu.Lock(); defer mu.Unlock(); return status })
	opts.Step = func(s string) { mu.Lock(); defer mu.Unlock(); status = s + "…" }
	rep, err := bench.Export(ctx, srv.client, opts)
	stop()
	return c.finish(ctx, srv, &t, rep, err)
}
