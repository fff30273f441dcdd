package store

import (
	"context"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
)

// Backend is everything Trail keeps in its database, the one contract both
// backends (store/sqlite, store/postgres) implement, checked at compile time
// in each and by the conformance suite (store/storetest.Run). Callers hold a
// Backend, or the smaller interface they need, and never ask a store at run
// time what else it can do.
//
// Where one backend has nothing to do, its method says so and returns at
// once: PostgreSQL indexes search in the ingest transaction (IndexPending
// finds nothing pending), SQLite has no time partitions (DropPartitions
// drops nothing).
type Backend interface {
	Store
	SearchIndexer
	// FirstSeqSince returns a seq below which org has no event with
	// occurred_at at or after since, or 0 when finding it would mean
	// passing more than limit events (exports skip to it).
	FirstSeqSince(ctx context.Context, org string, since time.Time, limit int64) (int64, error)

	// SearchAllEvents returns a page of the events of every organization
	// (org_system's too) matching q, for the deployment's operators (the
	// console's search across organizations). q.OrganizationID must be
	// empty; ActionPrefixes and SchemaMismatch do not filter here (an
	// error if set); every other field means what it means in
	// SearchEvents. Results are ordered by occurred_at, newest first
	// unless OrderAsc; events of one millisecond come in an order of the
	// backend's own, the same on every page, so that a walk with the
	// cursors neither skips nor repeats an event. It covers the events the
	// search index has reached (SearchIndexer; at once on PostgreSQL,
	// which indexes in the ingest transaction), not necessarily every
	// acknowledged one.
	SearchAllEvents(ctx context.Context, q EventQuery) (EventPage, error)

	// The verifiable log's storage (package ledger), stored in the same
	// database as the events it is built from.
	ledger.Storage
	ledger.BatchStorage
	ledger.CosignatureStorage
	// The newest checkpoint signed for each origin (the integrator's
	// fork guard), in the database rather than one replica's data
	// directory.
	ledger.HeadStorage

	SchemaStore
	StreamStore
	PortalStore
	RetentionStore
	CheckpointCompactor
	PartitionDropper
	DeploymentStore
	LeaseStore
	// Field policies and erasures (package privacy).
	PrivacyStore

	// Organization update and deletion, and the verifiable archive's
	// positions (lifecycle.go).
	OrganizationLifecycle
	ArchiveStore
}
