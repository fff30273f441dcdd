package event

import (
	"encoding/json"
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
// On success d.Tail holds the canonical encoding. On failure err is an *Error:
// 400 invalid_json when the body is not one JSON object, else 422 with every
// field error found, in document order. Unknown fields are ignored.
func ParseCreate(body []byte, now time.Time, lim Limits) (orgID string, d *Draft, err error) {
	p := newParser(body, now, lim, false)
	if k := p.sc.next(); k != kindObject {
		return "", nil, p.notObject(k, "Request body")
	}
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
			orgID, _ = p.str(at(""), "organization_id", strRule{required: true, max: MaxOrganizationIDLen, noControl: true})
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
			p.add("organization_id", CodeRequired, "must be a non-empty string")
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

// wrongType skips the value at the read position and reports invalid_type.
func (p *parser) wrongType(l loc, field, msg string) {
	p.sc.skipValue()
	if p.sc.err == nil {
		p.add(l.path(field), CodeInvalidType, msg)
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
	seen    uint32   // bits of known keys
	unknown []string // unknown keys, rarely any
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
	dup := false
	if bit == 0 {
		for _, u := range m.unknown {
			if u == key {
				dup = true
				break
			}
		}
		if !dup {
			m.unknown = append(m.unknown, key)
		}
	} else {
		dup = m.seen&bit != 0
		m.seen |= bit
	}
	if bit == 0 || dup {
		p.sc.skipValue()
		if dup && p.sc.err == nil {
			p.add(l.path(key), CodeInvalidFormat, "must appear only once in its object (duplicate key)")
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
			d.Action, _ = p.str(l, "action", strRule{required: true, max: MaxActionLen, noControl: true})
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

const (
	actionMsg = "must be a string of 1 to 100 characters without control characters"
	timeMsg   = "must be an RFC 3339 timestamp with a time zone, such as 2026-11-25T18:43:09.709Z"
	metaMsg   = "must be an object of at most 50 keys whose values are strings, numbers or booleans"
)

// strRule is what a string field must be.
type strRule struct {
	required  bool // absent, null and "" are errors; else they mean absent
	max       int  // in characters (runes)
	noControl bool // no C0, DEL or C1 control characters
}

// describe says in words what a value following r must be.
func (r strRule) describe() string {
	s := "must be a "
	if r.required {
		s += "non-empty "
	}
	s += "string of at most " + strconv.Itoa(r.max) + " characters"
	if r.noControl {
		s += " without control characters"
	}
	return s
}

// str reads a string field. ok is false when it is absent or invalid; an
// optional empty string counts as absent, since Draft cannot tell them apart.
func (p *parser) str(l loc, field string, r strRule) (s string, ok bool) {
	switch p.sc.next() {
	case kindInvalid:
		return "", false
	case kindNull:
		p.sc.readNull()
		if r.required {
			p.add(l.path(field), CodeRequired, r.describe())
		}
		return "", false
	case kindString:
	default:
		p.wrongType(l, field, r.describe())
		return "", false
	}
	s, valid := p.sc.readString()
	switch {
	case p.sc.err != nil:
		return "", false
	case !valid:
		p.add(l.path(field), CodeInvalidFormat, "must be valid UTF-8")
	case s == "":
		if r.required {
			p.add(l.path(field), CodeRequired, r.describe())
		}
	case tooLong(s, r.max):
		p.add(l.path(field), CodeTooLong, r.describe())
	case r.noControl && hasControl(s):
		p.add(l.path(field), CodeInvalidFormat, "must not contain control characters")
	default:
		return s, true
	}
	return "", false
}

// tooLong reports whether s has more than max characters.
func tooLong(s string, max int) bool {
	if len(s) <= max { // a character is at least one byte
		return false
	}
	n := 0
	for range s {
		if n++; n > max {
			return true
		}
	}
	return false
}

// hasControl reports whether valid UTF-8 s has a C0 (U+0000–U+001F), DEL or
// C1 (U+0080–U+009F) control character. C1 is 0xC2 0x80–0x9F in UTF-8.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || (c == 0xc2 && i+1 < len(s) && s[i+1] < 0xa0) {
			return true
		}
	}
	return false
}

// timeField reads a timestamp field. With limits it is bounded by the Unix epoch
// and by now plus MaxFuture.
func (p *parser) timeField(l loc, field string, limits bool) (time.Time, bool) {
	switch p.sc.next() {
	case kindInvalid:
		return time.Time{}, false
	case kindNull:
		p.sc.readNull()
		p.add(l.path(field), CodeRequired, timeMsg)
		return time.Time{}, false
	case kindString:
	default:
		p.wrongType(l, field, timeMsg)
		return time.Time{}, false
	}
	s, valid := p.sc.readString()
	if p.sc.err != nil {
		return time.Time{}, false
	}
	t, ok := parseTime(s)
	switch {
	case !valid || !ok:
		code := CodeInvalidFormat
		if s == "" {
			code = CodeRequired
		}
		p.add(l.path(field), code, timeMsg)
	case limits && t.Before(time.Unix(0, 0)):
		p.add(l.path(field), CodeOutOfRange, "must not be before 1970-01-01T00:00:00Z")
	case limits && t.After(p.now.Add(p.lim.MaxFuture)):
		p.add(l.path(field), CodeOutOfRange, "must not be more than "+describeDuration(p.lim.MaxFuture)+" ahead of the server's clock")
	default:
		return t, true
	}
	return time.Time{}, false
}

// describeDuration writes d for people: "24 hours", "90 minutes", else d.String().
func describeDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return strconv.FormatInt(int64(d/time.Hour), 10) + " hours"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " minutes"
	}
	return d.String()
}

// intField reads an integer field of at least min: a JSON number without fraction
// or exponent that fits in int64. A null is absent unless required.
func (p *parser) intField(l loc, field string, min int64, required bool) (int64, bool) {
	msg := "must be an integer of at least " + strconv.FormatInt(min, 10)
	switch p.sc.next() {
	case kindInvalid:
		return 0, false
	case kindNull:
		p.sc.readNull()
		if required {
			p.add(l.path(field), CodeRequired, msg)
		}
		return 0, false
	case kindNumber:
	default:
		p.wrongType(l, field, msg)
		return 0, false
	}
	text := p.sc.readNumber()
	if p.sc.err != nil {
		return 0, false
	}
	if strings.ContainsAny(text, ".eE") {
		p.add(l.path(field), CodeInvalidType, msg)
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < min {
		p.add(l.path(field), CodeOutOfRange, msg)
		return 0, false
	}
	return n, true
}

// actor reads the event's actor.
func (p *parser) actor(base string) (Entity, Metadata) {
	l := at(base)
	switch p.sc.next() {
	case kindObject:
		return p.entity(loc{parent: base, name: "actor", idx: -1})
	case kindNull:
		p.sc.readNull()
		p.add(l.path("actor"), CodeRequired, "must be an object with id and type")
	case kindInvalid:
	default:
		p.wrongType(l, "actor", "must be an object with id and type")
	}
	return Entity{}, nil
}

// targets reads the event's targets. TargetsMetadata is parallel to Targets,
// with nil for targets without metadata.
func (p *parser) targets(base string) ([]Entity, []Metadata) {
	l := loc{parent: base, name: "targets", idx: -1}
	switch p.sc.next() {
	case kindArray:
	case kindNull:
		p.sc.readNull()
		p.add(l.path(""), CodeRequired, "must be an array of targets, possibly empty")
		return nil, nil
	case kindInvalid:
		return nil, nil
	default:
		p.wrongType(at(base), "targets", "must be an array of targets, possibly empty")
		return nil, nil
	}
	var ts []Entity
	var mds []Metadata
	i := 0
	for more := p.sc.arrayFirst(); more; more = p.sc.arrayNext() {
		if i == p.lim.MaxTargets && !p.record {
			p.add(l.path(""), CodeTooMany, "must have at most "+strconv.Itoa(p.lim.MaxTargets)+" targets")
		}
		el := loc{parent: base, name: "targets", idx: i}
		switch p.sc.next() {
		case kindObject:
			e, md := p.entity(el)
			ts = append(ts, e)
			mds = append(mds, md)
		case kindInvalid:
			return nil, nil
		default:
			p.wrongType(el, "", "must be an object with id and type")
		}
		i++
	}
	return ts, mds
}

// entity reads an actor or target object at the read position.
func (p *parser) entity(l loc) (e Entity, md Metadata) {
	const (
		fID uint32 = 1 << iota
		fType
		fName
		fMeta
	)
	var m members
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		var bit uint32
		switch key {
		case "id":
			bit = fID
		case "type":
			bit = fType
		case "name":
			bit = fName
		case "metadata":
			bit = fMeta
		}
		if !p.claim(&m, l, key, bit) {
			continue
		}
		switch bit {
		case fID:
			e.ID, _ = p.str(l, "id", strRule{required: true, max: MaxEntityFieldLen})
		case fType:
			e.Type, _ = p.str(l, "type", strRule{required: true, max: MaxEntityFieldLen, noControl: true})
		case fName:
			e.Name, _ = p.str(l, "name", strRule{max: MaxEntityFieldLen})
		case fMeta:
			md = p.metadata(l)
		}
	}
	if p.sc.err != nil {
		return e, md
	}
	if m.seen&fID == 0 {
		p.add(l.path("id"), CodeRequired, strRule{required: true, max: MaxEntityFieldLen}.describe())
	}
	if m.seen&fType == 0 {
		p.add(l.path("type"), CodeRequired, strRule{required: true, max: MaxEntityFieldLen, noControl: true}.describe())
	}
	return e, md
}

// context reads the event's context into d.
func (p *parser) context(base string, d *Draft) {
	l := loc{parent: base, name: "context", idx: -1}
	switch p.sc.next() {
	case kindObject:
	case kindNull:
		p.sc.readNull()
		p.add(l.path(""), CodeRequired, "must be an object with location")
		return
	case kindInvalid:
		return
	default:
		p.wrongType(at(base), "context", "must be an object with location")
		return
	}
	const (
		fLocation uint32 = 1 << iota
		fUserAgent
	)
	locationRule := strRule{required: true, max: MaxLocationLen}
	var m members
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		var bit uint32
		switch key {
		case "location":
			bit = fLocation
		case "user_agent":
			bit = fUserAgent
		}
		if !p.claim(&m, l, key, bit) {
			continue
		}
		switch bit {
		case fLocation:
			d.Location, _ = p.str(l, "location", locationRule)
		case fUserAgent:
			d.UserAgent, _ = p.str(l, "user_agent", strRule{max: MaxUserAgentLen})
		}
	}
	if p.sc.err == nil && m.seen&fLocation == 0 {
		p.add(l.path("location"), CodeRequired, locationRule.describe())
	}
}

