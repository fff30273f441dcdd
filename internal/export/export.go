// Package export owns asynchronous exports of an organization's events
// (POST /audit_logs/exports): the CSV writer (RFC 4180, formula injection
// neutralised), the NDJSON format (a subset bundle that `trail verify`
// checks, ledger.WriteSubset), the export jobs run through River on either
// backend, the signed download links, and the sweep that expires exports
// after 24 hours.
//
// A job reads the organization's records in seq order, from the first that
// may be in the date range (Service.firstSeq) up to the log size recorded
// when the export was requested, through ledger.Storage.ReadRecords
// (bounded batches, record bytes as stored), decodes each, keeps those the
// filter selects and streams them to a file: memory does not depend on the
// size of the export. A job interrupted by a crash starts its file over
// when River retries it; the file is renamed into place only when complete.
package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// Formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// Lifetime is how long an export's file is kept; then it is removed and the
// export is expired.
const Lifetime = 24 * time.Hour

// Reader is what a job reads events and proofs from: the log's storage.
type Reader interface {
	ledger.Storage
	NextSeq(ctx context.Context, org string) (int64, error)
	// FirstSeqSince returns a seq below which org has no event with
	// occurred_at at or after since, or 0 when finding it would mean
	// passing more than limit events.
	FirstSeqSince(ctx context.Context, org string, since time.Time, limit int64) (int64, error)
}

// minSkip is the smallest log worth looking up where a date range starts:
// below it, reading the whole log costs less than a lookup.
const minSkip = 4096

// firstSeq is where a job starts reading: 0, or for an export whose range
// has a start, the first seq that may be in it. occurred_at is the client's
// and may be in any order, so the search index (on SQLite the search file,
// on PostgreSQL events_org_time) says where; when the range holds more than
// a quarter of the log a sequential read of it all is cheaper than the walk,
// and the job reads from 0.
func (s *Service) firstSeq(ctx context.Context, e store.Export) (int64, error) {
	if e.Filter.RangeStart.IsZero() || e.UpTo < minSkip {
		return 0, nil
	}
	from, err := s.cfg.Log.FirstSeqSince(ctx, e.OrganizationID, e.Filter.RangeStart, e.UpTo/4)
	if err != nil {
		return 0, err
	}
	return min(from, e.UpTo), nil
}

// Config configures a Service.
type Config struct {
	Exports store.ExportStore
	Log     Reader
	// Signer, when set, is the log's key: it signs the selection line of
	// NDJSON exports' subset bundles, for the checkpoint they end at.
	Signer ledger.SelectionSigner
	// Dir holds the export files. With several PostgreSQL replicas it must
	// be shared by all of them (a download may reach any replica).
	Dir    string
	Logger *slog.Logger
	Now    func() time.Time
	// IntegrationWait bounds how long an NDJSON export waits for the log to
	// be integrated (signed) up to the events it covers; default 1 minute.
	IntegrationWait time.Duration
	// JobTimeout bounds one run of an export job; default 1 hour.
	JobTimeout time.Duration
	// SweepInterval is how often expired exports are removed; default 10
	// minutes.
	SweepInterval time.Duration
	// MaxEventsPerSecond, when > 0, caps how fast one job reads the log,
	// to spare a busy database; 0 means as fast as it goes.
	MaxEventsPerSecond float64
	// RiverSchemaChecked, when set, leaves River's tables as they are:
	// pending River migrations refuse the service (store.ErrSchemaBehind)
	// for `trail migrate` to apply (MigrateRiverPostgres,
	// MigrateRiverSQLite). Unset, New… migrates them, as tests want.
	RiverSchemaChecked bool
}

// Service creates exports, runs their jobs and serves their files.
type Service struct {
	cfg   Config
	log   *slog.Logger
	queue queue

	stopSweep context.CancelFunc
	swept     chan struct{}
}

// queue is the job queue behind a Service: River on SQLite or PostgreSQL.
type queue interface {
	// enqueue inserts the job of export id in tx, the transaction that
	// stores the export.
	enqueue(ctx context.Context, tx any, id string) error
	start(ctx context.Context) error
	stop(ctx context.Context) error
	// rescue makes jobs whose worker is gone runnable again.
	rescue(ctx context.Context, now time.Time) error
}

