// Package orgdelete deletes organizations (docs/ORGANIZATIONS.md): a
// deletion offboards the organization — its record bodies, its
// credentials (log streams with their secrets, API keys restricted to it,
// portal links and sessions) and its export files go — while its tree
// hashes and newest signed checkpoint stay, so that every bundle pulled
// before still verifies against the deployment's key.
//
// Begin records the request (store.OrganizationLifecycle) and from then on
// the organization is gone for the API and for ingest. The Service's
// worker carries out the rest, one recorded step at a time, so that a
// deletion interrupted by a crash resumes where it stopped on the next
// start, on any replica. Each deletion is recorded in org_system's log
// when requested (by the caller) and when finished (here).
package orgdelete

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/archive"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// Storage is what a deletion needs from the database.
type Storage interface {
	store.OrganizationLifecycle
	store.ArchiveStore
	ListStreams(ctx context.Context, org string, p store.ListParams) (store.ListPage[store.Stream], error)
	PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error)
	LogState(ctx context.Context, org string) (ledger.LogState, error)
	ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error
}

// Config is a Service's setting.
type Config struct {
	Store Storage
	// Exports, when set, are the organizations' exports: running ones
	// refuse a deletion unless forced, and every one's file is removed
	// (ExportPath names it).
	Exports    store.ExportStore
	ExportPath func(store.Export) string
	// Archiver, when set, writes final bundles.
	Archiver *archive.Archiver
	// Audit records the end of each deletion in org_system's log.
	Audit  *selfaudit.Recorder
	Logger *slog.Logger
	Now    func() time.Time
	// Interval is how often the worker looks for deletions to carry on
	// (default 10 s); Wake makes it look at once.
	Interval time.Duration
	// BatchSize is how many records one transaction deletes (default 1,000).
	BatchSize int
	// AfterStep, when set, is called after each step is recorded (tests
	// end the process there).
	AfterStep func(org, step string)
}

// Service begins deletions and runs the worker that finishes them.
type Service struct {
	cfg  Config
	wake chan struct{}

	mu      sync.Mutex
	waiting []chan struct{}
}

// New returns a Service; its worker runs only in Run.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	return &Service{cfg: cfg, wake: make(chan struct{}, 1)}
}

// RunningError refuses a deletion while something runs for the
// organization.
type RunningError struct {
	Running []string // what runs, e.g. "log stream ls_… (active)"
}

func (e *RunningError) Error() string {
	return "still running: " + strings.Join(e.Running, ", ")
}

// ErrNoArchive refuses a final bundle when no archive is configured.
var ErrNoArchive = errors.New("a final bundle needs the archive (trail serve --archive)")

// Running lists what runs for org: log streams delivering (active, or
// retrying after an error) and exports being written.
func (s *Service) Running(ctx context.Context, org string) ([]string, error) {
	var out []string
	p := store.ListParams{Limit: 100, Order: store.OrderAsc}
	for {
		page, err := s.cfg.Store.ListStreams(ctx, org, p)
		if err != nil {
			return nil, fmt.Errorf("couldn't list the log streams of %s: %w", org, err)
		}
		for _, st := range page.Data {
			if st.State == store.StreamActive || st.State == store.StreamError {
				out = append(out, fmt.Sprintf("log stream %s (%s)", st.ID, st.State))
			}
		}
		if page.After == "" {
			break
		}
		p.After = page.After
	}
	if s.cfg.Exports != nil {
		exports, err := s.cfg.Exports.OrganizationExports(ctx, org)
		if err != nil {
			return nil, err
		}
		for _, e := range exports {
			if e.State == store.ExportPending {
				out = append(out, fmt.Sprintf("export %s (pending)", e.ID))
			}
		}
	}
	return out, nil
}

// Request is one request to delete an organization.
type Request struct {
	OrganizationID string
	RequestedBy    string // an API key id, or who ran the CLI
	Reason         string
	// Force stops what runs for the organization instead of refusing.
	Force bool
	// FinalBundle writes a bundle of every record still stored to the
	// archive before anything is deleted.
	FinalBundle bool
}

