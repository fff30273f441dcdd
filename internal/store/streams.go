package store

import (
	"context"
	"time"
)

// Log stream states, as WorkOS names them (docs/DESIGN.md §6).
const (
	// StreamActive: delivering, or caught up.
	StreamActive = "active"
	// StreamError: the last delivery failed for a reason that may pass
	// (destination down, 5xx, 429, timeout); delivery retries with backoff.
	StreamError = "error"
	// StreamInvalid: the destination refused the credentials or the
	// configuration (4xx); nothing is retried until the stream is updated
	// or resumed.
	StreamInvalid = "invalid"
	// StreamInactive: paused by an administrator; the cursor is kept.
	StreamInactive = "inactive"
)

// Stream is one log stream: an organization's events, in seq order, to one
// destination.
type Stream struct {
	ID             string // "ls_" + ULID
	OrganizationID string
	Type           string // destination type (package stream)
	Name           string
	Config         []byte // destination settings as JSON, without secrets
	Secrets        []byte // the destination's secrets, sealed (package keyring)
	State          string // StreamActive, StreamError, StreamInvalid or StreamInactive
	// Cursor is the seq of the next event to deliver: every event with a
	// smaller seq has been delivered at least once.
	Cursor int64
	// Version grows by one with every UpdateStream, so a deliverer can
	// tell that the settings it holds are stale.
	Version      int64
	LastSyncedAt time.Time // zero until the first delivery
	LastError    string    // "" after a successful delivery
	LastErrorAt  time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// StreamPosition is where one stream stands against its organization's log.
type StreamPosition struct {
	ID             string
	OrganizationID string
	Type           string // the destination type (webhook, s3, …)
	State          string
	Version        int64
	Cursor         int64
	LogSize        int64 // the organization's NextSeq
}

// StreamStore keeps log streams and their delivery cursors. It is
// implemented by *sqlite.Store and *postgres.Store beside store.Store and
// checked by storetest.RunStreams. Implementations are safe for concurrent
// use and every write is durable when it returns nil.
type StreamStore interface {
	// CreateStream stores a new stream. An unknown organization is an
	// error wrapping ErrNotFound; an id in use one wrapping ErrConflict.
	CreateStream(ctx context.Context, s Stream) error
	// Stream returns one stream (ErrNotFound when there is none).
	Stream(ctx context.Context, id string) (Stream, error)
	// ListStreams pages through one organization's streams by id.
	ListStreams(ctx context.Context, org string, p ListParams) (ListPage[Stream], error)
	// StreamPositions returns the position of every stream, in any order,
	// with its organization's log size read in the same query.
	StreamPositions(ctx context.Context) ([]StreamPosition, error)
	// UpdateStream replaces the stream's Name, Config, Secrets and State,
	// sets UpdatedAt and increments Version. Cursor and the delivery
	// status (LastSyncedAt, LastError) are left as they are, except that
	// leaving StreamInvalid or StreamError for StreamActive clears
	// LastError. ErrNotFound when there is no such stream.
	UpdateStream(ctx context.Context, s Stream) error
	// DeleteStream removes the stream (ErrNotFound when there is none).
	DeleteStream(ctx context.Context, id string) error
	// AdvanceStream records the delivery of every event with
	// from ≤ seq < to: it moves the cursor from `from` to `to`, sets
	// LastSyncedAt to at, clears LastError and turns StreamError back
	// into StreamActive. It is a compare-and-set: if the cursor is not
	// `from` (another deliverer moved it) nothing changes and the error
	// wraps ErrConflict; a missing stream is ErrNotFound.
	AdvanceStream(ctx context.Context, id string, from, to int64, at time.Time) error
	// SetStreamFailure records a failed delivery: LastError = msg,
	// LastErrorAt = at, and State = state (StreamError or StreamInvalid)
	// unless the stream is StreamInactive, which stays paused.
	SetStreamFailure(ctx context.Context, id, state, msg string, at time.Time) error
}
