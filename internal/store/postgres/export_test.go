package postgres

import (
	"slices"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// SetCheckWindow sets how many events a search with free text or a lone
// target checks one by one before it changes plan, and returns a function
// restoring it.
func SetCheckWindow(n int) (restore func()) {
	old, oldText := checkWindow, textWindow
	checkWindow, textWindow = n, n
	return func() { checkWindow, textWindow = old, oldText }
}

// Columns of the baseline rows, as Append copies them.
var (
	EventColumns  = []string{"seq", "received_at", "occurred_at", "organization_id", "id", "action", "actor_id", "actor_name", "search", "record"}
	TargetColumns = []string{"seq", "received_at", "occurred_at", "organization_id", "target_type", "target_id"}
)

// BaselineRows returns the rows Append would copy into events and
// event_targets for subs, each organization's seqs numbered on from next
// (which it advances), for benchmark baselines that store the same rows
// without Append's work.
func BaselineRows(subs []store.Submission, next map[string]int64) (events, targets [][]any, err error) {
	fields, err := searchFieldsOf(subs)
	if err != nil {
		return nil, nil, err
	}
	for i, sub := range subs {
		for j, e := range sub.Events {
			f := fields[i][j]
			a := event.Accepted{ID: e.ID, OrganizationID: e.OrganizationID, Seq: next[e.OrganizationID], ReceivedAt: e.ReceivedAt}
			next[e.OrganizationID]++
			events = append(events, []any{a.Seq, a.ReceivedAt, f.rec.OccurredAt, a.OrganizationID, a.ID,
				f.rec.Action, f.rec.Actor.ID, f.rec.Actor.Name, f.search, event.AppendRecord(nil, a, e.Tail)})
			for k, t := range f.rec.Targets {
				if slices.ContainsFunc(f.rec.Targets[:k], func(u event.Entity) bool { return u.Type == t.Type && u.ID == t.ID }) {
					continue
				}
				targets = append(targets, []any{a.Seq, a.ReceivedAt, f.rec.OccurredAt, a.OrganizationID, t.Type, t.ID})
			}
		}
	}
	return events, targets, nil
}

// SetTextSteps sets how many stretches of the log a free-text search reads
// from the GIN index before it reads every remaining match, and returns a
// function restoring it.
func SetTextSteps(n int) (restore func()) {
	old := textSteps
	textSteps = n
	return func() { textSteps = old }
}
