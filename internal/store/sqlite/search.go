package sqlite

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/trailaudit/trail/internal/store"
)

// maxMergedActions bounds how many exact actions one query merges as ordered
// index ranges; beyond it the query scans the organization's order and filters.
const maxMergedActions = 32

// SearchEvents answers one page of a filtered search.
//
// Every plan walks one index in sort-key order and stops after limit+1 rows,
// so the cost of a first page depends on how selective the filters are, not
// on how many events are stored. The index that drives the walk is chosen by
// expected selectivity: a target id, then free text, then actor, then action.
func (s *Store) SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	var page store.EventPage
	limit := q.Limit
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	desc := q.Order != store.OrderAsc
	backwards := q.Before != ""
	scanDesc := desc != backwards

	// Bounds on the sort key: [lo, hi).
	var lo, hi *int64
	if !q.From.IsZero() {
		v := ceilMS(q.From) << slotBits
		lo = &v
	}
	if !q.To.IsZero() {
		v := ceilMS(q.To) << slotBits
		hi = &v
	}
	if c := q.After + q.Before; c != "" {
		key, err := decodeCursor(c)
		if err != nil {
			return page, err
		}
		if (q.After != "") == desc { // moving towards smaller keys
			hi = minPtr(hi, key)
		} else {
			v := key + 1
			lo = maxPtr(lo, v)
		}
	}

	actions := append([]string(nil), q.Actions...)
	if len(q.ActionPrefixes) > 0 {
		expanded, err := s.expandPrefixes(ctx, q.OrganizationID, q.ActionPrefixes)
		if err != nil {
			return page, err
		}
		actions = append(actions, expanded...)
		slices.Sort(actions)
		actions = slices.Compact(actions)
		if len(actions) == 0 {
			return page, nil // no action of this organization has that prefix
		}
	}

	b := &queryBuilder{limit: limit + 1, scanDesc: scanDesc}
	ftsQuery := ""
	if q.Text != "" {
		ftsQuery = ftsExpression(q.OrganizationID, q.Text)
		if ftsQuery == "" {
			return page, nil // nothing searchable in the text
		}
	}
	switch {
	case q.TargetType != "" && q.TargetID != "":
		b.from = `event_targets d CROSS JOIN event_search s ON s.sort_key = d.sort_key`
		b.where("d.organization_id = ?", q.OrganizationID)
		b.where("d.target_type = ?", q.TargetType)
		b.where("d.target_id = ?", q.TargetID)
		b.where("s.organization_id = ?", q.OrganizationID)
		b.keyCol = "d.sort_key"
	case q.TargetType != "" || q.TargetID != "":
		// A target type or id alone: walk its own index in order (a rare
		// one would otherwise mean probing every event of the
		// organization). An event with two targets of that type, or two
		// of that id, appears twice in it: DISTINCT keeps one.
		if q.TargetID != "" {
			b.from = `event_targets d INDEXED BY event_targets_id CROSS JOIN event_search s ON s.sort_key = d.sort_key`
			b.where("d.organization_id = ?", q.OrganizationID)
			b.where("d.target_id = ?", q.TargetID)
		} else {
			b.from = `event_targets d INDEXED BY event_targets_type CROSS JOIN event_search s ON s.sort_key = d.sort_key`
			b.where("d.organization_id = ?", q.OrganizationID)
			b.where("d.target_type = ?", q.TargetType)
		}
		b.where("s.organization_id = ?", q.OrganizationID)
		b.keyCol = "d.sort_key"
		b.distinct = true
	case ftsQuery != "":
		b.from = `event_fts d CROSS JOIN event_search s ON s.sort_key = d.rowid`
		b.where("d.event_fts MATCH ?", ftsQuery)
		b.where("s.organization_id = ?", q.OrganizationID)
		b.keyCol = "d.rowid"
		ftsQuery = "" // used
	default:
		b.from = `event_search s INDEXED BY ` + pickIndex(q, actions)
		b.where("s.organization_id = ?", q.OrganizationID)
		b.keyCol = "s.sort_key"
	}
	if lo != nil {
		b.where(b.keyCol+" >= ?", *lo)
	}
	if hi != nil {
		b.where(b.keyCol+" < ?", *hi)
	}
	if q.ActorID != "" {
		b.where("s.actor_id = ?", q.ActorID)
	}
	if q.ActorName != "" {
		b.where("s.actor_name = ?", q.ActorName)
	}
	if q.SchemaMismatch {
		b.where("s.schema_mismatch = 1")
	}
	// Every target filter drives the walk (above), so none is left here.
	if ftsQuery != "" {
		b.where("EXISTS (SELECT 1 FROM event_fts f WHERE f.event_fts MATCH ? AND f.rowid = s.sort_key)", ftsQuery)
	}

	var sqlText string
	var args []any
	// Merging per-action walks pays when the action is the most selective
	// filter; with an actor the actor's index narrows far more (an actor
	// has few events, an action may have millions), and actions filter it.
	actorDriven := q.ActorID != "" || q.ActorName != ""
	// Mismatches are rare: their own partial index narrows more than
	// merging action walks.
	if len(actions) > 0 && strings.HasPrefix(b.from, "event_search") && !actorDriven && !q.SchemaMismatch && len(actions) <= maxMergedActions {
		sqlText, args = b.mergedByAction(actions)
	} else {
		if len(actions) > 0 {
			ph := strings.TrimSuffix(strings.Repeat("?,", len(actions)), ",")
			b.where("s.action IN ("+ph+")", anySlice(actions)...)
		}
		sqlText, args = b.build()
	}

	rows, err := s.searchRead.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return page, fmt.Errorf("couldn't search events of %s: %w", q.OrganizationID, classify(err))
	}
	var keys, seqs []int64
	for rows.Next() {
		var key, seq int64
		if err := rows.Scan(&key, &seq); err != nil {
			rows.Close()
			return page, fmt.Errorf("couldn't read search result: %w", err)
		}
		keys, seqs = append(keys, key), append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("couldn't search events of %s: %w", q.OrganizationID, classify(err))
	}
	if page.Events, err = s.eventsBySeq(ctx, q.OrganizationID, seqs); err != nil {
		return page, err
	}

	more := len(page.Events) > limit
	if more {
		page.Events, keys = page.Events[:limit], keys[:limit]
	}
	if backwards {
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			page.Events[i], page.Events[j] = page.Events[j], page.Events[i]
			keys[i], keys[j] = keys[j], keys[i]
		}
	}
	if len(keys) == 0 {
		return page, nil
	}
	first, last := encodeCursor(keys[0]), encodeCursor(keys[len(keys)-1])
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

