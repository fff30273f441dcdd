package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// PortalSettings implements store.PortalSettingsStore.
func (s *Store) PortalSettings(ctx context.Context, org string) (store.PortalSettings, error) {
	out := store.PortalSettings{OrganizationID: org}
	err := s.pool.QueryRow(ctx,
		`SELECT product_name, accent, logo, logo_type, frame_origins, updated_at FROM portal_settings WHERE organization_id = $1`, org).
		Scan(&out.ProductName, &out.Accent, &out.Logo, &out.LogoType, &out.FrameOrigins, &out.UpdatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return out, fmt.Errorf("portal settings of %s: %w", org, store.ErrNotFound)
	case err != nil:
		return out, fmt.Errorf("couldn't read the portal settings of %s: %w", org, classify(err))
	}
	if len(out.FrameOrigins) == 0 {
		out.FrameOrigins = nil
	}
	out.UpdatedAt = out.UpdatedAt.UTC()
	return out, nil
}

// SetPortalSettings implements store.PortalSettingsStore: one statement
// that inserts or replaces the row, only for an organization that exists.
func (s *Store) SetPortalSettings(ctx context.Context, p store.PortalSettings) error {
	origins := p.FrameOrigins
	if origins == nil {
		origins = []string{}
	}
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO portal_settings (organization_id, product_name, accent, logo, logo_type, frame_origins, updated_at)
		 SELECT id, $2, $3, $4, $5, $6, $7 FROM organizations WHERE id = $1
		 ON CONFLICT (organization_id) DO UPDATE SET product_name = EXCLUDED.product_name, accent = EXCLUDED.accent,
		   logo = EXCLUDED.logo, logo_type = EXCLUDED.logo_type, frame_origins = EXCLUDED.frame_origins, updated_at = EXCLUDED.updated_at`,
		p.OrganizationID, p.ProductName, p.Accent, p.Logo, p.LogoType, origins, p.UpdatedAt)
	if err != nil {
		return fmt.Errorf("couldn't set the portal settings of %s: %w", p.OrganizationID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", p.OrganizationID, store.ErrNotFound)
	}
	return nil
}
