package store

import (
	"context"
	"time"
)

// Retention (docs/DESIGN.md §3): each organization keeps its records for a period of
// days, its own or the deployment's default; past it, package retention
// deletes the records' bodies and their search entries. Tree hashes and
// checkpoints are never deleted, so proofs keep working and what remains
// still verifies.
//
// A record's age counts from its received_at, which Trail assigns: it grows
// with seq within an organization, so the records past retention are always
// a prefix of the log (seq 0 up to the first retained one), and the client
// cannot make an event expire early (or late) by backdating occurred_at.

// RetentionStore keeps organizations' retention settings and deletes records
// past retention. Implementations are safe for concurrent use and durable
// when a write method returns nil.
type RetentionStore interface {
	// Retention returns org's own retention period in days; set is false
	// (and days 0) when it has none and the deployment's default applies.
	// An unknown organization is an error wrapping ErrNotFound.
	Retention(ctx context.Context, org string) (days int, set bool, err error)

	// SetRetention sets org's retention period (days > 0). An unknown
	// organization is an error wrapping ErrNotFound.
	SetRetention(ctx context.Context, org string, days int, at time.Time) error

	// RetentionSettings returns every organization's own retention period
	// in days (organizations without one are absent).
	RetentionSettings(ctx context.Context) (map[string]int, error)

	// PruneRecords deletes up to limit records of org, with their search
	// entries, walking the log in seq order from its first stored record
	// and stopping at the first one that is not yet due: received at or
	// after cutoff, or not integrated into the Merkle tree yet (seq ≥ the
	// integrated size; no leaf hash may be lost). An implementation may
	// also stop, earlier, at a record whose search entries are not written
	// yet. It returns how many records it deleted; fewer than limit means
	// none is due now. Each call is one short transaction (per database),
	// so that a sweep never holds ingest up for long. If the process dies
	// midway, what was committed stays deleted and the next call carries
	// on: a record is never searchable after its body is gone.
	PruneRecords(ctx context.Context, org string, cutoff time.Time, limit int) (int, error)
}

// PartitionDropper is implemented by stores whose events are partitioned by
// time of receipt, where dropping a whole partition is far cheaper than
// deleting its rows.
type PartitionDropper interface {
	// DropPartitions drops every time partition of the events (with their
	// search rows) whose whole time range is before cutoff and whose
	// records are all integrated, deciding by each organization's seq
	// range and not by time alone: a partition holding records of an
	// organization that has a record with a smaller seq outside it
	// (received_at comes from each replica's clock, seq from the
	// database, so they can disagree at a boundary) is not dropped, since
	// that would leave a hole in the log. A partition it cannot drop now
	// (records not integrated, out of order, a lock it could not take
	// quickly) is left for a later call, and its rows to PruneRecords. The caller chooses cutoff
	// so that every organization's retention has passed for the whole
	// partition.
	DropPartitions(ctx context.Context, cutoff time.Time) (PartitionDrop, error)
}

// PartitionDrop is what DropPartitions did.
type PartitionDrop struct {
	Partitions []string // names of the event partitions dropped, oldest first
	Records    int64    // records they held
}

// CheckpointCompactor is implemented by stores that can thin out old
// checkpoints (package retention decides which; docs/SCALING.md has the
// policy). The integrator stores about one checkpoint per event, and
// consistency and inclusion proofs are computed from the tiles between any
// two sizes, so old checkpoints can go without weakening anything but the
// download of that exact signed note.
type CheckpointCompactor interface {
	// CheckpointsAfter returns up to limit of org's stored checkpoints
	// with a size above after, by increasing size.
	CheckpointsAfter(ctx context.Context, org string, after int64, limit int) ([]StoredCheckpoint, error)

	// DeleteCheckpoints deletes org's checkpoints of the given sizes, in
	// one transaction, except its newest (largest) one, which is never
	// deleted whatever sizes holds: the integrator checks every new tree
	// against it. It returns how many it deleted; sizes not stored are
	// ignored.
	DeleteCheckpoints(ctx context.Context, org string, sizes []int64) (int, error)
}

// StoredCheckpoint is one stored checkpoint, without its note.
type StoredCheckpoint struct {
	Size      int64
	CreatedAt time.Time // when the integrator stored it, by its clock
}
