package sqlite

import (
	"context"
	"fmt"

	"github.com/trailaudit/trail/internal/ledger"
)

var _ ledger.CosignatureStorage = (*Store)(nil)

// StoreCosignatures stores cosignatures and witness sizes in one
// transaction (ledger.CosignatureStorage).
func (s *Store) StoreCosignatures(ctx context.Context, cosigs []ledger.Cosignature, sizes []ledger.WitnessSize) error {
	if len(cosigs) == 0 && len(sizes) == 0 {
		return nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("couldn't begin storing cosignatures: %w", classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, c := range cosigs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO witness_cosignatures (organization_id, size, witness, line) VALUES (?, ?, ?, ?)
			ON CONFLICT (organization_id, size, witness) DO UPDATE SET line = excluded.line`,
			c.OrganizationID, c.Size, c.Witness, c.Line); err != nil {
			return fmt.Errorf("couldn't store a cosignature of checkpoint %d of %s: %w", c.Size, c.OrganizationID, classify(err))
		}
	}
	for _, w := range sizes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO witness_sizes (witness, origin, size) VALUES (?, ?, ?)
			ON CONFLICT (witness, origin) DO UPDATE SET size = excluded.size`, w.Witness, w.Origin, w.Size); err != nil {
			return fmt.Errorf("couldn't store the size witness %s holds of %s: %w", w.Witness, w.Origin, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("couldn't commit %d cosignatures: %w", len(cosigs), classify(err))
	}
	return nil
}

// WitnessSize returns the stored size of witness for origin, 0 if none.
func (s *Store) WitnessSize(ctx context.Context, witness, origin string) (int64, error) {
	var size int64
	err := s.read.QueryRowContext(ctx, `SELECT coalesce(max(size), 0) FROM witness_sizes WHERE witness = ? AND origin = ?`, witness, origin).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("couldn't read what witness %s holds of %s: %w", witness, origin, classify(err))
	}
	return size, nil
}

// Cosignatures returns the cosignatures of org's checkpoint of size.
func (s *Store) Cosignatures(ctx context.Context, org string, size int64) ([]ledger.Cosignature, error) {
	return s.cosignatures(ctx, fmt.Sprintf("checkpoint %d of %s", size, org),
		`SELECT organization_id, size, witness, line FROM witness_cosignatures
		WHERE organization_id = ? AND size = ? ORDER BY witness`, org, size)
}

// LatestCosignatures returns each witness's cosignature of the largest of
// org's checkpoints it cosigned.
func (s *Store) LatestCosignatures(ctx context.Context, org string) ([]ledger.Cosignature, error) {
	return s.cosignatures(ctx, fmt.Sprintf("the checkpoints of %s", org),
		`SELECT organization_id, max(size), witness, line FROM witness_cosignatures
		WHERE organization_id = ? GROUP BY witness ORDER BY witness`, org)
}

func (s *Store) cosignatures(ctx context.Context, what, query string, args ...any) ([]ledger.Cosignature, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", what, classify(err))
	}
	defer rows.Close()
	var out []ledger.Cosignature
	for rows.Next() {
		var c ledger.Cosignature
		if err := rows.Scan(&c.OrganizationID, &c.Size, &c.Witness, &c.Line); err != nil {
			return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", what, classify(err))
	}
	return out, nil
}
