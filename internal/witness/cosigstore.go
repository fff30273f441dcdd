package witness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
)

// CosignaturesFile is the name, in the log server's data directory, of the
// SQLite database of witness cosignatures and of the size each witness last
// cosigned per origin.
const CosignaturesFile = "witness-cosignatures.db"

// cosigStore keeps the cosignatures the log received, and per witness and
// origin the size the witness last cosigned.
type cosigStore struct {
	db *sql.DB

	mu    sync.Mutex
	sizes map[[2]string]int64 // (witness, origin) → size, as stored
}

func openCosigStore(dir string) (*cosigStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory %s: %w", dir, err)
	}
	// Not synced per commit: a cosignature lost in a crash costs a 409
	// and a retry, never safety (the witness keeps its own state durably).
	db, err := openDB(filepath.Join(dir, CosignaturesFile), false)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(`
		CREATE TABLE IF NOT EXISTS cosignatures (
			org     TEXT NOT NULL,
			size    INTEGER NOT NULL,
			witness TEXT NOT NULL,   -- the witness's verifier key
			line    TEXT NOT NULL,   -- the signature line, "— <name> <base64>\n"
			PRIMARY KEY (org, size, witness)
		) STRICT;
		CREATE TABLE IF NOT EXISTS witness_state (
			witness TEXT NOT NULL,
			origin  TEXT NOT NULL,
			size    INTEGER NOT NULL, -- the size it last cosigned (or told us in a 409)
			PRIMARY KEY (witness, origin)
		) STRICT;`); err != nil {
		db.Close()
		return nil, fmt.Errorf("couldn't create the cosignature tables: %w", err)
	}
	return &cosigStore{db: db, sizes: map[[2]string]int64{}}, nil
}

func (c *cosigStore) close() error { return c.db.Close() }

func (c *cosigStore) known(ctx context.Context, witness, origin string) (int64, error) {
	c.mu.Lock()
	size, ok := c.sizes[[2]string{witness, origin}]
	c.mu.Unlock()
	if ok {
		return size, nil
	}
	err := c.db.QueryRowContext(ctx, `SELECT size FROM witness_state WHERE witness = ? AND origin = ?`, witness, origin).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		size, err = 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read what witness %s cosigned for %s: %w", witness, origin, err)
	}
	c.remember(witness, origin, size)
	return size, nil
}

func (c *cosigStore) remember(witness, origin string, size int64) {
	c.mu.Lock()
	c.sizes[[2]string{witness, origin}] = size
	c.mu.Unlock()
}

func (c *cosigStore) setKnown(ctx context.Context, witness, origin string, size int64) error {
	if _, err := c.db.ExecContext(ctx, `INSERT INTO witness_state (witness, origin, size) VALUES (?, ?, ?)
		ON CONFLICT (witness, origin) DO UPDATE SET size = excluded.size`, witness, origin, size); err != nil {
		return fmt.Errorf("couldn't record what witness %s cosigned for %s: %w", witness, origin, err)
	}
	c.remember(witness, origin, size)
	return nil
}

// add stores a verified cosignature and the witness's new size, together.
func (c *cosigStore) add(ctx context.Context, witness, org, origin string, size int64, line string) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't store a cosignature: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO cosignatures (org, size, witness, line) VALUES (?, ?, ?, ?)`,
		org, size, witness, line); err != nil {
		return fmt.Errorf("couldn't store a cosignature: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO witness_state (witness, origin, size) VALUES (?, ?, ?)
		ON CONFLICT (witness, origin) DO UPDATE SET size = excluded.size`, witness, origin, size); err != nil {
		return fmt.Errorf("couldn't store a cosignature: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't store a cosignature: %w", err)
	}
	c.remember(witness, origin, size)
	return nil
}

// lines returns the stored cosignature lines of org's checkpoint of size.
func (c *cosigStore) lines(ctx context.Context, org string, size int64) ([]byte, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT line FROM cosignatures WHERE org = ? AND size = ? ORDER BY witness`, org, size)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s at size %d: %w", org, size, err)
	}
	defer rows.Close()
	var b []byte
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, fmt.Errorf("couldn't read the cosignatures of %s at size %d: %w", org, size, err)
		}
		b = append(b, l...)
	}
	return b, rows.Err()
}

// CosignedStorage is a ledger.Storage whose checkpoint notes carry, after the
// log's signature, the witness cosignatures received for them. The API and
// bundles read checkpoints through it; everything else passes through.
type CosignedStorage struct {
	ledger.Storage
	cs *cosigStore
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
	lines, err := c.cs.lines(ctx, org, size)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return msg, nil
	}
	out := make([]byte, 0, len(msg)+len(lines))
	out = append(out, msg...)
	for l := range bytes.Lines(lines) {
		if !bytes.Contains(msg, l) { // never the same line twice
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
	rows, err := s.cs.db.QueryContext(ctx, `SELECT witness, size, line FROM cosignatures c
		WHERE org = ? AND size = (SELECT MAX(size) FROM cosignatures WHERE org = c.org AND witness = c.witness)`, org)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", org, err)
	}
	defer rows.Close()
	type last struct {
		size int64
		line string
	}
	got := map[string]last{}
	for rows.Next() {
		var w, line string
		var size int64
		if err := rows.Scan(&w, &size, &line); err != nil {
			return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", org, err)
		}
		got[w] = last{size, line}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", org, err)
	}
	var out []Status
	for _, w := range s.workers {
		st := Status{Name: w.name, Key: w.key}
		if l, ok := got[w.key]; ok {
			st.Size = l.size
			if f := strings.Fields(l.line); len(f) == 3 {
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
