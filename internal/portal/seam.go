package portal

import (
	"net/http"
	"net/url"

	"github.com/trailaudit/trail/internal/store"
)

// The operator console (internal/console) shows events with the Admin
// Portal's filters: the same query parameters, the same checks and
// messages, the same store query. It reaches them through these exported
// names rather than a copy, so that a filter added here is the console's
// too.

// Filter is the events pages' query as parsed from the URL: the form's
// values as typed (From, To, Actions, ActorID, ActorName, TargetType,
// TargetID, Text) and the page cursors (After, Before).
type Filter = filter

// EventPageSize is how many events an events page shows.
const EventPageSize = eventPageSize

// ParseFilter reads the events page's query parameters; every problem with
// a known one is described for the page, in English (the portal writes the
// same messages in its page's language), and unknown ones are ignored.
func ParseFilter(v url.Values) (Filter, []string) { return parseFilterIn(nil, v) }

// LiveFilterValues drops what a live view has no use for (dates and page
// cursors) before ParseFilter.
func LiveFilterValues(v url.Values) url.Values { return liveFilterValues(v) }

// LastEventSeq is where a reconnecting EventSource resumes: after the seq
// in its Last-Event-ID header; -1 (the log's end) without one.
func LastEventSeq(r *http.Request) int64 { return lastEventSeq(r) }

// Query is the store query of the filter in org ("" for the search across
// organizations), newest first, a page of EventPageSize.
func (f filter) Query(org string) store.EventQuery { return f.query(org) }

// Values are the filter's query parameters without the cursors.
func (f filter) Values() url.Values { return f.values() }

// Active reports whether anything filters.
func (f filter) Active() bool { return f.active() }

// Link is path with the filter and one extra parameter (a cursor), or
// none when key is "".
func (f filter) Link(path, key, value string) string { return f.link(path, key, value) }

// CheckText is the portal's check of one filter value: its length, valid
// UTF-8 and no control characters.
func CheckText(s string) error { return checkText(s) }
