// Package retention deletes the records of each organization's log once they
// are older than its retention period (its own, set through the API, or the
// deployment's default), as docs/DESIGN.md §3 has it: record bodies and their search
// entries go, tree hashes stay, so every proof still works and a bundle of
// what remains still verifies. Each sweep also thins out old checkpoints
// (compact.go): the newest of each hour, then of each day, and of each log
// stay.
//
// Age counts from received_at. Trail assigns it, and it grows with seq within
// an organization, so what expires is always a prefix of the log (seq 0 up to
// the first retained record) and the remainder is one contiguous, verifiable
// range. occurred_at is the client's to set and may be backdated: counting
// from it would let a client make an event vanish on arrival, or punch holes
// in the middle of a log.
//
// The Sweeper runs every Interval (and when woken). For each organization
// with integrated records it deletes, in batches of BatchSize records, one
// short transaction each, the records received before now − retention and
// already integrated into the Merkle tree — never one whose leaf hash is not
// stored yet — pausing BatchPause between batches so that ingest keeps its
// latency during a large sweep. On PostgreSQL it first drops whole monthly partitions that every
// organization's retention has passed (store.PartitionDropper). With replicas
// it runs on one of them at a time, under a lease (see cmd/trail).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// Storage is what the sweeper needs from the database.
type Storage interface {
	store.RetentionStore
	// DropPartitions drops whole time partitions past every
	// organization's retention (a store without them drops none).
	store.PartitionDropper
	// CheckpointCompactor thins out old checkpoints (compact.go).
	store.CheckpointCompactor
	// IntegratedLogs is ledger.Storage's: the logs with integrated records.
	IntegratedLogs(ctx context.Context) ([]ledger.LogState, error)
}

// Options tune a Sweeper. Zero values take the defaults.
type Options struct {
	// DefaultDays is the retention of organizations without their own
	// (default DefaultDays).
	DefaultDays int
	// Interval is the time between sweeps (default 1 h).
	Interval time.Duration
	// BatchSize is how many records one transaction deletes (default
	// 1,000): small enough that ingest, which shares SQLite's single
	// writer, waits at most milliseconds behind it.
	BatchSize int
	// BatchPause is how long the sweeper waits after each batch it
	// deleted before the next one (default 0: none). A pause lets ingest
	// have the database between batches, so that its tail latency does
	// not rise while a large backlog of expired records is deleted; the
	// sweep takes longer in exchange.
	BatchPause time.Duration
	// CheckpointsKeepAll is the age under which every checkpoint is kept
	// (default 24 h); older ones are compacted (compact.go). Negative
	// turns checkpoint compaction off.
	CheckpointsKeepAll time.Duration
	// CheckpointsHourlyFor is the age up to which the newest checkpoint of
	// each hour is kept, and past which only the newest of each day
	// (default 90 days).
	CheckpointsHourlyFor time.Duration
	// KeepCheckpoint, when set, pins checkpoints that compaction must
	// keep whatever their age.
	KeepCheckpoint func(org string, size int64) bool
	// Now is the sweeper's clock (default time.Now). Tests move it.
	Now func() time.Time
	// Archive, when set, writes each organization's due records to the
	// verifiable archive before they are deleted (package archive).
	Archive Archiver
}

// Archiver is the verifiable archive as the sweeper sees it
// (docs/ARCHIVE.md).
type Archiver interface {
	// Archive makes sure the archive holds org's records received before
	// cutoff, when org is archived. Whatever it returns, PruneRecords
	// deletes none it does not hold: the store enforces the position.
	Archive(ctx context.Context, org string, cutoff time.Time) error
	// Active reports whether any organization may be archived; then
	// whole partitions are never dropped.
	Active(ctx context.Context) (bool, error)
}

// Result is what one sweep did.
type Result struct {
	Records     int64    // records deleted, by row or with their partition
	Partitions  []string // partitions dropped
	Checkpoints int64    // old checkpoints deleted by compaction
}

