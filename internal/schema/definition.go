// Package schema owns Trail's versioned event schemas: the WorkOS-style
// schema body (POST /audit_logs/actions/{action}/schemas, and Trail's
// deployment-wide actor schema), its parsing and canonical encoding, its
// compilation into a JSON Schema (github.com/santhosh-tekuri/jsonschema/v6,
// no hand-written type checks), the validation of an event's actor,
// targets and metadata against it with WorkOS-style field errors, and the
// in-memory cache of compiled schemas (Registry).
//
// The rules a schema states:
//
//   - every metadata key it declares (for the actor, for each target type,
//     for the event) must be present, with the declared type (string,
//     number or boolean); keys it does not declare are allowed;
//   - every target of the event must be of a type it declares;
//   - the deployment's actor schema, when there is one, applies to the actor
//     of every event on top of the action's own schema.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/event"
)

// Property types a schema may declare for a metadata key (WorkOS's).
const (
	TypeString  = "string"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
)

// Limits of a schema body.
const (
	MaxTargets    = 100 // target types of one schema
	maxTypeLength = event.MaxEntityFieldLen
)

// Metadata describes a metadata object: each declared key and its type.
type Metadata map[string]string

// Target is a declared target type and its metadata (nil: none declared).
type Target struct {
	Type     string
	Metadata Metadata
}

// Definition is one schema as WorkOS describes it. For the actor schema only
// Actor is used.
type Definition struct {
	Targets []Target
	Actor   Metadata // actor metadata (nil: none declared)
	// Metadata is the event's metadata; nil when the schema does not
	// describe it (it is then not checked).
	Metadata Metadata
	// DisplayName and Description are how the Admin Portal shows the
	// events of this action and version ("" : the action's code); they
	// check nothing.
	DisplayName, Description string
}

// Limits of an action schema's display texts.
const (
	MaxDisplayName = 100
	MaxDescription = 500
)

// wire shapes, as the WorkOS SDKs send and read them.

type metadataJSON struct {
	Type       string                  `json:"type"`
	Properties map[string]propertyJSON `json:"properties"`
}

type propertyJSON struct {
	Type string `json:"type"`
}

type targetJSON struct {
	Type     string        `json:"type"`
	Metadata *metadataJSON `json:"metadata,omitempty"`
}

type actorJSON struct {
	Metadata metadataJSON `json:"metadata"`
}

// ActionJSON is the definition part of WorkOS's audit_log_schema object.
type ActionJSON struct {
	Targets     []targetJSON  `json:"targets"`
	Actor       actorJSON     `json:"actor"`
	Metadata    *metadataJSON `json:"metadata"`
	DisplayName string        `json:"display_name,omitempty"`
	Description string        `json:"description,omitempty"`
}

// ActorJSON is the definition part of Trail's actor_schema object.
type ActorJSON struct {
	Metadata metadataJSON `json:"metadata"`
}

func metaJSON(m Metadata) metadataJSON {
	out := metadataJSON{Type: "object", Properties: make(map[string]propertyJSON, len(m))}
	for k, t := range m {
		out.Properties[k] = propertyJSON{Type: t}
	}
	return out
}

// WireAction is d in WorkOS's shape, for answers.
func (d *Definition) WireAction() ActionJSON {
	out := ActionJSON{Targets: make([]targetJSON, len(d.Targets)), Actor: actorJSON{Metadata: metaJSON(d.Actor)},
		DisplayName: d.DisplayName, Description: d.Description}
	for i, t := range d.Targets {
		out.Targets[i] = targetJSON{Type: t.Type}
		if t.Metadata != nil {
			m := metaJSON(t.Metadata)
			out.Targets[i].Metadata = &m
		}
	}
	if d.Metadata != nil {
		m := metaJSON(d.Metadata)
		out.Metadata = &m
	}
	return out
}

// WireActor is d's actor metadata in the actor schema's shape.
func (d *Definition) WireActor() ActorJSON { return ActorJSON{Metadata: metaJSON(d.Actor)} }

// Encode returns d's canonical JSON for storage: the WorkOS shape, map keys
// sorted. ParseAction(Encode(d)) gives d back.
func (d *Definition) Encode() []byte { return marshal(d.WireAction()) }

// marshal is compact JSON without HTML escaping; v holds only strings,
// slices and maps of strings, which always encode.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Decode reads a body written by Encode.
func Decode(body []byte) (*Definition, error) {
	d, errs := ParseAction(body)
	if errs != nil {
		return nil, fmt.Errorf("stored schema does not parse: %s: %s", errs[0].Field, errs[0].Message)
	}
	return d, nil
}

