package postgres

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trailaudit/trail/internal/store"
)

// maxMergedActions bounds how many exact actions one query merges as ordered
// index ranges; beyond it the query walks the organization's order and
// filters.
const maxMergedActions = 32

// SearchEvents answers one page of a filtered search, with the semantics of
// the SQLite backend.
//
// Results are ordered by (occurred_at, seq). Every filter has a btree index
// (organization_id, X, occurred_at, seq), and the page bounds are
// row-comparison keyset predicates on (occurred_at, seq), so a first page is
// an ordered walk of one index that stops after limit+1 rows, whatever the
// size of the log. Several actions (a prefix expanded) are one such walk
// per action, merged. Free text is a tsvector match, walked or read from the
// GIN index depending on how common the words are (see searchText). A
// target type and id together drive the walk from event_targets; either
// alone is checked per event.
func (s *Store) SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	var page store.EventPage
	limit := q.Limit
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	desc := q.Order != store.OrderAsc
	backwards := q.Before != ""
	scanDesc := desc != backwards

	var cur *cursor
	if c := q.After + q.Before; c != "" {
		v, err := decodeCursor(c)
		if err != nil {
			return page, err
		}
		cur = &v
	}

	actions := append([]string(nil), q.Actions...)
	if len(q.ActionPrefixes) > 0 {
		expanded, err := s.expandPrefixes(ctx, q.OrganizationID, q.ActionPrefixes)
		if err != nil {
			return page, err
		}
		actions = append(actions, expanded...)
		if len(actions) == 0 {
			return page, nil // no action of this organization has that prefix
		}
	}
	slices.Sort(actions)
	actions = slices.Compact(actions)

	tsquery := ""
	if q.Text != "" {
		if tsquery = searchQuery(q.Text); tsquery == "" {
			return page, nil // nothing searchable in the text
		}
	}

	b := &builder{}
	org := b.arg(q.OrganizationID)
	key := "e" // the alias whose (occurred_at, seq) orders the walk
	from := "events e"
	b.where("e.organization_id = " + org)
	if q.TargetType != "" && q.TargetID != "" {
		// Driven by the target: one index range of its events in order.
		// received_at in the join prunes each lookup to one partition.
		key = "d"
		from = `event_targets d JOIN events e ON e.organization_id = d.organization_id AND e.seq = d.seq AND e.received_at = d.received_at`
		b.where("d.organization_id = " + org)
		b.where("d.target_type = " + b.arg(q.TargetType))
		b.where("d.target_id = " + b.arg(q.TargetID))
	} else if q.TargetType != "" || q.TargetID != "" {
		// An event may have several targets of one type, or one id under
		// several types: checked per event rather than walked, so that no
		// event comes out twice. A LATERAL subquery with LIMIT 1, unlike
		// EXISTS, cannot become a hash semi-join over every such target
		// of the organization (which the planner picks when it
		// underestimates the matches): it stays a probe of the
		// (organization_id, X, occurred_at, seq) index per event walked.
		col, v := "target_type", q.TargetType
		if q.TargetID != "" {
			col, v = "target_id", q.TargetID
		}
		from += ` CROSS JOIN LATERAL (SELECT 1 FROM event_targets t WHERE t.organization_id = e.organization_id AND t.` + col + ` = ` + b.arg(v) +
			` AND t.occurred_at = e.occurred_at AND t.seq = e.seq AND t.received_at = e.received_at LIMIT 1) t`
	}
	if !q.From.IsZero() {
		b.where(key + ".occurred_at >= " + b.arg(ceilMS(q.From)))
	}
	if !q.To.IsZero() {
		b.where(key + ".occurred_at < " + b.arg(ceilMS(q.To)))
	}
	if cur != nil {
		op := ">"
		if (q.After != "") == desc { // moving towards smaller keys
			op = "<"
		}
		b.where(fmt.Sprintf("(%s.occurred_at, %s.seq) %s (%s, %s)", key, key, op, b.arg(cur.at), b.arg(cur.seq)))
	}
	if q.ActorID != "" {
		b.where("e.actor_id = " + b.arg(q.ActorID))
	}
	if q.ActorName != "" {
		b.where("e.actor_name = " + b.arg(q.ActorName))
	}

	dir := "ASC"
	if scanDesc {
		dir = "DESC"
	}
	order := func(alias string) string {
		return fmt.Sprintf(" ORDER BY %s.occurred_at %s, %s.seq %s", alias, dir, alias, dir)
	}
	limitN := fmt.Sprintf(" LIMIT %d", limit+1)
	var (
		keys []cursor
		err  error
	)
	switch {
	case tsquery != "" && key == "e":
		b.whereActions(actions)
		keys, page.Events, err = s.searchText(ctx, b, from, q.OrganizationID, tsquery, order, limit+1)
	case len(actions) > 1 && len(actions) <= maxMergedActions && key == "e":
		// One ordered, limited walk of (organization_id, action,
		// occurred_at, seq) per action, merged: "user.*" costs the same
		// whether it matches 3 events or 3 million.
		acts := b.arg(actions)
		b.where("e.action = a.action")
		sql := `SELECT m.occurred_at, m.seq, m.id, m.record FROM unnest(` + acts + `::text[]) AS a(action)
			CROSS JOIN LATERAL (SELECT e.occurred_at, e.seq, e.id, e.record FROM ` + from + ` WHERE ` + b.conds() + order("e") + limitN + `) m` +
			order("m") + limitN
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, sql, b.args)
	default:
		b.whereActions(actions)
		if tsquery != "" {
			b.where("e.search @@ " + b.arg(tsquery) + "::tsquery")
		}
		sql := `SELECT ` + key + `.occurred_at, ` + key + `.seq, e.id, e.record FROM ` + from + ` WHERE ` + b.conds() + order(key) + limitN
		keys, page.Events, err = s.searchRows(ctx, q.OrganizationID, sql, b.args)
	}
	if err != nil {
		return page, err
	}

	more := len(page.Events) > limit
	if more {
		page.Events, keys = page.Events[:limit], keys[:limit]
	}
	if backwards {
		slices.Reverse(page.Events)
		slices.Reverse(keys)
	}
	if len(keys) == 0 {
		return page, nil
	}
	first, last := keys[0].encode(), keys[len(keys)-1].encode()
	if backwards {
		page.After = last
		if more {
			page.Before = first
		}
	} else {
		if more {
			page.After = last
		}
		if q.After != "" {
			page.Before = first
		}
	}
	return page, nil
}

