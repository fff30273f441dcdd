package sqlite

import (
	"context"
	"fmt"
	"time"
)

// ClaimSetting implements store.DeploymentStore.
func (s *Store) ClaimSetting(ctx context.Context, name, value string) (string, error) {
	var recorded string
	err := s.write.QueryRowContext(ctx, `INSERT INTO deployment_settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET name = name RETURNING value`, name, value, ms(time.Now())).Scan(&recorded)
	if err != nil {
		return "", fmt.Errorf("couldn't claim deployment setting %s: %w", name, classify(err))
	}
	return recorded, nil
}

// SetSetting implements store.DeploymentStore.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.write.ExecContext(ctx, `INSERT INTO deployment_settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, ms(time.Now())); err != nil {
		return fmt.Errorf("couldn't set deployment setting %s: %w", name, classify(err))
	}
	return nil
}

// Settings implements store.DeploymentStore.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT name, value FROM deployment_settings`)
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
