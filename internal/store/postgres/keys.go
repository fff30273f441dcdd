package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// CreateAPIKey stores a key (its hash, never its secret).
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	var org *string
	if k.OrganizationID != "" {
		org = &k.OrganizationID
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO api_keys (id, name, hash, prefix, scopes, organization_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.Name, k.Hash[:], k.Prefix, strings.Join(k.Scopes, " "), org, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("couldn't create API key %s: %w", k.ID, classify(err))
	}
	return nil
}

const keyColumns = `id, name, hash, prefix, scopes, coalesce(organization_id, ''), created_at, revoked_at`

func scanKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var hash []byte
	var scopes string
	var revoked *time.Time
	if err := row.Scan(&k.ID, &k.Name, &hash, &k.Prefix, &scopes, &k.OrganizationID, &k.CreatedAt, &revoked); err != nil {
		return k, err
	}
	copy(k.Hash[:], hash)
	k.Scopes = strings.Fields(scopes)
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	return k, nil
}

// APIKeyByHash finds a key, revoked or not, by the hash of its secret.
func (s *Store) APIKeyByHash(ctx context.Context, hash [32]byte) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("API key: %w", store.ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("couldn't look up API key: %w", classify(err))
	}
	return k, nil
}

// APIKey returns a key by id.
func (s *Store) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return k, fmt.Errorf("API key %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("couldn't read API key %s: %w", id, classify(err))
	}
	return k, nil
}

// ListAPIKeys lists keys by id.
func (s *Store) ListAPIKeys(ctx context.Context, p store.ListParams) (store.ListPage[store.APIKey], error) {
	where, args := "", []any(nil)
	if p.OrganizationID != "" {
		where, args = "organization_id = $1", []any{p.OrganizationID}
	}
	return listByID(ctx, s, "api_keys", keyColumns, where, args, p, scanKey,
		func(k store.APIKey) string { return k.ID })
}

// RevokeAPIKey marks a key revoked, keeping the first revocation time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, at, id)
	if err != nil {
		return fmt.Errorf("couldn't revoke API key %s: %w", id, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("API key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// CountAPIKeys counts every key ever created.
func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
		return 0, fmt.Errorf("couldn't count API keys: %w", classify(err))
	}
	return n, nil
}
