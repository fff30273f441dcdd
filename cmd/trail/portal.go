package main

import (
	"context"
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
// exists: the portal records its admins' actions, and manages log streams,
// through it. exports (nil: none) serves the events page's CSV export;
// tail the live view.
func newPortal(ctx context.Context, st portal.Store, signing *deploymentKeys, keys *keyring.Keyring, publicURL string,
	logger *slog.Logger, server func() *api.Server, exports portal.Exports, ls ledger.Storage, witnesses portal.Witnesses, tail portal.Tail) (api.PortalConfig, error) {
	p, err := portal.New(portal.Config{
		Store: st, Ledger: ls, VerifierKey: signing.NewestKey(), Keys: signing.History, BaseURL: publicURL,
		SessionKey: keys.Key("trail portal sessions v1"),
		Logger:     logger.With("component", "portal"),
		Exports:    exports,
		Witnesses:  witnesses,
		Tail:       tail,
		Streams:    portalStreams{server},
		Audit: func(r *http.Request, a portal.Action) {
			server().AuditPortal(r, api.PortalAction{OrganizationID: a.OrganizationID, Action: a.Action, Admin: a.Admin, AdminID: a.AdminID,
				Target:   api.PortalTarget{Type: a.TargetType, ID: a.TargetID, Name: a.TargetName},
				Metadata: a.Metadata})
		},
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

// portalStreams gives the portal's log streams pages the API's stream
// operations (api.Server.PortalStreams and the like), which apply the same
// validation, SSRF policy and sealing as the HTTP API.
type portalStreams struct{ server func() *api.Server }

var _ portal.Streams = portalStreams{}

func status(ps api.PortalStream) portal.StreamStatus {
	return portal.StreamStatus{Stream: ps.Stream, SecretNames: ps.SecretNames, LagEvents: ps.LagEvents,
		LagSeconds: ps.LagSeconds, Unreadable: ps.Unreadable}
}

func (s portalStreams) List(ctx context.Context, org string) ([]portal.StreamStatus, error) {
	list, err := s.server().PortalStreams(ctx, org)
	out := make([]portal.StreamStatus, len(list))
	for i, ps := range list {
		out[i] = status(ps)
	}
	return out, err
}

func (s portalStreams) Get(ctx context.Context, org, id string) (portal.StreamStatus, error) {
	ps, err := s.server().PortalStream(ctx, org, id)
	return status(ps), err
}

func (s portalStreams) Create(ctx context.Context, org, typ, name, start string, config []byte) (store.Stream, error) {
	return s.server().PortalCreateStream(ctx, org, typ, name, start, config)
}

func (s portalStreams) Update(ctx context.Context, org, id, name string, config []byte) (store.Stream, error) {
	return s.server().PortalUpdateStream(ctx, org, id, name, config)
}

func (s portalStreams) SetActive(ctx context.Context, org, id string, active bool) (store.Stream, error) {
	return s.server().PortalSetStreamActive(ctx, org, id, active)
}

func (s portalStreams) Delete(ctx context.Context, org, id string) (store.Stream, error) {
	return s.server().PortalDeleteStream(ctx, org, id)
}

func (s portalStreams) Test(ctx context.Context, org, id string) (store.Stream, portal.StreamTest, error) {
	st, t, err := s.server().PortalTestStream(ctx, org, id)
	return st, portal.StreamTest{Accepted: t.Accepted, Message: t.Message, Retryable: t.Retryable, Duration: t.Duration}, err
}
