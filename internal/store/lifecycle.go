package store

import (
	"context"
	"time"
)

// An organization's lifecycle after creation (docs/ORGANIZATIONS.md): it
// can be renamed and given another external id, and it can be deleted.
// Deletion offboards the organization without breaking what it proved:
// its record bodies and credentials go, its tree hashes and newest signed
// checkpoint stay, so that a bundle pulled before the deletion still
// verifies against the deployment's key.
//
// Deletion is durable and resumable: BeginOrganizationDeletion records the
// request and hides the organization in one transaction, and a worker
// (package orgdelete) carries out the rest step by step, recording each
// step, until FinishedAt is set.

// Organization deletion steps, in the order the worker goes through them.
const (
	DeletionFinalBundle = "final_bundle" // writing the final bundle, when asked for
	DeletionCredentials = "credentials"  // deleting streams, keys, portal links
	DeletionRecords     = "records"      // deleting record bodies
	DeletionDone        = "done"
)

// OrganizationDeletion is the record of one organization's deletion.
type OrganizationDeletion struct {
	OrganizationID string
	Name           string // the organization's name when deletion began
	RequestedAt    time.Time
	// RequestedBy names who asked (an API key id, or "cli").
	RequestedBy string
	Reason      string
	Forced      bool // streams or exports were running and were stopped
	FinalBundle bool // a final bundle was asked for
	Step        string
	// FinalLocation is where the final bundle was written ("" when none).
	FinalLocation string
	// FinalSize is the tree size of the last checkpoint the deletion
	// kept: the size every earlier bundle is consistent with.
	FinalSize  int64
	LastError  string // the last failure of the worker, "" when none
	FinishedAt time.Time
}

// CredentialsPurged counts what PurgeOrganizationCredentials removed.
type CredentialsPurged struct {
	Streams     int64
	APIKeys     int64
	PortalLinks int64
}

// OrganizationLifecycle updates and deletes organizations. Implementations
// are safe for concurrent use; every write is durable when it returns nil.
type OrganizationLifecycle interface {
	// UpdateOrganization replaces org's Name and ExternalID ("" clears it)
	// and sets UpdatedAt. An unknown or deleted organization is an error
	// wrapping ErrNotFound; an external id another organization has, one
	// wrapping ErrConflict.
	UpdateOrganization(ctx context.Context, org Organization) error

	// BeginOrganizationDeletion records d and, in the same transaction,
	// deletes its organization as the rest of the store sees it: Append
	// treats it as unknown, Organization, OrganizationByExternalID and
	// ListOrganizations no longer find it, its external id is freed. Its
	// log (tree hashes, checkpoints, records until the worker deletes
	// them) stays. When a deletion is already recorded it returns that
	// one and started = false, changing nothing. An unknown organization,
	// or the system organization, is an error wrapping ErrNotFound.
	BeginOrganizationDeletion(ctx context.Context, d OrganizationDeletion) (rec OrganizationDeletion, started bool, err error)
	// OrganizationDeletion returns org's deletion record (ErrNotFound when
	// it was never deleted).
	OrganizationDeletion(ctx context.Context, org string) (OrganizationDeletion, error)
	// PendingOrganizationDeletions returns the deletions not finished yet,
	// oldest first.
	PendingOrganizationDeletions(ctx context.Context) ([]OrganizationDeletion, error)
	// UpdateOrganizationDeletion records the worker's progress: Step,
	// FinalLocation, FinalSize, LastError and FinishedAt of d.
	UpdateOrganizationDeletion(ctx context.Context, d OrganizationDeletion) error
	// PurgeOrganizationCredentials deletes org's log streams (with their
	// sealed secrets) and portal links (which ends their sessions) and
	// revokes the API keys restricted to it at at. Running it again finds
	// nothing more.
	PurgeOrganizationCredentials(ctx context.Context, org string, at time.Time) (CredentialsPurged, error)
}

// ArchiveStore keeps the verifiable archive's settings and positions
// (docs/ARCHIVE.md). While org's archive is held, PruneRecords never
// deletes a record of org with a seq at or above its archived position:
// retention cannot delete a body the archive does not hold.
type ArchiveStore interface {
	// ArchiveSettings returns the organizations' own archive settings
	// (absent: the deployment's applies).
	ArchiveSettings(ctx context.Context) (map[string]bool, error)
	// SetArchiveSetting sets org's own setting, or clears it (on nil).
	// An unknown organization is an error wrapping ErrNotFound.
	SetArchiveSetting(ctx context.Context, org string, on *bool, at time.Time) error
	// ArchivePosition returns the seq below which org's records are held
	// by the archive (or were deleted before it held them), and whether
	// retention is held back by it.
	ArchivePosition(ctx context.Context, org string) (to int64, held bool, err error)
	// SetArchivePosition records org's archive position: to, which never
	// decreases (a smaller value keeps the stored one), and held.
	SetArchivePosition(ctx context.Context, org string, to int64, held bool, at time.Time) error
}
