package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// maxFacetActions bounds how many exact actions one query ORs as facet
// terms; beyond it the query walks the organization's order and filters on
// the action column.
const maxFacetActions = 64

// SearchEvents answers one page of a filtered search: the indexed events
// from the search file, and the tail the indexer has not reached yet
// filtered in Go with the same rules, merged in order (see tail.go).
//
// Every plan on the search file walks in sort-key order and stops after
// limit+1 rows, so the cost of a first page depends on how selective the
// filters are, not on how many events are stored: with no filter but the
// organization (and time), its range of event_search_org; with any other,
// one FTS5 expression over facet tokens and free text (see facets.go). The
// tail costs a pass over its events, bounded by maxBacklog.
func (s *Store) SearchEvents(ctx context.Context, q store.EventQuery) (store.EventPage, error) {
	if !utf8.ValidString(q.Text) {
		// Both the tokenizer and its Go twin see the same text.
		q.Text = strings.ToValidUTF8(q.Text, " ")
	}
	events, cursors, err := s.querySearch(ctx, q)
	if err != nil {
		return store.EventPage{}, err
	}
	return store.FinishEventPage(events, cursors, q.PageLimit(), q), nil
}

// searchPlan is what one search walks, in the search file and in the tail.
type searchPlan struct {
	q        store.EventQuery
	limit    int  // the page's size; the walks take one row more
	scanDesc bool // the walks' order: q's, reversed for a before cursor
	lo, hi   *position
	text     *textQuery // nil without free text
}

// planSearch turns q into bounds, exclusive (lo, hi), from its time range
// and its cursor, and its compiled text. indexed is the search file's
// high-water mark when sq read it already (-1 if not). It reports false
// when nothing can match (free text with nothing searchable).
func planSearch(ctx context.Context, sq searchQuerier, q store.EventQuery, indexed int64) (searchPlan, bool, error) {
	desc := q.Order != store.OrderAsc
	p := searchPlan{q: q, limit: q.PageLimit(), scanDesc: desc != (q.Before != "")}
	if !q.From.IsZero() {
		p.lo = &position{min(max(ceilMS(q.From), 0), maxSortMS), -1, 0}
	}
	if !q.To.IsZero() {
		p.hi = &position{min(max(ceilMS(q.To), 0), maxSortMS), -1, 0}
	}
	if c := q.After + q.Before; c != "" {
		down := (q.After != "") == desc // moving towards smaller positions
		at, err := cursorBound(ctx, sq, q.OrganizationID, c, indexed, down)
		if err != nil {
			return p, false, err
		}
		if down {
			if p.hi == nil || comparePositions(at, *p.hi) < 0 {
				p.hi = &at
			}
		} else if p.lo == nil || comparePositions(at, *p.lo) > 0 {
			p.lo = &at
		}
	}
	if q.Text != "" {
		t, ok := compileText(q.Text)
		if !ok {
			return p, false, nil // nothing searchable in the text
		}
		p.text = &t
	}
	return p, true, nil
}

