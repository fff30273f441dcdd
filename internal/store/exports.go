package store

import (
	"context"
	"time"
)

// Export states, as WorkOS names them.
const (
	ExportPending = "pending"
	ExportReady   = "ready"
	ExportError   = "error"
	ExportExpired = "expired"
)

// ExportFilter is what an export selects from one organization's log.
// Empty fields do not filter; within a list, any value matches (OR); the
// lists are combined with AND.
type ExportFilter struct {
	RangeStart, RangeEnd time.Time // occurred_at in [RangeStart, RangeEnd)
	Actions              []string
	ActorNames           []string
	ActorIDs             []string
	Targets              []string // target types
}

// Export is one requested export of an organization's events.
type Export struct {
	ID             string // "audit_log_export_" + ULID
	OrganizationID string
	Format         string // "csv" or "ndjson"
	Filter         ExportFilter
	// UpTo is the organization's log size when the export was requested:
	// the export covers seqs below it, so that a retried job writes the
	// same file.
	UpTo      int64
	State     string
	Processed int64  // events read so far (progress)
	Exported  int64  // events written (matching the filter)
	Size      int64  // file size in bytes, once ready
	Error     string // why it failed, in state error
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ExportStore keeps the exports table. Implementations are safe for
// concurrent use; every write is durable when it returns nil.
type ExportStore interface {
	// CreateExport stores e and, in the same transaction, calls enqueue
	// with that transaction (*sql.Tx for SQLite, pgx.Tx for PostgreSQL) so
	// that the job that produces the export is stored with it or not at
	// all. An error from enqueue rolls everything back and is returned.
	CreateExport(ctx context.Context, e Export, enqueue func(ctx context.Context, tx any) error) error
	// Export returns the export with this id, or an error wrapping
	// ErrNotFound.
	Export(ctx context.Context, id string) (Export, error)
	// UpdateExportProgress records progress of a pending export (and
	// restarts the counts when a retried job starts over). It does nothing
	// to an export no longer pending.
	UpdateExportProgress(ctx context.Context, id string, processed, exported int64, now time.Time) error
	// FinishExport moves a pending export to ready (with its counts and file
	// size) or to error (with errMsg). It does nothing to an export no
	// longer pending, and reports whether it changed it.
	FinishExport(ctx context.Context, e Export, now time.Time) (bool, error)
	// ExpireExports moves ready and error exports created before cutoff to
	// expired and returns them (their files are to be removed).
	ExpireExports(ctx context.Context, cutoff, now time.Time) ([]Export, error)

	// For deleting an organization (docs/ORGANIZATIONS.md):
	// OrganizationExports returns every export of org, in any state,
	// oldest first; ExpireOrganizationExports moves org's exports that
	// are pending, ready or error to expired (a pending one's job then
	// finishes nothing) and returns how many.
	OrganizationExports(ctx context.Context, org string) ([]Export, error)
	ExpireOrganizationExports(ctx context.Context, org string, now time.Time) (int64, error)
}
