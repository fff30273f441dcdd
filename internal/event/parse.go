package event

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Field limits Trail adds to WorkOS's (which leaves them unbounded).
const (
	MaxOrganizationIDLen = 100
	MaxEntityFieldLen    = 1000 // actor and target id, type, name
	MaxLocationLen       = 1000
	MaxUserAgentLen      = 2000
)

// ParseCreate parses and validates a WorkOS `POST /audit_logs/events` body:
// {"organization_id":"org_…","event":{…}}. now is the server clock (for the future limit).
//
// On success d.Tail holds the canonical encoding; d does not share memory with
// body, which the caller may reuse. On failure err is an *Error: 400
// invalid_json when the body is not one JSON object, else 422 with the field
// errors found (all of them, up to MaxFieldErrors), in document order; fields
// missing from an object come after that object's other errors. Unknown
// fields are ignored and not stored.
func ParseCreate(body []byte, now time.Time, lim Limits) (orgID string, d *Draft, err error) {
	p := newParser(body, now, lim, false)
	if k := p.sc.next(); k != kindObject {
		return "", nil, p.notObject(k, "Request body")
	}
	orgRule := strRule{required: true, max: MaxOrganizationIDLen, noControl: true}
	d = new(Draft)
	var m members
	var eventStart, eventEnd int
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		var bit uint32
		switch key {
		case "organization_id":
			bit = 1
		case "event":
			bit = 2
		}
		if !p.claim(&m, at(""), key, bit) {
			continue
		}
		switch bit {
		case 1:
			orgID, _ = p.str(at(""), "organization_id", orgRule)
		case 2:
			switch p.sc.next() {
			case kindObject:
				eventStart = p.sc.pos
				p.event("event", d, nil)
				eventEnd = p.sc.pos
			case kindNull:
				p.sc.readNull()
				p.add(at("").path("event"), CodeRequired, "must be an object")
			case kindInvalid:
			default:
				p.wrongType(at(""), "event", "must be an object")
			}
		}
	}
	if p.sc.err == nil {
		if m.seen&1 == 0 {
			p.add("organization_id", CodeRequired, orgRule.describe())
		}
		if m.seen&2 == 0 {
			p.add("event", CodeRequired, "must be an object")
		}
	}
	p.sc.end()
	if err := p.result("Request body"); err != nil {
		return "", nil, err
	}
	d.Tail = appendTail(make([]byte, 0, eventEnd-eventStart+16), d)
	return orgID, d, nil
}

// ParseEvent validates the "event" object alone; field paths start with "event.".
// It follows the rules of ParseCreate and also fills Tail.
func ParseEvent(raw []byte, now time.Time, lim Limits) (*Draft, error) {
	p := newParser(raw, now, lim, false)
	k := p.sc.next()
	switch k {
	case kindObject:
	case kindInvalid:
		return nil, p.result("Event")
	default:
		// Valid JSON of the wrong type is a field error, as it would be inside
		// a request body.
		p.sc.skipValue()
		p.sc.end()
		if p.sc.err == nil {
			p.add("event", CodeInvalidType, "must be an object")
		}
		return nil, p.result("Event")
	}
	d := new(Draft)
	p.event("event", d, nil)
	p.sc.end()
	if err := p.result("Event"); err != nil {
		return nil, err
	}
	d.Tail = appendTail(make([]byte, 0, len(raw)+16), d)
	return d, nil
}

// parser validates one input, collecting field errors while its scanner
// checks syntax.
type parser struct {
	sc     scanner
	errs   []FieldError
	now    time.Time
	lim    Limits
	record bool // reading a stored record: accept its fields, skip limits that are configurable
}

func newParser(data []byte, now time.Time, lim Limits, record bool) *parser {
	def := DefaultLimits()
	if lim.MaxTargets <= 0 {
		lim.MaxTargets = def.MaxTargets
	}
	if lim.MaxFuture <= 0 {
		lim.MaxFuture = def.MaxFuture
	}
	return &parser{sc: newScanner(data), now: now, lim: lim, record: record}
}

