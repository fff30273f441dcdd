package store

import (
	"context"
	"errors"
	"time"
)

// The Admin Portal's storage (docs/DESIGN.md §7), beside Store rather than in it: a
// backend that serves the portal implements PortalStore as well.

// Errors of RedeemPortalLink, besides ErrNotFound (no such link).
var (
	// ErrLinkUsed means the link was already opened once.
	ErrLinkUsed = errors.New("portal link already used")
	// ErrLinkExpired means the link was never opened and is past its
	// expiry.
	ErrLinkExpired = errors.New("portal link expired")
	// ErrLinkRevoked means the organization's portal sessions were
	// revoked (EndPortalSessions) before the link was opened.
	ErrLinkRevoked = errors.New("portal link revoked")
)

// PortalLink is a generated Admin Portal link. The token itself is never
// stored: only its SHA-256 hash.
type PortalLink struct {
	Hash           [32]byte
	OrganizationID string
	Intent         string // "audit_logs" or "log_streams"
	AdminEmail     string // the admin the link names; "" when none
	// ExternalUserID is the application's id of the user the link was
	// generated for (WorkOS's external_user_id); "" when none.
	ExternalUserID string
	ReturnURL      string // "" when none
	CreatedAt      time.Time
	ExpiresAt      time.Time
	UsedAt         time.Time // zero until redeemed
	EndedAt        time.Time // zero until the session it opened ended
}

// PortalLinks stores portal links, redeems each at most once, and ends the
// session a redeemed link opened.
type PortalLinks interface {
	// CreatePortalLink stores a new link; ErrNotFound when its organization
	// does not exist, ErrConflict when the hash is already stored.
	CreatePortalLink(ctx context.Context, l PortalLink) error
	// RedeemPortalLink marks the link with this hash used at now and
	// returns it. It succeeds at most once per link, atomically in the
	// database, so that two replicas given the same link at the same
	// instant cannot both redeem it. An unknown hash is ErrNotFound, a link
	// already used ErrLinkUsed (whatever its expiry), a link revoked before
	// it was used ErrLinkRevoked, a link with ExpiresAt ≤ now
	// ErrLinkExpired; in those cases nothing changes.
	RedeemPortalLink(ctx context.Context, hash [32]byte, now time.Time) (PortalLink, error)
	// DeletePortalLinks forgets links that expired before cutoff, used or
	// not, and returns how many.
	DeletePortalLinks(ctx context.Context, cutoff time.Time) (int64, error)
	// PortalLink returns the link with this hash; ErrNotFound when there
	// is none (never issued, or forgotten).
	PortalLink(ctx context.Context, hash [32]byte) (PortalLink, error)
	// EndPortalSession ends the session the link with this hash opened, at
	// now (sign-out). Ending it again changes nothing; ErrNotFound when no
	// redeemed link has this hash.
	EndPortalSession(ctx context.Context, hash [32]byte, now time.Time) error
	// EndPortalSessions revokes org's portal access as it stands at now:
	// every session opened through a link of org that has not ended yet
	// ends, and every link not opened yet can no longer be, even one that
	// is expiring as this runs. It returns how many sessions and links it
	// ended (expired links included).
	EndPortalSessions(ctx context.Context, org string, now time.Time) (int64, error)
	// RevokePortalLinks is EndPortalSessions for the links of org generated
	// for one user (PortalLink.ExternalUserID, not ""): they and the
	// sessions they opened end; other links of org are untouched.
	RevokePortalLinks(ctx context.Context, org, externalUserID string, now time.Time) (int64, error)
}

// MaxHistogramBuckets bounds EventHistogram.
const MaxHistogramBuckets = 120

// PortalQueries are the read queries of the portal's events page.
type PortalQueries interface {
	// OrganizationActions returns up to limit distinct actions that org's
	// events carry, in byte order (empty for an unknown organization).
	// Like search, it includes every event acknowledged before it began.
	OrganizationActions(ctx context.Context, org string, limit int) ([]string, error)
	// EventHistogram counts org's events by occurred_at in n
	// consecutive buckets of width step from from: counts[i] is the number
	// of events with from+i·step ≤ occurred_at < from+(i+1)·step. n is 1 …
	// MaxHistogramBuckets and step at least a millisecond. It reads the
	// time index once, in one ordered range scan, and includes every event
	// acknowledged before it began.
	EventHistogram(ctx context.Context, org string, from time.Time, step time.Duration, n int) ([]int64, error)
	// SearchHistogram is EventHistogram of the events SearchEvents(q)
	// finds: those of q.OrganizationID that match every filter of q
	// (From, To, Actions, ActionPrefixes, actor, target, Text,
	// SchemaMismatch, with the search's rules), counted by occurred_at in
	// the same buckets. Cursors, Limit and Order are ignored. Like the
	// search, it includes every event acknowledged before it began.
	SearchHistogram(ctx context.Context, q EventQuery, from time.Time, step time.Duration, n int) ([]int64, error)
}

// PortalSettings are one organization's Admin Portal settings, over the
// deployment's (docs/PORTAL.md, "Branding"; docs/EMBEDDING.md): its look,
// and the origins whose pages may show the portal in an iframe. Empty
// fields take the deployment's.
type PortalSettings struct {
	OrganizationID string
	ProductName    string
	Accent         string // #RRGGBB, or ""
	Logo           []byte // nil: the deployment's
	LogoType       string // the logo's media type
	FrameOrigins   []string
	UpdatedAt      time.Time
}

// PortalSettingsStore stores organizations' portal settings.
type PortalSettingsStore interface {
	// PortalSettings returns org's settings; ErrNotFound when none were
	// ever set.
	PortalSettings(ctx context.Context, org string) (PortalSettings, error)
	// SetPortalSettings replaces s.OrganizationID's settings with s;
	// ErrNotFound when there is no such organization.
	SetPortalSettings(ctx context.Context, s PortalSettings) error
}

// PortalStore is what the Admin Portal needs beyond Store.
type PortalStore interface {
	PortalLinks
	PortalQueries
	PortalSettingsStore
}
