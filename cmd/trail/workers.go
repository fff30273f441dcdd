package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/retention"
	"github.com/trailaudit/trail/internal/store"
)

// integratorRunner runs the ledger integrator for as long as this replica
// may (always with SQLite; while it holds the lease with PostgreSQL), one
// ledger.Integrator per term, and routes wake-ups and refusal reports to
// the current one.
type integratorRunner struct {
	st       ledger.Storage
	signer   *deploymentKeys
	dataDir  string
	prefix   string // configured origin prefix
	explicit bool   // prefix came from --log-origin
	logger   *slog.Logger
	reg      prometheus.Registerer
	// always is set when this process is the only one that integrates
	// (SQLite): until its integrator has checked the stored logs, no event
	// is acknowledged. With PostgreSQL the replica holding the lease checks.
	always bool
	// elsewhere is set once the lease was found held by another replica,
	// which checks the stored logs then.
	elsewhere atomic.Bool
	// signed, when set, gets every checkpoint stored (the witness client).
	signed func(org string, size int64, checkpoint []byte)
	// checkWitnesses, when set, sends the stored logs' newest checkpoints
	// to the witnesses once the integrator's own checks are done; until it
	// returns, this replica acknowledges no event (witness.Submitter's
	// CheckStored): a restored database shows as a fork first.
	checkWitnesses   func(ctx context.Context) error
	witnessesChecked atomic.Bool

	current atomic.Pointer[ledger.Integrator]

	// heads is where the newest checkpoint signed per origin is recorded:
	// the database, whichever replica integrates.
	heads ledger.HeadStorage
	// held, when set, returns the checkpoints outsiders hold beside the
	// database (the replica's record of published checkpoints).
	held func(ctx context.Context) (string, []ledger.SignedHead, error)
}

// Admit reports whether events for org may be acknowledged now (see
// ledger.Integrator.Admit).
func (r *integratorRunner) Admit(org string) error {
	in := r.current.Load()
	if in == nil {
		if r.always || !r.elsewhere.Load() {
			return ledger.ErrChecking
		}
		return nil
	}
	if r.checkWitnesses != nil && !r.witnessesChecked.Load() {
		return ledger.ErrChecking
	}
	return in.Admit(org)
}