// ParseAction parses and checks the body of POST
// /audit_logs/actions/{action}/schemas: {"targets":[{"type":…,"metadata":
// {"type":"object","properties":{k:{"type":T}}}}],"actor":{"metadata":…},
// "metadata":…, "display_name":…, "description":…}. targets is required
// (it may be empty: then the events may have no target); actor, metadata
// and the display texts (Trail's, for the Admin Portal) are optional.
// Unknown fields are refused. Every problem is reported, with its path.
func ParseAction(body []byte) (*Definition, []event.FieldError) {
	p := &parser{}
	obj, ok := p.object(body, "")
	if !ok {
		return nil, p.errs
	}
	p.unknown(obj, "", "targets", "actor", "metadata", "display_name", "description")
	d := &Definition{}
	d.DisplayName = p.display(obj["display_name"], "display_name", MaxDisplayName)
	d.Description = p.display(obj["description"], "description", MaxDescription)
	raw, ok := obj["targets"]
	switch {
	case !ok || isNull(raw):
		p.add("targets", event.CodeRequired, "must be an array of target types, such as [{\"type\":\"team\"}]; it may be empty")
	default:
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			p.add("targets", event.CodeInvalidType, "must be an array of target types")
			break
		}
		if len(list) > MaxTargets {
			p.add("targets", event.CodeTooMany, fmt.Sprintf("must declare at most %d target types, not %d", MaxTargets, len(list)))
			break
		}
		d.Targets = make([]Target, 0, len(list))
		for i, rt := range list {
			path := fmt.Sprintf("targets[%d]", i)
			t, ok := p.object(rt, path)
			if !ok {
				continue
			}
			p.unknown(t, path, "type", "metadata")
			var tg Target
			tg.Type, ok = p.typeName(t["type"], path+".type")
			if ok && slices.ContainsFunc(d.Targets, func(u Target) bool { return u.Type == tg.Type }) {
				p.add(path+".type", event.CodeInvalidValue, fmt.Sprintf("declares target type %q a second time; declare each type once", tg.Type))
			}
			if rm, has := t["metadata"]; has && !isNull(rm) {
				tg.Metadata = p.metadata(rm, path+".metadata")
			}
			d.Targets = append(d.Targets, tg)
		}
	}
	if ra, ok := obj["actor"]; ok && !isNull(ra) {
		if a, ok := p.object(ra, "actor"); ok {
			p.unknown(a, "actor", "metadata")
			if rm, has := a["metadata"]; has && !isNull(rm) {
				d.Actor = p.metadata(rm, "actor.metadata")
			}
		}
	}
	if rm, ok := obj["metadata"]; ok && !isNull(rm) {
		d.Metadata = p.metadata(rm, "metadata")
	}
	if p.errs != nil {
		return nil, p.errs
	}
	return d, nil
}

// ParseActor parses and checks the body of POST /v1/actor_schema:
// {"metadata":{"type":"object","properties":{k:{"type":T}}}}.
func ParseActor(body []byte) (*Definition, []event.FieldError) {
	p := &parser{}
	obj, ok := p.object(body, "")
	if !ok {
		return nil, p.errs
	}
	p.unknown(obj, "", "metadata")
	d := &Definition{}
	rm, ok := obj["metadata"]
	if !ok || isNull(rm) {
		p.add("metadata", event.CodeRequired, `must describe the actor metadata, such as {"type":"object","properties":{"email":{"type":"string"}}}`)
	} else {
		d.Actor = p.metadata(rm, "metadata")
	}
	if p.errs != nil {
		return nil, p.errs
	}
	return d, nil
}

// EncodeActor returns the canonical JSON of an actor schema.
func (d *Definition) EncodeActor() []byte { return marshal(d.WireActor()) }

// DecodeActor reads a body written by EncodeActor.
func DecodeActor(body []byte) (*Definition, error) {
	d, errs := ParseActor(body)
	if errs != nil {
		return nil, fmt.Errorf("stored actor schema does not parse: %s: %s", errs[0].Field, errs[0].Message)
	}
	return d, nil
}

// parser collects the problems of one body.
type parser struct{ errs []event.FieldError }

func (p *parser) add(field, code, msg string) {
	if len(p.errs) < event.MaxFieldErrors {
		if field == "" {
			field = "(body)"
		}
		p.errs = append(p.errs, event.FieldError{Field: field, Code: code, Message: msg})
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// object decodes raw as a JSON object.
func (p *parser) object(raw json.RawMessage, path string) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		if path == "" {
			p.add("", event.CodeInvalidType, "the body must be a JSON object")
		} else {
			p.add(path, event.CodeInvalidType, "must be an object")
		}
		return nil, false
	}
	return obj, true
}

