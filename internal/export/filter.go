package export

import (
	"slices"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// matches reports whether the record is selected by f: occurred_at in
// [RangeStart, RangeEnd), and for each list given, one of its values equal
// to the event's action, actor name, actor id, or one of its targets' types.
func matches(f *store.ExportFilter, r *event.Record) bool {
	if !f.RangeStart.IsZero() && r.OccurredAt.Before(f.RangeStart) {
		return false
	}
	if !f.RangeEnd.IsZero() && !r.OccurredAt.Before(f.RangeEnd) {
		return false
	}
	if len(f.Actions) > 0 && !slices.Contains(f.Actions, r.Action) {
		return false
	}
	if len(f.ActorNames) > 0 && !slices.Contains(f.ActorNames, r.Actor.Name) {
		return false
	}
	if len(f.ActorIDs) > 0 && !slices.Contains(f.ActorIDs, r.Actor.ID) {
		return false
	}
	if len(f.Targets) > 0 {
		found := false
		for _, t := range r.Targets {
			if slices.Contains(f.Targets, t.Type) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
