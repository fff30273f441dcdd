package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/store"
)

// CreatePortalLink stores a new portal link.
func (s *Store) CreatePortalLink(ctx context.Context, l store.PortalLink) error {
	res, err := s.write.ExecContext(ctx,
		`INSERT INTO portal_links (token_hash, organization_id, intent, admin_email, external_user_id, return_url, created_at, expires_at)
		 SELECT ?, id, ?, ?, ?, ?, ?, ? FROM organizations WHERE id = ?`,
		l.Hash[:], l.Intent, l.AdminEmail, l.ExternalUserID, l.ReturnURL, ms(l.CreatedAt), ms(l.ExpiresAt), l.OrganizationID)
	if err != nil {
		return fmt.Errorf("couldn't store a portal link for %s: %w", l.OrganizationID, classify(err))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("organization %s: %w", l.OrganizationID, store.ErrNotFound)
	}
	return nil
}

const linkColumns = `organization_id, intent, admin_email, external_user_id, return_url, created_at, expires_at, used_at, ended_at`

func scanLink(row *sql.Row, hash [32]byte) (store.PortalLink, error) {
	l := store.PortalLink{Hash: hash}
	var created, expires int64
	var used, ended sql.NullInt64
	if err := row.Scan(&l.OrganizationID, &l.Intent, &l.AdminEmail, &l.ExternalUserID, &l.ReturnURL, &created, &expires, &used, &ended); err != nil {
		return l, err
	}
	l.CreatedAt, l.ExpiresAt, l.UsedAt, l.EndedAt = fromMS(created), fromMS(expires), fromNullMS(used), fromNullMS(ended)
	return l, nil
}

// RedeemPortalLink marks the link used, once: the UPDATE's condition is the
// check, so of two concurrent redemptions only one changes the row.
func (s *Store) RedeemPortalLink(ctx context.Context, hash [32]byte, now time.Time) (store.PortalLink, error) {
	l, err := scanLink(s.write.QueryRowContext(ctx,
		`UPDATE portal_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND ended_at IS NULL AND expires_at > ?
		 RETURNING `+linkColumns, ms(now), hash[:], ms(now)), hash)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("couldn't redeem a portal link: %w", classify(err))
	}
	// Not redeemed: say why.
	l, err = scanLink(s.write.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM portal_links WHERE token_hash = ?`, hash[:]), hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
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
	res, err := s.write.ExecContext(ctx, `DELETE FROM portal_links WHERE expires_at < ?`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("couldn't delete expired portal links: %w", classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("couldn't delete expired portal links: %w", classify(err))
	}
	return n, nil
}

// PortalLink reads one link.
func (s *Store) PortalLink(ctx context.Context, hash [32]byte) (store.PortalLink, error) {
	l, err := scanLink(s.read.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM portal_links WHERE token_hash = ?`, hash[:]), hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return l, fmt.Errorf("portal link: %w", store.ErrNotFound)
	case err != nil:
		return l, fmt.Errorf("couldn't read a portal link: %w", classify(err))
	}
	return l, nil
}

// EndPortalSession sets ended_at once; a second call finds the row with
// ended_at set and leaves it.
func (s *Store) EndPortalSession(ctx context.Context, hash [32]byte, now time.Time) error {
	var org string
	err := s.write.QueryRowContext(ctx,
		`UPDATE portal_links SET ended_at = coalesce(ended_at, ?) WHERE token_hash = ? AND used_at IS NOT NULL
		 RETURNING organization_id`, ms(now), hash[:]).Scan(&org)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("portal session: %w", store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("couldn't end a portal session: %w", classify(err))
	}
	return nil
}

// EndPortalSessions ends every link of the organization not ended yet:
// open sessions, and links not opened, expired or not (a link a millisecond
// from its expiry may be being redeemed with a clock read just before it).
func (s *Store) EndPortalSessions(ctx context.Context, org string, now time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx,
		`UPDATE portal_links SET ended_at = ? WHERE organization_id = ? AND ended_at IS NULL`,
		ms(now), org)
	if err != nil {
		return 0, fmt.Errorf("couldn't end the portal sessions of %s: %w", org, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("couldn't end the portal sessions of %s: %w", org, classify(err))
	}
	return n, nil
}