func newService(cfg Config) (*Service, error) {
	if cfg.Exports == nil || cfg.Log == nil || cfg.Dir == "" {
		return nil, errors.New("export: Exports, Log and Dir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IntegrationWait <= 0 {
		cfg.IntegrationWait = time.Minute
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = time.Hour
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Minute
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create the export directory %s: %w", cfg.Dir, err)
	}
	return &Service{cfg: cfg, log: cfg.Logger}, nil
}

// NewID returns a new export id, "audit_log_export_" + ULID.
func NewID(t time.Time) string {
	return "audit_log_export_" + ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// Create stores a new pending export of org's events and its job, in one
// transaction. It covers the events accepted so far.
func (s *Service) Create(ctx context.Context, org, format string, f store.ExportFilter) (store.Export, error) {
	upTo, err := s.cfg.Log.NextSeq(ctx, org)
	if err != nil {
		return store.Export{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	e := store.Export{ID: NewID(now), OrganizationID: org, Format: format, Filter: f, UpTo: upTo,
		State: store.ExportPending, CreatedAt: now, UpdatedAt: now}
	err = s.cfg.Exports.CreateExport(ctx, e, func(ctx context.Context, tx any) error {
		return s.queue.enqueue(ctx, tx, e.ID)
	})
	return e, err
}

// Get returns an export.
func (s *Service) Get(ctx context.Context, id string) (store.Export, error) {
	return s.cfg.Exports.Export(ctx, id)
}

// Path is where the file of a ready export is.
func (s *Service) Path(e store.Export) string {
	return filepath.Join(s.cfg.Dir, e.ID+"."+e.Format)
}

// Start starts the job queue and the sweep; Stop stops them.
func (s *Service) Start(ctx context.Context) error {
	if err := s.queue.rescue(ctx, s.cfg.Now()); err != nil {
		return fmt.Errorf("couldn't rescue interrupted export jobs: %w", err)
	}
	if err := s.queue.start(ctx); err != nil {
		return fmt.Errorf("couldn't start the export job queue: %w", err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSweep = cancel
	s.swept = make(chan struct{})
	go s.sweepLoop(sctx)
	return nil
}

// Stop stops taking jobs, waits up to the context's deadline for running
// ones (cancelling them after it; River retries them later), and stops the
// sweep. Calling it twice is harmless.
func (s *Service) Stop(ctx context.Context) error {
	if s.stopSweep == nil {
		return nil
	}
	s.stopSweep()
	<-s.swept
	s.stopSweep = nil
	return s.queue.stop(ctx)
}

// rescueInterval is how often jobs whose worker is gone are looked for.
const rescueInterval = 30 * time.Second

func (s *Service) sweepLoop(ctx context.Context) {
	defer close(s.swept)
	t := time.NewTicker(rescueInterval)
	defer t.Stop()
	var lastSweep time.Time
	for {
		if time.Since(lastSweep) >= s.cfg.SweepInterval {
			lastSweep = time.Now()
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("couldn't expire old exports; will retry", "err", err)
			}
		}
		if err := s.queue.rescue(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("couldn't rescue interrupted export jobs; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep expires exports older than Lifetime and removes their files. It
// returns how many it expired.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	expired, err := s.cfg.Exports.ExpireExports(ctx, now.Add(-Lifetime), now)
	if err != nil {
		return 0, err
	}
	for _, e := range expired {
		// The row says expired before the file goes: a crash in between
		// leaves a file for removeLeftovers, never an export that says
		// ready without its file.
		if err := os.Remove(s.Path(e)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("couldn't remove an expired export's file", "export_id", e.ID, "err", err)
		}
	}
	if len(expired) > 0 {
		s.log.Info("expired exports", "count", len(expired))
	}
	s.removeLeftovers(now)
	return len(expired), nil
}

// removeLeftovers removes files of the export directory older than any
// export can be: partial files of jobs killed mid-way, and files whose
// removal a crash interrupted.
func (s *Service) removeLeftovers(now time.Time) {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		s.log.Warn("couldn't list the export directory", "dir", s.cfg.Dir, "err", err)
		return
	}
	cutoff := now.Add(-Lifetime - 2*s.cfg.JobTimeout)
	for _, de := range entries {
		if !strings.HasPrefix(de.Name(), "audit_log_export_") {
			continue
		}
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(s.cfg.Dir, de.Name()))
		}
	}
}

// progressInterval is how often a running job records its progress (which
// is also its heartbeat: see queue.rescue).
const progressInterval = time.Second

// errPermanent marks a failure that retrying cannot fix.
var errPermanent = errors.New("permanent export failure")

// Run produces the file of export id (the job's work). It does nothing to
// an export that is no longer pending. A failure wrapping errPermanent is
// recorded as the export's error; others are returned for River to retry.
func (s *Service) Run(ctx context.Context, id string) error {
	e, err := s.cfg.Exports.Export(ctx, id)
	if err != nil {
		return err
	}
	if e.State != store.ExportPending {
		return nil
	}
	log := s.log.With("export_id", e.ID, "organization_id", e.OrganizationID, "format", e.Format)
	start := time.Now()
	if err := s.cfg.Exports.UpdateExportProgress(ctx, id, 0, 0, s.cfg.Now()); err != nil {
		return err
	}
	final := s.Path(e)
	// A name of its own per run: a run that lost its job (see
	// queue.rescue) and still writes cannot mix its bytes with the next.
	partial := fmt.Sprintf("%s.%x.partial", final, time.Now().UnixNano())
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't create %s: %w", partial, err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(partial)
		}
	}()
	p := &progress{s: s, ctx: ctx, id: id, last: time.Now(), start: time.Now(), rate: s.cfg.MaxEventsPerSecond}
	switch e.Format {
	case FormatNDJSON:
		err = s.writeNDJSON(ctx, f, e, p)
	default:
		err = s.writeCSV(ctx, f, e, p)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if errors.Is(err, errPermanent) {
			log.Warn("export failed", "err", err)
			e.State, e.Error = store.ExportError, strings.TrimPrefix(err.Error(), errPermanent.Error()+": ")
			_, ferr := s.cfg.Exports.FinishExport(context.WithoutCancel(ctx), e, s.cfg.Now())
			return ferr
		}
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	f.Close()
	f = nil
	if err := os.Rename(partial, final); err != nil {
		os.Remove(partial)
		return fmt.Errorf("couldn't move the export file into place: %w", err)
	}
	if d, err := os.Open(s.cfg.Dir); err == nil {
		d.Sync() // the rename survives a power loss before the row says ready
		d.Close()
	}
	e.State, e.Processed, e.Exported, e.Size = store.ExportReady, p.read, p.exported, fi.Size()
	if _, err := s.cfg.Exports.FinishExport(ctx, e, s.cfg.Now()); err != nil {
		return err
	}
	elapsed := time.Since(start)
	log.Info("export ready", "events_read", p.read, "events_exported", p.exported, "bytes", fi.Size(),
		"seconds", elapsed.Seconds(), "events_per_second", int64(float64(p.read)/max(elapsed.Seconds(), 1e-9)))
	return nil
}

// progress counts a job's events and records them now and then.
type progress struct {
	s        *Service
	ctx      context.Context
	id       string
	read     int64
	exported int64
	last     time.Time
	start    time.Time
	rate     float64 // events per second at most; 0 = unlimited
}

func (p *progress) tick() error {
	if p.read&1023 != 0 {
		return nil
	}
	if p.rate > 0 {
		ahead := time.Duration(float64(p.read)/p.rate*float64(time.Second)) - time.Since(p.start)
		if ahead > 0 {
			select {
			case <-p.ctx.Done():
				return p.ctx.Err()
			case <-time.After(ahead):
			}
		}
	}
	if now := time.Now(); now.Sub(p.last) >= progressInterval {
		p.last = now
		return p.s.cfg.Exports.UpdateExportProgress(p.ctx, p.id, p.read, p.exported, p.s.cfg.Now())
	}
	return nil
}

// recordBatch is a run of records copied out of the store's read, handed
// from the reading goroutine to the writing one.
type recordBatch struct {
	buf  []byte
	ends []int
}

// batchRecords and batchBytes bound one batch; batchesInFlight bounds how
// many exist, so a job holds at most about batchesInFlight × batchBytes of
// records whatever the size of the export.
const (
	batchRecords    = 1024
	batchBytes      = 1 << 20
	batchesInFlight = 4
)

// writeCSV reads the records on one goroutine and decodes, filters and
// writes them on another, so that the database and the CSV encoding each
// have a core.
func (s *Service) writeCSV(ctx context.Context, f *os.File, e store.Export, p *progress) error {
	from, err := s.firstSeq(ctx, e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *recordBatch, batchesInFlight)
	full := make(chan *recordBatch, batchesInFlight)
	for range batchesInFlight {
		free <- &recordBatch{buf: make([]byte, 0, batchBytes+64<<10), ends: make([]int, 0, batchRecords)}
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		cur := <-free
		err := s.cfg.Log.ReadRecords(ctx, e.OrganizationID, from, e.UpTo, func(seq int64, record []byte) error {
			cur.buf = append(cur.buf, record...)
			cur.ends = append(cur.ends, len(cur.buf))
			if len(cur.ends) < batchRecords && len(cur.buf) < batchBytes {
				return nil
			}
			full <- cur
			select {
			case cur = <-free:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err == nil && len(cur.ends) > 0 {
			full <- cur
		}
		readErr <- err
	}()

	cw := NewCSVWriter(f)
	rf := newRawFilter(&e.Filter)
	var x rawRecord
	var werr error
	for b := range full {
		if werr == nil {
			werr = s.writeBatch(cw, b, rf, &e, &x, p)
			if werr != nil {
				cancel() // stop the reader
			}
		}
		b.buf, b.ends = b.buf[:0], b.ends[:0]
		free <- b
	}
	if err := <-readErr; werr == nil && err != nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	if err := cw.Flush(); err != nil {
		return fmt.Errorf("couldn't write the export file: %w", err)
	}
	return nil
}

func (s *Service) writeBatch(cw *CSVWriter, b *recordBatch, rf *rawFilter, e *store.Export, x *rawRecord, p *progress) error {
	start := 0
	for _, end := range b.ends {
		record := b.buf[start:end]
		start = end
		p.read++
		var err error
		switch {
		case x.parse(record):
			if rf.matches(x) {
				p.exported++
				err = cw.writeRaw(x)
			}
		default:
			// Not in the canonical layout: the full decoder says what it
			// is, or why it cannot be read.
			r, perr := event.ParseRecord(record)
			if perr != nil {
				return fmt.Errorf("%w: a stored record cannot be read (%v); the log may have been tampered with: check it with trail verify", errPermanent, perr)
			}
			if matches(&e.Filter, r) {
				p.exported++
				err = cw.Write(r)
			}
		}
		if err != nil {
			return fmt.Errorf("couldn't write the export file: %w", err)
		}
		if err := p.tick(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) writeNDJSON(ctx context.Context, f *os.File, e store.Export, p *progress) error {
	if e.UpTo == 0 {
		return fmt.Errorf("%w: the organization had no events when the export was requested, so there is no checkpoint to prove an export against", errPermanent)
	}
	// The bundle proves its records against a checkpoint, which must cover
	// every event the export may select: wait for the integrator (about a
	// second behind ingest).
	deadline := time.Now().Add(s.cfg.IntegrationWait)
	for {
		st, err := s.cfg.Log.LogState(ctx, e.OrganizationID)
		if err != nil {
			return err
		}
		if st.IntegratedSize >= e.UpTo {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the log of %s is integrated up to %d, not yet %d: retrying later", e.OrganizationID, st.IntegratedSize, e.UpTo)
		}
		if err := s.cfg.Exports.UpdateExportProgress(ctx, e.ID, 0, 0, s.cfg.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var selectFn func(seq int64, record []byte) (bool, error)
	if filterEmpty(&e.Filter) {
		selectFn = func(int64, []byte) (bool, error) {
			p.read++
			p.exported++
			return true, p.tick()
		}
	} else {
		rf := newRawFilter(&e.Filter)
		var x rawRecord
		selectFn = func(seq int64, record []byte) (bool, error) {
			p.read++
			var ok bool
			if x.parse(record) {
				ok = rf.matches(&x)
			} else {
				r, err := event.ParseRecord(record)
				if err != nil {
					return false, fmt.Errorf("%w: the stored record at seq %d cannot be read (%v); the log may have been tampered with: check it with trail verify", errPermanent, seq, err)
				}
				ok = matches(&e.Filter, r)
			}
			if ok {
				p.exported++
			}
			return ok, p.tick()
		}
	}
	from, err := s.firstSeq(ctx, e)
	if err != nil {
		return err
	}
	_, err = ledger.WriteSubset(ctx, f, s.cfg.Log, e.OrganizationID, ledger.SubsetOptions{
		From: from, UpTo: e.UpTo, Selection: Describe(e), Select: selectFn, Signer: s.cfg.Signer})
	return err
}

func filterEmpty(f *store.ExportFilter) bool {
	return f.RangeStart.IsZero() && f.RangeEnd.IsZero() && len(f.Actions) == 0 && len(f.ActorNames) == 0 &&
		len(f.ActorIDs) == 0 && len(f.Targets) == 0
}

// Describe says in words what an export selects, for the subset bundle.
func Describe(e store.Export) string {
	f := e.Filter
	parts := []string{fmt.Sprintf("export %s of %s: events with seq below %d", e.ID, e.OrganizationID, e.UpTo)}
	if !f.RangeStart.IsZero() {
		parts = append(parts, "occurred_at ≥ "+f.RangeStart.UTC().Format(time.RFC3339Nano))
	}
	if !f.RangeEnd.IsZero() {
		parts = append(parts, "occurred_at < "+f.RangeEnd.UTC().Format(time.RFC3339Nano))
	}
	list := func(name string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, fmt.Sprintf("%s in %q", name, vs))
		}
	}
	list("action", f.Actions)
	list("actor name", f.ActorNames)
	list("actor id", f.ActorIDs)
	list("a target type", f.Targets)
	return strings.Join(parts, ", ")
}
