package event

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Record is a stored canonical record read back.
type Record struct {
	Accepted
	Draft
}

// AppendRecord appends the canonical record of an accepted event to dst:
// {"id":"evt_…","organization_id":"org_…","seq":42,"received_at":"…",<tail>}.
// tail is Draft.Tail. The result is the record's bytes for good: the Merkle
// leaf, the export line, the stream payload.
func AppendRecord(dst []byte, a Accepted, tail []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendJSONString(dst, a.ID)
	dst = append(dst, `,"organization_id":`...)
	dst = AppendJSONString(dst, a.OrganizationID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, a.Seq, 10)
	dst = append(dst, `,"received_at":"`...)
	dst = appendTime(dst, a.ReceivedAt)
	dst = append(dst, '"')
	if len(tail) > 0 {
		dst = append(dst, ',')
		dst = append(dst, tail...)
	}
	return append(dst, '}')
}

// RecordSize is the length of AppendRecord's output for a and a tail of
// tailLen bytes, when a's id and organization id need no escaping (a
// capacity to allocate, not a promise).
func RecordSize(a Accepted, tailLen int) int {
	// {"id":"","organization_id":"","seq":,"received_at":"",} with 20
	// digits of seq and 24 characters of time.
	const fixed = 55 + 20 + 24
	return fixed + len(a.ID) + len(a.OrganizationID) + tailLen
}

// DerivedID returns the event id "evt_" + a ULID of t's millisecond and the
// first 80 bits of SHA-256(seed): the same inputs always give the same id.
// An import derives its events' ids from where they came from, so that
// running it again finds the events it stored before.
func DerivedID(t time.Time, seed []byte) string {
	sum := sha256.Sum256(seed)
	var id ulid.ULID
	_ = id.SetTime(ulidMillis(t))
	copy(id[6:], sum[:10])
	var buf [4 + ulid.EncodedSize]byte
	copy(buf[:], "evt_")
	_ = id.MarshalTextTo(buf[4:]) // buf is the right size
	return string(buf[:])
}

// ulidMillis is t's Unix millisecond, clamped to what a ULID can hold.
func ulidMillis(t time.Time) uint64 {
	ms := t.UnixMilli()
	switch {
	case ms < 0:
		return 0
	case uint64(ms) > ulid.MaxTime():
		return ulid.MaxTime()
	}
	return uint64(ms)
}

// NewID returns a new event id, "evt_" + a ULID of t's millisecond and 80
// random bits. Times outside what a ULID can hold are clamped to its range.
func NewID(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulidMillis(t)) // in range by construction
	_, _ = rand.Read(id[6:])      // crypto/rand.Read never fails (Go 1.24+)
	var buf [4 + ulid.EncodedSize]byte
	copy(buf[:], "evt_")
	_ = id.MarshalTextTo(buf[4:]) // buf is the right size
	return string(buf[:])
}

// ParseRecord parses a stored canonical record. It applies the event rules
// except the configurable limits (number of targets, occurred_at in the
// future), which may have changed since the record was accepted. Unknown
// fields are ignored so that older readers accept newer records. The result's
// Tail is nil; its strings share one copy of b.
func ParseRecord(b []byte) (*Record, error) {
	p := newParser(b, time.Time{}, Limits{}, true)
	if k := p.sc.next(); k != kindObject {
		return nil, fmt.Errorf("event: parse record: %w", p.notObject(k, "Record"))
	}
	r := new(Record)
	p.event("", &r.Draft, &r.Accepted)
	p.sc.end()
	if err := p.result("Record"); err != nil {
		return nil, fmt.Errorf("event: parse record: %w", err)
	}
	return r, nil
}

// appendTail appends the canonical encoding of d's fields, action to
// metadata, without braces or a leading comma. d must be as parsing leaves it:
// metadata values are string, bool or json.Number.
func appendTail(dst []byte, d *Draft) []byte {
	dst = append(dst, `"action":`...)
	dst = AppendJSONString(dst, d.Action)
	if d.Version != 0 {
		dst = append(dst, `,"version":`...)
		dst = strconv.AppendInt(dst, d.Version, 10)
	}
	dst = append(dst, `,"occurred_at":"`...)
	dst = appendTime(dst, d.OccurredAt)
	dst = append(dst, `","actor":`...)
	dst = appendEntity(dst, &d.Actor, d.ActorMetadata)
	dst = append(dst, `,"targets":[`...)
	for i := range d.Targets {
		if i > 0 {
			dst = append(dst, ',')
		}
		var md Metadata
		if i < len(d.TargetsMetadata) {
			md = d.TargetsMetadata[i]
		}
		dst = appendEntity(dst, &d.Targets[i], md)
	}
	dst = append(dst, `],"context":{"location":`...)
	dst = AppendJSONString(dst, d.Location)
	if d.UserAgent != "" {
		dst = append(dst, `,"user_agent":`...)
		dst = AppendJSONString(dst, d.UserAgent)
	}
	dst = append(dst, '}')
	if len(d.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = appendMetadata(dst, d.Metadata)
	}
	if d.Imported != nil {
		dst = append(dst, `,"imported":{"source":`...)
		dst = AppendJSONString(dst, d.Imported.Source)
		dst = append(dst, `,"id":`...)
		dst = AppendJSONString(dst, d.Imported.ID)
		dst = append(dst, '}')
	}
	if d.Privacy != nil {
		dst = append(dst, `,"privacy":`...)
		dst = appendPrivacy(dst, d.Privacy)
	}
	return dst
}

func appendEntity(dst []byte, e *Entity, md Metadata) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendJSONString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, e.Type)
	if e.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = AppendJSONString(dst, e.Name)
	}
	if len(md) > 0 {
		dst = append(dst, `,"metadata":`...)
		dst = appendMetadata(dst, md)
	}
	return append(dst, '}')
}

// appendMetadata appends md with its keys sorted bytewise, so that the same
// metadata always gives the same bytes whatever order it was sent in.
func appendMetadata(dst []byte, md Metadata) []byte {
	type entry struct {
		k string
		v any
	}
	var arr [16]entry // on the stack for the usual few keys; more (up to 50) allocate
	entries := arr[:0]
	for k, v := range md {
		entries = append(entries, entry{k, v})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	dst = append(dst, '{')
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, e.k)
		dst = append(dst, ':')
		switch v := e.v.(type) {
		case string:
			dst = AppendJSONString(dst, v)
		case json.Number:
			dst = append(dst, v...)
		case bool:
			dst = strconv.AppendBool(dst, v)
		default:
			// Unreachable for parsed drafts; null keeps the output JSON.
			dst = append(dst, "null"...)
		}
	}
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string as the canonical record
// encodes every string (the CSV export's JSON cells use it too), escaped as
// encoding/json does with HTML escaping off: '"', '\\' and control
// characters below U+0020 (\b \f \n \r \t, else \u00XX), and U+2028 and
// U+2029, which JavaScript treats as line ends. Everything else, '<', '>'
// and '&' included, stays literal UTF-8. s is valid UTF-8 when it comes from
// parsing; otherwise each invalid byte becomes \ufffd, as encoding/json
// writes it, so the output stays valid.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i += plainPrefix(s[i:]); i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
