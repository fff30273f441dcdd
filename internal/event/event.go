// Package event owns the audit event: the WorkOS-compatible request shape, its
// validation rules and limits, and the canonical record encoding that every other
// part of Trail (the ledger, exports, streams) treats as opaque, immutable bytes.
package event

import (
	"time"
)

// Limits bounds what one event may contain. The metadata limits are WorkOS's and
// are not configurable, so that SDK users see the same rules everywhere.
// A zero (or negative) MaxTargets or MaxFuture means its default, so that the
// zero Limits is usable.
type Limits struct {
	MaxTargets   int           // default 100
	MaxFuture    time.Duration // how far occurred_at may be ahead of now; default 24h
	MaxBodyBytes int64         // request body cap, enforced by the HTTP layer; default 1 MiB
}

// DefaultLimits returns the limits Trail applies unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxTargets: 100, MaxFuture: 24 * time.Hour, MaxBodyBytes: 1 << 20}
}

// Fixed WorkOS metadata limits.
const (
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
	MaxActionLen        = 100
)

// Draft is a validated event that has not been accepted yet: it has no id, seq or
// received_at. Tail holds the canonical encoding of everything from "action" to
// "metadata", so the writer only has to prepend the fields it assigns.
type Draft struct {
	Action     string
	Version    int64 // 0 when the request named no version
	OccurredAt time.Time
	Actor      Entity
	Targets    []Entity
	Location   string
	UserAgent  string

	// Metadata objects as sent, values kept as json.Number/string/bool.
	ActorMetadata   Metadata
	TargetsMetadata []Metadata // parallel to Targets
	Metadata        Metadata

	// Imported, when set, says the event was recorded by another service
	// first and brought into Trail by an import (cmd/trail import); the
	// record carries it as "imported", so every reader of the record sees
	// that its occurred_at and content came from elsewhere.
	Imported *Import

	// Privacy, when set, says which fields a field policy hashed or
	// redacted before the event was stored (privacy.go); the record
	// carries it as "privacy".
	Privacy *Privacy

	// Tail is the canonical JSON of the fields action … metadata, without the
	// surrounding braces and without a leading comma.
	Tail []byte
}

// Import is where an imported event came from: the service (Source, such
// as "workos") and the event's id there.
type Import struct {
	Source string
	ID     string
}

// MaxImportFieldLen bounds an Import's Source and ID.
const MaxImportFieldLen = 200

// MarkImported records imp in d and re-encodes d.Tail to include it. d must
// be as parsing leaves it.
func (d *Draft) MarkImported(imp Import) {
	d.Imported = &imp
	d.Tail = appendTail(make([]byte, 0, len(d.Tail)+len(imp.Source)+len(imp.ID)+32), d)
}

// Entity is an actor or a target.
type Entity struct {
	ID   string
	Type string
	Name string
}

// Metadata is a flat map of a metadata object. Values are string, bool or
// json.Number (numbers are kept exactly as sent, never through float64).
type Metadata map[string]any

// Accepted is what acceptance assigns to a draft.
type Accepted struct {
	ID             string // "evt_" + ULID
	OrganizationID string
	Seq            int64
	ReceivedAt     time.Time
}
