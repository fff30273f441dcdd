package console

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/trailaudit/trail/internal/schema"
)

// change is one line of a structural schema diff: what was added, removed
// or changed, at which path of the schema, as an operator reads it.
type change struct {
	Kind string // added, removed, changed
	Path string // targets[type=user].metadata.role
	Text string
}

// schemaDiff compares two action schemas by what they require of events:
// the target types, and the declared metadata keys and their types of the
// actor, of each target type and of the event.
func schemaDiff(from, to *schema.Definition) []change {
	var out []change
	fromTargets, toTargets := targetMap(from), targetMap(to)
	for _, typ := range sortedKeys(fromTargets, toTargets) {
		fm, inFrom := fromTargets[typ]
		tm, inTo := toTargets[typ]
		path := "targets[type=" + typ + "]"
		switch {
		case !inFrom:
			out = append(out, change{"added", path, "target type " + typ + " is allowed" + keysNote(tm)})
		case !inTo:
			out = append(out, change{"removed", path, "target type " + typ + " is no longer allowed"})
		default:
			out = append(out, metadataDiff(path+".metadata", fm, tm)...)
		}
	}
	out = append(out, metadataDiff("actor.metadata", from.Actor, to.Actor)...)
	switch {
	case from.Metadata == nil && to.Metadata != nil:
		out = append(out, change{"added", "metadata", "the event's metadata is described" + keysNote(to.Metadata)})
	case from.Metadata != nil && to.Metadata == nil:
		out = append(out, change{"removed", "metadata", "the event's metadata is no longer checked"})
	default:
		out = append(out, metadataDiff("metadata", from.Metadata, to.Metadata)...)
	}
	return out
}

func metadataDiff(path string, from, to schema.Metadata) []change {
	var out []change
	for _, k := range sortedKeys(from, to) {
		ft, inFrom := from[k]
		tt, inTo := to[k]
		switch {
		case !inFrom:
			out = append(out, change{"added", path + "." + k, "required, " + tt})
		case !inTo:
			out = append(out, change{"removed", path + "." + k, "no longer required (was " + ft + ")"})
		case ft != tt:
			out = append(out, change{"changed", path + "." + k, ft + " → " + tt})
		}
	}
	return out
}

func keysNote(m schema.Metadata) string {
	if len(m) == 0 {
		return ""
	}
	return ", requiring metadata " + joinKeys(m)
}

func joinKeys(m schema.Metadata) string {
	var b bytes.Buffer
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + " (" + m[k] + ")")
	}
	return b.String()
}

func targetMap(d *schema.Definition) map[string]schema.Metadata {
	out := map[string]schema.Metadata{}
	for _, t := range d.Targets {
		out[t.Type] = t.Metadata
	}
	return out
}

// sortedKeys are the keys of a and b together, sorted.
func sortedKeys[V any](a, b map[string]V) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// pretty indents a schema body for reading; a body that is not JSON is
// shown as it is.
func pretty(body []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, body, "", "  ") != nil {
		return string(body)
	}
	return b.String()
}
