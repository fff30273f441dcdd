package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// SearchAllEvents answers a page of the search across organizations
// (store.Backend), ordered by (occurred_at, organization_id, seq). Every
// index of events begins with the organization, so the page is, for each
// organization, the ordered walk SearchEvents would make of the filter's
// index, stopped after the page (a LATERAL join over organizations), and
// the merge of those walks: its cost grows with the number of
// organizations, not of events. Free text is the exception: its matches
// across organizations are read from the GIN index and sorted, like a
// rare word in SearchEvents. Only keys are merged; the page's records are
// read last, by primary key.
func (s *Store) SearchAllEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	var page store.EventPage
	if err := store.CheckAllEventsQuery(q); err != nil {
		return page, err
	}
	if matchesNothingStorable(q) {
		return page, nil
	}
	limit := q.PageLimit()
	desc := q.Order != store.OrderAsc
	scanDesc := desc != (q.Before != "")
	dir, op := "ASC", ">"
	if scanDesc {
		dir, op = "DESC", "<"
	}
	p := &plan{n: limit + 1, dir: dir}
	var cur *allCursor
	if c := q.After + q.Before; c != "" {
		v, err := decodeAllCursor(c)
		if err != nil {
			return page, err
		}
		cur = &v
	}
	var conds []string
	if !q.From.IsZero() {
		conds = append(conds, "e.occurred_at >= "+p.arg(ceilMS(q.From)))
	}
	if !q.To.IsZero() {
		conds = append(conds, "e.occurred_at < "+p.arg(ceilMS(q.To)))
	}
	switch len(q.Actions) {
	case 0:
	case 1:
		conds = append(conds, "e.action = "+p.arg(q.Actions[0]))
	default:
		conds = append(conds, "e.action = ANY("+p.arg(q.Actions)+"::text[])")
	}
	if q.ActorID != "" {
		conds = append(conds, "e.actor_id = "+p.arg(q.ActorID))
	}
	if q.ActorName != "" {
		conds = append(conds, "e.actor_name = "+p.arg(q.ActorName))
	}
	if q.TargetType != "" || q.TargetID != "" {
		t := []string{"t.organization_id = e.organization_id", "t.occurred_at = e.occurred_at", "t.seq = e.seq"}
		if q.TargetType != "" {
			t = append(t, "t.target_type = "+p.arg(q.TargetType))
		}
		if q.TargetID != "" {
			t = append(t, "t.target_id = "+p.arg(q.TargetID))
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM event_targets t WHERE "+strings.Join(t, " AND ")+")")
	}
	text := ""
	if q.Text != "" {
		if text = searchQuery(q.Text); text == "" {
			return page, nil // nothing searchable in the text
		}
		if tenantPrefix(q.Text) {
			conds = append(conds, "e.search @@ "+p.arg(looseQuery(q.Text))+"::tsquery", textRecheck("e", p.arg(text)))
		} else {
			conds = append(conds, "e.search @@ "+p.arg(text)+"::tsquery")
		}
	}
	order := func(alias string) string {
		return fmt.Sprintf(" ORDER BY %[1]s.occurred_at %[2]s, %[1]s.organization_id %[2]s, %[1]s.seq %[2]s LIMIT %[3]d", alias, dir, p.n)
	}
	var keysSQL string
	if text != "" {
		// The GIN index finds the matches of every organization at once.
		if cur != nil {
			conds = append(conds, fmt.Sprintf("(e.occurred_at, e.organization_id, e.seq) %s (%s, %s, %s)", op, p.arg(cur.at), p.arg(cur.org), p.arg(cur.seq)))
		}
		keysSQL = `SELECT e.occurred_at, e.organization_id, e.seq FROM events e WHERE ` + strings.Join(conds, " AND ") + order("e")
	} else {
		// Within one organization's walk the cursor is a bound on
		// (occurred_at, seq): up to its time for organizations after it
		// in the order, from its event on for its own, and beyond its
		// time for those before it.
		if cur != nil {
			at, org, seq := p.arg(cur.at), p.arg(cur.org), p.arg(cur.seq)
			conds = append(conds, "(e.occurred_at, e.seq) "+op+" ("+at+", CASE WHEN o.id < "+org+" THEN "+strconv.FormatInt(math.MaxInt64, 10)+
				" WHEN o.id = "+org+" THEN "+seq+"::bigint ELSE -1 END)")
		}
		conds = append([]string{"e.organization_id = o.id"}, conds...)
		keysSQL = `SELECT x.occurred_at, x.organization_id, x.seq FROM organizations o CROSS JOIN LATERAL (
			SELECT e.occurred_at, e.organization_id, e.seq FROM events e WHERE ` + strings.Join(conds, " AND ") +
			fmt.Sprintf(" ORDER BY e.occurred_at %[1]s, e.seq %[1]s LIMIT %[2]d", dir, p.n) + `) x` + order("x")
	}
	rows, err := s.pool.Query(ctx, keysSQL, p.args...)
	if err != nil {
		return page, fmt.Errorf("couldn't search events across organizations: %w", classify(err))
	}
	var keys []allCursor
	var k allCursor
	if _, err := pgx.ForEachRow(rows, []any{&k.at, &k.org, &k.seq}, func() error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return page, fmt.Errorf("couldn't search events across organizations: %w", classify(err))
	}
	events, cursors, err := s.eventsOfKeys(ctx, keys)
	if err != nil {
		return page, err
	}
	return store.FinishEventPage(events, cursors, limit, q), nil
}

