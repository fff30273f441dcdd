package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// Storage is what the Archiver needs from the database.
type Storage interface {
	ledger.Storage
	store.ArchiveStore
}

// Archiver writes the records retention is about to delete to a Store.
// Retention (package retention) calls Archive for each organization before
// pruning it; the held position it records in the database keeps
// PruneRecords from deleting anything the archive does not hold, whatever
// happens to this process.
type Archiver struct {
	st      Storage
	store   *Store
	def     bool
	max     int
	logger  *slog.Logger
	metrics *metrics
	now     func() time.Time

	mu       sync.Mutex
	lagByOrg map[string]time.Time // oldest record due and not archived, per organization
}

// ArchiverOptions tune an Archiver.
type ArchiverOptions struct {
	// Default says whether organizations without their own setting are
	// archived.
	Default bool
	// MaxRecords bounds the records of one bundle (default 10,000).
	MaxRecords int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // for the lag metric; default time.Now
}

// NewArchiver returns an Archiver writing to s.
func NewArchiver(st Storage, s *Store, opts ArchiverOptions) *Archiver {
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 10_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Archiver{st: st, store: s, def: opts.Default, max: opts.MaxRecords, logger: opts.Logger,
		metrics: newMetrics(opts.Registerer), now: opts.Now, lagByOrg: map[string]time.Time{}}
}

// Store is where the Archiver writes.
func (a *Archiver) Store() *Store { return a.store }

// Enabled reports whether org's records are archived: its own setting, or
// the deployment's.
func (a *Archiver) Enabled(ctx context.Context, org string) (bool, error) {
	settings, err := a.st.ArchiveSettings(ctx)
	if err != nil {
		return false, err
	}
	if on, ok := settings[org]; ok {
		return on, nil
	}
	return a.def, nil
}

// Active reports whether any organization may be archived: retention then
// deletes row by row, never whole partitions, so that each organization's
// held position is respected.
func (a *Archiver) Active(ctx context.Context) (bool, error) {
	if a.def {
		return true, nil
	}
	settings, err := a.st.ArchiveSettings(ctx)
	if err != nil {
		return false, err
	}
	for _, on := range settings {
		if on {
			return true, nil
		}
	}
	return false, nil
}

// errStop ends a ReadRecords walk early.
var errStop = errors.New("stop")

// Archive makes sure every record of org received before cutoff and
// integrated is held by the archive, writing bundles of at most MaxRecords
// records from org's archived position on, each under org's newest
// checkpoint, and advancing the position after each confirmed write. For
// an organization not archived it releases the hold, and retention goes on
// alone.
func (a *Archiver) Archive(ctx context.Context, org string, cutoff time.Time) error {
	on, err := a.Enabled(ctx, org)
	if err != nil {
		return fmt.Errorf("couldn't read the archive setting of %s: %w", org, err)
	}
	pos, held, err := a.st.ArchivePosition(ctx, org)
	if err != nil {
		return fmt.Errorf("couldn't read the archive position of %s: %w", org, err)
	}
	if !on {
		a.setLag(org, time.Time{})
		if held {
			return a.st.SetArchivePosition(ctx, org, pos, false, a.now())
		}
		return nil
	}
	if !held {
		// Hold first: from now on retention waits for the archive.
		if err := a.st.SetArchivePosition(ctx, org, pos, true, a.now()); err != nil {
			return fmt.Errorf("couldn't hold retention of %s for the archive: %w", org, err)
		}
	}
	for {
		st, err := a.st.LogState(ctx, org)
		if err != nil {
			return fmt.Errorf("couldn't read the log state of %s: %w", org, err)
		}
		if pos >= st.IntegratedSize {
			a.setLag(org, time.Time{})
			return nil
		}
		to, n, first, err := a.due(ctx, org, pos, st.IntegratedSize, cutoff)
		if err != nil {
			return err
		}
		if n == 0 {
			// Nothing stored below to is due: skip the gap.
			a.setLag(org, time.Time{})
			if to > pos {
				return a.st.SetArchivePosition(ctx, org, to, true, a.now())
			}
			return nil
		}
		a.setLag(org, first)
		if err := a.write(ctx, org, pos, to); err != nil {
			a.metrics.failures.Inc()
			return err
		}
		if err := a.st.SetArchivePosition(ctx, org, to, true, a.now()); err != nil {
			return fmt.Errorf("couldn't record the archive position of %s: %w", org, err)
		}
		a.metrics.bundles.Inc()
		a.metrics.records.Add(float64(n))
		a.metrics.lastSuccess.Set(float64(a.now().UnixNano()) / 1e9)
		a.logger.Info("archived records", "organization_id", org, "from", pos, "to", to, "records", n,
			"location", a.store.Location(BundleName(org, pos, to)))
		pos = to
		a.setLag(org, time.Time{})
		if n < a.max {
			return nil
		}
	}
}