// Sweeper deletes expired records periodically. Create it with New.
type Sweeper struct {
	st      Storage
	opts    Options
	logger  *slog.Logger
	metrics *metrics
	wake    chan struct{}

	mu      sync.Mutex
	settled map[string]store.StoredCheckpoint // per log, where compaction's final part ends
	waiting []chan struct{}                   // closed when the next sweep to start has finished
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a sweeper over st; it does nothing until Run or Start. Its
// metrics are registered with reg (when not nil).
func New(st Storage, opts Options, logger *slog.Logger, reg prometheus.Registerer) *Sweeper {
	if opts.DefaultDays <= 0 {
		opts.DefaultDays = DefaultDays
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Hour
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.CheckpointsKeepAll == 0 {
		opts.CheckpointsKeepAll = 24 * time.Hour
	}
	if opts.CheckpointsHourlyFor <= 0 {
		opts.CheckpointsHourlyFor = 90 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{st: st, opts: opts, logger: logger, metrics: newMetrics(reg), wake: make(chan struct{}, 1),
		settled: map[string]store.StoredCheckpoint{}}
}

// DefaultDays is the retention of organizations without their own.
func (s *Sweeper) DefaultDays() int { return s.opts.DefaultDays }

// Days is the retention period of an organization whose own setting is
// (days, set), under the deployment default def.
func Days(days int, set bool, def int) int {
	if set {
		return days
	}
	return def
}

// Start runs the sweeper in the background until Stop or the end of ctx.
func (s *Sweeper) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		s.Run(ctx)
	}(s.done)
}

// Stop stops a started sweeper and waits until it has stopped (a batch in
// progress is abandoned: its transaction rolls back). Calling it twice, or
// without Start, is harmless.
func (s *Sweeper) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Wake asks for a sweep now (e.g. after a retention period was shortened).
func (s *Sweeper) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Swept returns a channel closed once a sweep that starts after this call
// has finished (successfully or not): tests wait on it.
func (s *Sweeper) Swept() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(chan struct{})
	s.waiting = append(s.waiting, c)
	return c
}

// Run sweeps at once, then every Interval or when woken, until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
			t.Stop()
		}
		s.mu.Lock()
		waiting := s.waiting
		s.waiting = nil
		s.mu.Unlock()
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("retention sweep failed; retrying at the next one", "err", err)
		}
		for _, c := range waiting {
			close(c)
		}
		t.Reset(s.opts.Interval)
	}
}