// unknown reports the members of obj not in known, sorted.
func (p *parser) unknown(obj map[string]json.RawMessage, path string, known ...string) {
	var names []string
	for k := range obj {
		if !slices.Contains(known, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		p.add(join(path, keyName(k)), "unknown_field", fmt.Sprintf("is not a field of a schema (expected %s); remove it", strings.Join(known, ", ")))
	}
}

// display reads an optional display text: a string of at most max
// characters without control characters.
func (p *parser) display(raw json.RawMessage, path string, max int) string {
	var s string
	switch {
	case raw == nil || isNull(raw):
		return ""
	case json.Unmarshal(raw, &s) != nil:
		p.add(path, event.CodeInvalidType, "must be a string")
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		p.add(path, event.CodeInvalidValue, "must be text without control characters")
	case utf8.RuneCountInString(s) > max:
		p.add(path, event.CodeInvalidValue, fmt.Sprintf("must be at most %d characters", max))
	default:
		return strings.TrimSpace(s)
	}
	return ""
}

// typeName reads a target type: a string of 1 to 1000 characters without
// control characters, as the events' target types are.
func (p *parser) typeName(raw json.RawMessage, path string) (string, bool) {
	var s string
	switch {
	case raw == nil || isNull(raw):
		p.add(path, event.CodeRequired, "must be the target type, a non-empty string")
		return "", false
	case json.Unmarshal(raw, &s) != nil:
		p.add(path, event.CodeInvalidType, "must be a string")
		return "", false
	case s == "":
		p.add(path, event.CodeRequired, "must be the target type, a non-empty string")
		return "", false
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		p.add(path, event.CodeInvalidFormat, "must be valid UTF-8 without control characters")
		return "", false
	case utf8.RuneCountInString(s) > maxTypeLength:
		p.add(path, event.CodeTooLong, fmt.Sprintf("must be at most %d characters", maxTypeLength))
		return "", false
	}
	return s, true
}

// metadata reads {"type":"object","properties":{k:{"type":T}}}. "type" may
// be left out; "properties" may be left out or empty (nothing required).
func (p *parser) metadata(raw json.RawMessage, path string) Metadata {
	obj, ok := p.object(raw, path)
	if !ok {
		return nil
	}
	p.unknown(obj, path, "type", "properties")
	if rt, ok := obj["type"]; ok {
		var t string
		if json.Unmarshal(rt, &t) != nil || t != "object" {
			p.add(path+".type", event.CodeInvalidValue, `must be "object": metadata is always an object`)
		}
	}
	md := Metadata{}
	rp, ok := obj["properties"]
	if !ok || isNull(rp) {
		return md
	}
	props, ok := p.object(rp, path+".properties")
	if !ok {
		return md
	}
	if len(props) > event.MaxMetadataKeys {
		p.add(path+".properties", event.CodeTooMany, fmt.Sprintf("must declare at most %d keys, not %d: events carry at most %d metadata keys", event.MaxMetadataKeys, len(props), event.MaxMetadataKeys))
		return md
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kp := join(path+".properties", keyName(k))
		if !validKey(k) {
			p.add(kp, event.CodeInvalidFormat, "is not a valid metadata key: use 1 to 40 letters, digits, _ or -")
			continue
		}
		prop, ok := p.object(props[k], kp)
		if !ok {
			continue
		}
		p.unknown(prop, kp, "type")
		var t string
		rt, has := prop["type"]
		switch {
		case !has || isNull(rt):
			p.add(kp+".type", event.CodeRequired, "must be string, number or boolean")
		case json.Unmarshal(rt, &t) != nil:
			p.add(kp+".type", event.CodeInvalidType, "must be a string: string, number or boolean")
		case t != TypeString && t != TypeNumber && t != TypeBoolean:
			p.add(kp+".type", event.CodeInvalidValue, fmt.Sprintf("must be string, number or boolean, not %q", truncate(t, 40)))
		default:
			md[k] = t
		}
	}
	return md
}

// validKey is WorkOS's metadata key rule, ^[a-zA-Z0-9_-]{1,40}$.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > event.MaxMetadataKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// keyName is a key as it appears in a field path: as it is when plain,
// quoted (and cut) otherwise, so a hostile key cannot forge a path.
func keyName(k string) string {
	if validKey(k) {
		return k
	}
	return fmt.Sprintf("%q", truncate(strings.ToValidUTF8(k, "\uFFFD"), 40))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
