package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// CreateOrganization inserts a new organization with an empty log.
func (s *Store) CreateOrganization(ctx context.Context, org store.Organization) error {
	var ext *string
	if org.ExternalID != "" {
		ext = &org.ExternalID
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO organizations (id, name, external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		org.ID, org.Name, ext, org.CreatedAt, org.UpdatedAt)
	if err != nil {
		return fmt.Errorf("couldn't create organization %s: %w", org.ID, classify(err))
	}
	return nil
}

const orgColumns = `id, name, coalesce(external_id, ''), created_at, updated_at`

func scanOrg(row pgx.Row) (store.Organization, error) {
	var o store.Organization
	if err := row.Scan(&o.ID, &o.Name, &o.ExternalID, &o.CreatedAt, &o.UpdatedAt); err != nil {
		return o, err
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

// Organization returns one organization.
func (s *Store) Organization(ctx context.Context, id string) (store.Organization, error) {
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE id = $1 AND deleted_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("organization %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("couldn't read organization %s: %w", id, classify(err))
	}
	return o, nil
}

// OrganizationByExternalID returns the organization with this external id.
func (s *Store) OrganizationByExternalID(ctx context.Context, externalID string) (store.Organization, error) {
	if strings.IndexByte(externalID, 0) >= 0 {
		// PostgreSQL text cannot hold NUL: no organization has it.
		return store.Organization{}, fmt.Errorf("organization with external id %q: %w", externalID, store.ErrNotFound)
	}
	o, err := scanOrg(s.pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organizations WHERE external_id = $1 AND deleted_at IS NULL`, externalID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	return listByID(ctx, s, "organizations", orgColumns, "id <> 'org_system' AND deleted_at IS NULL", nil, p, scanOrg,
		func(o store.Organization) string { return o.ID })
}

// NextSeq returns the organization's log size.
func (s *Store) NextSeq(ctx context.Context, org string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT next_seq FROM organizations WHERE id = $1`, org).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("organization %s: %w", org, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("couldn't read log size of %s: %w", org, classify(err))
	}
	return n, nil
}

// listByID pages through a table whose primary key is a time-ordered id, as
// WorkOS lists do: the cursors are the ids at the page's edges. where may
// use $1…$len(args).
func listByID[T any](ctx context.Context, s *Store, table, columns, where string, args []any,
	p store.ListParams, scan func(pgx.Row) (T, error), idOf func(T) string) (store.ListPage[T], error) {
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
	cursor := p.After
	if cursor == "" {
		cursor = p.Before
	}
	if cursor != "" {
		args = append(args, cursor)
		op := ">"
		if (p.After != "") == desc {
			op = "<"
		}
		conds = append(conds, "id "+op+" $"+strconv.Itoa(len(args)))
	}
	order := "ASC"
	if desc != backwards {
		order = "DESC"
	}
	q := `SELECT ` + columns + ` FROM ` + table
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY id %s LIMIT %d`, order, limit+1)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't list %s: %w", table, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return page, fmt.Errorf("couldn't read %s: %w", table, classify(err))
		}
		page.Data = append(page.Data, v)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("couldn't list %s: %w", table, classify(err))
	}
	return store.FinishPage(page.Data, limit, backwards, p.After != "", idOf), nil
}