// querySearch runs q: it walks the search file and the tail the indexer
// has not reached, each for up to limit+1 events, and returns their merge
// in the walks' order with each event's cursor.
func (s *Store) querySearch(ctx context.Context, q store.EventQuery) ([]store.StoredEvent, []string, error) {
	org := q.OrganizationID
	fail := func(err error) ([]store.StoredEvent, []string, error) {
		return nil, nil, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}

	// The search file's high-water mark and its rows must be one
	// snapshot. Usually one statement reads both; expanding prefixes or
	// placing a tail event's cursor needs the mark first, and then all of
	// it is one read transaction.
	var sq searchQuerier = s.searchRead
	indexed := int64(-1) // read with the rows
	if len(q.ActionPrefixes) > 0 || isTailCursor(q.After+q.Before) {
		tx, err := s.searchRead.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return fail(err)
		}
		defer tx.Rollback() //nolint:errcheck // read-only
		if indexed, err = indexedPos(ctx, tx); err != nil {
			return nil, nil, err
		}
		sq = tx
	}
	p, ok, err := planSearch(ctx, sq, q, indexed)
	if err != nil || !ok {
		return nil, nil, err
	}

	keys, seqs, mark, err := s.searchIndexed(ctx, sq, q, p.lo, p.hi, p.limit+1, p.scanDesc, indexed < 0)
	if err != nil {
		return nil, nil, err
	}
	if indexed < 0 {
		indexed = mark
	}
	if tx, ok := sq.(*sql.Tx); ok {
		if err := tx.Rollback(); err != nil {
			return fail(err)
		}
	}

	// The indexed events' records, and with them the last position of
	// the log: read after the mark, so the tail up to it holds every
	// event acknowledged before this read began.
	indexedEvents, last, err := s.eventsAndLast(ctx, org, seqs)
	if err != nil {
		return nil, nil, err
	}
	filter := newTailFilter(&q, p.lo, p.hi, p.text)
	var top []pendingRow
	err = s.scanTail(ctx, org, indexed, last, func(rows []pendingRow) error {
		var err error
		top, err = topTail(rows, org, filter, p.limit+1, p.scanDesc)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	events, cursors := mergeSearch(p, keys, seqs, indexedEvents, top)
	return events, cursors, nil
}

// mergeSearch merges the two walks, the indexed events (their sort keys,
// seqs and records) and the tail's top, in the plan's order, up to
// limit+1 events, with each event's cursor.
func mergeSearch(p searchPlan, keys, seqs []int64, indexedEvents []store.StoredEvent, top []pendingRow) ([]store.StoredEvent, []string) {
	bySeq := make(map[int64]store.StoredEvent, len(indexedEvents))
	for _, e := range indexedEvents {
		bySeq[e.Seq] = e
	}
	var events []store.StoredEvent
	var cursors []string
	i, j := 0, 0
	for len(events) <= p.limit && (i < len(keys) || j < len(top)) {
		takeIndexed := j == len(top)
		if i < len(keys) && j < len(top) {
			c := comparePositions(keyPosition(keys[i]), top[j].at())
			takeIndexed = c < 0 != p.scanDesc
		}
		if takeIndexed {
			// An indexed event whose record is gone was removed by
			// retention after the index was read; it is simply no
			// longer a result.
			if e, ok := bySeq[seqs[i]]; ok {
				events, cursors = append(events, e), append(cursors, encodeCursor(keys[i]))
			}
			i++
			continue
		}
		t := &top[j]
		events = append(events, store.StoredEvent{OrganizationID: p.q.OrganizationID, Seq: t.seq, ID: t.id, Record: t.record, SchemaMismatch: t.mismatch})
		cursors = append(cursors, encodeTailCursor(t.ms, t.pos, t.seq))
		j++
	}
	return events, cursors
}

// searchIndexed walks the search file (sq) for up to n of q's indexed
// events strictly between lo and hi, in sort-key order, and returns their
// sort keys and seqs; withMark, also the high-water mark, read by the same
// statement (one snapshot).
func (s *Store) searchIndexed(ctx context.Context, sq searchQuerier, q store.EventQuery, lo, hi *position, n int, scanDesc, withMark bool) (keys, seqs []int64, mark int64, err error) {
	none := func() ([]int64, []int64, int64, error) {
		if withMark {
			mark, err = indexedPos(ctx, sq)
		}
		return nil, nil, mark, err
	}
	b, ok, err := searchWhere(ctx, sq, q)
	if err != nil {
		return nil, nil, 0, err
	}
	if !ok {
		return none()
	}
	b.limit, b.scanDesc = n, scanDesc
	org := q.OrganizationID
	if lo != nil {
		b.where(b.keyCol+" >= ?", keyFrom(*lo))
	}
	if hi != nil {
		b.where(b.keyCol+" < ?", keyBelow(*hi))
	}
	sqlText, args := b.build()
	if withMark {
		// One statement, one snapshot: the mark as a row of key -1 (sort
		// keys are never negative), then the walk's rows.
		sqlText = `SELECT -1, indexed_pos FROM search_state WHERE id = 1 UNION ALL SELECT * FROM (` + sqlText + `)`
	}

	rows, err := sq.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	defer rows.Close()
	type row struct{ key, seq int64 }
	var found []row
	marked := false
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.seq); err != nil {
			return nil, nil, 0, fmt.Errorf("couldn't read search result: %w", err)
		}
		if r.key == -1 {
			mark, marked = r.seq, true
			continue
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("couldn't search events of %s: %w", org, classify(err))
	}
	if withMark && !marked {
		return nil, nil, 0, fmt.Errorf("couldn't read search high-water mark")
	}
	// In the walk's order, whatever order the compound statement gave.
	slices.SortFunc(found, func(a, b row) int {
		if scanDesc {
			return cmp.Compare(b.key, a.key)
		}
		return cmp.Compare(a.key, b.key)
	})
	for _, r := range found {
		keys, seqs = append(keys, r.key), append(seqs, r.seq)
	}
	return keys, seqs, mark, nil
}

