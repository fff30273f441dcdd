package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/trailaudit/trail/internal/store"
)

// PortalSettings implements store.PortalSettingsStore.
func (s *Store) PortalSettings(ctx context.Context, org string) (store.PortalSettings, error) {
	out := store.PortalSettings{OrganizationID: org}
	var origins string
	var updated int64
	err := s.read.QueryRowContext(ctx,
		`SELECT product_name, accent, logo, logo_type, frame_origins, updated_at FROM portal_settings WHERE organization_id = ?`, org).
		Scan(&out.ProductName, &out.Accent, &out.Logo, &out.LogoType, &origins, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return out, fmt.Errorf("portal settings of %s: %w", org, store.ErrNotFound)
	case err != nil:
		return out, fmt.Errorf("couldn't read the portal settings of %s: %w", org, classify(err))
	}
	out.FrameOrigins = strings.Fields(origins)
	out.UpdatedAt = fromMS(updated)
	return out, nil
}

// SetPortalSettings implements store.PortalSettingsStore: one statement
// that inserts or replaces the row, only for an organization that exists.
func (s *Store) SetPortalSettings(ctx context.Context, p store.PortalSettings) error {
	res, err := s.write.ExecContext(ctx,
		`INSERT INTO portal_settings (organization_id, product_name, accent, logo, logo_type, frame_origins, updated_at)
		 SELECT id, ?, ?, ?, ?, ?, ? FROM organizations WHERE id = ?
		 ON CONFLICT (organization_id) DO UPDATE SET product_name = excluded.product_name, accent = excluded.accent,
		   logo = excluded.logo, logo_type = excluded.logo_type, frame_origins = excluded.frame_origins, updated_at = excluded.updated_at`,
		p.ProductName, p.Accent, p.Logo, p.LogoType, strings.Join(p.FrameOrigins, " "), ms(p.UpdatedAt), p.OrganizationID)
	if err != nil {
		return fmt.Errorf("couldn't set the portal settings of %s: %w", p.OrganizationID, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("organization %s: %w", p.OrganizationID, store.ErrNotFound)
	}
	return nil
}
