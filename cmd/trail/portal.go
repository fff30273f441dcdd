package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// newPortal builds the Admin Portal for `trail serve` and starts the
// cleanup of expired links under ctx. The portal manages log streams with
// the API's rules (streams) and records its admins' actions with the
// API's recorder (audit). exports (nil: none) serves the events page's CSV
// export; tail the live view; archived (nil: no archive) where older
// events live.
func newPortal(ctx context.Context, st portal.Store, signing *deploymentKeys, keys *keyring.Keyring, publicURL string,
	logger *slog.Logger, streams *streamadmin.Manager, audit *selfaudit.Recorder, exports portal.Exports, ls ledger.Storage,
	witnesses portal.Witnesses, tail portal.Tail, archived func(context.Context, string) string) (api.PortalConfig, error) {
	p, err := portal.New(portal.Config{
		Store: st, Ledger: ls, VerifierKey: signing.NewestKey(), Keys: signing.History, BaseURL: publicURL,
		SessionKey: keys.Key("trail portal sessions v1"),
		Logger:     logger.With("component", "portal"),
		Exports:    exports,
		Witnesses:  witnesses,
		Tail:       tail,
		Streams:    streams,
		Audit:      audit.RecordPortal,
		Archived:   archived,
	})
	if err != nil {
		return api.PortalConfig{}, usagef("%v (set --public-url to the URL admins reach this server at, e.g. https://trail.example.com)", err)
	}
	go deletePortalLinks(ctx, st, logger)
	return api.PortalConfig{Handler: p, Links: p}, nil
}

// deletePortalLinks forgets portal links a day after they expired. A link's
// row also says whether the session it opened has ended, and that session
// lasts 12 hours from a use within the link's 5 minutes: a day later it is
// over, and a session whose row is gone is refused anyway.
func deletePortalLinks(ctx context.Context, st store.PortalLinks, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.DeletePortalLinks(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			logger.Warn("couldn't delete expired portal links", "err", err)
		} else if n > 0 {
			logger.Debug("deleted expired portal links", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
