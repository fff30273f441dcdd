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

// CreatePortalLink stores a new portal link.
func (s *Store) CreatePortalLink(ctx context.Context, l store.PortalLink) error {
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO portal_links (token_hash, organization_id, intent, admin_email, external_user_id, return_url, created_at, expires_at)
		 SELECT $1, id, $2, $3, $4, $5, $6, $7 FROM organizations WHERE id = $8`,
		l.Hash[:], l.Intent, l.AdminEmail, l.ExternalUserID, l.ReturnURL, l.CreatedAt, l.ExpiresAt, l.OrganizationID)
	if err != nil {
		return fmt.Errorf("couldn't store a portal link for %s: %w", l.OrganizationID, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %s: %w", l.OrganizationID, store.ErrNotFound)
	}
	return nil
}

const linkColumns = `organization_id, intent, admin_email, external_user_id, return_url, created_at, expires_at, used_at, ended_at`

func scanLink(row pgx.Row, hash [32]byte) (store.PortalLink, error) {
	l := store.PortalLink{Hash: hash}
	var used, ended *time.Time
	if err := row.Scan(&l.OrganizationID, &l.Intent, &l.AdminEmail, &l.ExternalUserID, &l.ReturnURL, &l.CreatedAt, &l.ExpiresAt, &used, &ended); err != nil {
		return l, err
	}
	l.CreatedAt, l.ExpiresAt = l.CreatedAt.UTC(), l.ExpiresAt.UTC()
	if used != nil {
		l.UsedAt = used.UTC()
	}
	if ended != nil {
		l.EndedAt = ended.UTC()
	}
	return l, nil
}

// RedeemPortalLink marks the link used, once: the UPDATE's condition is the
// check, and a concurrent redemption waits on the row lock, then re-checks
// the condition against the committed row (READ COMMITTED) and matches
// nothing.
func (s *Store) RedeemPortalLink(ctx context.Context, hash [32]byte, now time.Time) (store.PortalLink, error) {
	l, err := scanLink(s.pool.QueryRow(ctx,
		`UPDATE portal_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND ended_at IS NULL AND expires_at > $2
		 RETURNING `+linkColumns, hash[:], now), hash)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("couldn't redeem a portal link: %w", classify(err))
	}
	l, err = scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM portal_links WHERE token_hash = $1`, hash[:]), hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return l, fmt.Errorf("portal link: %w", store.ErrNotFound)
	case err != nil:
		return l, fmt.Errorf("couldn't read a portal link: %w", classify(err))
	case !l.UsedAt.IsZero():
		return l, fmt.Errorf("portal link of %s opened at %s: %w", l.OrganizationID, l.UsedAt.Format(time.RFC3339), store.ErrLinkUsed)
	case !l.EndedAt.IsZero():
		return l, fmt.Errorf("portal link of %s revoked at %s: %w", l.OrganizationID, l.EndedAt.Format(time.RFC3339), store.ErrLinkRevoked)
	default:
		return l, fmt.Errorf("portal link of %s expired at %s: %w", l.OrganizationID, l.ExpiresAt.Format(time.RFC3339), store.ErrLinkExpired)
	}
}