// Begin records the deletion of req's organization and wakes the worker.
// It refuses with a *RunningError while streams or exports run, unless
// req.Force. When the organization's deletion was already recorded, it
// returns that one and started = false. An unknown organization is an
// error wrapping store.ErrNotFound.
func (s *Service) Begin(ctx context.Context, req Request) (store.OrganizationDeletion, bool, error) {
	if prev, err := s.cfg.Store.OrganizationDeletion(ctx, req.OrganizationID); err == nil {
		return prev, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return prev, false, err
	}
	if req.FinalBundle && s.cfg.Archiver == nil {
		return store.OrganizationDeletion{}, false, ErrNoArchive
	}
	running, err := s.Running(ctx, req.OrganizationID)
	if err != nil {
		return store.OrganizationDeletion{}, false, err
	}
	if len(running) > 0 && !req.Force {
		return store.OrganizationDeletion{}, false, &RunningError{Running: running}
	}
	d := store.OrganizationDeletion{OrganizationID: req.OrganizationID, RequestedAt: s.cfg.Now().UTC().Truncate(time.Millisecond),
		RequestedBy: req.RequestedBy, Reason: req.Reason, Forced: len(running) > 0, FinalBundle: req.FinalBundle,
		Step: store.DeletionCredentials}
	if req.FinalBundle {
		d.Step = store.DeletionFinalBundle
	}
	d, started, err := s.cfg.Store.BeginOrganizationDeletion(ctx, d)
	if err != nil {
		return d, false, err
	}
	s.Wake()
	return d, started, nil
}

// Wake makes the worker look for deletions now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Passed returns a channel closed once a pass of the worker that starts
// after this call has finished: tests wait on it.
func (s *Service) Passed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(chan struct{})
	s.waiting = append(s.waiting, c)
	return c
}

// Run carries on every pending deletion at once, then every Interval or
// when woken, until ctx ends.
func (s *Service) Run(ctx context.Context) {
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
		if err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("organization deletion did not finish; retrying", "err", err)
		}
		for _, c := range waiting {
			close(c)
		}
		t.Reset(s.cfg.Interval)
	}
}

// errWait means a deletion waits for something else (the integrator, the
// search indexer) before its next step.
var errWait = errors.New("waiting")

// Pass carries every pending deletion as far as it can go now.
func (s *Service) Pass(ctx context.Context) error {
	pending, err := s.cfg.Store.PendingOrganizationDeletions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range pending {
		err := s.carry(ctx, d)
		if errors.Is(err, errWait) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("deletion of %s at step %s: %w", d.OrganizationID, d.Step, err))
			d.LastError = err.Error()
			if uerr := s.cfg.Store.UpdateOrganizationDeletion(context.WithoutCancel(ctx), d); uerr != nil {
				errs = append(errs, uerr)
			}
		}
	}
	return errors.Join(errs...)
}

// carry takes d through its remaining steps, recording each.
func (s *Service) carry(ctx context.Context, d store.OrganizationDeletion) error {
	for d.Step != store.DeletionDone {
		next, err := s.step(ctx, &d)
		if err != nil {
			return err
		}
		d.Step, d.LastError = next, ""
		if next == store.DeletionDone {
			d.FinishedAt = s.cfg.Now().UTC().Truncate(time.Millisecond)
		}
		if err := s.cfg.Store.UpdateOrganizationDeletion(ctx, d); err != nil {
			return err
		}
		s.cfg.Logger.Info("organization deletion step done", "organization_id", d.OrganizationID, "next", next)
		if next == store.DeletionDone {
			s.recordDone(ctx, d)
		}
		if s.cfg.AfterStep != nil {
			s.cfg.AfterStep(d.OrganizationID, next)
		}
	}
	return nil
}

