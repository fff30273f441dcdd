package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// UpdateOrganization implements store.OrganizationLifecycle.
func (s *Store) UpdateOrganization(ctx context.Context, org store.Organization) error {
	var ext any
	if org.ExternalID != "" {
		ext = org.ExternalID
	}
	res, err := s.write.ExecContext(ctx,
		`UPDATE organizations SET name = ?, external_id = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL AND id <> 'org_system'`,
		org.Name, ext, ms(org.UpdatedAt), org.ID)
	if err != nil {
		return fmt.Errorf("couldn't update organization %s: %w", org.ID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %s: %w", org.ID, store.ErrNotFound)
	}
	return nil
}

const deletionColumns = `organization_id, name, requested_at, requested_by, reason, forced, final_bundle, step,
	final_location, final_size, last_error, finished_at`

func scanDeletion(row interface{ Scan(...any) error }) (store.OrganizationDeletion, error) {
	var d store.OrganizationDeletion
	var requested int64
	var finished sql.NullInt64
	err := row.Scan(&d.OrganizationID, &d.Name, &requested, &d.RequestedBy, &d.Reason, &d.Forced, &d.FinalBundle, &d.Step,
		&d.FinalLocation, &d.FinalSize, &d.LastError, &finished)
	d.RequestedAt, d.FinishedAt = fromMS(requested), fromNullMS(finished)
	return d, err
}

// BeginOrganizationDeletion implements store.OrganizationLifecycle.
func (s *Store) BeginOrganizationDeletion(ctx context.Context, d store.OrganizationDeletion) (store.OrganizationDeletion, bool, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return d, false, fmt.Errorf("couldn't begin deleting %s: %w", d.OrganizationID, classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	prev, err := scanDeletion(tx.QueryRowContext(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE organization_id = ?`, d.OrganizationID))
	if err == nil {
		return prev, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return d, false, fmt.Errorf("couldn't read the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if err := tx.QueryRowContext(ctx, `SELECT name FROM organizations WHERE id = ? AND id <> 'org_system'`, d.OrganizationID).Scan(&d.Name); errors.Is(err, sql.ErrNoRows) {
		return d, false, fmt.Errorf("organization %s: %w", d.OrganizationID, store.ErrNotFound)
	} else if err != nil {
		return d, false, fmt.Errorf("couldn't read organization %s: %w", d.OrganizationID, classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE organizations SET deleted_at = ?, external_id = NULL, updated_at = ? WHERE id = ?`,
		ms(d.RequestedAt), ms(d.RequestedAt), d.OrganizationID); err != nil {
		return d, false, fmt.Errorf("couldn't mark %s deleted: %w", d.OrganizationID, classify(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO organization_deletions (`+deletionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.OrganizationID, d.Name, ms(d.RequestedAt), d.RequestedBy, d.Reason, d.Forced, d.FinalBundle, d.Step,
		d.FinalLocation, d.FinalSize, d.LastError, nullMS(d.FinishedAt)); err != nil {
		return d, false, fmt.Errorf("couldn't record the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if err := tx.Commit(); err != nil {
		return d, false, fmt.Errorf("couldn't commit the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	return d, true, nil
}

// OrganizationDeletion implements store.OrganizationLifecycle.
func (s *Store) OrganizationDeletion(ctx context.Context, org string) (store.OrganizationDeletion, error) {
	d, err := scanDeletion(s.read.QueryRowContext(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE organization_id = ?`, org))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deletion of organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("couldn't read the deletion of %s: %w", org, classify(err))
	}
	return d, nil
}

// PendingOrganizationDeletions implements store.OrganizationLifecycle.
func (s *Store) PendingOrganizationDeletions(ctx context.Context) ([]store.OrganizationDeletion, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deletionColumns+` FROM organization_deletions WHERE finished_at IS NULL ORDER BY requested_at, organization_id`)
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
	res, err := s.write.ExecContext(ctx, `UPDATE organization_deletions SET step = ?, final_location = ?, final_size = ?, last_error = ?, finished_at = ?
		WHERE organization_id = ?`, d.Step, d.FinalLocation, d.FinalSize, d.LastError, nullMS(d.FinishedAt), d.OrganizationID)
	if err != nil {
		return fmt.Errorf("couldn't record the deletion of %s: %w", d.OrganizationID, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deletion of organization %s: %w", d.OrganizationID, store.ErrNotFound)
	}
	return nil
}

// PurgeOrganizationCredentials implements store.OrganizationLifecycle, in
// one transaction.
func (s *Store) PurgeOrganizationCredentials(ctx context.Context, org string, at time.Time) (store.CredentialsPurged, error) {
	var p store.CredentialsPurged
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return p, fmt.Errorf("couldn't begin deleting the credentials of %s: %w", org, classify(err))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, step := range []struct {
		what string
		q    string
		args []any
		n    *int64
	}{
		{"log streams", `DELETE FROM log_streams WHERE organization_id = ?`, []any{org}, &p.Streams},
		{"portal links", `DELETE FROM portal_links WHERE organization_id = ?`, []any{org}, &p.PortalLinks},
		{"API keys", `UPDATE api_keys SET revoked_at = ? WHERE organization_id = ? AND revoked_at IS NULL`, []any{ms(at), org}, &p.APIKeys},
	} {
		res, err := tx.ExecContext(ctx, step.q, step.args...)
		if err != nil {
			return p, fmt.Errorf("couldn't delete the %s of %s: %w", step.what, org, classify(err))
		}
		*step.n, _ = res.RowsAffected()
	}
	if err := tx.Commit(); err != nil {
		return p, fmt.Errorf("couldn't commit the deletion of the credentials of %s: %w", org, classify(err))
	}
	return p, nil
}

// ArchiveSettings implements store.ArchiveStore.
func (s *Store) ArchiveSettings(ctx context.Context) (map[string]bool, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT organization_id, enabled FROM archive_state WHERE enabled IS NOT NULL`)
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
	var v any
	if on != nil {
		v = *on
	}
	res, err := s.write.ExecContext(ctx, `INSERT INTO archive_state (organization_id, enabled, updated_at)
		SELECT id, ?, ? FROM organizations WHERE id = ? AND deleted_at IS NULL
		ON CONFLICT (organization_id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`, v, ms(at), org)
	if err != nil {
		return fmt.Errorf("couldn't set the archive setting of %s: %w", org, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}

// ArchivePosition implements store.ArchiveStore.
func (s *Store) ArchivePosition(ctx context.Context, org string) (int64, bool, error) {
	var to sql.NullInt64
	var held sql.NullBool
	err := s.read.QueryRowContext(ctx, `SELECT a.archived_to, a.held FROM organizations o LEFT JOIN archive_state a ON a.organization_id = o.id WHERE o.id = ?`, org).
		Scan(&to, &held)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, false, fmt.Errorf("couldn't read the archive position of %s: %w", org, classify(err))
	}
	return to.Int64, held.Bool, nil
}

// SetArchivePosition implements store.ArchiveStore.
func (s *Store) SetArchivePosition(ctx context.Context, org string, to int64, held bool, at time.Time) error {
	if to < 0 {
		return fmt.Errorf("archive position of %s: %d is negative", org, to)
	}
	res, err := s.write.ExecContext(ctx, `INSERT INTO archive_state (organization_id, archived_to, held, updated_at)
		SELECT id, ?, ?, ? FROM organizations WHERE id = ?
		ON CONFLICT (organization_id) DO UPDATE SET archived_to = max(archived_to, excluded.archived_to), held = excluded.held, updated_at = excluded.updated_at`,
		to, held, ms(at), org)
	if err != nil {
		return fmt.Errorf("couldn't record the archive position of %s: %w", org, classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	return nil
}
