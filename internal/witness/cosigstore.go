package witness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
)

// LegacyCosignaturesFile is the name, in the log server's data directory,
// of the SQLite database where earlier versions kept the cosignatures. A
// Submitter copies its contents into the database on start and renames it
// with the suffix ".imported".
const LegacyCosignaturesFile = "witness-cosignatures.db"

// cosigStore keeps the cosignatures the log received, and per witness and
// origin the size the witness last cosigned, in the log's database. Writes
// are queued and stored by one goroutine, as many per transaction as are
// waiting, so that cosigning a thousand logs a second costs a few commits,
// not a thousand.
type cosigStore struct {
	db ledger.CosignatureStorage

	mu    sync.Mutex
	sizes map[[2]string]int64 // (witness, origin) → size, as stored or queued
}

// cosigWrite is one queued write: a cosignature (when line is set) and the
// witness's size.
type cosigWrite struct {
	cosig    ledger.Cosignature
	size     ledger.WitnessSize
	signedAt time.Time // of the checkpoint cosigned
	name     string    // the witness's name
}

func (c *cosigStore) known(ctx context.Context, witness, origin string) (int64, error) {
	c.mu.Lock()
	size, ok := c.sizes[[2]string{witness, origin}]
	c.mu.Unlock()
	if ok {
		return size, nil
	}
	size, err := c.db.WitnessSize(ctx, witness, origin)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if cached, ok := c.sizes[[2]string{witness, origin}]; ok {
		size = cached // a write queued meanwhile
	} else {
		c.sizes[[2]string{witness, origin}] = size
	}
	c.mu.Unlock()
	return size, nil
}

func (c *cosigStore) remember(witness, origin string, size int64) {
	c.mu.Lock()
	c.sizes[[2]string{witness, origin}] = size
	c.mu.Unlock()
}

// maxWriteBatch bounds the writes stored in one transaction.
const maxWriteBatch = 4096

// writeLoop stores the queued writes until writes is closed and drained.
// done is called with each batch stored.
func (c *cosigStore) writeLoop(writes <-chan cosigWrite, logger *slog.Logger, done func([]cosigWrite)) {
	var batch []cosigWrite
	for w := range writes {
		batch = append(batch[:0], w)
	more:
		for len(batch) < maxWriteBatch {
			select {
			case w, ok := <-writes:
				if !ok {
					break more
				}
				batch = append(batch, w)
			default:
				break more
			}
		}
		var cosigs []ledger.Cosignature
		sizes := make([]ledger.WitnessSize, 0, len(batch))
		for _, w := range batch {
			if w.cosig.Line != "" {
				cosigs = append(cosigs, w.cosig)
			}
			sizes = append(sizes, w.size)
		}
		// Not retried forever: a cosignature lost costs a 409 and a
		// retry, or a checkpoint served without it, never safety (each
		// witness keeps its own state).
		var err error
		for attempt := range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = c.db.StoreCosignatures(ctx, cosigs, sizes)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * time.Second)
		}
		if err != nil {
			logger.Error("couldn't store witness cosignatures: the checkpoints are served without them", "cosignatures", len(cosigs), "err", err)
			continue
		}
		done(batch)
	}
}

