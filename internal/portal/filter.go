package portal

import (
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/store"
)

// filter is the events page's query: what the URL says, so a filtered view
// can be bookmarked, shared and navigated with the back button.
type filter struct {
	// As typed, for the form.
	From, To   string
	Actions    []string
	ActorID    string
	ActorName  string
	TargetType string
	TargetID   string
	Text       string
	// Trail is how the page shows Trail's own events (actions trail.*,
	// "access to this log"): "" with the others, "hide" or "only".
	Trail string
	// Invalid holds the message of each field whose value is not valid,
	// by parameter name, in the page's language (parseFilterIn): the page
	// shows it beside the field, which keeps what was typed.
	Invalid map[string]string
	invalid map[string]phrase
	// Cursors: After pages to older events, Before to newer ones.
	After, Before string

	from, to time.Time // zero = unbounded
	// resolved, when set, are the exact actions the query asks for once
	// the actions chosen and the Trail filter are combined (resolve).
	resolved *[]string
}

// Values of filter.Trail.
const (
	trailHide = "hide"
	trailOnly = "only"
	// trailPrefix starts the actions of Trail's own events.
	trailPrefix = "trail."
)

// Bounds of the filter's values.
const (
	maxFilterLen  = 500 // bytes of one value
	maxActions    = 50
	maxCursorLen  = 200
	eventPageSize = 50
)

// Time forms the date fields accept, all in UTC: what <input
// type="datetime-local"> sends (with or without seconds), a date, or RFC 3339.
var timeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02T15:04:05.000", time.RFC3339Nano}

// parseTime reads a date field. A bare date as the end of a range means the
// end of that day.
func parseTime(v string, end bool) (time.Time, bool) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, true
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseFilter reads the events page's query parameters. Unknown parameters
// are ignored; every problem with a known one is described for the page,
// as phrases written in the page's language (parseFilterIn).
func parseFilter(v url.Values) (filter, []phrase) {
	var f filter
	var problems []phrase
	invalid := func(field string, n phrase) {
		if f.invalid == nil {
			f.invalid = map[string]phrase{}
		}
		if _, ok := f.invalid[field]; !ok {
			f.invalid[field] = n
		}
		problems = append(problems, n)
	}
	// one reads a single-valued parameter. A value that is not valid text
	// stays in its field, cut to the field's length, with the message
	// beside it; the page then runs no query.
	one := func(name string, what label) string {
		vals := v[name]
		if len(vals) == 0 {
			return ""
		}
		if len(vals) > 1 {
			invalid(name, msg("%s is given %d times; give it once.", what, len(vals)))
			return strings.TrimSpace(vals[0])
		}
		s := strings.TrimSpace(vals[0])
		if n, bad := textNote(s, what); bad {
			invalid(name, n)
			return strings.ToValidUTF8(truncateBytes(s, maxFilterLen), "\uFFFD")
		}
		return s
	}
	f.From, f.To = one("from", label("From")), one("to", label("To"))
	f.ActorID, f.ActorName = one("actor_id", label("Actor id")), one("actor_name", label("Actor name"))
	f.TargetType, f.TargetID = one("target_type", label("Target type")), one("target_id", label("Target id"))
	f.Text = one("q", label("Search text"))
	f.After, f.Before = one("after", label("The page cursor")), one("before", label("The page cursor"))
	for _, c := range []string{f.After, f.Before} {
		if len(c) > maxCursorLen {
			problems = append(problems, msg("The page cursor is too long; go back to the first page."))
		}
	}
	if f.After != "" && f.Before != "" {
		problems = append(problems, msg("A page has either an after or a before cursor, not both; go back to the first page."))
		f.After, f.Before = "", ""
	}
	var ok bool
	if f.From != "" {
		if f.from, ok = parseTime(f.From, false); !ok {
			invalid("from", msg("From %q is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).", truncate(f.From, 40)))
		}
	}
	if f.To != "" {
		if f.to, ok = parseTime(f.To, true); !ok {
			invalid("to", msg("To %q is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).", truncate(f.To, 40)))
		}
	}
	if !f.from.IsZero() && !f.to.IsZero() && !f.from.Before(f.to) {
		invalid("to", msg("From must be before To."))
	}
	switch t := one("trail", label("Trail's events")); t {
	case "", trailHide, trailOnly:
		f.Trail = t
	default:
		invalid("trail", msg("Trail's events %q is not a choice: use hide or only.", truncate(t, 40)))
	}
	seen := map[string]bool{}
	for _, a := range v["action"] {
		a = strings.TrimSpace(a)
		n, bad := textNote(a, label("An action"))
		switch {
		case a == "" || seen[a]:
		case bad:
			problems = append(problems, n)
		case len(f.Actions) == maxActions:
			problems = append(problems, msg("Choose at most %d actions.", maxActions))
		default:
			seen[a] = true
			f.Actions = append(f.Actions, a)
		}
	}
	return f, problems
}

