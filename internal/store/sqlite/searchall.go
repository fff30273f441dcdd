package sqlite

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/store"
)

// allChunk is the most candidates a search across organizations reads at
// a time when it checks them one by one (it starts with twice the page).
const allChunk = 4096

// SearchAllEvents answers a page of the search across organizations
// (store.Backend). It walks the search file's sort keys, which are one
// order for every organization ((occurred_at in ms) << 21 | slot), so the
// newest events of the deployment are the end of one B-tree whatever the
// number of organizations. The organization-scoped facet terms of
// SearchEvents mean nothing here: free text and the words of an actor, a
// target id or an action narrow the walk through the full-text index's
// body column, the action is checked on event_search, and each candidate
// is then checked against q by the filter of events not indexed yet
// (tail.go), whose rules are SearchEvents' own. A filter whose values
// hold no word (an actor id such as "--") narrows nothing and is checked
// event by event along the walk. Events the indexer has not reached are
// not included (store.Backend says so).
func (s *Store) SearchAllEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	if err := store.CheckAllEventsQuery(q); err != nil {
		return store.EventPage{}, err
	}
	if !utf8.ValidString(q.Text) {
		q.Text = strings.ToValidUTF8(q.Text, " ")
	}
	limit := q.PageLimit()
	desc := q.Order != store.OrderAsc
	scanDesc := desc != (q.Before != "")
	var lo, hi *int64 // key >= lo, key < hi
	bound := func(p **int64, v int64, tighter func(a, b int64) bool) {
		if *p == nil || tighter(v, **p) {
			*p = &v
		}
	}
	if !q.From.IsZero() {
		bound(&lo, sortKeyAt(ceilMS(q.From)), func(a, b int64) bool { return a > b })
	}
	if !q.To.IsZero() {
		bound(&hi, sortKeyAt(ceilMS(q.To)), func(a, b int64) bool { return a < b })
	}
	if c := q.After + q.Before; c != "" {
		key, err := decodeAllCursor(c)
		if err != nil {
			return store.EventPage{}, err
		}
		if (q.After != "") == desc { // towards smaller keys
			bound(&hi, key, func(a, b int64) bool { return a < b })
		} else {
			bound(&lo, key+1, func(a, b int64) bool { return a > b })
		}
	}

	var terms []string
	phrase := func(v string) {
		if hasWord(v) {
			terms = append(terms, "body : "+quotePhrase(v))
		}
	}
	if q.Text != "" {
		text := ftsExpression(q.Text)
		if text == "" {
			return store.EventPage{}, nil // nothing searchable in the text
		}
		terms = append(terms, text)
	}
	phrase(q.ActorID)
	phrase(q.ActorName)
	phrase(q.TargetType)
	phrase(q.TargetID)
	if len(q.Actions) > 0 {
		alts := make([]string, 0, len(q.Actions))
		for _, a := range q.Actions {
			if !hasWord(a) {
				alts = nil // an action without a word: no phrase narrows
				break
			}
			alts = append(alts, "body : "+quotePhrase(a))
		}
		if len(alts) > 0 && len(alts) <= maxFacetActions {
			terms = append(terms, anyOf(alts))
		}
	}
	// Candidates need a look at their record unless the walk's own
	// conditions are the whole filter: free text is matched by the
	// full-text index exactly as SearchEvents matches it, but the phrases
	// of an actor or a target only find candidates.
	check := q.ActorID != "" || q.ActorName != "" || q.TargetType != "" || q.TargetID != ""
	filter := newTailFilter(&q, nil, nil, nil)
	if q.Text != "" {
		t, ok := compileText(q.Text)
		if !ok {
			return store.EventPage{}, nil
		}
		filter.text = &t
	}

	var events []store.StoredEvent
	var cursors []string
	chunk := limit + 1
	if check {
		chunk = 2 * (limit + 1)
	}
	for ; len(events) <= limit; chunk = min(chunk*4, allChunk) {
		b := &queryBuilder{limit: chunk, scanDesc: scanDesc}
		if len(terms) > 0 {
			b.from = `event_fts d CROSS JOIN event_search s ON s.sort_key = d.rowid`
			b.where("d.event_fts MATCH ?", strings.Join(terms, " AND "))
			b.keyCol = "d.rowid"
		} else {
			b.from = `event_search s`
			b.keyCol = "s.sort_key"
		}
		if lo != nil {
			b.where(b.keyCol+" >= ?", *lo)
		}
		if hi != nil {
			b.where(b.keyCol+" < ?", *hi)
		}
		if len(q.Actions) > 0 {
			ph := strings.TrimSuffix(strings.Repeat("?,", len(q.Actions)), ",")
			b.where("s.action IN ("+ph+")", anySlice(q.Actions)...)
		}
		if len(b.conds) == 0 {
			b.where("1")
		}
		sqlText, args := b.build()
		sqlText = strings.Replace(sqlText, "SELECT "+b.keyCol+", s.seq", "SELECT "+b.keyCol+", s.seq, s.organization_id", 1)
		cands, err := s.allCandidates(ctx, sqlText, args)
		if err != nil {
			return store.EventPage{}, err
		}
		recs, err := s.allRecords(ctx, cands)
		if err != nil {
			return store.EventPage{}, err
		}
		for _, c := range cands {
			e, ok := recs[orgSeq{c.org, c.seq}]
			if !ok {
				continue // removed by retention since the index was read
			}
			if check {
				p := pendingRow{org: c.org, seq: c.seq, id: e.ID, record: e.Record, mismatch: e.SchemaMismatch}
				if p.prepare(nil); p.held == "" {
					return store.EventPage{}, fmt.Errorf("couldn't parse stored record %s/%d", c.org, c.seq)
				}
				if !filter.match(&p) {
					continue
				}
			}
			events, cursors = append(events, e), append(cursors, encodeAllCursor(c.key))
			if len(events) > limit {
				break
			}
		}
		if len(cands) < chunk {
			break
		}
		last := cands[len(cands)-1].key
		if scanDesc {
			hi = &last
		} else {
			next := last + 1
			lo = &next
		}
	}
	return store.FinishEventPage(events, cursors, limit, q), nil
}