// due finds the end of the next bundle from pos: the seq of the first
// record received at or after cutoff, or after max records, or size; with
// how many records [pos, to) holds and the received time of the first.
func (a *Archiver) due(ctx context.Context, org string, pos, size int64, cutoff time.Time) (to int64, n int, first time.Time, err error) {
	to = size
	err = a.st.ReadRecords(ctx, org, pos, size, func(seq int64, record []byte) error {
		rec, err := event.ParseRecord(record)
		if err != nil {
			return fmt.Errorf("couldn't parse stored record %s/%d: %w", org, seq, err)
		}
		if !rec.ReceivedAt.Before(cutoff) {
			to = seq
			return errStop
		}
		if n == 0 {
			first = rec.ReceivedAt
		}
		n++
		if n == a.max {
			to = seq + 1
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil {
		return 0, 0, first, fmt.Errorf("couldn't read the records of %s to archive: %w", org, err)
	}
	return to, n, first, nil
}

// write writes the bundle of org's records [from, to) under its newest
// checkpoint and confirms it.
func (a *Archiver) write(ctx context.Context, org string, from, to int64) error {
	var buf bytes.Buffer
	if _, err := ledger.WriteBundle(ctx, &buf, a.st, org, ledger.BundleOptions{From: from, To: to}); err != nil {
		return fmt.Errorf("couldn't write the bundle of %s [%d, %d) for the archive: %w", org, from, to, err)
	}
	if err := a.store.Put(ctx, BundleName(org, from, to), buf.Bytes()); err != nil {
		return fmt.Errorf("couldn't archive %s [%d, %d): %w", org, from, to, err)
	}
	return nil
}

// WriteFinal writes org's final bundle — every record still stored, under
// its checkpoint of the integrated size — and returns where it went and the checkpoint's
// size.
func (a *Archiver) WriteFinal(ctx context.Context, org string) (string, int64, error) {
	st, err := a.st.LogState(ctx, org)
	if err != nil {
		return "", 0, fmt.Errorf("couldn't read the log state of %s: %w", org, err)
	}
	// From the first record still stored: the ones before are gone
	// (retention) or already in the archive.
	from := st.IntegratedSize
	if err := a.st.ReadRecords(ctx, org, 0, st.IntegratedSize, func(seq int64, _ []byte) error {
		from = seq
		return errStop
	}); err != nil && !errors.Is(err, errStop) {
		return "", 0, fmt.Errorf("couldn't read the records of %s: %w", org, err)
	}
	var buf bytes.Buffer
	info, err := ledger.WriteBundle(ctx, &buf, a.st, org, ledger.BundleOptions{From: from, To: st.IntegratedSize, Size: st.IntegratedSize})
	if err != nil {
		return "", 0, fmt.Errorf("couldn't write the final bundle of %s: %w", org, err)
	}
	name := FinalBundleName(org, info.Checkpoint.Size)
	if err := a.store.Put(ctx, name, buf.Bytes()); err != nil {
		a.metrics.failures.Inc()
		return "", 0, fmt.Errorf("couldn't archive the final bundle of %s: %w", org, err)
	}
	a.metrics.bundles.Inc()
	a.metrics.records.Add(float64(info.Records))
	return a.store.Location(name), info.Checkpoint.Size, nil
}

// setLag records the oldest record of org waiting for the archive (zero:
// none) and updates the lag gauge: the age of the oldest of all.
func (a *Archiver) setLag(org string, oldest time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if oldest.IsZero() {
		delete(a.lagByOrg, org)
	} else {
		a.lagByOrg[org] = oldest
	}
	var min time.Time
	for _, t := range a.lagByOrg {
		if min.IsZero() || t.Before(min) {
			min = t
		}
	}
	lag := 0.0
	if !min.IsZero() {
		lag = a.now().Sub(min).Seconds()
	}
	a.metrics.lag.Set(lag)
}

type metrics struct {
	bundles     prometheus.Counter
	records     prometheus.Counter
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge
	lag         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		bundles: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_archive_bundles_written_total",
			Help: "Bundles written to the archive and confirmed (docs/ARCHIVE.md)."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_archive_records_written_total",
			Help: "Records written to the archive in confirmed bundles."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_archive_failures_total",
			Help: "Archive writes that failed; retention keeps the records they held until a later write succeeds."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trail_archive_last_write_timestamp_seconds",
			Help: "When the last confirmed archive write finished (Unix seconds)."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "trail_archive_lag_seconds",
			Help: "Age of the oldest record past retention that the archive does not hold yet (0: caught up); retention waits for it."}),
	}
	if reg != nil {
		reg.MustRegister(m.bundles, m.records, m.failures, m.lastSuccess, m.lag)
	}
	return m
}