// Sweep runs one sweep now. It goes on with the other organizations when
// one fails, and returns what it did with the errors met, joined; it stops
// early when the database is unavailable or ctx ends.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	var res Result
	now := s.opts.Now()
	settings, err := s.st.RetentionSettings(ctx)
	if err != nil {
		return res, s.failed(ctx, err)
	}
	logs, err := s.st.IntegratedLogs(ctx)
	if err != nil {
		return res, s.failed(ctx, err)
	}
	longest := s.opts.DefaultDays
	for _, d := range settings {
		longest = max(longest, d)
	}
	archiving := false
	if s.opts.Archive != nil {
		if archiving, err = s.opts.Archive.Active(ctx); err != nil {
			return res, s.failed(ctx, fmt.Errorf("couldn't read archive settings: %w", err))
		}
	}
	var drop store.PartitionDrop
	if !archiving {
		// With an archive, records go row by row, each organization's
		// only once the archive holds them.
		drop, err = s.st.DropPartitions(ctx, now.Add(-period(longest)))
		if err != nil {
			return res, s.failed(ctx, fmt.Errorf("couldn't drop expired partitions: %w", err))
		}
	}
	res.Partitions, res.Records = drop.Partitions, drop.Records
	if len(drop.Partitions) > 0 {
		s.metrics.partitions.Add(float64(len(drop.Partitions)))
		s.metrics.deleted.Add(float64(drop.Records))
		s.logger.Info("retention dropped expired partitions", "partitions", drop.Partitions, "records", drop.Records)
	}
	var errs []error
	for _, l := range logs {
		days, set := settings[l.OrganizationID]
		cutoff := now.Add(-period(Days(days, set, s.opts.DefaultDays)))
		if s.opts.Archive != nil {
			if err := s.opts.Archive.Archive(ctx, l.OrganizationID, cutoff); err != nil {
				if ctx.Err() != nil {
					return res, s.failed(ctx, err)
				}
				// Pruning goes on: it deletes only what the archive holds.
				s.logger.Error("couldn't archive records past retention; they are kept until the archive holds them",
					"organization_id", l.OrganizationID, "err", err)
				errs = append(errs, err)
			}
		}
		n, err := s.prune(ctx, l.OrganizationID, cutoff)
		res.Records += n
		if n > 0 {
			s.logger.Info("retention deleted expired records", "organization_id", l.OrganizationID,
				"records", n, "received_before", cutoff.UTC().Format(time.RFC3339))
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrUnavailable) {
				return res, s.failed(ctx, err)
			}
			errs = append(errs, err)
		}
	}
	orgs := make([]string, len(logs))
	for i, l := range logs {
		orgs[i] = l.OrganizationID
	}
	n, err := s.compact(ctx, orgs, now)
	res.Checkpoints = n
	if n > 0 {
		s.logger.Info("compacted old checkpoints", "checkpoints", n, "logs", len(orgs))
	}
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, store.ErrUnavailable) {
			return res, s.failed(ctx, err)
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return res, s.failed(ctx, err)
	}
	s.metrics.lastSweep.Set(float64(now.UnixNano()) / 1e9)
	return res, nil
}

// prune deletes org's due records, batch after batch.
func (s *Sweeper) prune(ctx context.Context, org string, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.st.PruneRecords(ctx, org, cutoff, s.opts.BatchSize)
		total += int64(n)
		s.metrics.deleted.Add(float64(n))
		if errors.Is(err, store.ErrNotFound) {
			return total, nil // gone meanwhile: nothing to do
		}
		if err != nil {
			return total, fmt.Errorf("couldn't delete expired records of %s: %w", org, err)
		}
		if n < s.opts.BatchSize || ctx.Err() != nil {
			return total, ctx.Err()
		}
		if err := s.pause(ctx); err != nil {
			return total, err
		}
	}
}

// pause waits BatchPause between two batches, or until ctx ends.
func (s *Sweeper) pause(ctx context.Context) error {
	if s.opts.BatchPause <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(s.opts.BatchPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// failed counts a failed sweep, unless it was only stopped (shutdown, or
// the lease lost).
func (s *Sweeper) failed(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		s.metrics.errors.Inc()
	}
	return err
}

// period is a retention of days as a duration.
func period(days int) time.Duration { return time.Duration(days) * 24 * time.Hour }

type metrics struct {
	deleted     prometheus.Counter
	partitions  prometheus.Counter
	errors      prometheus.Counter
	lastSweep   prometheus.Gauge
	checkpoints prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_retention_records_deleted_total",
			Help: "Records deleted because their organization's retention period had passed (rows and dropped partitions)."}),
		partitions: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_retention_partitions_dropped_total",
			Help: "Monthly event partitions dropped whole because every organization's retention had passed (PostgreSQL)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_retention_sweep_errors_total",
			Help: "Retention sweeps that failed, wholly or for some organizations."}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trail_retention_last_sweep_timestamp_seconds",
			Help: "When the last successful retention sweep started, by the sweeper's clock (Unix seconds)."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_checkpoints_compacted_total",
			Help: "Old checkpoints deleted by compaction (the newest of each hour or day, and of each log, are kept)."}),
	}
	if reg != nil {
		reg.MustRegister(m.deleted, m.partitions, m.errors, m.lastSweep, m.checkpoints)
	}
	return m
}
