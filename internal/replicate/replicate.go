// Package replicate keeps a copy of the embedded deployment's data directory
// in S3-compatible storage or another directory, and restores from it.
//
// The SQLite databases that cannot be rebuilt (the log in trail.db, the
// witness cosignatures) are replicated continuously with Litestream
// (github.com/benbjohnson/litestream), embedded as a library: it copies each
// committed WAL transaction into LTX files under <target>/db/<file>/ and
// compacts them into snapshots. Litestream controls the WAL checkpoints of
// the files it replicates (it holds a read transaction between its own
// checkpoints), so Trail stops its own checkpointer on those files
// (sqlite.Store.StopCheckpoints). The search index is not replicated: it is
// rebuilt from the events.
//
// The data directory's small files (signing.key, master.key, log-origin) are
// copied under <target>/files/. The replica therefore holds the deployment's
// keys and must be protected as they are (docs/BACKUP.md).
//
// Replicator.Sync is a barrier: when it returns, everything committed before
// the call is in the replica. The ledger's publication gate
// (ledger.PublishGate) waits on it before a checkpoint is served, handed to
// witnesses or put in a bundle, and then records in <target>/published.json
// the newest checkpoint of every log it is about to publish, so a restore can
// check that it does not fall behind anything outsiders hold.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/litestream"
	lsfile "github.com/benbjohnson/litestream/file"
	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Replicator.
type Options struct {
	// Databases are the SQLite files to replicate (WAL mode; they must
	// exist). Their base names must differ.
	Databases []string
	// Files are small files copied whole when they change (missing ones
	// are skipped). Their base names must differ.
	Files []string
	// Interval is how often the replica is brought up to date when no
	// Sync asks for it (default 1s).
	Interval time.Duration
	// RoundTimeout bounds one Sync round against a target that does not
	// answer (default 30s).
	RoundTimeout time.Duration
	// RoundGap is the least time between the starts of two rounds
	// (default 500ms). Calls of Sync that arrive meanwhile wait and share
	// the next round: each round writes an LTX file and syncs it, here and
	// in the replica, whatever it carries, so fewer and larger rounds cost
	// less (docs/PERFORMANCE.md, "Replication").
	RoundGap time.Duration
	// CheckpointPages is the WAL size, in pages, from which a round
	// checkpoints the WAL into the database (default
	// DefaultCheckpointPages). Each checkpoint holds SQLite's write lock
	// for a few fsyncs whatever its size, so fewer, larger ones stop the
	// writers for less in all (docs/PERFORMANCE.md, "Replication's cost
	// by target").
	CheckpointPages int
	// LockWait bounds how long a checkpoint waits for SQLite's write lock
	// before it is skipped until a later round (0: Litestream's
	// default, litestream.DefaultBusyTimeout).
	LockWait time.Duration
	// CheckpointInRound leaves the checkpoints inside the rounds, where
	// Litestream takes them, so that a Sync waits for the checkpoint of
	// its round. By default a round that leaves the WAL past
	// CheckpointPages checkpoints it after the round, before the next
	// one starts: Sync returns without waiting for the checkpoint, which
	// stops the writers either way (docs/PERFORMANCE.md, "Replication:
	// checkpoints between rounds, and the embedder's levers").
	CheckpointInRound bool
}

// DefaultCheckpointPages is Options.CheckpointPages's default: 16,000
// pages (64 MiB of WAL at 4 KiB pages), sixteen times Litestream's own. A
// checkpoint's hold grows with its pages more slowly than their count, and
// it does not delay publication (it runs between rounds).
const DefaultCheckpointPages = 16000

// noThreshold is Litestream's checkpoint threshold when the Replicator
// checkpoints between rounds itself: past any WAL its emergency TRUNCATE
// threshold (litestream.DefaultTruncatePageN) allows.
const noThreshold = math.MaxInt32