// searchWhere is the walk of the search file for q's filters but its time
// bounds: its tables, key column and conditions. It reports false when no
// indexed event can match.
func searchWhere(ctx context.Context, sq searchQuerier, q store.EventQuery) (*queryBuilder, bool, error) {
	actions := append([]string(nil), q.Actions...)
	if len(q.ActionPrefixes) > 0 {
		expanded, err := expandPrefixes(ctx, sq, q.OrganizationID, q.ActionPrefixes)
		if err != nil {
			return nil, false, err
		}
		actions = append(actions, expanded...)
		slices.Sort(actions)
		actions = slices.Compact(actions)
		if len(actions) == 0 {
			return nil, false, nil // no indexed action of this organization has that prefix
		}
	}

	// Every filter but the organization alone is a facet term or free
	// text of one FTS5 expression, which yields matches in rowid (sort
	// key) order, seeking past non-matches of its rarest term: one walk
	// whatever the combination. The organization check on event_search
	// keeps tenants apart even if two facet hashes met.
	org := q.OrganizationID
	var terms, exact []string // FTS5 terms; facet tokens event_search.exact must hold
	scoped := false           // some term matches only this organization's events
	facetFilter := func(kind facetKind, values ...string) {
		terms = append(terms, facetTermOf(kind, org, values...))
		scoped = true
	}
	// A many-valued filter finds its candidates by the value's phrase in
	// the body, or by its facet token if it has no word (facets.go).
	candidates := func(kind facetKind, value string) {
		if !hasWord(value) {
			facetFilter(kind, value)
			return
		}
		terms = append(terms, "body : "+quotePhrase(value))
	}
	if q.TargetType != "" {
		facetFilter(facetTargetType, q.TargetType)
	}
	if q.TargetID != "" {
		candidates(facetTargetID, q.TargetID)
		if q.TargetType != "" {
			exact = append(exact, facet(facetTarget, org, q.TargetType, q.TargetID))
		} else {
			exact = append(exact, facet(facetTargetID, org, q.TargetID))
		}
	}
	if q.ActorID != "" {
		candidates(facetActorID, q.ActorID)
		exact = append(exact, facet(facetActorID, org, q.ActorID))
	}
	if q.ActorName != "" {
		candidates(facetActorName, q.ActorName)
		exact = append(exact, facet(facetActorName, org, q.ActorName))
	}
	if q.SchemaMismatch {
		facetFilter(facetMismatch)
	}
	actionsInSQL := len(actions) > maxFacetActions
	if len(actions) > 0 && !actionsInSQL {
		alts := make([]string, len(actions))
		for i, a := range actions {
			alts[i] = facetTermOf(facetAction, org, a)
		}
		terms = append(terms, anyOf(alts))
		scoped = true
	}
	if q.Text != "" {
		text := ftsExpression(q.Text)
		if text == "" {
			return nil, false, nil // nothing searchable in the text
		}
		terms = append(terms, text)
	}
	if len(terms) > 0 && !scoped {
		// Phrases and words match in every organization: the
		// organization's own facet keeps FTS5 from walking the others'
		// matches (an actor id such as "system" may be in all of them).
		facetFilter(facetOrganization)
	}

	b := &queryBuilder{}
	if len(terms) > 0 {
		b.from = `event_fts d CROSS JOIN event_search s ON s.sort_key = d.rowid`
		b.where("d.event_fts MATCH ?", strings.Join(terms, " AND "))
		b.keyCol = "d.rowid"
	} else {
		b.from = `event_search s INDEXED BY event_search_org`
		b.keyCol = "s.sort_key"
	}
	b.where("s.organization_id = ?", org)
	for _, tok := range exact {
		// Tokens are fixed-length runs without spaces, separated by
		// spaces: a match is a whole token.
		b.where("instr(s.exact, ?) > 0", tok)
	}
	if actionsInSQL {
		ph := strings.TrimSuffix(strings.Repeat("?,", len(actions)), ",")
		b.where("s.action IN ("+ph+")", anySlice(actions)...)
	}
	return b, true, nil
}

