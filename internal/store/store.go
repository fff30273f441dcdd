// Package store defines what Trail needs from its database: organizations, API
// keys, the append-only event log with its search index, and small settings. The
// contract is written here, once; store/sqlite and store/postgres implement it and
// both must pass the conformance suite in store/storetest.
package store

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/storeerr"
)

// Errors every implementation returns (wrapped) so callers can use errors.Is.
var (
	ErrNotFound      = storeerr.ErrNotFound
	ErrConflict      = errors.New("already exists")
	ErrInvalidCursor = errors.New("invalid pagination cursor")
	// ErrUnavailable means the database could not be reached or refused the
	// write for a reason that may pass (disk full, connection lost). Callers map
	// it to 503 with Retry-After; nothing of the failed transaction was stored.
	ErrUnavailable = storeerr.ErrUnavailable
	// ErrDiskFull accompanies ErrUnavailable when the write failed for lack
	// of disk space.
	ErrDiskFull = errors.New("disk is full")
	// ErrBacklog accompanies ErrUnavailable when Append refused because
	// too many accepted events wait for a search index (see SearchIndexer):
	// the refusal ends as the index catches up.
	ErrBacklog = errors.New("too many events wait for the search index")
)

// SystemOrganizationID is the reserved organization whose log records
// deployment-wide administrative actions (docs/DESIGN.md §8). It is created by the
// first migration and hidden from organization listings.
const SystemOrganizationID = "org_system"