// waitChecked waits until Checked, or ctx ends.
func (r *integratorRunner) waitChecked(ctx context.Context) error {
	for !r.Checked() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Checked reports whether this process knows every refused log (or, on a
// PostgreSQL replica, whether another replica holds the integrator lease).
func (r *integratorRunner) Checked() bool {
	in := r.current.Load()
	if in == nil {
		return !r.always && r.elsewhere.Load()
	}
	return in.Checked() && (r.checkWitnesses == nil || r.witnessesChecked.Load())
}

// Refuse makes the current integrator refuse org's log (a witness showed
// it forked). Without a current integrator there is nothing to stop.
func (r *integratorRunner) Refuse(org, reason string) {
	if in := r.current.Load(); in != nil {
		in.Refuse(org, reason)
	}
}

// Wake wakes the current integrator, if this replica runs one.
func (r *integratorRunner) Wake() {
	if in := r.current.Load(); in != nil {
		in.Wake()
	}
}

// settleWait bounds settle. A pass takes about a second; one that cannot
// succeed (a full disk, a database gone) would otherwise hold the stop for
// the whole shutdown timeout, and what it would sign is durable already:
// the next start signs it.
const settleWait = 10 * time.Second

// settle waits, bounded by ctx and by limit, for a pass of the current
// integrator that signs every record committed before the call: at a
// graceful stop, after the committer has drained, every event acknowledged
// is then covered by a stored checkpoint before the process exits, not only
// at the next start. It does not wait for the logs to stop growing (other
// replicas may keep appending). A replica that does not integrate (another
// holds the lease) has nothing to wait for.
func (r *integratorRunner) settle(ctx context.Context, limit time.Duration) error {
	in := r.current.Load()
	if in == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := in.WaitFlushed(ctx); err != nil && !errors.Is(err, ledger.ErrStopped) {
		return fmt.Errorf("waiting for the last events to be signed: %w", err)
	}
	return nil
}

// Refused reports the current integrator's refusals.
func (r *integratorRunner) Refused() map[string]string {
	if in := r.current.Load(); in != nil {
		return in.Refused()
	}
	return nil
}

// run is one term: it integrates until ctx ends.
func (r *integratorRunner) run(ctx context.Context) {
	prefix, err := r.origin(ctx)
	if err != nil {
		r.logger.Error("not integrating: couldn't settle the log origin", "err", err)
		<-ctx.Done()
		return
	}
	reg := &termRegisterer{under: r.reg}
	defer reg.unregisterAll()
	// A pass every 250 ms keeps the lag to a checkpoint well under the 1 s
	// promised while storing 2.5× fewer checkpoints than the 100 ms default
	// on a deployment with many quiet organizations (docs/SCALING.md).
	// A log growing by a trickle is signed at most every 750 ms; when
	// many logs wait at once the integrator stretches that towards
	// 1,125 ms (ledger.Options.LogRate, MaxLogInterval), so that an event
	// waits at most 1,125 + 250 ms for its checkpoint while a thousand
	// organizations growing at once cost about 500 signatures, checkpoint
	// rows and tile writes a second, not one per pass each
	// (docs/PERFORMANCE.md).
	in, err := ledger.NewIntegrator(r.st, r.signer, prefix, ledger.Options{DataDir: r.dataDir, Heads: r.heads, Held: r.held, Interval: 250 * time.Millisecond,
		LogInterval: 750 * time.Millisecond, Signed: r.signed, Frozen: r.signer.Frozen}, r.logger, reg)
	if err != nil {
		r.logger.Error("not integrating", "err", err)
		<-ctx.Done()
		return
	}
	if err := in.Start(ctx); err != nil {
		r.logger.Error("not integrating: couldn't start the integrator", "err", err)
		<-ctx.Done()
		return
	}
	if !r.always {
		// Other replicas take events meanwhile; this one starts refusing
		// those of refused logs once it knows them all.
		select {
		case <-in.CheckedC():
		case <-ctx.Done():
		}
	}
	r.witnessesChecked.Store(false)
	r.current.Store(in)
	if r.checkWitnesses != nil {
		go func() {
			select {
			case <-in.CheckedC():
			case <-ctx.Done():
				return
			}
			// Bounded: a witness that hangs must not keep the server
			// from acknowledging events for long.
			cctx, cancel := context.WithTimeout(ctx, witnessCheckTimeout)
			defer cancel()
			if err := r.checkWitnesses(cctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("couldn't check every stored log with the witnesses; acknowledging events anyway", "err", err)
			}
			r.witnessesChecked.Store(true)
		}()
	}
	<-ctx.Done()
	r.current.CompareAndSwap(in, nil)
	in.Stop()
}

// witnessCheckTimeout bounds the startup check of the stored logs with the
// witnesses.
const witnessCheckTimeout = 30 * time.Second

// origin is the origin prefix to sign under: the one the database's
// checkpoints already carry, so that every replica and every restart keeps
// signing the same logs; the configured one only for a database with no
// checkpoint yet.
func (r *integratorRunner) origin(ctx context.Context) (string, error) {
	note, org, err := anyStoredCheckpoint(ctx, r.st)
	if err != nil {
		return "", err
	}
	if note == nil {
		return r.prefix, nil
	}
	ck, err := r.signer.OpenStored(note)
	if err != nil {
		return "", fmt.Errorf("checkpoint of %s: %w", org, err)
	}
	stored, ok := strings.CutSuffix(ck.Origin, "/"+org)
	if !ok {
		return "", fmt.Errorf("checkpoint of %s has origin %q, which does not end in its organization", org, ck.Origin)
	}
	if stored != r.prefix && r.explicit {
		return "", fmt.Errorf("--log-origin %q differs from %q, the origin the database's checkpoints carry; verifiers treat a new origin as a different log", r.prefix, stored)
	}
	return stored, nil
}

// termRegisterer registers an integrator's metrics for one term and
// unregisters them when the term ends, so the next term can register its own.
type termRegisterer struct {
	under prometheus.Registerer
	mu    sync.Mutex
	cs    []prometheus.Collector
}

func (t *termRegisterer) Register(c prometheus.Collector) error {
	if t.under == nil {
		return nil
	}
	if err := t.under.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *termRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *termRegisterer) Unregister(c prometheus.Collector) bool {
	if t.under == nil {
		return false
	}
	return t.under.Unregister(c)
}

func (t *termRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.under.Unregister(c)
	}
	t.cs = nil
}

// retentionFlags configure the retention sweeper (package retention).
type retentionFlags struct {
	defaultDays int64
	interval    time.Duration
	batchSize   int64
	batchPause  time.Duration
	compact     bool   // thin out old checkpoints at each sweep
	testNow     string // testing only (testknobs.go): the sweeper's fixed clock, RFC 3339
}

func (f *retentionFlags) register(fs *flag.FlagSet) {
	setting{fs}.Int64Var(&f.defaultDays, "retention-default-days", "TRAIL_RETENTION_DEFAULT_DAYS", retention.DefaultDays, "days an organization's events are kept unless it sets its own retention (PUT /organizations/{id}/audit_logs_retention); any whole number of days from 1 to 36500")
	setting{fs}.DurationVar(&f.interval, "retention-sweep-interval", "TRAIL_RETENTION_SWEEP_INTERVAL", time.Hour, "how often events past retention are deleted; 0 turns deletion off")
	setting{fs}.Int64Var(&f.batchSize, "retention-batch-size", "TRAIL_RETENTION_BATCH_SIZE", 1000, "how many expired records one retention transaction deletes; from 1 to 100000")
	setting{fs}.DurationVar(&f.batchPause, "retention-batch-pause", "TRAIL_RETENTION_BATCH_PAUSE", 50*time.Millisecond, "how long the retention sweeper waits between two batches, leaving the database to ingest; 0 for none")
	fs.BoolVar(&f.compact, "checkpoint-compaction", true, "at each retention sweep, delete old checkpoints but the newest of each hour (past a day) or day (past 90 days), and each log's newest (docs/SCALING.md) [TRAIL_CHECKPOINT_COMPACTION]")
	registerRetentionTestNow(fs, &f.testNow)
}

// options checks the flags and returns the sweeper's options.
func (f *retentionFlags) options() (retention.Options, error) {
	opts := retention.Options{DefaultDays: int(f.defaultDays), Interval: f.interval, BatchSize: int(f.batchSize), BatchPause: f.batchPause}
	if f.batchSize < 1 || f.batchSize > 100000 {
		return opts, fmt.Errorf("--retention-batch-size %d: give a whole number from 1 to 100000", f.batchSize)
	}
	if !f.compact {
		opts.CheckpointsKeepAll = -1
	}
	if f.batchPause < 0 {
		return opts, fmt.Errorf("--retention-batch-pause %s: give a duration such as 50ms, or 0 for no pause", f.batchPause)
	}
	if f.defaultDays < 1 || f.defaultDays > 36500 {
		return opts, fmt.Errorf("--retention-default-days %d: give a whole number of days from 1 to 36500", f.defaultDays)
	}
	if f.interval < 0 {
		return opts, fmt.Errorf("--retention-sweep-interval %s: give a positive duration such as 1h, or 0 to turn deletion off", f.interval)
	}
	if f.testNow != "" {
		at, err := time.Parse(time.RFC3339Nano, f.testNow)
		if err != nil {
			return opts, fmt.Errorf("--retention-test-now %q: give an RFC 3339 time such as 2026-01-02T15:04:05Z", f.testNow)
		}
		opts.Now = func() time.Time { return at }
	}
	return opts, nil
}

// startRetention starts the retention sweeper: always with SQLite; with
// PostgreSQL on one replica at a time, under the "retention" lease (taken
// with leases). It
// returns the sweeper (for Wake) and a channel closed once it has stopped
// after ctx ends. With interval 0 nothing runs.
func startRetention(ctx context.Context, st retention.Storage, pool *pgxpool.Pool, leases lease.Options, f *retentionFlags, archiver retention.Archiver, logger *slog.Logger, reg prometheus.Registerer) (*retention.Sweeper, <-chan struct{}, error) {
	opts, err := f.options()
	if err != nil {
		return nil, nil, usageError{err}
	}
	opts.Archive = archiver
	logger = logger.With("worker", "retention")
	sw := retention.New(st, opts, logger, reg)
	done := make(chan struct{})
	if f.interval == 0 {
		logger.Warn("retention sweeps are off (--retention-sweep-interval 0): events are kept past their retention period")
		close(done)
		return sw, done, nil
	}
	if f.testNow != "" {
		logger.Warn("the retention sweeper runs on a fixed test clock (--retention-test-now); never use it in production", "now", f.testNow)
	}
	go func() {
		defer close(done)
		if pool == nil {
			sw.Run(ctx)
			return
		}
		lease.Run(ctx, pool, "retention", leases, logger, sw.Run)
	}()
	return sw, done, nil
}

// admittedSubmitter refuses submissions that hold an event for an
// organization whose log the integrator refuses to extend, or that arrive
// before the integrator has checked the stored logs: an acknowledged event
// must be one the next checkpoint can cover.
type admittedSubmitter struct {
	next  api.Submitter
	admit func(org string) error
}

func (a admittedSubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	var last string
	for _, e := range s.Events {
		if e.OrganizationID == last {
			continue
		}
		last = e.OrganizationID
		if err := a.admit(e.OrganizationID); err != nil {
			if errors.Is(err, ledger.ErrChecking) {
				return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
			}
			return store.AppendResult{}, err
		}
	}
	return a.next.Submit(ctx, s)
}