// textWindow is how many events, in result order, a free-text search
// checks one by one before it asks the full-text index instead.
var textWindow = 2000

// searchText runs a search with free text in two steps, because which plan
// is fast depends on how common the words are in this organization, which
// no statistic tells (the planner only knows how common they are overall):
//
//  1. Walk the other filters' index in result order, checking each event's
//     vector, for at most textWindow events. Words that occur in more than
//     a few percent of the events fill the page here, at the cost of the
//     page alone.
//  2. Otherwise the words are rare here: take their matches in this
//     organization from the GIN index (the organization's lexeme ANDed in,
//     so other tenants' matches are never read) and sort them. There are
//     few, since the first textWindow events held fewer than a page.
//
// The second step returns the exact answer on its own; the first only
// saves it when it can.
func (s *Store) searchText(ctx context.Context, b *builder, from, org, tsquery string, order func(string) string, n int) ([]cursor, []store.StoredEvent, error) {
	args := append(b.args[:len(b.args):len(b.args)], tsquery)
	text := "$" + strconv.Itoa(len(args))
	walk := `SELECT w.occurred_at, w.seq, w.id, w.record FROM (SELECT e.occurred_at, e.seq, e.id, e.record, e.search FROM ` + from + ` WHERE ` +
		b.conds() + order("e") + fmt.Sprintf(" LIMIT %d", textWindow) + `) w WHERE w.search @@ ` + text + `::tsquery` + order("w") + fmt.Sprintf(" LIMIT %d", n)
	keys, events, err := s.searchRows(ctx, org, walk, args)
	if err != nil || len(keys) == n {
		return keys, events, err
	}
	args[len(args)-1] = tenantQuery(org, tsquery)
	// Ordering by expressions no index holds keeps the planner from
	// walking an index in order again: it reads the matches and sorts.
	sorted := `SELECT e.occurred_at, e.seq, e.id, e.record FROM ` + from + ` WHERE ` + b.conds() + ` AND e.search @@ ` + text + `::tsquery` +
		strings.NewReplacer("e.occurred_at", "(e.occurred_at + interval '0 s')", "e.seq", "(e.seq + 0)").Replace(order("e")) +
		fmt.Sprintf(" LIMIT %d", n)
	return s.searchRows(ctx, org, sorted, args)
}

