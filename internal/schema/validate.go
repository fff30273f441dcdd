package schema

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/trailaudit/trail/internal/event"
)

// Validator checks events against one action schema version (or none) and
// one actor schema version (or none). It is immutable and safe for
// concurrent use.
type Validator struct {
	action      *Definition // nil: only the actor schema applies
	actor       *Definition // nil: no actor schema
	compiled    *jsonschema.Schema
	targetTypes []string
}

// Compile turns an action schema and the deployment's actor schema (either
// may be nil) into a Validator, through one JSON Schema document:
//
//	{"type":"object","properties":{
//	  "actor":    {"properties":{"metadata": {"allOf":[<action's>, <deployment's>]}}},
//	  "targets":  {"items":{"properties":{"type":{"enum":[types…]}},
//	               "allOf":[{"if":{type is T},"then":{metadata of T}}…]}},
//	  "metadata": <event metadata>}}
//
// where a metadata description is {"type":"object","properties":{k:{"type":T}},
// "required":[k…]}. The instance it validates is built from the event by
// Validate, with every metadata object present (empty when the event has
// none) so that a missing key is reported at its own path.
func Compile(action, actor *Definition) (*Validator, error) {
	v := &Validator{action: action, actor: actor}
	var actorMeta []any
	props := map[string]any{}
	if action != nil {
		actorMeta = append(actorMeta, metaSchema(action.Actor))
		types := make([]any, len(action.Targets))
		var conds []any
		for i, t := range action.Targets {
			types[i] = t.Type
			v.targetTypes = append(v.targetTypes, t.Type)
			if len(t.Metadata) > 0 {
				conds = append(conds, map[string]any{
					"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": t.Type}}},
					"then": map[string]any{"properties": map[string]any{"metadata": metaSchema(t.Metadata)}},
				})
			}
		}
		item := map[string]any{
			"type":       "object",
			"properties": map[string]any{"type": map[string]any{"enum": types}},
		}
		if len(types) == 0 {
			// No target type declared: any target is undeclared.
			item["properties"] = map[string]any{"type": false}
		}
		if len(conds) > 0 {
			item["allOf"] = conds
		}
		props["targets"] = map[string]any{"type": "array", "items": item}
		if action.Metadata != nil {
			props["metadata"] = metaSchema(action.Metadata)
		}
	}
	if actor != nil {
		actorMeta = append(actorMeta, metaSchema(actor.Actor))
	}
	if len(actorMeta) > 0 {
		props["actor"] = map[string]any{"type": "object",
			"properties": map[string]any{"metadata": map[string]any{"allOf": actorMeta}}}
	}
	doc := map[string]any{
		"$schema":    "https://json-schema.org/draft/2020-12/schema",
		"type":       "object",
		"properties": props,
	}
	c := jsonschema.NewCompiler()
	const url = "trail:///event-schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("couldn't load the generated JSON Schema: %w", err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("couldn't compile the generated JSON Schema: %w", err)
	}
	v.compiled = sch
	return v, nil
}