// eventsBySeq reads the stored events of org with the given seqs, in the
// order given, from the log.
func (s *Store) eventsBySeq(ctx context.Context, org string, seqs []int64) ([]store.StoredEvent, error) {
	evs, _, err := s.readEvents(ctx, org, seqs, false)
	return evs, err
}

// eventsAndLast is eventsBySeq that also reads the log's last position
// (0 when it is empty), in the same statement.
func (s *Store) eventsAndLast(ctx context.Context, org string, seqs []int64) ([]store.StoredEvent, int64, error) {
	if len(seqs) == 0 {
		last, err := s.lastPosition(ctx)
		return nil, last, err
	}
	return s.readEvents(ctx, org, seqs, true)
}

// lastPosition reads the log's last position (0 when it is empty).
func (s *Store) lastPosition(ctx context.Context) (int64, error) {
	var last sql.NullInt64
	if err := s.stmts.lastPos.QueryRowContext(ctx).Scan(&last); err != nil {
		return 0, fmt.Errorf("couldn't read the last position: %w", classify(err))
	}
	return last.Int64, nil
}

func (s *Store) readEvents(ctx context.Context, org string, seqs []int64, withLast bool) (_ []store.StoredEvent, last int64, _ error) {
	if len(seqs) == 0 {
		return nil, 0, nil
	}
	ph := strings.TrimSuffix(strings.Repeat("?,", len(seqs)), ",")
	args := make([]any, 0, len(seqs)+1)
	args = append(args, org)
	for _, q := range seqs {
		args = append(args, q)
	}
	query := `SELECT seq, id, record, schema_mismatch, 0 FROM events WHERE organization_id = ? AND seq IN (` + ph + `)`
	if withLast {
		// A row of seq -1 carries max(pos): one statement, one snapshot.
		query += ` UNION ALL SELECT -1, '', NULL, 0, coalesce(max(pos), 0) FROM events`
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't read events of %s: %w", org, classify(err))
	}
	defer rows.Close()
	bySeq := make(map[int64]store.StoredEvent, len(seqs))
	for rows.Next() {
		e := store.StoredEvent{OrganizationID: org}
		var pos int64
		if err := rows.Scan(&e.Seq, &e.ID, &e.Record, &e.SchemaMismatch, &pos); err != nil {
			return nil, 0, fmt.Errorf("couldn't read event of %s: %w", org, err)
		}
		if e.Seq == -1 {
			last = pos
			continue
		}
		bySeq[e.Seq] = e
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("couldn't read events of %s: %w", org, classify(err))
	}
	out := make([]store.StoredEvent, 0, len(seqs))
	for _, q := range seqs {
		// An indexed event whose record is gone was removed by retention
		// after the index was read; it is simply no longer a result.
		if e, ok := bySeq[q]; ok {
			out = append(out, e)
		}
	}
	return out, last, nil
}

