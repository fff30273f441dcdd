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
}
