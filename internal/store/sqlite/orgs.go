package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/trailaudit/trail/internal/store"
)

// CreateOrganization inserts a new organization with an empty log.
func (s *Store) CreateOrganization(ctx context.Context, org store.Organization) error {
	var ext any
	if org.ExternalID != "" {
		ext = org.ExternalID
	}
	_, err := s.write.ExecContext(ctx,
		`INSERT INTO organizations (id, name, external_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		org.ID, org.Name, ext, ms(org.CreatedAt), ms(org.UpdatedAt))
	if err != nil {
		return fmt.Errorf("couldn't create organization %s: %w", org.ID, classify(err))
	}
	return nil
}

const orgColumns = `id, name, coalesce(external_id, ''), created_at, updated_at`

func scanOrg(row interface{ Scan(...any) error }) (store.Organization, error) {
	var o store.Organization
	var created, updated int64
	if err := row.Scan(&o.ID, &o.Name, &o.ExternalID, &created, &updated); err != nil {
		return o, err
	}
	o.CreatedAt, o.UpdatedAt = fromMS(created), fromMS(updated)
	return o, nil
}

// Organization returns one organization.
func (s *Store) Organization(ctx context.Context, id string) (store.Organization, error) {
	o, err := scanOrg(s.read.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = ? AND deleted_at IS NULL`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("organization %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("couldn't read organization %s: %w", id, classify(err))
	}
	return o, nil
}

// OrganizationByExternalID returns the organization with this external id.
func (s *Store) OrganizationByExternalID(ctx context.Context, externalID string) (store.Organization, error) {
	o, err := scanOrg(s.read.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organizations WHERE external_id = ? AND deleted_at IS NULL`, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("organization with external id %q: %w", externalID, store.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("couldn't read organization with external id %q: %w", externalID, classify(err))
	}
	return o, nil
}

// ListOrganizations lists organizations by id (ids are time-ordered ULIDs),
// hiding the system organization.
func (s *Store) ListOrganizations(ctx context.Context, p store.ListParams) (store.ListPage[store.Organization], error) {
	return listByID(ctx, s.read, "organizations", orgColumns, "id <> 'org_system' AND deleted_at IS NULL", nil, p, scanOrg,
		func(o store.Organization) string { return o.ID })
}

// NextSeq returns the organization's log size.
func (s *Store) NextSeq(ctx context.Context, org string) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT next_seq FROM organizations WHERE id = ?`, org).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read log size of %s: %w", org, classify(err))
	}
	return n, nil
}

// listByID pages through a table whose primary key is a time-ordered id, as
// WorkOS lists do: the cursors are the ids at the page's edges.
func listByID[T any](ctx context.Context, db *sql.DB, table, columns, where string, args []any,
	p store.ListParams, scan func(interface{ Scan(...any) error }) (T, error), idOf func(T) string) (store.ListPage[T], error) {
	var page store.ListPage[T]
	desc := p.Order != store.OrderAsc
	limit := p.Limit
	if limit <= 0 {
		limit = 10
	}
	conds := []string{}
	if where != "" {
		conds = append(conds, where)
	}
	args = append([]any(nil), args...)
	// Walking backwards (a before cursor) runs the query in the opposite
	// order and flips the page afterwards.
	backwards := p.Before != ""
	switch {
	case p.After != "" && desc, p.Before != "" && !desc:
		conds = append(conds, "id < ?")
	case p.After != "" && !desc, p.Before != "" && desc:
		conds = append(conds, "id > ?")
	}
	if p.After != "" {
		args = append(args, p.After)
	} else if p.Before != "" {
		args = append(args, p.Before)
	}
	scanDesc := desc != backwards
	order := "ASC"
	if scanDesc {
		order = "DESC"
	}
	q := `SELECT ` + columns + ` FROM ` + table
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY id %s LIMIT %d`, order, limit+1)
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list %s: %w", table, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return page, fmt.Errorf("couldn't read %s: %w", table, err)
		}
		page.Data = append(page.Data, v)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("couldn't list %s: %w", table, classify(err))
	}
	return store.FinishPage(page.Data, limit, backwards, p.After != "", idOf), nil
}