// eventsOfKeys reads the stored events of keys, in their order, with their
// cursors; an event gone since (retention) is left out.
func (s *Store) eventsOfKeys(ctx context.Context, keys []allCursor) ([]store.StoredEvent, []string, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	orgs := make([]string, len(keys))
	seqs := make([]int64, len(keys))
	for i, k := range keys {
		orgs[i], seqs[i] = k.org, k.seq
	}
	rows, err := s.pool.Query(ctx, `SELECT e.organization_id, e.seq, e.id, e.record, e.schema_mismatch
		FROM unnest($1::text[], $2::bigint[]) AS k(org, seq) JOIN events e ON e.organization_id = k.org AND e.seq = k.seq`, orgs, seqs)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read events across organizations: %w", classify(err))
	}
	type key struct {
		org string
		seq int64
	}
	found := make(map[key]store.StoredEvent, len(keys))
	var e store.StoredEvent
	if _, err := pgx.ForEachRow(rows, []any{&e.OrganizationID, &e.Seq, &e.ID, &e.Record, &e.SchemaMismatch}, func() error {
		found[key{e.OrganizationID, e.Seq}] = e
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("couldn't read events across organizations: %w", classify(err))
	}
	var events []store.StoredEvent
	var cursors []string
	for _, k := range keys {
		if e, ok := found[key{k.org, k.seq}]; ok {
			events, cursors = append(events, e), append(cursors, k.encode())
		}
	}
	return events, cursors, nil
}

// allCursor is a position in the order of the search across
// organizations.
type allCursor struct {
	at  time.Time
	org string
	seq int64
}

func (c allCursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(c.at.UnixMilli(), 10) + ":" + strconv.FormatInt(c.seq, 10) + ":" + c.org))
}

func decodeAllCursor(c string) (allCursor, error) {
	bad := fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return allCursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(raw), "a1:")
	if !ok {
		return allCursor{}, bad
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 || parts[2] == "" || strings.IndexByte(parts[2], 0) >= 0 || len(parts[2]) > 200 || !utf8.ValidString(parts[2]) {
		return allCursor{}, bad
	}
	ms, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || seq < 0 || ms < -1e14 || ms > 1e14 {
		return allCursor{}, bad
	}
	return allCursor{at: time.UnixMilli(ms).UTC(), org: parts[2], seq: seq}, nil
}
