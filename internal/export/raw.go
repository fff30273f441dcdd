package export

import (
	"encoding/json"
	"slices"
	"time"
	"unsafe"

	"github.com/trailaudit/trail/internal/store"
)

// rawRecord is a canonical record read in place for an export: the CSV
// cells and the filtered fields, as slices of the record's bytes. It is
// the fast path: event.ParseRecord builds maps of metadata that a CSV row
// does not need, and the record already holds targets and metadata in
// canonical JSON, the form the CSV's targets and metadata cells take.
//
// parse accepts only the canonical layout (no whitespace, the fields of
// docs/DESIGN.md §2); anything else reports false and the caller falls back to
// event.ParseRecord, so an odd record costs time, never a wrong cell.
// Slices are valid as long as the record's bytes are.
type rawRecord struct {
	id, seq, receivedAt, action, version, occurredAt []byte
	actorID, actorType, actorName                    string
	location, userAgent                              string
	targets, metadata                                []byte // raw JSON; metadata nil when absent
	targetTypes                                      []string
	scratch                                          []string // decoded strings with escapes, kept alive until the next parse
}

// parse reads b into x, reusing x's slices.
func (x *rawRecord) parse(b []byte) bool {
	*x = rawRecord{targetTypes: x.targetTypes[:0], scratch: x.scratch[:0]}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	i := 1
	var key []byte
	var ok bool
	for {
		if key, i, ok = rawString(b, i); !ok || i >= len(b) || b[i] != ':' {
			return false
		}
		i++
		switch string(key) {
		case "id":
			x.id, i, ok = rawString(b, i)
		case "seq":
			x.seq, i, ok = rawNumber(b, i)
		case "received_at":
			x.receivedAt, i, ok = rawString(b, i)
		case "action":
			x.action, i, ok = rawString(b, i)
			if ok && hasEscape(x.action) {
				return false
			}
		case "version":
			x.version, i, ok = rawNumber(b, i)
		case "occurred_at":
			x.occurredAt, i, ok = rawString(b, i)
		case "actor":
			i, ok = x.object(b, i, func(k string, v []byte) bool {
				switch k {
				case "id":
					x.actorID = x.text(v)
				case "type":
					x.actorType = x.text(v)
				case "name":
					x.actorName = x.text(v)
				}
				return true
			})
		case "targets":
			start := i
			i, ok = x.targetList(b, i)
			x.targets = b[start:i]
		case "context":
			i, ok = x.object(b, i, func(k string, v []byte) bool {
				switch k {
				case "location":
					x.location = x.text(v)
				case "user_agent":
					x.userAgent = x.text(v)
				}
				return true
			})
		case "metadata":
			start := i
			i, ok = skipValue(b, i)
			x.metadata = b[start:i]
		default:
			i, ok = skipValue(b, i)
		}
		if !ok || i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i == len(b)-1 && x.id != nil && x.seq != nil && x.receivedAt != nil && x.action != nil &&
				x.occurredAt != nil && x.targets != nil && x.actorType != ""
		default:
			return false
		}
	}
}

// text returns a raw string value (quotes included) as a Go string: a view
// of the record's bytes, or, with escapes, a decoded copy.
func (x *rawRecord) text(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	inner := v[1 : len(v)-1]
	if !hasEscape(inner) {
		return unsafe.String(unsafe.SliceData(inner), len(inner))
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	x.scratch = append(x.scratch, s)
	return s
}

// object reads a flat object of strings (nested values skipped), calling fn
// with each key and raw string value (quotes included).
func (x *rawRecord) object(b []byte, i int, fn func(k string, v []byte) bool) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		key, j, ok := rawString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return j, false
		}
		j++
		if j < len(b) && b[j] == '"' {
			start := j
			if _, j, ok = rawString(b, j); !ok {
				return j, false
			}
			fn(string(key), b[start:j])
		} else if j, ok = skipValue(b, j); !ok {
			return j, false
		}
		if j >= len(b) {
			return j, false
		}
		switch b[j] {
		case ',':
			i = j + 1
		case '}':
			return j + 1, true
		default:
			return j, false
		}
	}
}

// targetList reads the targets array, collecting each target's type.
func (x *rawRecord) targetList(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '[' {
		return i, false
	}
	i++
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		i, ok = x.object(b, i, func(k string, v []byte) bool {
			if k == "type" {
				x.targetTypes = append(x.targetTypes, x.text(v))
			}
			return true
		})
		if !ok || i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// rawString reads the string at b[i]: its content without quotes (escapes
// left as they are) for a key, and the index after it.
func rawString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return b[i+1 : j], j + 1, true
		case '\\':
			j++
		}
	}
	return nil, len(b), false
}

func rawNumber(b []byte, i int) ([]byte, int, bool) {
	j := i
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '-') {
		j++
	}
	return b[i:j], j, j > i
}

func hasEscape(b []byte) bool { return slices.Contains(b, '\\') }

// skipValue skips the JSON value at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		_, j, ok := rawString(b, i)
		return j, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, k, ok := rawString(b, j)
				if !ok {
					return k, false
				}
				j = k - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, true
				}
			}
		}
		return len(b), false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	return j, j > i
}

// rawFilter is an ExportFilter prepared for raw records: occurred_at is
// compared as canonical text (fixed-width UTC, milliseconds), which orders
// as the times do.
type rawFilter struct {
	f          *store.ExportFilter
	start, end string // "" = unbounded
}

func newRawFilter(f *store.ExportFilter) *rawFilter {
	rf := &rawFilter{f: f}
	// Records have millisecond times: t ≥ x and t < x hold exactly when
	// they hold against x rounded up to the millisecond.
	ceil := func(t time.Time) string {
		r := t.UTC().Truncate(time.Millisecond)
		if r.Before(t) {
			r = r.Add(time.Millisecond)
		}
		return r.Format("2006-01-02T15:04:05.000Z")
	}
	if !f.RangeStart.IsZero() {
		rf.start = ceil(f.RangeStart)
	}
	if !f.RangeEnd.IsZero() {
		rf.end = ceil(f.RangeEnd)
	}
	return rf
}

// matches is matches (filter.go) for a raw record.
func (rf *rawFilter) matches(x *rawRecord) bool {
	occurred := unsafe.String(unsafe.SliceData(x.occurredAt), len(x.occurredAt))
	if rf.start != "" && occurred < rf.start || rf.end != "" && occurred >= rf.end {
		return false
	}
	f := rf.f
	if len(f.Actions) > 0 && !slices.Contains(f.Actions, unsafe.String(unsafe.SliceData(x.action), len(x.action))) {
		return false
	}
	if len(f.ActorNames) > 0 && !slices.Contains(f.ActorNames, x.actorName) {
		return false
	}
	if len(f.ActorIDs) > 0 && !slices.Contains(f.ActorIDs, x.actorID) {
		return false
	}
	if len(f.Targets) > 0 && !slices.ContainsFunc(x.targetTypes, func(t string) bool { return slices.Contains(f.Targets, t) }) {
		return false
	}
	return true
}
