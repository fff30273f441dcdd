package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/privacy"
)

// privacyFlags configure erasures (package privacy, docs/PRIVACY.md).
type privacyFlags struct {
	erasureBatch int64
	erasurePause time.Duration
}

func (f *privacyFlags) register(fs *flag.FlagSet) {
	setting{fs}.Int64Var(&f.erasureBatch, "erasure-batch-size", "TRAIL_ERASURE_BATCH_SIZE", 500, "how many records one erasure transaction deletes; from 1 to 10000")
	setting{fs}.DurationVar(&f.erasurePause, "erasure-batch-pause", "TRAIL_ERASURE_BATCH_PAUSE", 0, "how long an erasure waits between two batches, leaving the database to ingest; 0 for none")
}

func (f *privacyFlags) options() (privacy.EraserOptions, error) {
	if f.erasureBatch < 1 || f.erasureBatch > 10000 {
		return privacy.EraserOptions{}, usagef("--erasure-batch-size %d: give a whole number from 1 to 10000", f.erasureBatch)
	}
	if f.erasurePause < 0 {
		return privacy.EraserOptions{}, usagef("--erasure-batch-pause %s: give a duration such as 50ms, or 0 for no pause", f.erasurePause)
	}
	return privacy.EraserOptions{BatchSize: int(f.erasureBatch), BatchPause: f.erasurePause}, nil
}

// startPrivacy loads every organization's field policy (ingest must not
// start without them), keeps them fresh from the database (a policy set
// through another replica), and starts the eraser: always with SQLite;
// with PostgreSQL on one replica at a time, under the "erasure" lease. It
// returns the API's configuration and a channel closed once the eraser
// has stopped after ctx ends.
func startPrivacy(ctx context.Context, st backend, sub privacy.Submitter, keys *keyring.Keyring, signer ledger.SelectionSigner,
	pool *pgxpool.Pool, leases lease.Options, f *privacyFlags, logger *slog.Logger) (api.PrivacyConfig, <-chan struct{}, error) {
	opts, err := f.options()
	if err != nil {
		return api.PrivacyConfig{}, nil, err
	}
	pols := privacy.NewPolicies(st, logger.With("worker", "privacy"))
	if err := pols.Reload(ctx); err != nil {
		return api.PrivacyConfig{}, nil, fmt.Errorf("couldn't start: %w", err)
	}
	go pols.Run(ctx)
	logger = logger.With("worker", "erasure")
	eraser := privacy.NewEraser(st, sub, keys, signer, opts, logger)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if pool == nil {
			eraser.Run(ctx)
			return
		}
		lease.Run(ctx, pool, "erasure", leases, logger, eraser.Run)
	}()
	return api.PrivacyConfig{Store: st, Policies: pols, Hasher: keys.FieldHasher(), Eraser: eraser}, done, nil
}