// step does d's current step and returns the next.
func (s *Service) step(ctx context.Context, d *store.OrganizationDeletion) (string, error) {
	org := d.OrganizationID
	switch d.Step {
	case store.DeletionFinalBundle:
		if err := s.integrated(ctx, org); err != nil {
			return "", err
		}
		if s.cfg.Archiver == nil {
			return "", ErrNoArchive
		}
		loc, size, err := s.cfg.Archiver.WriteFinal(ctx, org)
		if err != nil {
			return "", err
		}
		d.FinalLocation, d.FinalSize = loc, size
		return store.DeletionCredentials, nil

	case store.DeletionCredentials:
		now := s.cfg.Now()
		p, err := s.cfg.Store.PurgeOrganizationCredentials(ctx, org, now)
		if err != nil {
			return "", err
		}
		if s.cfg.Exports != nil {
			if _, err := s.cfg.Exports.ExpireOrganizationExports(ctx, org, now); err != nil {
				return "", err
			}
			if err := s.removeExportFiles(ctx, org); err != nil {
				return "", err
			}
		}
		// Retention no longer waits for the archive: every body goes.
		if pos, held, err := s.cfg.Store.ArchivePosition(ctx, org); err != nil {
			return "", err
		} else if held {
			if err := s.cfg.Store.SetArchivePosition(ctx, org, pos, false, now); err != nil {
				return "", err
			}
		}
		s.cfg.Logger.Info("deleted an organization's credentials", "organization_id", org,
			"log_streams", p.Streams, "api_keys", p.APIKeys, "portal_links", p.PortalLinks)
		return store.DeletionRecords, nil

	case store.DeletionRecords:
		if err := s.integrated(ctx, org); err != nil {
			return "", err
		}
		far := s.cfg.Now().Add(100 * 365 * 24 * time.Hour)
		for {
			n, err := s.cfg.Store.PruneRecords(ctx, org, far, s.cfg.BatchSize)
			if err != nil {
				return "", err
			}
			if n < s.cfg.BatchSize {
				break
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
		}
		st, err := s.cfg.Store.LogState(ctx, org)
		if err != nil {
			return "", err
		}
		left := 0
		if err := s.cfg.Store.ReadRecords(ctx, org, 0, st.IntegratedSize, func(int64, []byte) error {
			left++
			return errStop
		}); err != nil && !errors.Is(err, errStop) {
			return "", err
		}
		if left > 0 {
			return "", errWait // the search index must cover them first
		}
		if s.cfg.Exports != nil {
			// An export job that was running may have finished since.
			if err := s.removeExportFiles(ctx, org); err != nil {
				return "", err
			}
		}
		if d.FinalSize == 0 {
			d.FinalSize = st.IntegratedSize
		}
		return store.DeletionDone, nil
	}
	return "", fmt.Errorf("unknown deletion step %q", d.Step)
}

var errStop = errors.New("stop")

// integrated waits (errWait) until every record of org accepted is
// integrated: the newest checkpoint then covers the whole log.
func (s *Service) integrated(ctx context.Context, org string) error {
	st, err := s.cfg.Store.LogState(ctx, org)
	if err != nil {
		return err
	}
	if st.IntegratedSize < st.NextSeq {
		return errWait
	}
	return nil
}

func (s *Service) removeExportFiles(ctx context.Context, org string) error {
	exports, err := s.cfg.Exports.OrganizationExports(ctx, org)
	if err != nil {
		return err
	}
	for _, e := range exports {
		if s.cfg.ExportPath == nil {
			break
		}
		if err := os.Remove(s.cfg.ExportPath(e)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("couldn't remove the file of export %s: %w", e.ID, err)
		}
	}
	return nil
}

// recordDone records the end of d in org_system's log.
func (s *Service) recordDone(ctx context.Context, d store.OrganizationDeletion) {
	if s.cfg.Audit == nil {
		return
	}
	meta := map[string]any{"requested_by": d.RequestedBy, "final_size": d.FinalSize, "forced": d.Forced}
	if d.FinalLocation != "" {
		meta["final_bundle"] = d.FinalLocation
	}
	err := s.cfg.Audit.Record(ctx, selfaudit.Action{Action: "trail.organization.deletion_completed",
		Actor:  selfaudit.Entity{Type: "trail", ID: "organization_deletion", Name: "Organization deletion"},
		Target: selfaudit.Entity{Type: "organization", ID: d.OrganizationID, Name: d.Name},
		Orgs:   []string{store.SystemOrganizationID}, Metadata: meta, Location: "trail"})
	if err != nil {
		s.cfg.Logger.Error("couldn't record the end of an organization's deletion; the deletion itself finished",
			"organization_id", d.OrganizationID, "err", err)
	}
}