// RevokePortalLinks ends the links of the organization generated for the
// user that are not ended yet, as EndPortalSessions does for all of them.
func (s *Store) RevokePortalLinks(ctx context.Context, org, externalUserID string, now time.Time) (int64, error) {
	if externalUserID == "" {
		return 0, fmt.Errorf("revoking the portal links of %s: no external user id given", org)
	}
	res, err := s.write.ExecContext(ctx,
		`UPDATE portal_links SET ended_at = ? WHERE organization_id = ? AND external_user_id = ? AND ended_at IS NULL`,
		ms(now), org, externalUserID)
	if err != nil {
		return 0, fmt.Errorf("couldn't revoke the portal links of %s in %s: %w", externalUserID, org, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("couldn't revoke the portal links of %s in %s: %w", externalUserID, org, classify(err))
	}
	return n, nil
}

// OrganizationActions reads the search file's list of the organization's
// actions (filled by the indexer), and adds those of its events the
// indexer has not reached yet (read in the same snapshot as the
// high-water mark; see tail.go).
func (s *Store) OrganizationActions(ctx context.Context, org string, limit int) ([]string, error) {
	fail := func(err error) ([]string, error) {
		return nil, fmt.Errorf("couldn't list the actions of %s: %w", org, classify(err))
	}
	tx, err := s.searchRead.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT action FROM organization_actions WHERE organization_id = ? ORDER BY action LIMIT ?`, org, limit)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return fail(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	rows.Close()
	tx.Rollback() //nolint:errcheck // read-only

	n := len(out)
	last, err := s.lastPosition(ctx)
	if err != nil {
		return nil, err
	}
	err = s.scanTail(ctx, org, indexed, last, func(rows []pendingRow) error {
		return orgRows(rows, org, func(p *pendingRow) { out = append(out, strings.Clone(p.held.action())) })
	})
	if err != nil {
		return nil, err
	}
	if len(out) == n {
		return out, nil
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return out[:min(len(out), max(limit, 0))], nil
}

// EventHistogram counts over the (organization_id, sort_key) index: the sort
// key's high bits are occurred_at in unix milliseconds, so a bucket is one
// range of the index.
func (s *Store) EventHistogram(ctx context.Context, org string, from time.Time, step time.Duration, n int) ([]int64, error) {
	if n < 1 || n > store.MaxHistogramBuckets || step < time.Millisecond {
		return nil, fmt.Errorf("histogram of %d buckets of %s: need 1 to %d buckets of at least 1ms", n, step, store.MaxHistogramBuckets)
	}
	fromMS, stepMS := ms(from), step.Milliseconds()
	fail := func(err error) ([]int64, error) {
		return nil, fmt.Errorf("couldn't count the events of %s: %w", org, classify(err))
	}
	// The high-water mark and the counts in one snapshot; then the events
	// after the mark (see tail.go).
	tx, err := s.searchRead.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return nil, err
	}
	// One counting walk of an index range per bucket: each is a tight loop
	// over (organization_id, sort_key) with nothing computed per row and no
	// sorting (a GROUP BY on the bucket would sort every row).
	rows, err := tx.QueryContext(ctx,
		`WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i + 1 < ?4)
		 SELECT i, (SELECT count(*) FROM event_search INDEXED BY event_search_org
		            WHERE organization_id = ?1 AND sort_key >= (max(min(?2 + i * ?3, ?6), 0) << ?5)
		                                       AND sort_key < (max(min(?2 + (i + 1) * ?3, ?6), 0) << ?5))
		 FROM b`,
		org, fromMS, stepMS, n, slotBits, maxSortMS) // bounds clamped as sortKeyAt does
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
	rows.Close()
	tx.Rollback() //nolint:errcheck // read-only

	// Bucket i is [bound(i), bound(i+1)) in milliseconds, clamped as the
	// query's sort-key bounds are.
	bound := func(i int) int64 { return max(min(fromMS+int64(i)*stepMS, maxSortMS), 0) }
	last, err := s.lastPosition(ctx)
	if err != nil {
		return nil, err
	}
	err = s.scanTail(ctx, org, indexed, last, func(rows []pendingRow) error {
		return orgRows(rows, org, func(p *pendingRow) {
			i := sort.Search(n+1, func(i int) bool { return bound(i) > p.ms }) - 1
			if i >= 0 && i < n && p.ms < bound(i+1) {
				counts[i]++
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// SearchHistogram counts the events SearchEvents(q) finds in the buckets:
// the indexed ones with one aggregate over the search's walk (the same
// FTS5 expression and conditions, bounded to the buckets' range of sort
// keys), then the events after the search file's high-water mark with the
// search's tail filter, as the search reads them.
func (s *Store) SearchHistogram(ctx context.Context, q store.EventQuery, from time.Time, step time.Duration, n int) ([]int64, error) {
	if n < 1 || n > store.MaxHistogramBuckets || step < time.Millisecond {
		return nil, fmt.Errorf("histogram of %d buckets of %s: need 1 to %d buckets of at least 1ms", n, step, store.MaxHistogramBuckets)
	}
	org := q.OrganizationID
	if !utf8.ValidString(q.Text) {
		q.Text = strings.ToValidUTF8(q.Text, " ") // as SearchEvents
	}
	counts := make([]int64, n)
	fromMS, stepMS := ms(from), step.Milliseconds()
	// Bucket i is [bound(i), bound(i+1)) in milliseconds, clamped as sort
	// keys are (sortKeyAt).
	clamp := func(v int64) int64 { return max(min(v, maxSortMS), 0) }
	bound := func(i int) int64 { return clamp(fromMS + int64(i)*stepMS) }
	loMS, hiMS := bound(0), bound(n)
	if !q.From.IsZero() {
		loMS = max(loMS, clamp(ceilMS(q.From)))
	}
	if !q.To.IsZero() {
		hiMS = min(hiMS, clamp(ceilMS(q.To)))
	}
	if loMS >= hiMS {
		return counts, nil
	}
	var text *textQuery
	if q.Text != "" {
		t, ok := compileText(q.Text)
		if !ok {
			return counts, nil // nothing searchable in the text
		}
		text = &t
	}
	bucket := func(at int64) int {
		i := sort.Search(n+1, func(i int) bool { return bound(i) > at }) - 1
		if i >= 0 && i < n && at < bound(i+1) {
			return i
		}
		return -1
	}
	fail := func(err error) ([]int64, error) {
		return nil, fmt.Errorf("couldn't count the matching events of %s: %w", org, classify(err))
	}

	// The high-water mark and the indexed counts in one snapshot.
	tx, err := s.searchRead.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return nil, err
	}
	b, ok, err := searchWhere(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	if ok {
		b.where(b.keyCol+" >= ?", sortKeyAt(loMS))
		b.where(b.keyCol+" < ?", sortKeyAt(hiMS))
		// A row's bucket from its key's milliseconds; grouped over at
		// most MaxHistogramBuckets values.
		query := fmt.Sprintf(`SELECT ((%s >> %d) - ?) / ?, count(*) FROM %s WHERE %s GROUP BY 1`,
			b.keyCol, slotBits, b.from, strings.Join(b.conds, " AND "))
		rows, err := tx.QueryContext(ctx, query, append([]any{fromMS, stepMS}, b.args...)...)
		if err != nil {
			return fail(err)
		}
		defer rows.Close()
		for rows.Next() {
			var i, c int64
			if err := rows.Scan(&i, &c); err != nil {
				return fail(err)
			}
			if i >= 0 && i < int64(n) {
				counts[i] += c
			}
		}
		if err := rows.Err(); err != nil {
			return fail(err)
		}
		rows.Close()
	}
	tx.Rollback() //nolint:errcheck // read-only

	// The events after the mark, read after it (see tail.go).
	last, err := s.lastPosition(ctx)
	if err != nil {
		return nil, err
	}
	filter := newTailFilter(&q, &position{loMS, -1, 0}, &position{hiMS, -1, 0}, text)
	err = s.scanTail(ctx, org, indexed, last, func(rows []pendingRow) error {
		return orgRowsFrom(rows, org, false, func(p *pendingRow) {
			if filter.match(p) {
				if i := bucket(p.ms); i >= 0 {
					counts[i]++
				}
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}
