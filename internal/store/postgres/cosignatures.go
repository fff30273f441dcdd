package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/ledger"
)

var _ ledger.CosignatureStorage = (*Store)(nil)

// StoreCosignatures stores cosignatures and witness sizes in one
// transaction (ledger.CosignatureStorage), in one round trip.
func (s *Store) StoreCosignatures(ctx context.Context, cosigs []ledger.Cosignature, sizes []ledger.WitnessSize) error {
	if len(cosigs) == 0 && len(sizes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, c := range cosigs {
		b.Queue(`INSERT INTO witness_cosignatures (organization_id, size, witness, line) VALUES ($1, $2, $3, $4)
			ON CONFLICT (organization_id, size, witness) DO UPDATE SET line = excluded.line`,
			c.OrganizationID, c.Size, c.Witness, c.Line)
	}
	// One INSERT … ON CONFLICT cannot update a row twice, but statements
	// in sequence can: the last size given for a witness and origin wins.
	for _, w := range sizes {
		b.Queue(`INSERT INTO witness_sizes (witness, origin, size) VALUES ($1, $2, $3)
			ON CONFLICT (witness, origin) DO UPDATE SET size = excluded.size`, w.Witness, w.Origin, w.Size)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("couldn't store %d cosignatures: %w", len(cosigs), classify(err))
	}
	return nil
}

// WitnessSize returns the stored size of witness for origin, 0 if none.
func (s *Store) WitnessSize(ctx context.Context, witness, origin string) (int64, error) {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM witness_sizes WHERE witness = $1 AND origin = $2`, witness, origin).Scan(&size)
	if err != nil {
		return 0, fmt.Errorf("couldn't read what witness %s holds of %s: %w", witness, origin, classify(err))
	}
	return size, nil
}

// Cosignatures returns the cosignatures of org's checkpoint of size.
func (s *Store) Cosignatures(ctx context.Context, org string, size int64) ([]ledger.Cosignature, error) {
	return s.cosignatures(ctx, fmt.Sprintf("checkpoint %d of %s", size, org),
		`SELECT organization_id, size, witness, line FROM witness_cosignatures
		WHERE organization_id = $1 AND size = $2 ORDER BY witness`, org, size)
}

// LatestCosignatures returns each witness's cosignature of the largest of
// org's checkpoints it cosigned.
func (s *Store) LatestCosignatures(ctx context.Context, org string) ([]ledger.Cosignature, error) {
	return s.cosignatures(ctx, fmt.Sprintf("the checkpoints of %s", org),
		`SELECT DISTINCT ON (witness) organization_id, size, witness, line FROM witness_cosignatures
		WHERE organization_id = $1 ORDER BY witness, size DESC`, org)
}

func (s *Store) cosignatures(ctx context.Context, what, query string, args ...any) ([]ledger.Cosignature, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", what, classify(err))
	}
	var c ledger.Cosignature
	var out []ledger.Cosignature
	if _, err := pgx.ForEachRow(rows, []any{&c.OrganizationID, &c.Size, &c.Witness, &c.Line}, func() error {
		out = append(out, c)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("couldn't read the cosignatures of %s: %w", what, classify(err))
	}
	return out, nil
}
