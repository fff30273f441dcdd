// Package privacy keeps personal data out of the log where an organization
// asks for it, without breaking the log's proofs (docs/PRIVACY.md): field
// policies replace chosen values with a keyed hash or a marker before an
// event is stored (policy.go, apply.go, cache.go), and erasures delete the
// bodies of every event of one subject while keeping their leaf hashes,
// recorded by a signed tombstone event (erasure.go).
package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/trailaudit/trail/internal/event"
)

// Mode is what a policy does to a field's value.
type Mode uint8

// Modes of a field rule.
const (
	ModeNone Mode = iota
	// ModeRedact replaces the value with event.RedactedValue.
	ModeRedact
	// ModeHMAC replaces the value with its keyed hash (keyring.FieldHasher).
	ModeHMAC
)

func (m Mode) String() string {
	switch m {
	case ModeRedact:
		return "redact"
	case ModeHMAC:
		return "hmac"
	}
	return ""
}

// Limits of a policy document.
const (
	MaxDocumentBytes = 64 << 10
	MaxRules         = 100 // field rules in one section
	MaxActions       = 100 // action sections
)

// Document is a policy as the API takes and shows it:
//
//	{"fields": {"actor.id": "hmac", "metadata.email": "hmac", "context.location": "redact"},
//	 "actions": {"user.signed_in": {"metadata.ip": "redact"}, "billing.*": {…}}}
//
// fields apply to every event of the organization; an action's section
// (an exact action, or a prefix ending in ".*") adds rules for its events,
// and overrides fields' rule for the same path.
type Document struct {
	Fields  map[string]string            `json:"fields"`
	Actions map[string]map[string]string `json:"actions,omitempty"`
}

// FieldError is one problem of a policy document, naming its field.
type FieldError struct {
	Field   string
	Message string
}

// ParseError is a policy document's problems.
type ParseError struct{ Errors []FieldError }

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("invalid privacy policy")
	for _, fe := range e.Errors {
		b.WriteString("; " + fe.Field + ": " + fe.Message)
	}
	return b.String()
}

// Policy is a compiled policy document.
type Policy struct {
	doc      Document
	base     *rules
	exact    map[string]*rules // action → base merged with its section
	prefixes []prefixRules     // longest prefix first
}

type prefixRules struct {
	prefix string // with its trailing '.'
	r      *rules
}

// rules are the field rules that apply to one event.
type rules struct {
	actorID, actorName, targetID, targetName, location, userAgent Mode
	// Metadata rules by key, each with its keys sorted so that the
	// privacy lists of a record come out in one order.
	actorMeta, targetMeta, meta []keyRule
}

type keyRule struct {
	key  string
	mode Mode
}

