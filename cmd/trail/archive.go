package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/archive"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/orgdelete"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// archiveFlags configure the verifiable archive (docs/ARCHIVE.md).
type archiveFlags struct {
	url      string
	endpoint string
	lockMode string
	lockDays int64
	all      bool // archive every organization unless it says otherwise
}

func (f *archiveFlags) register(fs *flag.FlagSet) {
	setting{fs}.StringVar(&f.url, "archive", "TRAIL_ARCHIVE", "", "before retention deletes records, write them as verifiable bundles to s3://bucket/prefix (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS default chain) or file:///directory; retention waits until the archive holds them (docs/ARCHIVE.md)")
	setting{fs}.StringVar(&f.endpoint, "archive-endpoint", "TRAIL_ARCHIVE_ENDPOINT", "", "URL of an S3-compatible server for --archive (default: AWS)")
	setting{fs}.StringVar(&f.lockMode, "archive-lock-mode", "TRAIL_ARCHIVE_LOCK_MODE", "", "put archived bundles under S3 Object Lock in this mode, GOVERNANCE or COMPLIANCE, for --archive-lock-days (the bucket must have Object Lock enabled)")
	setting{fs}.Int64Var(&f.lockDays, "archive-lock-days", "TRAIL_ARCHIVE_LOCK_DAYS", 0, "days each archived bundle stays locked (x-amz-object-lock-retain-until-date), with --archive-lock-mode")
	fs.BoolVar(&f.all, "archive-all", true, "with --archive, archive every organization that has no setting of its own (PUT /v1/organizations/{id}/archive); false archives only those that ask [TRAIL_ARCHIVE_ALL]")
}

// open returns the archive store (nil without --archive).
func (f *archiveFlags) open() (*archive.Store, error) {
	if f.url == "" {
		if f.endpoint != "" || f.lockMode != "" || f.lockDays != 0 {
			return nil, usagef("--archive-endpoint, --archive-lock-mode and --archive-lock-days need --archive")
		}
		return nil, nil
	}
	s, err := archive.Open(archive.Options{URL: f.url, Endpoint: f.endpoint, LockMode: f.lockMode, LockDays: int(f.lockDays)})
	if err != nil {
		return nil, usagef("--archive: %v", err)
	}
	return s, nil
}

// newArchiver returns the archiver retention and deletions use, or nil
// without --archive.
func (f *archiveFlags) newArchiver(st archive.Storage, logger *slog.Logger, reg prometheus.Registerer) (*archive.Archiver, error) {
	s, err := f.open()
	if s == nil || err != nil {
		return nil, err
	}
	all := f.all
	logger.Info("records past retention are archived before deletion", "archive", s.String(), "all_organizations", all)
	return archive.NewArchiver(st, s, archive.ArchiverOptions{Default: all, Logger: logger.With("worker", "archive"), Registerer: reg}), nil
}

// startDeletions runs the organization deletion worker: always with
// SQLite; with PostgreSQL on one replica at a time, under the
// "organization-deletion" lease. It returns the service (for the API) and a
// channel closed once it has stopped after ctx ends.
func startDeletions(ctx context.Context, st store.Backend, pool *pgxpool.Pool, leases lease.Options, exports store.ExportStore,
	exportPath func(store.Export) string, archiver *archive.Archiver, audit *selfaudit.Recorder, logger *slog.Logger) (*orgdelete.Service, <-chan struct{}) {
	logger = logger.With("worker", "organization-deletion")
	cfg := orgdelete.Config{Store: st, Exports: exports, ExportPath: exportPath, Audit: audit, Logger: logger}
	if archiver != nil {
		cfg.Archiver = archiver
	}
	if step := deletionCrashAfter(); step != "" {
		// Tests only (testknobs.go): die as a crash would, right after
		// recording this step.
		cfg.AfterStep = func(_, done string) {
			if done == step {
				logger.Warn("ending the process after a deletion step, as a crash would (TRAIL_TEST_DELETION_CRASH_AFTER)", "step", done)
				syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck // the process ends here
			}
		}
	}
	svc := orgdelete.New(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if pool == nil {
			svc.Run(ctx)
			return
		}
		lease.Run(ctx, pool, "organization-deletion", leases, logger, svc.Run)
	}()
	return svc, done
}

// archiveNote tells the portal's events page where an organization's
// older events live (nil without an archive).
func archiveNote(st store.ArchiveStore, archiver *archive.Archiver) func(context.Context, string) (portal.ArchivedEvents, bool) {
	if archiver == nil {
		return nil
	}
	where := archiver.Store().String()
	return func(ctx context.Context, org string) (portal.ArchivedEvents, bool) {
		to, _, err := st.ArchivePosition(ctx, org)
		if err != nil || to == 0 {
			return portal.ArchivedEvents{}, false
		}
		return portal.ArchivedEvents{Before: to, Where: where}, true
	}
}