// metadata reads the "metadata" member of the object at l. Absent, null and
// empty all give nil, which the record leaves out.
func (p *parser) metadata(l loc) Metadata {
	switch p.sc.next() {
	case kindObject:
	case kindNull:
		p.sc.readNull()
		return nil
	case kindInvalid:
		return nil
	default:
		p.wrongType(l, "metadata", metaMsg)
		return nil
	}
	var md Metadata
	n := 0
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, keyValid := p.sc.key()
		if p.sc.err != nil {
			return nil
		}
		n++
		if n == MaxMetadataKeys+1 {
			p.add(l.path("metadata"), CodeTooMany, "must have at most 50 keys")
		}
		keyOK := keyValid && validMetadataKey(key)
		if !keyOK {
			p.add(l.path("metadata."+key), CodeInvalidFormat,
				"metadata keys must be 1 to 40 characters of a-z, A-Z, 0-9, _ and -")
		} else if _, dup := md[key]; dup {
			p.sc.skipValue()
			if p.sc.err == nil {
				p.add(l.path("metadata."+key), CodeInvalidFormat, "must appear only once in its object (duplicate key)")
			}
			continue
		}
		v := p.metadataValue(l, key)
		if keyOK && n <= MaxMetadataKeys {
			if md == nil {
				md = make(Metadata)
			}
			md[key] = v // nil when v was invalid: still there to catch a duplicate
		}
	}
	return md
}

// validMetadataKey reports whether k matches ^[a-zA-Z0-9_-]{1,40}$.
func validMetadataKey(k string) bool {
	if len(k) == 0 || len(k) > MaxMetadataKeyLen {
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

// metadataValue reads one metadata value: a string (at most 500 characters),
// a number (kept as its source text) or a boolean. It returns nil when invalid.
func (p *parser) metadataValue(l loc, key string) any {
	switch k := p.sc.next(); k {
	case kindString:
		s, valid := p.sc.readString()
		switch {
		case p.sc.err != nil:
		case !valid:
			p.add(l.path("metadata."+key), CodeInvalidFormat, "must be valid UTF-8")
		case tooLong(s, MaxMetadataValueLen):
			p.add(l.path("metadata."+key), CodeTooLong, "metadata strings must be at most 500 characters")
		default:
			return s
		}
	case kindNumber:
		return json.Number(p.sc.readNumber())
	case kindBool:
		return p.sc.readBool()
	case kindInvalid:
	default:
		p.wrongType(l, "metadata."+key,
			"metadata values must be strings, numbers or booleans, not "+k.an()+" (no nesting)")
	}
	return nil
}