func (p *parser) add(field, code, msg string) {
	if len(p.errs) < MaxFieldErrors {
		p.errs = append(p.errs, FieldError{Field: field, Code: code, Message: msg})
	}
}

// wrongType skips the value at the read position and reports invalid_type,
// saying what was found.
func (p *parser) wrongType(l loc, field, msg string) {
	found := p.sc.next() // only peeks
	p.sc.skipValue()
	if p.sc.err == nil {
		p.add(l.path(field), CodeInvalidType, msg+", not "+found.an())
	}
}

// result turns what was found into the error to return, or nil.
func (p *parser) result(what string) error {
	if e := p.sc.err; e != nil {
		return &Error{
			Status:  400,
			Code:    CodeInvalidJSON,
			Message: what + " is not valid JSON: " + e.msg + " at byte " + strconv.Itoa(e.off),
		}
	}
	if len(p.errs) > 0 {
		return &Error{Status: 422, Message: "Validation failed.", Errors: p.errs}
	}
	return nil
}

// notObject is the error for a top-level value that is not an object.
func (p *parser) notObject(k kind, what string) error {
	if k == kindInvalid {
		if strings.TrimLeft(p.sc.str, " \t\r\n") == "" {
			return &Error{Status: 400, Code: CodeInvalidJSON, Message: what + " is empty; expected a JSON object"}
		}
		return p.result(what)
	}
	p.sc.skipValue()
	p.sc.end()
	if p.sc.err != nil {
		return p.result(what)
	}
	return &Error{Status: 400, Code: CodeInvalidJSON, Message: what + " must be a JSON object, not " + k.an()}
}

// members tracks the keys of one object, to reject duplicates.
type members struct {
	seen    uint32              // bits of known keys
	unknown []string            // the first unknown keys: usually none, so no allocation
	more    map[string]struct{} // further unknown keys, so that many cost linear time
}

// maxListedUnknown is how many unknown keys members keeps in its slice.
const maxListedUnknown = 8

// sawUnknown records key and reports whether it was seen before.
func (m *members) sawUnknown(key string) bool {
	if slices.Contains(m.unknown, key) {
		return true
	}
	if len(m.unknown) < maxListedUnknown {
		m.unknown = append(m.unknown, key)
		return false
	}
	if _, ok := m.more[key]; ok {
		return true
	}
	if m.more == nil {
		m.more = make(map[string]struct{})
	}
	m.more[key] = struct{}{}
	return false
}

// claim decides what happens to the value of key, whose bit is 0 when the key
// is unknown. It reports true when the caller should read the value; else the
// value has been skipped: unknown keys are ignored, and a repeated key is an
// error, because a record whose meaning depends on which duplicate a reader
// picks is not an audit record.
func (p *parser) claim(m *members, l loc, key string, bit uint32) bool {
	if p.sc.err != nil {
		return false
	}
	var dup bool
	if bit == 0 {
		dup = m.sawUnknown(key)
	} else {
		dup = m.seen&bit != 0
		m.seen |= bit
	}
	if bit == 0 || dup {
		p.sc.skipValue()
		if dup && p.sc.err == nil {
			p.add(l.path(keyName(key)), CodeInvalidFormat, "must appear only once in its object (duplicate key)")
		}
		return false
	}
	return true
}

// Bits of the event object's keys; the record's own fields share the space.
const (
	fAction uint32 = 1 << iota
	fOccurredAt
	fVersion
	fActor
	fTargets
	fContext
	fMetadata
	fID
	fOrganizationID
	fSeq
	fReceivedAt
	fImported
	fPrivacy
)

func eventBit(key string, record bool) uint32 {
	switch key {
	case "action":
		return fAction
	case "occurred_at":
		return fOccurredAt
	case "version":
		return fVersion
	case "actor":
		return fActor
	case "targets":
		return fTargets
	case "context":
		return fContext
	case "metadata":
		return fMetadata
	}
	if record {
		switch key {
		case "id":
			return fID
		case "organization_id":
			return fOrganizationID
		case "seq":
			return fSeq
		case "received_at":
			return fReceivedAt
		case "imported":
			return fImported
		case "privacy":
			return fPrivacy
		}
	}
	return 0
}

