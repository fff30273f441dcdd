package event

// Privacy says which of an event's fields a field policy replaced before
// the event was stored (docs/PRIVACY.md): Hashed fields hold a keyed hash
// of the value sent ("hmac:v1:<key id>:<base64>"), Redacted fields hold
// RedactedValue. Each list names fields by path, in the order the policy
// met them: "actor.id", "targets[0].name", "metadata.email",
// "context.location". The record carries it as "privacy", so every reader
// of the record (a bundle's verifier, an export, a stream) can tell a
// replaced value from one the application sent.
type Privacy struct {
	Hashed   []string
	Redacted []string
}

// RedactedValue is what a redacted field holds in the record.
const RedactedValue = "[redacted]"

// MaxPrivacyPaths bounds each list of a record's "privacy" object: an event
// has at most 100 targets of 3 fields plus metadata, so this is never
// reached by a record Trail wrote.
const MaxPrivacyPaths = 10000

// MarkPrivacy records pr in d and re-encodes d.Tail from d's fields, which
// the caller has already replaced. d must be as parsing leaves it.
func (d *Draft) MarkPrivacy(pr Privacy) {
	if len(pr.Hashed) == 0 && len(pr.Redacted) == 0 {
		d.Privacy = nil
	} else {
		d.Privacy = &pr
	}
	d.Tail = appendTail(make([]byte, 0, len(d.Tail)+64), d)
}

// appendPrivacy appends the "privacy" member's value.
func appendPrivacy(dst []byte, pr *Privacy) []byte {
	dst = append(dst, '{')
	first := true
	for _, l := range [...]struct {
		name  string
		paths []string
	}{{"hashed", pr.Hashed}, {"redacted", pr.Redacted}} {
		if len(l.paths) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, l.name...)
		dst = append(dst, `":[`...)
		for i, p := range l.paths {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, p)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// privacy reads a record's "privacy" object. Only stored records have one;
// in a request it is an unknown key, ignored like any other, so an
// application cannot claim a value was hashed.
func (p *parser) privacy(l loc) *Privacy {
	const msg = "must be an object with hashed and redacted lists of field paths"
	switch p.sc.next() {
	case kindObject:
	case kindInvalid:
		return nil
	default:
		p.wrongType(l, "privacy", msg)
		return nil
	}
	pl := loc{parent: l.path(""), name: "privacy", idx: -1}
	pr := new(Privacy)
	var m members
	for more := p.sc.objectFirst(); more; more = p.sc.objectNext() {
		key, _ := p.sc.key()
		var bit uint32
		switch key {
		case "hashed":
			bit = 1
		case "redacted":
			bit = 2
		}
		if !p.claim(&m, pl, key, bit) {
			continue
		}
		list := p.pathList(pl, key)
		if bit == 1 {
			pr.Hashed = list
		} else {
			pr.Redacted = list
		}
	}
	if p.sc.err == nil && len(pr.Hashed) == 0 && len(pr.Redacted) == 0 {
		p.add(pl.path(""), CodeRequired, msg)
	}
	return pr
}

// pathList reads an array of field paths.
func (p *parser) pathList(l loc, field string) []string {
	const msg = "must be an array of field paths"
	switch p.sc.next() {
	case kindArray:
	case kindInvalid:
		return nil
	default:
		p.wrongType(l, field, msg)
		return nil
	}
	var out []string
	rule := strRule{required: true, max: MaxEntityFieldLen, noControl: true}
	for more := p.sc.arrayFirst(); more; more = p.sc.arrayNext() {
		s, ok := p.str(l, field, rule)
		if !ok {
			continue
		}
		if len(out) == MaxPrivacyPaths {
			p.add(l.path(field), CodeTooMany, "must hold at most 10000 paths")
			return out
		}
		out = append(out, s)
	}
	return out
}
