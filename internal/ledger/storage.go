package ledger

import (
	"context"
	"errors"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of stored tiles: 2^8 = 256 hashes per tile, as
// C2SP tlog-tiles requires.
const TileHeight = 8

// ErrSizeChanged is returned (wrapped) by Storage.Integrate when the log's
// integrated size is no longer the one the caller extended: another writer
// integrated it first. Nothing was stored; the caller re-reads and retries.
var ErrSizeChanged = errors.New("integrated size changed since it was read")

// LogState is where one organization's log stands.
type LogState struct {
	OrganizationID string
	// IntegratedSize is the number of records covered by stored tiles and
	// by the newest stored checkpoint.
	IntegratedSize int64
	// NextSeq is the number of records accepted (the log size);
	// NextSeq ≥ IntegratedSize.
	NextSeq int64
}

// TileData is one tile to store: Tile.H is TileHeight, Tile.W is
// len(Data)/tlog.HashSize, and Data is tlog.ReadTileData's output.
type TileData struct {
	Tile tlog.Tile
	Data []byte
}

// Storage is what the ledger needs from the database. Implementations are safe
// for concurrent use. Unknown organizations and absent rows are errors
// wrapping storeerr.ErrNotFound; a database that cannot be reached is an error
// wrapping storeerr.ErrUnavailable.
type Storage interface {
	// PendingLogs returns every log with records not yet integrated
	// (NextSeq > IntegratedSize), in any order. It may miss records
	// committed concurrently; the next call sees them.
	PendingLogs(ctx context.Context) ([]LogState, error)

	// IntegratedLogs returns every log with IntegratedSize > 0, in any
	// order (startup checks).
	IntegratedLogs(ctx context.Context) ([]LogState, error)

	// LogState returns one log's state.
	LogState(ctx context.Context, org string) (LogState, error)

	// ReadRecords calls fn for every stored record of org with
	// from ≤ seq < to, in increasing seq order, with the record's bytes
	// exactly as stored. Seqs with no stored record (deleted by retention,
	// or tampered with) are skipped silently: callers detect gaps. record
	// is only valid during the call. If fn returns an error ReadRecords
	// stops and returns it. Implementations read in bounded batches rather
	// than holding one snapshot for a whole long range.
	ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error

	// ReadTiles returns, for each requested tile, the data of the widest
	// version stored for (org, t.L, t.N); t.H is always TileHeight. Each
	// result holds at least t.W hashes and may hold more (a narrower
	// version of a tile is a prefix of a wider one). A tile that is not
	// stored, or stored narrower than t.W, is an error wrapping
	// storeerr.ErrNotFound.
	ReadTiles(ctx context.Context, org string, tiles []tlog.Tile) ([][]byte, error)

	// Integrate atomically stores the tiles (each replacing any stored
	// version of the same (org, L, N)), the signed checkpoint of size
	// newSize, and newSize as the integrated size — but only if the
	// integrated size is still oldSize and NextSeq ≥ newSize; otherwise it
	// stores nothing and returns an error wrapping ErrSizeChanged.
	//
	// It survives the process when it returns nil; a storage may leave it
	// to a later durable commit of the same database to survive a power
	// loss too (SQLite: the next synced write of its WAL), since what it
	// stores is recomputed from records that were durable before they were
	// read, and the integrator records the signed heads it must reach
	// again in a synced file before the call (docs/ARCHITECTURE.md). If
	// the process dies during the call, either all of it was stored or
	// none of it; an error may also be returned after a commit that did
	// persist (a lost acknowledgement), so callers re-read the state
	// rather than assume either.
	Integrate(ctx context.Context, org string, oldSize, newSize int64, tiles []TileData, checkpoint []byte) error

	// LatestCheckpoint returns the stored checkpoint note of the largest
	// size (the one stored with the current integrated size).
	LatestCheckpoint(ctx context.Context, org string) ([]byte, error)

	// Checkpoint returns the stored checkpoint note of exactly this size.
	// Old checkpoints may have been compacted away (package retention):
	// the newest one is always kept, and proofs never need a stored note.
	Checkpoint(ctx context.Context, org string, size int64) ([]byte, error)
}

// RecentRecordReader is implemented by storages that keep the records this
// process has just committed in memory. The integrator reads the records it
// integrates through it, sparing a database read of each record right after
// it was written. ReadRecentRecords has ReadRecords' contract, and must pass
// exactly the bytes that were committed (anything it does not hold it reads
// from the database). Bundles always read the database.
type RecentRecordReader interface {
	ReadRecentRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error
}

// RefusalStorage is implemented by storages that several processes append
// to (PostgreSQL replicas). The integrator, which runs in one of them,
// records there the logs it refuses, so that every replica's append refuses
// their events (with a *RefusedError) in the transaction that would have
// stored them; it clears a log's refusal once a check of it passes.
type RefusalStorage interface {
	// SetLogRefused records why org's log is refused; "" clears it.
	SetLogRefused(ctx context.Context, org, reason string) error
	// RefusedLogs returns the recorded refusals, organization → reason.
	RefusedLogs(ctx context.Context) (map[string]string, error)
}

// Integration is one log's growth, as Storage.Integrate takes it.
type Integration struct {
	OrganizationID   string
	OldSize, NewSize int64
	Tiles            []TileData
	Checkpoint       []byte
}

// BatchStorage is implemented by storages that can store the integrations of
// several logs in one transaction, as durable as Integrate's: with many
// active organizations a pass then costs one commit instead of one per
// organization. The integrator uses it when the Storage has it.
type BatchStorage interface {
	// IntegrateBatch does, in one transaction, what Integrate does for each
	// integration. errs[i] is nil if integration i was stored, or wraps
	// ErrSizeChanged if its log had moved on (nothing of it was stored; the
	// others are unaffected). A non-nil err means the transaction failed:
	// as with Integrate, nothing was stored, or, if only the
	// acknowledgement was lost, everything.
	IntegrateBatch(ctx context.Context, batch []Integration) (errs []error, err error)
}

// Cosignature is a witness's cosignature (C2SP tlog-cosignature) of one of
// an organization's checkpoints, verified before it is stored.
type Cosignature struct {
	OrganizationID string
	Size           int64  // the checkpoint's tree size
	Witness        string // the witness's verifier key (note verifier format)
	Line           string // the signature line, "— <name> <base64>\n"
}

// WitnessSize is the size of a log (by origin) a witness last cosigned, or
// told the log it holds.
type WitnessSize struct {
	Witness string // the witness's verifier key
	Origin  string
	Size    int64
}

// CosignatureStorage keeps the witness cosignatures of the checkpoints (see
// package witness and docs/WITNESS.md), in the database beside the
// checkpoints, so that every process serving the log (each PostgreSQL
// replica) serves them, and the size each witness holds of each log.
type CosignatureStorage interface {
	// StoreCosignatures stores, in one transaction, cosignatures (one of
	// the same organization, size and witness is replaced) and witness
	// sizes (replacing the stored one; of several for one witness and
	// origin the last given is kept).
	StoreCosignatures(ctx context.Context, cosigs []Cosignature, sizes []WitnessSize) error
	// WitnessSize returns the stored size of witness for origin, 0 if none.
	WitnessSize(ctx context.Context, witness, origin string) (int64, error)
	// Cosignatures returns the cosignatures of org's checkpoint of size,
	// ordered by witness key.
	Cosignatures(ctx context.Context, org string, size int64) ([]Cosignature, error)
	// LatestCosignatures returns, for each witness that cosigned any of
	// org's checkpoints, its cosignature of the largest one, ordered by
	// witness key.
	LatestCosignatures(ctx context.Context, org string) ([]Cosignature, error)
}

// SignedHead is the newest checkpoint signed for one origin: its tree size
// and root hash.
type SignedHead struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// HeadStorage keeps, in the database, the newest checkpoint the deployment
// signed for each origin (the integrator's fork guard), so that every
// process that integrates (each PostgreSQL replica, a pod that starts with
// an empty data directory) checks the log against it.
type HeadStorage interface {
	// SignedHeads returns every origin's recorded head, ordered by origin.
	SignedHeads(ctx context.Context) ([]SignedHead, error)
	// RecordSignedHeads records heads in one transaction; a head replaces
	// the recorded one of its origin only if it is larger (a size never
	// goes down).
	RecordSignedHeads(ctx context.Context, heads []SignedHead) error
}