// Replicator replicates a data directory's databases and files to a Target.
type Replicator struct {
	target Target
	opts   Options
	logger *slog.Logger
	dbs    []*litestream.DB
	store  *litestream.Store
	blobs  blobs

	mu     sync.Mutex // one Sync round, or one checkpoint, at a time
	copied map[string]time.Time
	// due lists the databases whose WAL a round left past
	// Options.CheckpointPages (under mu); checkpointing is set while a
	// checkpoint between rounds is started or running, ckptWG waits for
	// it.
	due           []*litestream.DB
	ckptFailing   bool // the last checkpoint failed (under mu)
	checkpointing atomic.Bool
	ckptWG        sync.WaitGroup
	// Rounds are numbered from 1 as they start; okGen is the number of
	// the last one that succeeded (both under mu). started mirrors the
	// number of rounds started, lastStart the start of the last one (Unix
	// ns), for readers that do not hold mu.
	okGen     uint64
	started   atomic.Uint64
	lastStart atomic.Int64

	upMu    sync.Mutex
	up      bool
	lastOK  time.Time
	failing bool

	m      metrics
	stop   context.CancelFunc
	loopWG sync.WaitGroup
}

type metrics struct {
	up       prometheus.Gauge
	lastOK   prometheus.Gauge
	rounds   *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trail_replication_up",
			Help: "1 when the last attempt to bring the replica up to date succeeded, else 0."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trail_replication_last_success_timestamp_seconds",
			Help: "When the replica last held everything committed before the attempt started (Unix time)."}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trail_replication_rounds_total",
			Help: "Attempts to bring the replica up to date, by result (ok, error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "trail_replication_round_seconds",
			Help:    "Time to bring the replica up to date with everything committed before the round started.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30}}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.lastOK, m.rounds, m.duration)
	}
	return m
}

// Start begins replicating to t. The databases must exist; their owner
// must not checkpoint them any more (Litestream does). Close stops it.
func Start(ctx context.Context, t Target, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Replicator, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.RoundTimeout <= 0 {
		opts.RoundTimeout = 30 * time.Second
	}
	if opts.RoundGap <= 0 {
		opts.RoundGap = 500 * time.Millisecond
	}
	if opts.CheckpointPages <= 0 {
		opts.CheckpointPages = DefaultCheckpointPages
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Replicator{target: t, opts: opts, logger: logger, blobs: t.blobs(), copied: map[string]time.Time{}, m: newMetrics(reg)}
	seen := map[string]bool{}
	for _, p := range append(append([]string(nil), opts.Databases...), opts.Files...) {
		if seen[filepath.Base(p)] {
			return nil, fmt.Errorf("replicate: two files named %s", filepath.Base(p))
		}
		seen[filepath.Base(p)] = true
	}
	for _, p := range opts.Databases {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("couldn't replicate %s: %w", p, err)
		}
		db := litestream.NewDB(p)
		// No monitor of its own: every Sync round (at least one a
		// second, from the loop below) copies the WAL into local LTX
		// files and checkpoints it, even while the target is down.
		db.MonitorInterval = 0
		if opts.LockWait > 0 {
			db.BusyTimeout = opts.LockWait
		}
		db.MinCheckpointPageN = opts.CheckpointPages
		if !opts.CheckpointInRound {
			db.MinCheckpointPageN = noThreshold
		}
		client := t.ltxClient(filepath.Base(p))
		rep := litestream.NewReplicaWithClient(db, client)
		// Uploads are driven by Sync (and the loop below), so that a
		// barrier knows when they are done.
		rep.MonitorEnabled = false
		db.Replica = rep
		if fc, ok := client.(*lsfile.ReplicaClient); ok {
			fc.Replica = rep
		}
		r.dbs = append(r.dbs, db)
	}
	if reg != nil {
		reg.MustRegister(newCheckpointCollector(opts.Databases))
	}
	r.store = litestream.NewStore(r.dbs, litestream.DefaultCompactionLevels)
	// Litestream's routine messages (snapshots, compactions) are debug
	// here; its warnings and errors stay what they are.
	quiet := slog.New(levelShift{logger.Handler()})
	r.store.Logger = quiet
	// Close has already tried to bring the replica up to date; a target
	// that is down must not hold a shutdown for long.
	r.store.SetShutdownSyncTimeout(5 * time.Second)
	for _, db := range r.dbs {
		db.SetLogger(quiet.With("db", filepath.Base(db.Path())))
	}
	if err := r.store.Open(ctx); err != nil {
		return nil, fmt.Errorf("couldn't start replicating to %s: %w", t, err)
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	r.loopWG.Add(1)
	go r.loop(loopCtx)
	return r, nil
}

// Target returns where the replica lives.
func (r *Replicator) Target() Target { return r.target }

// loop brings the replica up to date at least every Interval, so that
// writes no checkpoint waits for (settings, keys, cosignatures) are
// replicated too. A round that Sync ran meanwhile counts.
func (r *Replicator) loop(ctx context.Context) {
	defer r.loopWG.Done()
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, r.lastStart.Load())) < r.opts.Interval {
			continue
		}
		_ = r.Sync(ctx) // logged and counted by Sync
	}
}