// Parse reads and checks a policy document. Every problem is reported at
// once, as a *ParseError naming the fields.
func Parse(raw []byte) (*Policy, error) {
	if len(raw) > MaxDocumentBytes {
		return nil, &ParseError{[]FieldError{{"", fmt.Sprintf("the policy is %d bytes; at most %d are accepted", len(raw), MaxDocumentBytes)}}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var doc Document
	if err := dec.Decode(&doc); err != nil {
		return nil, &ParseError{[]FieldError{{"", "must be a JSON object {\"fields\": {path: \"redact\"|\"hmac\"}, \"actions\": {action: {path: mode}}}: " + err.Error()}}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &ParseError{[]FieldError{{"", "must hold one JSON object and nothing after it"}}}
	}
	return Compile(doc)
}

// Compile checks doc and compiles it.
func Compile(doc Document) (*Policy, error) {
	var errs []FieldError
	base := compileSection("fields", doc.Fields, nil, &errs)
	if len(doc.Actions) > MaxActions {
		errs = append(errs, FieldError{"actions", fmt.Sprintf("must name at most %d actions, not %d", MaxActions, len(doc.Actions))})
	}
	p := &Policy{doc: doc, base: base, exact: map[string]*rules{}}
	for _, a := range sortedKeys(doc.Actions) {
		field := "actions." + a
		name, prefix := strings.CutSuffix(a, ".*")
		if prob := event.ActionProblem(name); prob != "" {
			errs = append(errs, FieldError{field, "must be an action or a prefix ending in .*: the action " + prob})
			continue
		}
		r := compileSection(field, doc.Actions[a], doc.Fields, &errs)
		if prefix {
			p.prefixes = append(p.prefixes, prefixRules{prefix: name + ".", r: r})
		} else {
			p.exact[a] = r
		}
	}
	slices.SortStableFunc(p.prefixes, func(a, b prefixRules) int { return len(b.prefix) - len(a.prefix) })
	if errs != nil {
		return nil, &ParseError{errs}
	}
	if p.doc.Fields == nil {
		p.doc.Fields = map[string]string{}
	}
	return p, nil
}

// compileSection compiles one map of field rules, over base's rules (an
// action's section adds to and overrides the organization's).
func compileSection(field string, sec, base map[string]string, errs *[]FieldError) *rules {
	if len(sec) > MaxRules {
		*errs = append(*errs, FieldError{field, fmt.Sprintf("must hold at most %d field rules, not %d", MaxRules, len(sec))})
		return &rules{}
	}
	merged := make(map[string]string, len(base)+len(sec))
	for k, v := range base {
		merged[k] = v
	}
	for k, v := range sec {
		merged[k] = v
	}
	r := &rules{}
	for _, path := range sortedKeys(merged) {
		var m Mode
		switch merged[path] {
		case "redact":
			m = ModeRedact
		case "hmac":
			m = ModeHMAC
		default:
			if _, own := sec[path]; own {
				*errs = append(*errs, FieldError{field + "." + path, fmt.Sprintf("must be \"redact\" or \"hmac\", not %q", truncate(merged[path], 40))})
			}
			continue
		}
		if prob := r.set(path, m); prob != "" {
			if _, own := sec[path]; own {
				*errs = append(*errs, FieldError{field + "." + truncate(path, 80), prob})
			}
		}
	}
	return r
}

const pathRule = "must be a field path: actor.id, actor.name, actor.metadata.<key>, targets.id, targets.name, targets.metadata.<key>, metadata.<key>, context.location or context.user_agent"

// set adds one rule, or says why path is not a field a policy can name.
func (r *rules) set(path string, m Mode) string {
	switch path {
	case "actor.id":
		r.actorID = m
	case "actor.name":
		r.actorName = m
	case "targets.id":
		r.targetID = m
	case "targets.name":
		r.targetName = m
	case "context.location":
		r.location = m
	case "context.user_agent":
		r.userAgent = m
	default:
		var list *[]keyRule
		var key string
		switch {
		case strings.HasPrefix(path, "actor.metadata."):
			list, key = &r.actorMeta, path[len("actor.metadata."):]
		case strings.HasPrefix(path, "targets.metadata."):
			list, key = &r.targetMeta, path[len("targets.metadata."):]
		case strings.HasPrefix(path, "metadata."):
			list, key = &r.meta, path[len("metadata."):]
		default:
			return pathRule
		}
		if !validMetadataKey(key) {
			return "names a metadata key, which is 1 to 40 characters of a-z, A-Z, 0-9, _ and -"
		}
		*list = append(*list, keyRule{key, m})
	}
	return ""
}

// validMetadataKey reports whether k matches ^[a-zA-Z0-9_-]{1,40}$, the
// rule of event metadata keys.
func validMetadataKey(k string) bool {
	if len(k) == 0 || len(k) > event.MaxMetadataKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Document returns the policy's document, as it was given.
func (p *Policy) Document() Document { return p.doc }

// JSON returns the policy's document as JSON, keys sorted.
func (p *Policy) JSON() []byte {
	b, _ := json.Marshal(p.doc) // maps of strings only
	return b
}

// For returns the rules for events of action, or nil when none apply.
func (p *Policy) rulesFor(action string) *rules {
	if r, ok := p.exact[action]; ok {
		return r
	}
	for _, pr := range p.prefixes {
		if strings.HasPrefix(action, pr.prefix) {
			return pr.r
		}
	}
	return p.base
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
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