type allCandidate struct {
	key, seq int64
	org      string
}

type orgSeq struct {
	org string
	seq int64
}

func (s *Store) allCandidates(ctx context.Context, sqlText string, args []any) ([]allCandidate, error) {
	rows, err := s.searchRead.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't search events across organizations: %w", classify(err))
	}
	defer rows.Close()
	var out []allCandidate
	for rows.Next() {
		var c allCandidate
		if err := rows.Scan(&c.key, &c.seq, &c.org); err != nil {
			return nil, fmt.Errorf("couldn't read a search result: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't search events across organizations: %w", classify(err))
	}
	return out, nil
}

// allRecords reads the candidates' stored events, one statement per
// organization among them.
func (s *Store) allRecords(ctx context.Context, cands []allCandidate) (map[orgSeq]store.StoredEvent, error) {
	byOrg := map[string][]int64{}
	var orgs []string
	for _, c := range cands {
		if _, ok := byOrg[c.org]; !ok {
			orgs = append(orgs, c.org)
		}
		byOrg[c.org] = append(byOrg[c.org], c.seq)
	}
	out := make(map[orgSeq]store.StoredEvent, len(cands))
	for _, org := range orgs {
		evs, err := s.eventsBySeq(ctx, org, byOrg[org])
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			out[orgSeq{org, e.Seq}] = e
		}
	}
	return out, nil
}

func encodeAllCursor(key int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a1:" + strconv.FormatInt(key, 10)))
}

func decodeAllCursor(c string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(raw), "a1:") {
		return 0, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	}
	v, err := strconv.ParseInt(string(raw[3:]), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("cursor %q: %w", c, store.ErrInvalidCursor)
	}
	return v, nil
}