// parseFilterIn is parseFilter with its messages written in l's language
// (English when l is nil, as the operator console shows them): beside
// their fields (Invalid) and as the list of problems.
func parseFilterIn(l *locale, v url.Values) (filter, []string) {
	f, notes := parseFilter(v)
	write := func(n phrase) string {
		if l == nil {
			return n.String()
		}
		return n.in(l)
	}
	if len(f.invalid) > 0 {
		f.Invalid = make(map[string]string, len(f.invalid))
		for k, n := range f.invalid {
			f.Invalid[k] = write(n)
		}
	}
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = write(n)
	}
	return f, out
}

// textNote is checkText's message about a value named what, and whether
// there is one.
func textNote(s string, what label) (phrase, bool) {
	switch {
	case len(s) > maxFilterLen:
		return msg("%s is longer than %d characters.", what, maxFilterLen), true
	case !utf8.ValidString(s):
		return msg("%s is not valid text (UTF-8).", what), true
	case strings.ContainsFunc(s, unicode.IsControl):
		return msg("%s contains control characters.", what), true
	}
	return phrase{}, false
}

func checkText(s string) error {
	if n, bad := textNote(s, "The value"); bad {
		return errors.New(n.String())
	}
	return nil
}

// truncateBytes cuts s to at most n bytes.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}

// resolve combines the actions chosen with the Trail filter, given the
// organization's actions: it returns the exact actions to ask for (nil:
// every action) and false when no action can match (the answer is empty).
func (f *filter) resolve(orgActions []string) bool {
	if f.Trail == "" {
		return true
	}
	pick := f.Actions
	if len(pick) == 0 {
		pick = orgActions
	}
	out := []string{}
	for _, a := range pick {
		if strings.HasPrefix(a, trailPrefix) == (f.Trail == trailOnly) {
			out = append(out, a)
		}
	}
	f.resolved = &out
	return len(out) > 0
}

// actions are the exact actions the store is asked for (nil: all).
func (f filter) actions() []string {
	if f.resolved != nil {
		return *f.resolved
	}
	return f.Actions
}

// query is the store query of the filter, in org, newest first.
func (f filter) query(org string) store.EventQuery {
	return store.EventQuery{OrganizationID: org, From: f.from, To: f.to, Actions: f.actions(),
		ActorID: f.ActorID, ActorName: f.ActorName, TargetType: f.TargetType, TargetID: f.TargetID,
		Text: f.Text, Limit: eventPageSize, Order: store.OrderDesc, After: f.After, Before: f.Before}
}

// values are the filter's query parameters without the cursors.
func (f filter) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("from", f.From)
	set("to", f.To)
	for _, a := range f.Actions {
		v.Add("action", a)
	}
	set("actor_id", f.ActorID)
	set("actor_name", f.ActorName)
	set("target_type", f.TargetType)
	set("target_id", f.TargetID)
	set("q", f.Text)
	set("trail", f.Trail)
	return v
}

// active reports whether anything filters.
func (f filter) active() bool { return len(f.values()) > 0 }

// link is path with the filter and one extra parameter (a cursor).
func (f filter) link(path, key, value string) string {
	v := f.values()
	if key != "" {
		v.Set(key, value)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// summary names the filters set, one short phrase each, for the line the
// folded filters show.
func (f filter) summary(l *locale, labels actionLabels) []string {
	var out []string
	add := func(label, v string) {
		if v != "" {
			out = append(out, l.T("%s: %s", l.tr(label), truncate(v, 40)))
		}
	}
	add("From", f.From)
	add("To", f.To)
	switch len(f.Actions) {
	case 0:
	case 1:
		add("Action", labels.label(f.Actions[0]))
	default:
		out = append(out, l.T("%d actions", len(f.Actions)))
	}
	add("Actor id", f.ActorID)
	add("Actor name", f.ActorName)
	add("Target type", f.TargetType)
	add("Target id", f.TargetID)
	add("Search text", f.Text)
	switch f.Trail {
	case trailHide:
		out = append(out, l.T("access to this log hidden"))
	case trailOnly:
		out = append(out, l.T("only access to this log"))
	}
	return out
}