// expandPrefixes reads the indexed actions of org that start with one of
// prefixes, in transaction tx of the search file.
func expandPrefixes(ctx context.Context, tx searchQuerier, org string, prefixes []string) ([]string, error) {
	var out []string
	for _, p := range prefixes {
		rows, err := tx.QueryContext(ctx,
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
	q := fmt.Sprintf(`SELECT %s, s.seq FROM %s WHERE %s ORDER BY %s %s LIMIT %d`,
		b.keyCol, b.from, strings.Join(b.conds, " AND "), b.keyCol, b.dir(), b.limit)
	return q, b.args
}

// ftsExpression turns free text into an FTS5 query on the body column:
// every word must match (as a phrase of its tokens, so "user_01" or
// "a@b.com" match as written) and a trailing * makes a word a prefix.
// Operators in the user's text are never interpreted.
func ftsExpression(text string) string {
	var terms []string
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		t := quotePhrase(w)
		if prefix {
			t += "*"
		}
		terms = append(terms, "body : "+t)
	}
	if len(terms) == 0 {
		return ""
	}
	return strings.Join(terms, " AND ")
}

// maxSortMS is the last unix millisecond a sort key can hold (in 2109).
const maxSortMS = math.MaxInt64 >> slotBits

// sortKeyAt is the first sort key of unix millisecond ms, clamped to the
// milliseconds keys can hold: no event is stored before 1970 (the parser
// refuses it) nor far in the future, and a bound such as year 1800 or 9999
// must not wrap around when shifted.
func sortKeyAt(ms int64) int64 { return min(max(ms, 0), maxSortMS) << slotBits }

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

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// FirstSeqSince returns a seq below which org has no event with occurred_at
// at or after since, so that a reader of the events since then can skip the
// log before it; 0 when finding it would mean passing more than limit
// events (the caller reads from the start).
//
// It asks the search file: the least seq of org's indexed events from since
// on (the walk of event_search_org from since's first sort key; spilled
// sort keys are only ever later than their millisecond, so none is missed),
// and the first of org's events the indexer has not reached. indexed_pos is
// read first: every event at or below it is in event_search, every event
// after it is in the scan of the table, however far the indexer moves in
// between. The log size is read before either, so an event appended
// meanwhile, which the caller cannot be reading, changes nothing.
func (s *Store) FirstSeqSince(ctx context.Context, org string, since time.Time, limit int64) (int64, error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("couldn't find the first event of %s since %s: %w", org, since.Format(time.RFC3339), classify(err))
	}
	size, err := s.NextSeq(ctx, org)
	if err != nil {
		return 0, err
	}
	// One read transaction: the high-water mark and the walk see the same
	// search file, even if another process rebuilt it in between.
	tx, err := s.searchRead.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	indexed, err := indexedPos(ctx, tx)
	if err != nil {
		return fail(err)
	}
	first := size
	rows, err := tx.QueryContext(ctx,
		`SELECT seq FROM event_search INDEXED BY event_search_org WHERE organization_id = ? AND sort_key >= ? ORDER BY sort_key LIMIT ?`,
		org, sortKeyAt(since.UnixMilli()), limit+1)
	if err != nil {
		return fail(err)
	}
	var n int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return fail(err)
		}
		first = min(first, seq)
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if n > limit {
		return 0, nil
	}
	// The events after indexed_pos, in pos order, hence in seq order for
	// org: the first of org's is its least unindexed seq. NOT INDEXED keeps
	// the walk on pos (the rowid) rather than on org's whole log; it
	// passes at most limit events.
	var seq sql.NullInt64
	err = s.read.QueryRowContext(ctx,
		`SELECT seq FROM events NOT INDEXED WHERE pos > ? AND pos <= ? AND organization_id = ? ORDER BY pos LIMIT 1`,
		indexed, indexed+limit, org).Scan(&seq)
	switch {
	case err == nil:
		return min(first, seq.Int64), nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	var last sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT max(pos) FROM events`).Scan(&last); err != nil {
		return fail(err)
	}
	if last.Int64 > indexed+limit {
		return 0, nil // the indexer is further behind than limit events
	}
	return first, nil
}

// SearchLag reports the events after the search file's high-water mark, in
// constant time: their count is the distance from the high-water mark to
// the last pos (an upper bound: retention leaves gaps, below the high-water
// mark in practice), and the oldest is the first after it, whose record
// says when it was received.
func (s *Store) SearchLag(ctx context.Context) (store.SearchLag, error) {
	var lag store.SearchLag
	indexed, err := indexedPos(ctx, s.searchRead)
	if err != nil {
		return lag, err
	}
	var pos sql.NullInt64
	var record []byte
	err = s.read.QueryRowContext(ctx,
		`SELECT pos, record, (SELECT max(pos) FROM events) FROM events WHERE pos > ? ORDER BY pos LIMIT 1`, indexed).Scan(&pos, &record, &lag.Events)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lag, nil
	case err != nil:
		return lag, fmt.Errorf("couldn't measure search lag: %w", classify(err))
	}
	lag.Events -= indexed
	r, err := event.ParseRecord(record)
	if err != nil {
		// Not an age of 0, which would say search is fresh.
		return lag, fmt.Errorf("couldn't read the oldest unindexed record (pos %d): %w", pos.Int64, err)
	}
	lag.Oldest = r.ReceivedAt
	return lag, nil
}