// importLegacy copies the cosignatures and witness sizes of an earlier
// version's <dataDir>/witness-cosignatures.db into the database, then
// renames the file.
func importLegacy(ctx context.Context, dataDir string, db ledger.CosignatureStorage, logger *slog.Logger) error {
	path := filepath.Join(dataDir, LegacyCosignaturesFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old, err := openDB(path, false)
	if err != nil {
		return fmt.Errorf("couldn't open the cosignatures of an earlier version: %w", err)
	}
	defer old.Close()
	var n int
	var cosigs []ledger.Cosignature
	flush := func() error {
		n += len(cosigs)
		err := db.StoreCosignatures(ctx, cosigs, nil)
		cosigs = cosigs[:0]
		return err
	}
	err = scanRows(ctx, old, `SELECT org, size, witness, line FROM cosignatures`, func(rows *sql.Rows) error {
		var c ledger.Cosignature
		if err := rows.Scan(&c.OrganizationID, &c.Size, &c.Witness, &c.Line); err != nil {
			return err
		}
		if cosigs = append(cosigs, c); len(cosigs) == maxWriteBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	var sizes []ledger.WitnessSize
	if err == nil {
		err = scanRows(ctx, old, `SELECT witness, origin, size FROM witness_state`, func(rows *sql.Rows) error {
			var s ledger.WitnessSize
			if err := rows.Scan(&s.Witness, &s.Origin, &s.Size); err != nil {
				return err
			}
			sizes = append(sizes, s)
			return nil
		})
	}
	if err == nil {
		err = db.StoreCosignatures(ctx, nil, sizes)
	}
	if err != nil {
		return fmt.Errorf("couldn't copy the cosignatures of %s into the database: %w", path, err)
	}
	old.Close()
	if err := os.Rename(path, path+".imported"); err != nil {
		return fmt.Errorf("copied the cosignatures of %s into the database, but: %w", path, err)
	}
	os.Remove(path + "-wal") // a clean close leaves none; best effort
	os.Remove(path + "-shm")
	logger.Info("copied the witness cosignatures of an earlier version into the database", "file", path, "cosignatures", n, "witness_sizes", len(sizes))
	return nil
}

func scanRows(ctx context.Context, db *sql.DB, query string, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Cosigned returns st with the stored witness cosignatures appended to its
// checkpoint notes.
// The API, exports and the portal read checkpoints through it, on every
// server of the deployment, whether or not it asks witnesses itself.
func Cosigned(st CosigningStorage) ledger.Storage {
	return CosignedStorage{Storage: st, cs: st}
}

// CosigningStorage is a log's storage that keeps its witness cosignatures
// too: both backends' stores are one.
type CosigningStorage interface {
	ledger.Storage
	ledger.CosignatureStorage
}

// CosignedFrom returns st with the witness cosignatures kept in cs appended
// to its checkpoint notes: st may be a view of the log (such as the
// published one of a replicated deployment) and cs the database behind it.
func CosignedFrom(st ledger.Storage, cs ledger.CosignatureStorage) ledger.Storage {
	return CosignedStorage{Storage: st, cs: cs}
}

// CosignedStorage is a ledger.Storage whose checkpoint notes carry, after the
// log's signature, the witness cosignatures received for them. The API and
// bundles read checkpoints through it; everything else passes through.
type CosignedStorage struct {
	ledger.Storage
	cs ledger.CosignatureStorage
}

// Checkpoint returns the stored checkpoint of size with its cosignatures.
func (c CosignedStorage) Checkpoint(ctx context.Context, org string, size int64) ([]byte, error) {
	msg, err := c.Storage.Checkpoint(ctx, org, size)
	if err != nil {
		return nil, err
	}
	return c.withCosignatures(ctx, org, size, msg)
}

// LatestCheckpoint returns the newest checkpoint with its cosignatures (often
// none yet: witnesses are asked once it is signed).
func (c CosignedStorage) LatestCheckpoint(ctx context.Context, org string) ([]byte, error) {
	msg, err := c.Storage.LatestCheckpoint(ctx, org)
	if err != nil {
		return nil, err
	}
	body, _, err := splitNote(msg)
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint of %s: %w", org, err)
	}
	ck, err := ledger.ParseCheckpointBody(body)
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint of %s: %w", org, err)
	}
	return c.withCosignatures(ctx, org, ck.Size, msg)
}

func (c CosignedStorage) withCosignatures(ctx context.Context, org string, size int64, msg []byte) ([]byte, error) {
	cosigs, err := c.cs.Cosignatures(ctx, org, size)
	if err != nil {
		return nil, err
	}
	if len(cosigs) == 0 {
		return msg, nil
	}
	out := append([]byte{}, msg...)
	for _, cs := range cosigs {
		if l := []byte(cs.Line); !bytes.Contains(msg, l) { // never the same line twice
			out = append(out, l...)
		}
	}
	return out, nil
}

// Status is where one witness stands for one organization: the largest
// checkpoint size it cosigned (0 if none yet) and when.
type Status struct {
	Name string
	Key  string // verifier key
	Size int64
	At   time.Time
}

// Status returns, for each configured witness in order, the largest size of
// org's log it cosigned.
func (s *Submitter) Status(ctx context.Context, org string) ([]Status, error) {
	latest, err := s.cs.db.LatestCosignatures(ctx, org)
	if err != nil {
		return nil, err
	}
	got := map[string]ledger.Cosignature{}
	for _, c := range latest {
		got[c.Witness] = c
	}
	var out []Status
	for _, w := range s.workers {
		st := Status{Name: w.name, Key: w.key}
		if c, ok := got[w.key]; ok {
			st.Size = c.Size
			if f := strings.Fields(c.Line); len(f) == 3 {
				if raw, err := base64.StdEncoding.DecodeString(f[2]); err == nil && len(raw) >= 12 {
					st.At = time.Unix(int64(binary.BigEndian.Uint64(raw[4:12])), 0).UTC()
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Quorum is the number of cosignatures each checkpoint should get.
func (s *Submitter) Quorum() int { return s.opts.Quorum }