// metaSchema describes a metadata object whose declared keys are required.
func metaSchema(m Metadata) map[string]any {
	props := make(map[string]any, len(m))
	required := make([]any, 0, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		props[k] = map[string]any{"type": m[k]}
		required = append(required, k)
	}
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// instance is the part of the event a schema constrains, as the JSON
// Schema library reads values.
func instance(d *event.Draft) map[string]any {
	targets := make([]any, len(d.Targets))
	for i, t := range d.Targets {
		var md event.Metadata
		if i < len(d.TargetsMetadata) {
			md = d.TargetsMetadata[i]
		}
		targets[i] = map[string]any{"type": t.Type, "metadata": metaValue(md)}
	}
	return map[string]any{
		"actor":    map[string]any{"metadata": metaValue(d.ActorMetadata)},
		"targets":  targets,
		"metadata": metaValue(d.Metadata),
	}
}

func metaValue(md event.Metadata) map[string]any {
	out := make(map[string]any, len(md))
	for k, v := range md {
		out[k] = v // string, bool or json.Number: all JSON values to the library
	}
	return out
}

// Validate checks d and returns its problems (nil when it conforms), as
// WorkOS-style field errors with paths from "event.", sorted by path.
func (v *Validator) Validate(d *event.Draft) []event.FieldError {
	err := v.compiled.Validate(instance(d))
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []event.FieldError{{Field: "event", Code: event.CodeInvalidValue, Message: "could not be checked against the schema: " + err.Error()}}
	}
	var out []event.FieldError
	v.collect(ve, d, &out)
	slices.SortFunc(out, func(a, b event.FieldError) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Code, b.Code))
	})
	out = slices.Compact(out)
	if len(out) > event.MaxFieldErrors {
		out = out[:event.MaxFieldErrors]
	}
	if len(out) == 0 { // every error had causes; should not happen
		out = []event.FieldError{{Field: "event", Code: event.CodeInvalidValue, Message: "does not match the schema"}}
	}
	return out
}

// collect appends the leaves of the library's error tree, translated.
func (v *Validator) collect(e *jsonschema.ValidationError, d *event.Draft, out *[]event.FieldError) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			v.collect(c, d, out)
		}
		return
	}
	loc := e.InstanceLocation
	path := fieldPath(loc)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, event.FieldError{Field: path + "." + keyName(m), Code: event.CodeRequired,
				Message: "is required by the schema" + v.declaredType(loc, m)})
		}
	case *kind.Type:
		*out = append(*out, event.FieldError{Field: path, Code: event.CodeInvalidType,
			Message: fmt.Sprintf("must be a %s, as the schema declares, not a %s", strings.Join(k.Want, " or "), k.Got)})
	case *kind.Enum, *kind.FalseSchema:
		if len(loc) == 3 && loc[0] == "targets" && loc[2] == "type" {
			*out = append(*out, event.FieldError{Field: path, Code: event.CodeInvalidValue, Message: v.undeclaredTarget(loc[1], d)})
			return
		}
		*out = append(*out, event.FieldError{Field: path, Code: event.CodeInvalidValue, Message: "does not match the schema"})
	default:
		*out = append(*out, event.FieldError{Field: path, Code: event.CodeInvalidValue, Message: "does not match the schema"})
	}
}

// declaredType says which type a missing key must have (" (a string)").
func (v *Validator) declaredType(loc []string, key string) string {
	t := ""
	switch {
	case len(loc) == 2 && loc[0] == "actor":
		if v.action != nil {
			t = v.action.Actor[key]
		}
		if t == "" && v.actor != nil {
			t = v.actor.Actor[key]
		}
	case len(loc) == 1 && loc[0] == "metadata" && v.action != nil:
		t = v.action.Metadata[key]
	}
	if t == "" {
		return ""
	}
	return " (a " + t + ")"
}

func (v *Validator) undeclaredTarget(idx string, d *event.Draft) string {
	typ := ""
	if i, err := strconv.Atoi(idx); err == nil && i >= 0 && i < len(d.Targets) {
		typ = d.Targets[i].Type
	}
	if len(v.targetTypes) == 0 {
		return fmt.Sprintf("target type %q is not declared by the schema, which declares no target types", truncate(typ, 100))
	}
	return fmt.Sprintf("target type %q is not declared by the schema; declared: %s", truncate(typ, 100), truncate(strings.Join(v.targetTypes, ", "), 300))
}

// fieldPath turns the library's instance location into a WorkOS path:
// ["targets","2","metadata","k"] → event.targets[2].metadata.k.
func fieldPath(loc []string) string {
	var b strings.Builder
	b.WriteString("event")
	for i, tok := range loc {
		if i > 0 && loc[i-1] == "targets" && i == 1 {
			b.WriteString("[" + tok + "]")
			continue
		}
		b.WriteString("." + keyName(tok))
	}
	return b.String()
}