// Organization is a tenant.
type Organization struct {
	ID         string
	Name       string
	ExternalID string // "" when unset; unique when set
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// APIKey is a stored API key. The secret itself is never stored: only its
// SHA-256 hash.
type APIKey struct {
	ID             string // "key_" + ULID
	Name           string
	Hash           [32]byte
	Prefix         string   // the first characters of the secret, to recognise it in listings
	Scopes         []string // see package access
	OrganizationID string   // "" = every organization
	CreatedAt      time.Time
	RevokedAt      time.Time // zero while active
}

// ListParams is cursor pagination as WorkOS lists have it: at most one of
// Before and After, Limit 1–100, Order "asc" or "desc".
type ListParams struct {
	Before, After string
	Limit         int
	Order         string
	// OrganizationID, for API keys, lists only the keys restricted to it.
	OrganizationID string
}

// ListPage is one page of a list with the cursors to go on either way ("" = no
// more in that direction).
type ListPage[T any] struct {
	Data          []T
	Before, After string
}

// Submission is one ingest request: the events of one API call, accepted or
// rejected together. Its events may belong to different organizations.
type Submission struct {
	Events []PendingEvent
	// IdempotencyKey, when set, makes the submission idempotent on the key
	// alone, as WorkOS defines it, for 24 hours: a later submission with
	// the same key (in the organization of its first event) returns the
	// first one's result and stores nothing, whatever its body. BodyHash
	// (the SHA-256 of the request body) is remembered with the key, so a
	// repeat with another body is told apart (AppendResult.BodyMismatch).
	IdempotencyKey string
	BodyHash       [32]byte
}

// PendingEvent is a validated event waiting for its seq.
type PendingEvent struct {
	OrganizationID string
	ID             string
	ReceivedAt     time.Time
	Tail           []byte // event.Draft.Tail
	// Draft, when the caller has it, is the event Tail encodes: a store
	// may index a fresh event from it instead of parsing its record back.
	Draft *event.Draft
	// SchemaMismatch records that the event named no schema version and
	// did not match its action's latest schema (package schema). It is
	// stored beside the record, never in it.
	SchemaMismatch bool
}

// TailDraft is e's Draft if it is the event e's Tail encodes, nil if not:
// the record is the truth, and a caller's mistake must not reach the
// search index.
func (e *PendingEvent) TailDraft() *event.Draft {
	if e.Draft == nil || !bytes.Equal(e.Draft.Tail, e.Tail) {
		return nil
	}
	return e.Draft
}

// AppendResult is what happened to one Submission.
type AppendResult struct {
	Events   []event.Accepted // in submission order
	Replayed bool             // an idempotent repeat: nothing new was stored
	// BodyMismatch marks a replay whose body differed from the first
	// submission's with that key: the first result stands, and the new
	// events (their ids in the Submission) were never stored.
	BodyMismatch bool
	Err          error // ErrNotFound (unknown organization) or another per-submission error
}

// StoredEvent is one record of the log.
type StoredEvent struct {
	OrganizationID string
	Seq            int64
	ID             string
	Record         []byte // canonical record bytes, exactly as stored
	SchemaMismatch bool   // see PendingEvent.SchemaMismatch; set by Event and SearchEvents
}

// Order of search results: by occurred_at, then seq.
const (
	OrderDesc = "desc"
	OrderAsc  = "asc"
)

// EventQuery filters one organization's events. Empty fields do not filter.
type EventQuery struct {
	OrganizationID string
	From, To       time.Time // occurred_at in [From, To); zero = unbounded
	Actions        []string  // exact action names (OR)
	ActionPrefixes []string  // "user." matches user.signed_in (OR with Actions)
	ActorID        string
	ActorName      string
	TargetType     string
	TargetID       string
	Text           string // free text, every word must match
	SchemaMismatch bool   // only events recorded with a schema mismatch
	Limit          int    // 1–100
	Order          string // OrderDesc (default) or OrderAsc
	Before, After  string // opaque cursors from a previous EventPage
}

// EventPage is one page of search results in the requested order.
type EventPage struct {
	Events        []StoredEvent
	Before, After string // cursors; "" when there is nothing more that way
}

// Store is the database behind one Trail deployment.
//
// Implementations are safe for concurrent use. Every write method is durable
// when it returns nil: the data survives a crash of the process or the machine.
type Store interface {
	CreateOrganization(ctx context.Context, org Organization) error
	Organization(ctx context.Context, id string) (Organization, error)
	OrganizationByExternalID(ctx context.Context, externalID string) (Organization, error)
	ListOrganizations(ctx context.Context, p ListParams) (ListPage[Organization], error)

	CreateAPIKey(ctx context.Context, k APIKey) error
	APIKeyByHash(ctx context.Context, hash [32]byte) (APIKey, error)
	APIKey(ctx context.Context, id string) (APIKey, error)
	ListAPIKeys(ctx context.Context, p ListParams) (ListPage[APIKey], error)
	// RevokeAPIKey marks the key revoked; revoking twice is not an error.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// CountAPIKeys counts keys, revoked ones included (first-start detection).
	CountAPIKeys(ctx context.Context) (int, error)

	// Append stores the submissions in one transaction, assigning each event
	// the next seq of its organization, and returns one result per
	// submission. A submission naming an unknown organization fails alone
	// (Err = ErrNotFound) and stores nothing; the others are unaffected. A
	// non-nil error means the transaction failed and nothing was stored.
	Append(ctx context.Context, subs []Submission, now time.Time) ([]AppendResult, error)

	// Event returns the stored event with this id.
	Event(ctx context.Context, id string) (StoredEvent, error)
	// SearchEvents returns a page of one organization's events matching q.
	// It includes every event acknowledged (Append returned) before it
	// began, whether or not a search index has caught up with it, with the
	// same matching and order either way; a cursor stays valid while
	// indexes catch up, so a walk neither skips nor repeats an event.
	SearchEvents(ctx context.Context, q EventQuery) (EventPage, error)
	// NextSeq is the seq the next accepted event of org will get (its log size).
	NextSeq(ctx context.Context, org string) (int64, error)

	// ExpireIdempotencyKeys forgets idempotency keys created before cutoff.
	ExpireIdempotencyKeys(ctx context.Context, cutoff time.Time) (int64, error)

	Close() error
}

// SearchIndexer is implemented by stores that maintain search indexes after
// the ingest transaction rather than inside it. Their reads cover what the
// indexes have not reached yet (see SearchEvents).
type SearchIndexer interface {
	// IndexPending indexes up to max accepted-but-unindexed events and
	// returns how many it indexed; 0 means the index is fresh.
	IndexPending(ctx context.Context, max int) (int, error)
}

// SearchLag is how far search is behind ingest: the accepted events not
// searchable yet, and when the oldest of them was received (zero when
// there is none). A SearchIndexer may report it (SearchLag(ctx)).
type SearchLag struct {
	Events int64
	Oldest time.Time
}

// FinishPage turns the rows of a list query into a ListPage. The query asked
// for limit+1 rows in scan order: the extra row only says there is more. When
// the caller paged backwards (a Before cursor) the query ran in the opposite
// order, so the page is flipped back. Cursors are idOf of the first and last
// rows; after reports whether the request had an After cursor (then there is
// a page before this one).
func FinishPage[T any](rows []T, limit int, backwards, after bool, idOf func(T) string) ListPage[T] {
	page := ListPage[T]{Data: rows}
	more := len(page.Data) > limit
	if more {
		page.Data = page.Data[:limit]
	}
	if backwards {
		for i, j := 0, len(page.Data)-1; i < j; i, j = i+1, j-1 {
			page.Data[i], page.Data[j] = page.Data[j], page.Data[i]
		}
	}
	if len(page.Data) == 0 {
		return page
	}
	first, last := idOf(page.Data[0]), idOf(page.Data[len(page.Data)-1])
	if backwards {
		page.After = last
		if more {
			page.Before = first
		}
	} else {
		if more {
			page.After = last
		}
		if after {
			page.Before = first
		}
	}
	return page
}
