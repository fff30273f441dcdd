package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/portal"
	"github.com/trailaudit/trail/internal/store"
)

// newPortal builds the Admin Portal for `trail serve` and starts the
// cleanup of expired links under ctx. server returns the API server once it
// exists: the portal records its admins' actions through it.
func newPortal(ctx context.Context, st store.Store, vkey string, keys *keyring.Keyring, publicURL string,
	logger *slog.Logger, server func() *api.Server) (api.PortalConfig, error) {
	ps, ok := st.(portal.Store)
	ls, ok2 := st.(ledger.Storage)
	if !ok || !ok2 {
		return api.PortalConfig{}, fmt.Errorf("this database backend (%T) cannot serve the Admin Portal", st)
	}
	p, err := portal.New(portal.Config{
		Store: ps, Ledger: ls, VerifierKey: vkey, BaseURL: publicURL,
		SessionKey: keys.Key("trail portal sessions v1"),
		Logger:     logger.With("component", "portal"),
		Audit: func(r *http.Request, a portal.Action) {
			server().AuditPortal(r, api.PortalAction{OrganizationID: a.OrganizationID, Action: a.Action, Admin: a.Admin,
				Target:   api.PortalTarget{Type: a.TargetType, ID: a.TargetID, Name: a.TargetName},
				Metadata: a.Metadata})
		},
	})
	if err != nil {
		return api.PortalConfig{}, usagef("%v (set --public-url to the URL admins reach this server at, e.g. https://trail.example.com)", err)
	}
	go deletePortalLinks(ctx, ps, logger)
	return api.PortalConfig{Handler: p, Links: p}, nil
}

// deletePortalLinks forgets portal links a day after they expired.
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