// eventsBySeq reads the stored events of org with the given seqs, in the
// order given, from the log.
func (s *Store) eventsBySeq(ctx context.Context, org string, seqs []int64) ([]store.StoredEvent, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	ph := strings.TrimSuffix(strings.Repeat("?,", len(seqs)), ",")
	args := make([]any, 0, len(seqs)+1)
	args = append(args, org)
	for _, q := range seqs {
		args = append(args, q)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, id, record, schema_mismatch FROM events WHERE organization_id = ? AND seq IN (`+ph+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read events of %s: %w", org, classify(err))
	}
	defer rows.Close()
	bySeq := make(map[int64]store.StoredEvent, len(seqs))
	for rows.Next() {
		e := store.StoredEvent{OrganizationID: org}
		if err := rows.Scan(&e.Seq, &e.ID, &e.Record, &e.SchemaMismatch); err != nil {
			return nil, fmt.Errorf("couldn't read event of %s: %w", org, err)
		}
		bySeq[e.Seq] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read events of %s: %w", org, classify(err))
	}
	out := make([]store.StoredEvent, 0, len(seqs))
	for _, q := range seqs {
		// An indexed event whose record is gone was removed by retention
		// after the index was read; it is simply no longer a result.
		if e, ok := bySeq[q]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// pickIndex names the event_search index that walks the query's order while
// narrowing the most: an equality prefix on (organization_id, X) followed by
// sort_key.
func pickIndex(q store.EventQuery, actions []string) string {
	switch {
	case q.ActorID != "":
		return "event_search_actor_id"
	case q.ActorName != "":
		return "event_search_actor_name"
	case q.SchemaMismatch:
		return "event_search_mismatch"
	case len(actions) == 1:
		return "event_search_action"
	default:
		return "event_search_org"
	}
}

func (s *Store) expandPrefixes(ctx context.Context, org string, prefixes []string) ([]string, error) {
	var out []string
	for _, p := range prefixes {
		rows, err := s.searchRead.QueryContext(ctx,
			`SELECT action FROM organization_actions WHERE organization_id = ? AND action >= ? AND action < ? ORDER BY action`,
			org, p, p+"\U0010FFFF")
		if err != nil {
			return nil, fmt.Errorf("couldn't expand action prefix %q: %w", p, classify(err))
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("couldn't expand action prefix %q: %w", p, classify(err))
		}
	}
	return out, nil
}

type queryBuilder struct {
	from     string
	conds    []string
	args     []any
	keyCol   string
	limit    int
	scanDesc bool
	distinct bool
}

func (b *queryBuilder) where(cond string, args ...any) {
	b.conds = append(b.conds, cond)
	b.args = append(b.args, args...)
}

func (b *queryBuilder) dir() string {
	if b.scanDesc {
		return "DESC"
	}
	return "ASC"
}

func (b *queryBuilder) build() (string, []any) {
	distinct := ""
	if b.distinct {
		distinct = "DISTINCT "
	}
	q := fmt.Sprintf(`SELECT %s%s, s.seq FROM %s WHERE %s ORDER BY %s %s LIMIT %d`,
		distinct, b.keyCol, b.from, strings.Join(b.conds, " AND "), b.keyCol, b.dir(), b.limit)
	return q, b.args
}

// mergedByAction runs one ordered, limited index walk per action and merges
// them: each branch reads at most limit rows of (organization_id, action,
// sort_key), so "user.*" costs the same whether it matches 3 or 3 million
// events.
func (b *queryBuilder) mergedByAction(actions []string) (string, []any) {
	var branches []string
	var args []any
	for _, a := range actions {
		conds := append(append([]string(nil), b.conds...), "s.action = ?")
		branches = append(branches, fmt.Sprintf(
			`SELECT * FROM (SELECT s.sort_key, s.seq FROM event_search s INDEXED BY event_search_action WHERE %s ORDER BY s.sort_key %s LIMIT %d)`,
			strings.Join(conds, " AND "), b.dir(), b.limit))
		args = append(args, b.args...)
		args = append(args, a)
	}
	q := fmt.Sprintf(`SELECT m.sort_key, m.seq FROM (%s) m ORDER BY m.sort_key %s LIMIT %d`,
		strings.Join(branches, " UNION ALL "), b.dir(), b.limit)
	return q, args
}

// ftsExpression turns free text into an FTS5 query: every word must match
// (as a phrase of its tokens, so "user_01" or "a@b.com" match as written), a
// trailing * makes a word a prefix, and the organization column restricts
// matches to one tenant. Operators in the user's text are never interpreted.
func ftsExpression(org, text string) string {
	var terms []string
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		t := `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
		if prefix {
			t += "*"
		}
		terms = append(terms, "body : "+t)
	}
	if len(terms) == 0 {
		return ""
	}
	return `org : "` + strings.ReplaceAll(strings.ToLower(org), `"`, `""`) + `" AND ` + strings.Join(terms, " AND ")
}

// ceilMS is the first unix millisecond not before t. Sort keys hold
// milliseconds, so a bound of 10:00:00.0005 must start at .001: an event
// stored at .000 happened before it.
func ceilMS(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

func encodeCursor(key int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("k1:" + strconv.FormatInt(key, 10)))
}

func decodeCursor(c string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(raw), "k1:") {
		return 0, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	}
	v, err := strconv.ParseInt(string(raw[3:]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	}
	return v, nil
}

func minPtr(p *int64, v int64) *int64 {
	if p == nil || v < *p {
		return &v
	}
	return p
}

func maxPtr(p *int64, v int64) *int64 {
	if p == nil || v > *p {
		return &v
	}
	return p
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
