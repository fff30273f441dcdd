package postgres

import (
	"context"
	"fmt"
)

// ClaimSetting implements store.DeploymentStore. ON CONFLICT DO UPDATE
// with an unchanged row returns the recorded value in one statement, and
// the primary key serialises replicas that claim at once.
func (s *Store) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	var recorded string
	err := s.pool.QueryRow(ctx, `INSERT INTO deployment_settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET name = deployment_settings.name RETURNING value`, name, value).Scan(&recorded)
	if err != nil {
		return "", fmt.Errorf("couldn't claim deployment setting %s: %w", name, classify(err))
	}
	return recorded, nil
}

// SetSetting implements store.DeploymentStore.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO deployment_settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, name, value); err != nil {
		return fmt.Errorf("couldn't set deployment setting %s: %w", name, classify(err))
	}
	return nil
}

// Settings implements store.DeploymentStore.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, value FROM deployment_settings`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read deployment settings: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("couldn't read deployment settings: %w", classify(err))
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read deployment settings: %w", classify(err))
	}
	return out, nil
}