// Sync returns once everything committed to the replicated databases
// before the call is held by the replica, and the files are copied. A
// target that does not answer makes it fail after Options.RoundTimeout.
//
// Calls share rounds: a call waiting for the round in progress returns
// when a round that started after the call succeeds, and rounds start at
// least Options.RoundGap apart.
func (r *Replicator) Sync(ctx context.Context) error {
	called := r.started.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.okGen > called {
		return nil // a round that started after the call holds it
	}
	if len(r.due) > 0 {
		// A checkpoint the last round left to do, not begun yet: it
		// comes before the next round, and its time counts towards
		// the gap.
		r.checkpointDue()
	}
	if wait := time.Until(time.Unix(0, r.lastStart.Load()).Add(r.opts.RoundGap)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	gen := r.started.Add(1)
	start := time.Now()
	r.lastStart.Store(start.UnixNano())
	rctx, cancel := context.WithTimeout(ctx, r.opts.RoundTimeout)
	defer cancel()
	err := r.round(rctx)
	r.record(start, err)
	if err == nil {
		r.okGen = gen
	}
	if len(r.due) > 0 && r.checkpointing.CompareAndSwap(false, true) {
		r.ckptWG.Add(1)
		go r.checkpoint()
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// checkpoint checkpoints the WAL of the databases a round left past
// Options.CheckpointPages, after that round and before the next: Sync
// has returned meanwhile, so publication does not wait for it. It runs
// as Litestream's own would (litestream.DB.Checkpoint: the new
// transactions copied, then a PASSIVE checkpoint holding the write lock);
// the LTX files it writes go to the replica with the next round.
func (r *Replicator) checkpoint() {
	defer r.ckptWG.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.checkpointing.Store(false)
	r.checkpointDue()
}

// checkpointDue checkpoints the databases in r.due (under mu): the
// goroutine a round starts, or the next Sync if it gets mu first.
func (r *Replicator) checkpointDue() {
	due := r.due
	r.due = nil
	for _, db := range due {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.RoundTimeout)
		err := db.Checkpoint(ctx, litestream.CheckpointModePassive)
		cancel()
		switch {
		case err != nil && !r.ckptFailing:
			// The next round finds the WAL still past the threshold
			// and tries again; Litestream's emergency TRUNCATE bounds
			// the WAL if none succeeds.
			r.logger.Warn("couldn't checkpoint the WAL; the next round tries again", "db", filepath.Base(db.Path()), "err", err)
			r.ckptFailing = true
		case err == nil && r.ckptFailing:
			r.logger.Info("the WAL is checkpointed again", "db", filepath.Base(db.Path()))
			r.ckptFailing = false
		}
	}
}

// pastThreshold reports whether db's WAL, as of its last copy, holds
// Options.CheckpointPages pages or more.
func (r *Replicator) pastThreshold(db *litestream.DB) bool {
	size := db.PageSize()
	if size <= 0 {
		return false
	}
	// The WAL's header (32 bytes) and each frame's (24 bytes) count,
	// as in Litestream's own threshold.
	return db.SyncDiagnostic().LastSyncedWALOffset >= 32+int64(24+size)*int64(r.opts.CheckpointPages)
}

func (r *Replicator) round(ctx context.Context) error {
	for _, db := range r.dbs {
		if err := db.Sync(ctx); err != nil {
			return fmt.Errorf("couldn't read the new transactions of %s: %w", filepath.Base(db.Path()), err)
		}
		if !r.opts.CheckpointInRound && r.pastThreshold(db) && !slices.Contains(r.due, db) {
			r.due = append(r.due, db)
		}
		pos, err := db.Pos()
		if err != nil {
			return fmt.Errorf("couldn't read the position of %s: %w", filepath.Base(db.Path()), err)
		}
		if err := db.Replica.Sync(ctx); err != nil {
			return fmt.Errorf("couldn't copy %s to %s: %w", filepath.Base(db.Path()), r.target, err)
		}
		if got := db.Replica.Pos().TXID; got < pos.TXID {
			return fmt.Errorf("the replica of %s is at transaction %s, behind %s", filepath.Base(db.Path()), got, pos.TXID)
		}
	}
	return r.copyFiles(ctx)
}

// copyFiles copies the files that changed since they were last copied.
func (r *Replicator) copyFiles(ctx context.Context) error {
	for _, p := range r.opts.Files {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("couldn't read %s: %w", p, err)
		}
		if at, ok := r.copied[p]; ok && at.Equal(fi.ModTime()) {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("couldn't read %s: %w", p, err)
		}
		if err := r.blobs.put(ctx, "files/"+filepath.Base(p), data); err != nil {
			return err
		}
		r.copied[p] = fi.ModTime()
	}
	return nil
}

func (r *Replicator) record(start time.Time, err error) {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	if err != nil {
		r.m.rounds.WithLabelValues("error").Inc()
		r.m.up.Set(0)
		r.up = false
		if !r.failing {
			r.logger.Warn("the replica is behind: couldn't bring it up to date; new checkpoints are not published until it is (ingest continues)",
				"target", r.target.String(), "err", err)
		}
		r.failing = true
		return
	}
	r.m.rounds.WithLabelValues("ok").Inc()
	r.m.duration.Observe(time.Since(start).Seconds())
	r.m.up.Set(1)
	r.m.lastOK.Set(float64(start.UnixNano()) / 1e9)
	if r.failing {
		r.logger.Info("the replica is up to date again", "target", r.target.String(), "behind_since", r.lastOK)
	}
	r.failing, r.up, r.lastOK = false, true, start
}

// Up reports whether the last round succeeded, and when the replica last
// held everything committed.
func (r *Replicator) Up() (bool, time.Time) {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	return r.up, r.lastOK
}

// PublishedFile is the object, under the target, that records the newest
// checkpoint published of every log.
const PublishedFile = "published.json"

// WritePublished stores the record of published checkpoints. The gate
// writes it after the replica holds what the checkpoints cover and before
// they are published, so it is never behind what outsiders hold.
func (r *Replicator) WritePublished(ctx context.Context, rec Record) error {
	data, err := rec.encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.RoundTimeout)
	defer cancel()
	return r.blobs.put(ctx, PublishedFile, data)
}

// Close stops replicating after a last round.
func (r *Replicator) Close(ctx context.Context) error {
	r.stop()
	r.loopWG.Wait()
	err := r.Sync(ctx)
	r.ckptWG.Wait() // a checkpoint that last round started
	if cerr := r.store.Close(ctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// levelShift logs Litestream's Info messages at Debug.
type levelShift struct{ slog.Handler }

func (h levelShift) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h levelShift) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelShift) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelShift{h.Handler.WithAttrs(attrs)}
}

func (h levelShift) WithGroup(name string) slog.Handler { return levelShift{h.Handler.WithGroup(name)} }