// event reads the event object at the read position into d; base is its path
// ("event", or "" for a record). acc is non-nil when reading a stored record,
// whose own fields then fill it.
func (p *parser) event(base string, d *Draft, acc *Accepted) {
	l := at(base)
	var m members
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		bit := eventBit(key, acc != nil)
		if !p.claim(&m, l, key, bit) {
			continue
		}
		switch bit {
		case fAction:
			d.Action, _ = p.str(l, "action", actionRule)
		case fOccurredAt:
			d.OccurredAt, _ = p.timeField(l, "occurred_at", !p.record)
		case fVersion:
			d.Version, _ = p.intField(l, "version", 1, false)
		case fActor:
			d.Actor, d.ActorMetadata = p.actor(base)
		case fTargets:
			d.Targets, d.TargetsMetadata = p.targets(base)
		case fContext:
			p.context(base, d)
		case fMetadata:
			d.Metadata = p.metadata(l)
		case fID:
			acc.ID, _ = p.str(l, "id", strRule{required: true, max: MaxOrganizationIDLen, noControl: true})
		case fOrganizationID:
			acc.OrganizationID, _ = p.str(l, "organization_id", strRule{required: true, max: MaxOrganizationIDLen, noControl: true})
		case fSeq:
			acc.Seq, _ = p.intField(l, "seq", 0, true)
		case fReceivedAt:
			acc.ReceivedAt, _ = p.timeField(l, "received_at", false)
		case fImported:
			d.Imported = p.imported(l)
		case fPrivacy:
			d.Privacy = p.privacy(l)
		}
	}
	if p.sc.err != nil {
		return
	}
	required := fAction | fOccurredAt | fActor | fTargets | fContext
	if acc != nil {
		required |= fID | fOrganizationID | fSeq | fReceivedAt
	}
	if required&^m.seen == 0 {
		return
	}
	for _, f := range [...]struct {
		bit  uint32
		name string
		msg  string
	}{
		{fID, "id", "must be a non-empty string"},
		{fOrganizationID, "organization_id", "must be a non-empty string"},
		{fSeq, "seq", "must be an integer of at least 0"},
		{fReceivedAt, "received_at", timeMsg},
		{fAction, "action", actionMsg},
		{fOccurredAt, "occurred_at", timeMsg},
		{fActor, "actor", "must be an object with id and type"},
		{fTargets, "targets", "must be an array of targets, possibly empty"},
		{fContext, "context", "must be an object with location"},
	} {
		if required&f.bit != 0 && m.seen&f.bit == 0 {
			p.add(l.path(f.name), CodeRequired, f.msg)
		}
	}
}

// imported reads a record's "imported" object: {"source":…,"id":…}. Only
// stored records have one; in a request it is an unknown key, ignored like
// any other, so an application cannot claim an event was imported.
func (p *parser) imported(l loc) *Import {
	const msg = "must be an object with source and id"
	switch p.sc.next() {
	case kindObject:
	case kindInvalid:
		return nil
	default:
		p.wrongType(l, "imported", msg)
		return nil
	}
	il := loc{parent: l.path(""), name: "imported", idx: -1}
	rule := strRule{required: true, max: MaxImportFieldLen, noControl: true}
	imp := new(Import)
	var m members
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		var bit uint32
		switch key {
		case "source":
			bit = 1
		case "id":
			bit = 2
		}
		if !p.claim(&m, il, key, bit) {
			continue
		}
		if bit == 1 {
			imp.Source, _ = p.str(il, "source", rule)
		} else {
			imp.ID, _ = p.str(il, "id", rule)
		}
	}
	if p.sc.err == nil && m.seen != 3 {
		p.add(il.path(""), CodeRequired, msg)
	}
	return imp
}

const (
	actionMsg = "must be a string of 1 to 100 characters without control characters"
	timeMsg   = "must be an RFC 3339 timestamp with a time zone, such as 2026-11-25T18:43:09.709Z"
	metaMsg   = "must be an object of at most 50 keys whose values are strings, numbers or booleans"
)
