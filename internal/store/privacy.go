package store

import (
	"context"
	"time"
)

// Privacy (package privacy, docs/PRIVACY.md): each organization's field
// policy, and erasures of every event of one subject.

// PrivacyStore keeps field policies and erasure jobs, and erases records.
// Implementations are safe for concurrent use and durable when a write
// method returns nil.
type PrivacyStore interface {
	// PrivacyPolicy returns org's policy document, nil when it has none.
	// An unknown organization is an error wrapping ErrNotFound.
	PrivacyPolicy(ctx context.Context, org string) (doc []byte, updatedAt time.Time, err error)
	// SetPrivacyPolicy sets org's policy document; nil removes it. An
	// unknown organization is an error wrapping ErrNotFound.
	SetPrivacyPolicy(ctx context.Context, org string, doc []byte, at time.Time) error
	// PrivacyPolicies returns every organization's policy document.
	PrivacyPolicies(ctx context.Context) (map[string][]byte, error)

	// CreateErasure stores e, a new erasure job, unless org already has
	// one of e.RequestID: then it returns that one and created false
	// (idempotency on the request id, forever). An unknown organization
	// is an error wrapping ErrNotFound.
	CreateErasure(ctx context.Context, e Erasure) (stored Erasure, created bool, err error)
	// Erasure returns org's erasure job id, or an error wrapping
	// ErrNotFound.
	Erasure(ctx context.Context, org, id string) (Erasure, error)
	// UnfinishedErasures returns every erasure job not completed yet,
	// oldest first.
	UnfinishedErasures(ctx context.Context) ([]Erasure, error)
	// UpdateErasure stores e's progress: State, Seqs, Planned, Erased,
	// SealedSubject, Tombstones, CompletedAt and Error.
	UpdateErasure(ctx context.Context, e Erasure) error
	// EraseRecords deletes the bodies of org's records of the given seqs,
	// with their search entries, exactly as retention deletes them: the
	// leaf hashes stay. A seq with no stored record is skipped (erased
	// before, or past retention). A record not integrated into the Merkle
	// tree yet, or (SQLite) not searchable yet, is left and counted as
	// pending: no leaf hash may be lost, and no search entry outlive its
	// record. It returns how many it deleted and how many are pending.
	EraseRecords(ctx context.Context, org string, seqs []int64) (erased, pending int, err error)
}

// Erasure states, in the order a job passes them.
const (
	ErasurePlanning  = "planning"  // finding the subject's events
	ErasureErasing   = "erasing"   // deleting their bodies
	ErasureRecording = "recording" // appending the tombstone events
	ErasureCompleted = "completed"
)

// Erasure is one erasure job: every event of one subject (an actor, or a
// target of one type) up to seq UpTo, erased.
type Erasure struct {
	ID             string // "ers_" + ULID
	OrganizationID string
	RequestID      string // the client's idempotency key
	SubjectKind    string // "actor" or "target"
	SubjectType    string // a target's type; "" for an actor
	// SubjectHash is the subject's keyed hash (keyring.FieldHasher),
	// what the job shows and the tombstone names.
	SubjectHash string
	// SealedSubject is the subject's id sealed under the master key,
	// needed to find its events; cleared when the job completes.
	SealedSubject []byte
	Reason        string
	// RequestedBy is who asked: an API key's id and name.
	RequestedByType, RequestedByID, RequestedByName string
	UpTo                                            int64 // events with seq < UpTo are erased
	State                                           string
	Seqs                                            string // the subject's seqs, as ranges ("3-5,9"), once planned
	Planned, Erased                                 int64
	Tombstones                                      string // seqs of the tombstone events, once recorded
	CreatedAt, CompletedAt                          time.Time
	Error                                           string // the last problem met, while it is retried
}