// searchRows runs a search query returning (occurred_at, seq, id, record).
func (s *Store) searchRows(ctx context.Context, org, sql string, args []any) ([]cursor, []store.StoredEvent, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	var keys []cursor
	var events []store.StoredEvent
	var k cursor
	var e store.StoredEvent
	_, err = pgx.ForEachRow(rows, []any{&k.at, &k.seq, &e.ID, &e.Record}, func() error {
		keys = append(keys, k)
		events = append(events, store.StoredEvent{OrganizationID: org, Seq: k.seq, ID: e.ID, Record: e.Record})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	return keys, events, nil
}

// expandPrefixes returns the organization's known actions that start with
// one of the prefixes.
func (s *Store) expandPrefixes(ctx context.Context, org string, prefixes []string) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT action FROM organization_actions WHERE organization_id = $1 AND EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(prefix) WHERE starts_with(action, p.prefix))`,
		org, prefixes)
	if err != nil {
		return nil, fmt.Errorf("couldn't expand action prefixes %q: %w", prefixes, classify(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("couldn't expand action prefixes %q: %w", prefixes, classify(err))
	}
	return out, nil
}

// builder collects the conditions and parameters of a query.
type builder struct {
	args    []any
	clauses []string
}

// arg adds a parameter and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *builder) where(cond string) { b.clauses = append(b.clauses, cond) }

// whereActions filters on exact actions, if any.
func (b *builder) whereActions(actions []string) {
	switch len(actions) {
	case 0:
	case 1:
		b.where("e.action = " + b.arg(actions[0]))
	default:
		b.where("e.action = ANY(" + b.arg(actions) + "::text[])")
	}
}

func (b *builder) conds() string { return strings.Join(b.clauses, " AND ") }

// ceilMS is the first millisecond not before t. occurred_at holds
// milliseconds, so a bound of 10:00:00.0005 must start at .001: an event
// stored at .000 happened before it.
func ceilMS(t time.Time) time.Time {
	ms := t.Truncate(time.Millisecond)
	if ms.Before(t) {
		ms = ms.Add(time.Millisecond)
	}
	return ms.UTC()
}

// cursor is a position in the result order.
type cursor struct {
	at  time.Time
	seq int64
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte("p1:" + strconv.FormatInt(c.at.UnixMilli(), 10) + ":" + strconv.FormatInt(c.seq, 10)))
}

func decodeCursor(c string) (cursor, error) {
	bad := fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return cursor{}, bad
	}
	rest, ok := strings.CutPrefix(string(raw), "p1:")
	if !ok {
		return cursor{}, bad
	}
	msText, seqText, ok := strings.Cut(rest, ":")
	if !ok {
		return cursor{}, bad
	}
	ms, err1 := strconv.ParseInt(msText, 10, 64)
	seq, err2 := strconv.ParseInt(seqText, 10, 64)
	// Far outside what timestamptz holds, a time would make the query
	// fail instead of simply finding nothing.
	if err1 != nil || err2 != nil || seq < 0 || ms < -1e14 || ms > 1e14 {
		return cursor{}, bad
	}
	return cursor{at: time.UnixMilli(ms).UTC(), seq: seq}, nil
}
