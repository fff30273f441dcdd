package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// UpdateOrganization implements store.OrganizationLifecycle.
func (s *Store) UpdateOrganization(ctx context.Context, org store.Organization) error {
	var ext *string
	if org.ExternalID != "" {
		ext = &org.ExternalID
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE organizations SET name = $2, external_id = $3, updated_at = $4 WHERE id = $1 AND deleted_at IS NULL AND id <> 'org_system'`,
		org.ID, org.Name, ext, org.UpdatedAt)
	if err != nil {
		return fmt.Errorf("couldn't update organization %s: %w", org.ID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", org.ID, store.ErrNotFound)
	}
	return nil
}

const deletionColumns = `organization_id, name, requested_at, requested_by, reason, forced, final_bundle, step,
	final_location, final_size, last_error, finished_at`

func scanDeletion(row pgx.Row) (store.OrganizationDeletion, error) {
	var d store.OrganizationDeletion
	var finished *time.Time
	err := row.Scan(&d.OrganizationID, &d.Name, &d.RequestedAt, &d.RequestedBy, &d.Reason, &d.Forced, &d.FinalBundle, &d.Step,
		&d.FinalLocation, &d.FinalSize, &d.LastError, &finished)
	d.RequestedAt = d.RequestedAt.UTC()
	if finished != nil {
		d.FinishedAt = finished.UTC()
	}
	return d, err
}

// BeginOrganizationDeletion implements store.OrganizationLifecycle. The
// organization's row is locked first, so that an append under way either
// commits before the mark or finds the organization deleted.
func (s *Store) BeginOrganizationDeletion(ctx context.Context, d store.OrganizationDeletion) (store.OrganizationDeletion, bool, error) {
	var out store.OrganizationDeletion
	var started bool
	err := retry(ctx, func() error {
		var err error
		out, started, err = s.beginDeletionTx(ctx, d)
		return err
	})
	return out, started, err
}

func (s *Store) beginDeletionTx(ctx context.Context, d store.OrganizationDeletion) (store.OrganizationDeletion, bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return d, false, fmt.Errorf("couldn't begin deleting %s: %w", d.OrganizationID, classify(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	err = tx.QueryRow(ctx, `SELECT name FROM organizations WHERE id = $1 AND id <> 'org_system' FOR UPDATE`, d.OrganizationID).Scan(&d.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, fmt.Errorf("organization %s: %w", d.OrganizationID, store.ErrNotFound)
	}
	if err != nil {
		return d, false, fmt.Errorf("couldn't read organization %s: %w", d.OrganizationID, classify(err))
	}
	prev, err := scanDeletion(tx.QueryRow(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE organization_id = $1`, d.OrganizationID))
	if err == nil {
		return prev, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return d, false, fmt.Errorf("couldn't read the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if _, err := tx.Exec(ctx, `UPDATE organizations SET deleted_at = $2, external_id = NULL, updated_at = $2 WHERE id = $1`,
		d.OrganizationID, d.RequestedAt); err != nil {
		return d, false, fmt.Errorf("couldn't mark %s deleted: %w", d.OrganizationID, classify(err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO organization_deletions (`+deletionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		d.OrganizationID, d.Name, d.RequestedAt, d.RequestedBy, d.Reason, d.Forced, d.FinalBundle, d.Step,
		d.FinalLocation, d.FinalSize, d.LastError, nullTime(d.FinishedAt)); err != nil {
		return d, false, fmt.Errorf("couldn't record the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return d, false, fmt.Errorf("couldn't commit the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	return d, true, nil
}

// OrganizationDeletion implements store.OrganizationLifecycle.
func (s *Store) OrganizationDeletion(ctx context.Context, org string) (store.OrganizationDeletion, error) {
	d, err := scanDeletion(s.pool.QueryRow(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE organization_id = $1`, org))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("deletion of organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("couldn't read the deletion of %s: %w", org, classify(err))
	}
	return d, nil
}

// PendingOrganizationDeletions implements store.OrganizationLifecycle.
func (s *Store) PendingOrganizationDeletions(ctx context.Context) ([]store.OrganizationDeletion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE finished_at IS NULL ORDER BY requested_at, organization_id`)
	if err != nil {
		return nil, fmt.Errorf("couldn't list organization deletions: %w", classify(err))
	}
	defer rows.Close()
	var out []store.OrganizationDeletion
	for rows.Next() {
		d, err := scanDeletion(rows)
		if err != nil {
			return nil, fmt.Errorf("couldn't read an organization deletion: %w", classify(err))
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list organization deletions: %w", classify(err))
	}
	return out, nil
}

// UpdateOrganizationDeletion implements store.OrganizationLifecycle.
func (s *Store) UpdateOrganizationDeletion(ctx context.Context, d store.OrganizationDeletion) error {
	tag, err := s.pool.Exec(ctx, `UPDATE organization_deletions SET step = $2, final_location = $3, final_size = $4, last_error = $5, finished_at = $6
		WHERE organization_id = $1`, d.OrganizationID, d.Step, d.FinalLocation, d.FinalSize, d.LastError, nullTime(d.FinishedAt))
	if err != nil {
		return fmt.Errorf("couldn't record the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("deletion of organization %s: %w", d.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// PurgeOrganizationCredentials implements store.OrganizationLifecycle, in
// one transaction.
func (s *Store) PurgeOrganizationCredentials(ctx context.Context, org string, at time.Time) (store.CredentialsPurged, error) {
	var p store.CredentialsPurged
	err := retry(ctx, func() error {
		p = store.CredentialsPurged{}
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("couldn't begin deleting the credentials of %s: %w", org, classify(err))
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
		for _, step := range []struct {
			what string
			q    string
			args []any
			n    *int64
		}{
			{"log streams", `DELETE FROM log_streams WHERE organization_id = $1`, []any{org}, &p.Streams},
			{"portal links", `DELETE FROM portal_links WHERE organization_id = $1`, []any{org}, &p.PortalLinks},
			{"API keys", `UPDATE api_keys SET revoked_at = $1 WHERE organization_id = $2 AND revoked_at IS NULL`, []any{at, org}, &p.APIKeys},
		} {
			tag, err := tx.Exec(ctx, step.q, step.args...)
			if err != nil {
				return fmt.Errorf("couldn't delete the %s of %s: %w", step.what, org, classify(err))
			}
			*step.n = tag.RowsAffected()
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("couldn't commit the deletion of the credentials of %s: %w", org, classify(err))
		}
		return nil
	})
	return p, err
}

// ArchiveSettings implements store.ArchiveStore.
func (s *Store) ArchiveSettings(ctx context.Context) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT organization_id, enabled FROM archive_state WHERE enabled IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("couldn't read archive settings: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var org string
		var on bool
		if err := rows.Scan(&org, &on); err != nil {
			return nil, fmt.Errorf("couldn't read an archive setting: %w", classify(err))
		}
		out[org] = on
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read archive settings: %w", classify(err))
	}
	return out, nil
}

// SetArchiveSetting implements store.ArchiveStore.
func (s *Store) SetArchiveSetting(ctx context.Context, org string, on *bool, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO archive_state (organization_id, enabled, updated_at)
		SELECT id, $2, $3 FROM organizations WHERE id = $1 AND deleted_at IS NULL
		ON CONFLICT (organization_id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at`, org, on, at)
	if err != nil {
		return fmt.Errorf("couldn't set the archive setting of %s: %w", org, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}

// ArchivePosition implements store.ArchiveStore.
func (s *Store) ArchivePosition(ctx context.Context, org string) (int64, bool, error) {
	var to *int64
	var held *bool
	err := s.pool.QueryRow(ctx, `SELECT a.archived_to, a.held FROM organizations o LEFT JOIN archive_state a ON a.organization_id = o.id WHERE o.id = $1`, org).
		Scan(&to, &held)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the archive position of %s: %w", org, classify(err))
	}
	var n int64
	if to != nil {
		n = *to
	}
	return n, held != nil && *held, nil
}

// SetArchivePosition implements store.ArchiveStore.
func (s *Store) SetArchivePosition(ctx context.Context, org string, to int64, held bool, at time.Time) error {
	if to < 0 {
		return fmt.Errorf("archive position of %s: %d is negative", org, to)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO archive_state (organization_id, archived_to, held, updated_at)
		SELECT id, $2, $3, $4 FROM organizations WHERE id = $1
		ON CONFLICT (organization_id) DO UPDATE SET archived_to = greatest(archive_state.archived_to, EXCLUDED.archived_to),
			held = EXCLUDED.held, updated_at = EXCLUDED.updated_at`, org, to, held, at)
	if err != nil {
		return fmt.Errorf("couldn't record the archive position of %s: %w", org, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}
