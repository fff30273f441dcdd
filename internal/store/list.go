package store

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Helpers both backends use to build list queries, so that paging and
// cursors behave the same on each.

// ListShape is a list's limit (default 10), scan direction and the
// comparison its cursor makes ("" without a cursor). A before cursor scans
// the other way; FinishPage flips the page back.
func ListShape(p ListParams) (limit int, scanDesc bool, op string) {
	limit = p.Limit
	if limit <= 0 {
		limit = 10
	}
	desc := p.Order != OrderAsc
	scanDesc = desc != (p.Before != "")
	switch {
	case p.After != "" && desc, p.Before != "" && !desc:
		op = "<"
	case p.After != "" || p.Before != "":
		op = ">"
	}
	return limit, scanDesc, op
}

// DirWord is the SQL word for a scan direction.
func DirWord(desc bool) string {
	if desc {
		return "DESC"
	}
	return "ASC"
}

// VersionCursor reads a schema list cursor: a decimal version in the range
// of a 32-bit signed integer (PostgreSQL's integer column; SQLite holds it
// too, so both refuse the same cursors). Anything else is ErrInvalidCursor.
func VersionCursor(p ListParams) (int, error) {
	c := p.After + p.Before
	if c == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(c)
	if err != nil || v < 0 || v > math.MaxInt32 || strconv.Itoa(v) != c {
		return 0, fmt.Errorf("cursor %q: %w", c, ErrInvalidCursor)
	}
	return v, nil
}

// FinishEventPage is FinishPage for SearchEvents: events holds the rows of
// the query in scan order (it asked for limit+1), cursors[i] the cursor of
// events[i], and q the query with its paging.
func FinishEventPage(events []StoredEvent, cursors []string, limit int, q EventQuery) EventPage {
	type row struct {
		e      StoredEvent
		cursor string
	}
	rows := make([]row, len(events))
	for i, e := range events {
		rows[i] = row{e, cursors[i]}
	}
	p := FinishPage(rows, limit, q.Before != "", q.After != "", func(r row) string { return r.cursor })
	page := EventPage{Before: p.Before, After: p.After}
	if len(p.Data) > 0 {
		page.Events = make([]StoredEvent, len(p.Data))
		for i, r := range p.Data {
			page.Events[i] = r.e
		}
	}
	return page
}

// PageLimit is the page size q asks for: Limit when it is 1–100, else 10.
func (q EventQuery) PageLimit() int {
	if q.Limit <= 0 || q.Limit > 100 {
		return 10
	}
	return q.Limit
}

// CheckAllEventsQuery is what SearchAllEvents refuses in q, shared by the
// backends: nil when q can be answered.
func CheckAllEventsQuery(q EventQuery) error {
	switch {
	case q.OrganizationID != "":
		return errors.New("a search across organizations names no organization")
	case len(q.ActionPrefixes) > 0:
		return errors.New("a search across organizations takes exact actions, not prefixes")
	case q.SchemaMismatch:
		return errors.New("a search across organizations does not filter on schema mismatches")
	}
	return nil
}