// DeletePortalLinks forgets links that expired before cutoff.
func (s *Store) DeletePortalLinks(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM portal_links WHERE expires_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("couldn't delete expired portal links: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}

// PortalLink reads one link.
func (s *Store) PortalLink(ctx context.Context, hash [32]byte) (store.PortalLink, error) {
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM portal_links WHERE token_hash = $1`, hash[:]), hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return l, fmt.Errorf("portal link: %w", store.ErrNotFound)
	case err != nil:
		return l, fmt.Errorf("couldn't read a portal link: %w", classify(err))
	}
	return l, nil
}

// EndPortalSession sets ended_at once; a second call finds the row with
// ended_at set and leaves it.
func (s *Store) EndPortalSession(ctx context.Context, hash [32]byte, now time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE portal_links SET ended_at = coalesce(ended_at, $2) WHERE token_hash = $1 AND used_at IS NOT NULL`,
		hash[:], now)
	if err != nil {
		return fmt.Errorf("couldn't end a portal session: %w", classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("portal session: %w", store.ErrNotFound)
	}
	return nil
}

// EndPortalSessions ends every link of the organization not ended yet:
// open sessions, and links not opened, expired or not (a link a millisecond
// from its expiry may be being redeemed with a clock read just before it, on
// a replica whose clock is behind).
func (s *Store) EndPortalSessions(ctx context.Context, org string, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx,
		`UPDATE portal_links SET ended_at = $2 WHERE organization_id = $1 AND ended_at IS NULL`,
		org, now)
	if err != nil {
		return 0, fmt.Errorf("couldn't end the portal sessions of %s: %w", org, classify(err))
	}
	return tag.RowsAffected(), nil
}

// RevokePortalLinks ends the links of the organization generated for the
// user that are not ended yet, as EndPortalSessions does for all of them.
func (s *Store) RevokePortalLinks(ctx context.Context, org, externalUserID string, now time.Time) (int64, error) {
	if externalUserID == "" {
		return 0, fmt.Errorf("revoking the portal links of %s: no external user id given", org)
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE portal_links SET ended_at = $3 WHERE organization_id = $1 AND external_user_id = $2 AND ended_at IS NULL`,
		org, externalUserID, now)
	if err != nil {
		return 0, fmt.Errorf("couldn't revoke the portal links of %s in %s: %w", externalUserID, org, classify(err))
	}
	return tag.RowsAffected(), nil
}

// OrganizationActions reads organization_actions (written in the ingest
// transaction).
func (s *Store) OrganizationActions(ctx context.Context, org string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT action FROM organization_actions WHERE organization_id = $1 ORDER BY action LIMIT $2`, org, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't list the actions of %s: %w", org, classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("couldn't list the actions of %s: %w", org, classify(err))
	}
	return out, nil
}

// EventHistogram counts over events_org_time (organization_id, occurred_at,
// seq), an index-only range scan. occurred_at has millisecond precision, so
// its epoch in milliseconds is a whole number.
func (s *Store) EventHistogram(ctx context.Context, org string, from time.Time, step time.Duration, n int) ([]int64, error) {
	if n < 1 || n > store.MaxHistogramBuckets || step < time.Millisecond {
		return nil, fmt.Errorf("histogram of %d buckets of %s: need 1 to %d buckets of at least 1ms", n, step, store.MaxHistogramBuckets)
	}
	fromMS, stepMS := from.UnixMilli(), step.Milliseconds()
	to := time.UnixMilli(fromMS + int64(n)*stepMS)
	rows, err := s.pool.Query(ctx,
		`SELECT ((extract(epoch FROM occurred_at) * 1000)::bigint - $2) / $3, count(*) FROM events
		 WHERE organization_id = $1 AND occurred_at >= $4 AND occurred_at < $5 GROUP BY 1`,
		org, fromMS, stepMS, time.UnixMilli(fromMS), to)
	if err != nil {
		return nil, fmt.Errorf("couldn't count the events of %s: %w", org, classify(err))
	}
	defer rows.Close()
	counts := make([]int64, n)
	for rows.Next() {
		var b, c int64
		if err := rows.Scan(&b, &c); err != nil {
			return nil, fmt.Errorf("couldn't count the events of %s: %w", org, classify(err))
		}
		if b >= 0 && b < int64(n) {
			counts[b] += c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't count the events of %s: %w", org, classify(err))
	}
	return counts, nil
}

// SearchHistogram counts the events SearchEvents(q) finds in the buckets:
// one aggregate over the search's conditions (the plan's filters, the
// text through the GIN index with the organization's lexeme ANDed in, a
// target through event_targets), bounded to the buckets' range.
func (s *Store) SearchHistogram(ctx context.Context, q store.EventQuery, from time.Time, step time.Duration, n int) ([]int64, error) {
	if n < 1 || n > store.MaxHistogramBuckets || step < time.Millisecond {
		return nil, fmt.Errorf("histogram of %d buckets of %s: need 1 to %d buckets of at least 1ms", n, step, store.MaxHistogramBuckets)
	}
	org := q.OrganizationID
	counts := make([]int64, n)
	if matchesNothingStorable(q) {
		return counts, nil
	}
	actions, none, err := s.queryActions(ctx, org, q)
	if err != nil {
		return nil, err
	}
	if none {
		return counts, nil
	}
	fromMS, stepMS := from.UnixMilli(), step.Milliseconds()
	lo, hi := time.UnixMilli(fromMS), time.UnixMilli(fromMS+int64(n)*stepMS)
	if !q.From.IsZero() && ceilMS(q.From).After(lo) {
		lo = ceilMS(q.From)
	}
	if !q.To.IsZero() && ceilMS(q.To).Before(hi) {
		hi = ceilMS(q.To)
	}
	if !lo.Before(hi) {
		return counts, nil
	}

	p := &plan{}
	p.org = p.arg(org)
	p.bounds = append(p.bounds, "%[1]s.occurred_at >= "+p.arg(lo), "%[1]s.occurred_at < "+p.arg(hi))
	if q.ActorID != "" {
		p.filters = append(p.filters, "e.actor_id = "+p.arg(q.ActorID))
	}
	if q.ActorName != "" {
		p.filters = append(p.filters, "e.actor_name = "+p.arg(q.ActorName))
	}
	if q.SchemaMismatch {
		p.filters = append(p.filters, "e.schema_mismatch")
	}
	p.whereActions(actions)
	var extra []string
	if q.Text != "" {
		tsquery := searchQuery(q.Text)
		if tsquery == "" {
			return counts, nil // nothing searchable in the text
		}
		if tenantPrefix(q.Text) {
			extra = append(extra, "e.search @@ "+p.arg(tenantQuery(org, looseQuery(q.Text)))+"::tsquery", textRecheck("e", p.arg(tsquery)))
		} else {
			extra = append(extra, "e.search @@ "+p.arg(tenantQuery(org, tsquery))+"::tsquery")
		}
	}
	if q.TargetType != "" || q.TargetID != "" {
		t := []string{"t.organization_id = " + p.org}
		if q.TargetType != "" {
			t = append(t, "t.target_type = "+p.arg(q.TargetType))
		}
		if q.TargetID != "" {
			t = append(t, "t.target_id = "+p.arg(q.TargetID))
		}
		extra = append(extra, `EXISTS (SELECT 1 FROM event_targets t WHERE `+strings.Join(t, " AND ")+
			` AND t.occurred_at = e.occurred_at AND t.seq = e.seq)`)
	}
	sql := `SELECT ((extract(epoch FROM e.occurred_at) * 1000)::bigint - ` + p.arg(fromMS) + `) / ` + p.arg(stepMS) +
		`, count(*) FROM events e` + p.where("e", extra...) + ` GROUP BY 1`
	rows, err := s.pool.Query(ctx, sql, p.args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't count the matching events of %s: %w", org, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var b, c int64
		if err := rows.Scan(&b, &c); err != nil {
			return nil, fmt.Errorf("couldn't count the matching events of %s: %w", org, classify(err))
		}
		if b >= 0 && b < int64(n) {
			counts[b] += c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't count the matching events of %s: %w", org, classify(err))
	}
	return counts, nil
}
