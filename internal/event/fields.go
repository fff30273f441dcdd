package event

// Readers of single fields: strings, timestamps, integers. Each reports its
// own errors and returns ok=false when the value is absent or invalid.

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/textsafe"
)

// strRule is what a string field must be.
type strRule struct {
	required  bool // absent, null and "" are errors; else they mean absent
	max       int  // in characters (runes)
	noControl bool // no C0, DEL or C1 control characters
	// noInvisible: no bidirectional controls or zero-width characters,
	// which make look-alikes of an action. Requests only: records stored
	// before this rule are read as they are.
	noInvisible bool
	// controlSince: noControl applies to requests only, as records
	// stored before it became a rule of this field may break it.
	controlSince bool
}

// actionRule is what an event's action must be. Identifiers, types and
// names (actions, actor and target ids, types and names, organization ids)
// refuse control characters, which a terminal would obey; actions also
// refuse invisible formatting characters, which make look-alikes in the
// Admin Portal's lists. Free text (location, user agent, metadata) keeps
// them, and is escaped wherever Trail prints it to a terminal.
var actionRule = strRule{required: true, max: MaxActionLen, noControl: true, noInvisible: true}

// ActionProblem says what is wrong with a as an event's action, or ""
// when nothing is: for actions that arrive elsewhere than in an event (the
// schema endpoints' paths, export filters).
func ActionProblem(a string) string {
	switch {
	case a == "":
		return "must not be empty"
	case !utf8.ValidString(a):
		return "must be valid UTF-8"
	case tooLong(a, actionRule.max):
		return actionRule.describe()
	case hasControl(a):
		return "must not contain control characters (U+0000–U+001F, U+007F–U+009F)"
	case textsafe.HasInvisible(a):
		return "must not contain bidirectional controls or zero-width characters"
	}
	return ""
}

// describe says in words what a value following r must be.
func (r strRule) describe() string {
	s := "must be a string of at most " + strconv.Itoa(r.max) + " characters"
	if r.required {
		s = "must be a string of 1 to " + strconv.Itoa(r.max) + " characters"
	}
	switch {
	case r.noControl && r.noInvisible:
		s += " without control, bidirectional or zero-width characters"
	case r.noControl:
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
	case r.noControl && !(p.record && r.controlSince) && hasControl(s):
		p.add(l.path(field), CodeInvalidFormat, "must not contain control characters (U+0000–U+001F, U+007F–U+009F)")
	case r.noInvisible && !p.record && textsafe.HasInvisible(s):
		p.add(l.path(field), CodeInvalidFormat, "must not contain bidirectional controls or zero-width characters (U+061C, U+200B–U+200F, U+202A–U+202E, U+2060, U+2066–U+2069, U+FEFF)")
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
	msg := func() string { return "must be an integer of at least " + strconv.FormatInt(min, 10) }
	switch p.sc.next() {
	case kindInvalid:
		return 0, false
	case kindNull:
		p.sc.readNull()
		if required {
			p.add(l.path(field), CodeRequired, msg())
		}
		return 0, false
	case kindNumber:
	default:
		p.wrongType(l, field, msg())
		return 0, false
	}
	text := p.sc.readNumber()
	if p.sc.err != nil {
		return 0, false
	}
	if strings.ContainsAny(text, ".eE") {
		p.add(l.path(field), CodeInvalidType, msg())
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < min {
		p.add(l.path(field), CodeOutOfRange, msg())
		return 0, false
	}
	return n, true
}
