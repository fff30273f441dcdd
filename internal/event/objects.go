package event

// Readers of the event's objects: actor, targets, context and metadata.

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

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
	// Room for the usual handful of targets up front saves regrowing.
	ts := make([]Entity, 0, 4)
	mds := make([]Metadata, 0, 4)
	i := 0
	for more := p.sc.arrayFirst(); more; more = p.sc.arrayNext() {
		if i == p.lim.MaxTargets && !p.record {
			p.add(l.path(""), CodeTooMany, "must have at most "+strconv.Itoa(p.lim.MaxTargets)+" targets")
		}
		el := loc{parent: base, name: "targets", idx: i}
		switch p.sc.next() {
		case kindObject:
			e, md := p.entity(el)
			if len(ts) < p.lim.MaxTargets || p.record { // past the limit the draft is rejected anyway
				ts = append(ts, e)
				mds = append(mds, md)
			}
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
			e.ID, _ = p.str(l, "id", strRule{required: true, max: MaxEntityFieldLen, noControl: true, controlSince: true})
		case fType:
			e.Type, _ = p.str(l, "type", strRule{required: true, max: MaxEntityFieldLen, noControl: true})
		case fName:
			e.Name, _ = p.str(l, "name", strRule{max: MaxEntityFieldLen, noControl: true, controlSince: true})
		case fMeta:
			md = p.metadata(l)
		}
	}
	if p.sc.err != nil {
		return e, md
	}
	if m.seen&fID == 0 {
		p.add(l.path("id"), CodeRequired, strRule{required: true, max: MaxEntityFieldLen, noControl: true}.describe())
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
			p.add(l.path("metadata."+keyName(key)), CodeInvalidFormat,
				"metadata keys must be 1 to 40 characters of a-z, A-Z, 0-9, _ and -")
		} else if _, dup := md[key]; dup {
			p.sc.skipValue()
			if p.sc.err == nil {
				p.add(l.path("metadata."+keyName(key)), CodeInvalidFormat, "must appear only once in its object (duplicate key)")
			}
			continue
		}
		v := p.metadataValue(l, key)
		if keyOK && n <= MaxMetadataKeys {
			if md == nil {
				md = make(Metadata, 8) // one allocation for the usual few keys
			}
			md[key] = v // nil when v was invalid: still there to catch a duplicate
		}
	}
	return md
}

// keyName is key as a path segment. Keys of letters, digits, '_' and '-' are
// written as they are; any other key (empty, with dots, spaces, control
// characters, invalid UTF-8) is quoted Go-style, so that the path stays one
// unambiguous line. Very long keys are cut, as the path only has to point.
func keyName(key string) string {
	const max = 64
	plain := key != ""
	for i := 0; i < len(key) && plain; i++ {
		c := key[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if plain && len(key) <= max {
		return key
	}
	if len(key) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(key[cut]) {
			cut--
		}
		return strconv.Quote(key[:cut]) + "…"
	}
	return strconv.Quote(key)
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
	switch p.sc.next() {
	case kindString:
		s, valid := p.sc.readString()
		switch {
		case p.sc.err != nil:
		case !valid:
			p.add(l.path("metadata."+keyName(key)), CodeInvalidFormat, "must be valid UTF-8")
		case tooLong(s, MaxMetadataValueLen):
			p.add(l.path("metadata."+keyName(key)), CodeTooLong, "metadata strings must be at most 500 characters")
		default:
			return s
		}
	case kindNumber:
		text := p.sc.readNumber()
		if p.sc.err != nil {
			return nil
		}
		// A number float64 cannot hold (1e999) would make every client
		// that decodes numbers as float64 fail on the whole page.
		if f, _ := strconv.ParseFloat(text, 64); math.IsInf(f, 0) && !p.record {
			p.add(l.path("metadata."+keyName(key)), CodeOutOfRange, "metadata numbers must be finite as 64-bit floats (at most about 1.8e308 in magnitude)")
			return nil
		}
		return json.Number(text)
	case kindBool:
		return p.sc.readBool()
	case kindInvalid:
	default:
		p.wrongType(l, "metadata."+keyName(key), "metadata values must be strings, numbers or booleans (no nesting)")
	}
	return nil
}
