package livetail

import (
	"slices"
	"strings"
	"unicode"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Filter is what a live tail matches: the filters of GET /v1/events that
// make sense for events still to come (no time range, order or cursor).
type Filter struct {
	Actions        []string // exact names (OR)
	ActionPrefixes []string // "user." matches user.signed_in (OR with Actions)
	ActorID        string
	ActorName      string
	TargetType     string
	TargetID       string
	// Text: every word must be a word of the event's text (action,
	// actor, targets, context, metadata values), compared without case.
	Text string
}

// FilterOf takes a search query's filters.
func FilterOf(q store.EventQuery) Filter {
	return Filter{Actions: q.Actions, ActionPrefixes: q.ActionPrefixes, ActorID: q.ActorID, ActorName: q.ActorName,
		TargetType: q.TargetType, TargetID: q.TargetID, Text: q.Text}
}

type compiled struct {
	Filter
	words []string
}

func (f Filter) compile() *compiled {
	return &compiled{Filter: f, words: words(f.Text)}
}

// all reports whether the filter matches every record.
func (c *compiled) all() bool {
	return len(c.Actions)+len(c.ActionPrefixes) == 0 && c.ActorID == "" && c.ActorName == "" &&
		c.TargetType == "" && c.TargetID == "" && len(c.words) == 0
}

func (c *compiled) match(r *event.Record) bool {
	if len(c.Actions)+len(c.ActionPrefixes) > 0 && !slices.Contains(c.Actions, r.Action) &&
		!slices.ContainsFunc(c.ActionPrefixes, func(p string) bool { return strings.HasPrefix(r.Action, p) }) {
		return false
	}
	if c.ActorID != "" && r.Actor.ID != c.ActorID || c.ActorName != "" && r.Actor.Name != c.ActorName {
		return false
	}
	if c.TargetType != "" || c.TargetID != "" {
		if !slices.ContainsFunc(r.Targets, func(t event.Entity) bool {
			return (c.TargetType == "" || t.Type == c.TargetType) && (c.TargetID == "" || t.ID == c.TargetID)
		}) {
			return false
		}
	}
	if len(c.words) == 0 {
		return true
	}
	have := map[string]bool{}
	add := func(s string) {
		for _, w := range words(s) {
			have[w] = true
		}
	}
	add(r.Action)
	for _, e := range append([]event.Entity{r.Actor}, r.Targets...) {
		add(e.ID)
		add(e.Type)
		add(e.Name)
	}
	add(r.Location)
	add(r.UserAgent)
	for _, md := range append([]event.Metadata{r.Metadata, r.ActorMetadata}, r.TargetsMetadata...) {
		for _, v := range md {
			if s, ok := v.(string); ok {
				add(s)
			}
		}
	}
	for _, w := range c.words {
		if !have[w] {
			return false
		}
	}
	return true
}

// words splits s into lower-case words of letters and digits, the way the
// search's text index tokenizes (Unicode letters and numbers; everything
// else separates).
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	})
}
