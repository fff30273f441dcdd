package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxPadKeys is how many metadata keys padding may use: WorkOS allows 50
// per metadata object and an event carries 6 of its own.
const (
	maxPadKeys     = 44
	maxPadValueLen = 500
	padKeyOverhead = len(`,"pad_00":""`)
)

// MaxEventSize is the largest --event-size that padding can reach within
// the event limits (50 metadata keys of at most 500 characters).
var MaxEventSize = naturalEventSize() + maxPadKeys*(maxPadValueLen+padKeyOverhead)

var (
	actions     = []string{"user.signed_in", "user.signed_out", "team.member_added", "invoice.paid", "document.viewed"}
	userAgent   = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	padAlphabet = strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 14)[:maxPadValueLen]
)

// Events makes realistic WorkOS create-event bodies (about 600 bytes, like
// the ingest benchmark's), each with a unique metadata key bench_id so that
// an acknowledged event can be found again in the log.
type Events struct {
	RunID string   // prefix of every bench_id
	Orgs  []string // event i goes to Orgs[i % len(Orgs)]
	// Spread, when > 0, spreads occurred_at evenly over the Spread before
	// End (event 0 earliest, event Total-1 at End); else occurred_at is
	// the time the body is made.
	Spread time.Duration
	End    time.Time
	Total  int64
	pad    []string // metadata padding values
}

// NewEvents returns a generator whose events are about size bytes of JSON
// each (0: their natural size, about 600 bytes).
func NewEvents(runID string, orgs []string, size int) *Events {
	e := &Events{RunID: runID, Orgs: orgs}
	if size <= 0 {
		return e
	}
	extra := size - naturalEventSize()
	for extra > padKeyOverhead && len(e.pad) < maxPadKeys {
		n := min(extra-padKeyOverhead, maxPadValueLen)
		e.pad = append(e.pad, padAlphabet[:n])
		extra -= n + padKeyOverhead
	}
	return e
}

func naturalEventSize() int {
	return len(NewEvents("0123456789ab", []string{"org_01KBENCHBENCHBENCHBENCHBE"}, 0).Event(nil, 0))
}

// Org is the organization of event i.
func (e *Events) Org(i int64) string { return e.Orgs[i%int64(len(e.Orgs))] }

// BenchID is the bench_id of event i.
func (e *Events) BenchID(i int64) string { return BenchID(e.RunID, i) }

// BenchID is the bench_id of event i of a run: the run id and a sequence
// number.
func BenchID(runID string, i int64) string { return runID + "-" + strconv.FormatInt(i, 10) }

// RunOf returns the run id of a bench_id, and false if it is not one.
func RunOf(benchID string) (string, bool) {
	i := strings.LastIndexByte(benchID, '-')
	if i <= 0 {
		return "", false
	}
	if _, err := strconv.ParseInt(benchID[i+1:], 10, 64); err != nil {
		return "", false
	}
	return benchID[:i], true
}

// Single is the body of POST /audit_logs/events for event i.
func (e *Events) Single(i int64) []byte {
	b := make([]byte, 0, 1024+len(e.pad)*(maxPadValueLen+padKeyOverhead))
	b = append(b, `{"organization_id":`...)
	b = appendString(b, e.Org(i))
	b = append(b, `,"event":`...)
	b = e.Event(b, i)
	return append(b, '}')
}

// Batch is the body of POST /v1/events/batch for events first … first+n-1.
func (e *Events) Batch(first int64, n int) []byte {
	b := make([]byte, 0, n*(1024+len(e.pad)*(maxPadValueLen+padKeyOverhead)))
	b = append(b, `{"events":[`...)
	for i := first; i < first+int64(n); i++ {
		if i > first {
			b = append(b, ',')
		}
		b = append(b, `{"organization_id":`...)
		b = appendString(b, e.Org(i))
		b = append(b, `,"event":`...)
		b = e.Event(b, i)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// Event appends the event object of event i to b: five actions, a thousand
// actors, fifty teams, a document per event.
func (e *Events) Event(b []byte, i int64) []byte {
	at := time.Now()
	if e.Spread > 0 && e.Total > 0 {
		at = e.End.Add(-e.Spread + time.Duration(float64(e.Spread)*float64(i+1)/float64(e.Total)))
	}
	b = append(b, `{"action":`...)
	b = appendString(b, actions[i%int64(len(actions))])
	b = append(b, `,"occurred_at":"`...)
	b = at.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = fmt.Appendf(b, `","actor":{"type":"user","id":"user_%06d","name":"User Number %d","metadata":{"role":"admin","team":"platform"}}`, i%1000, i%1000)
	b = fmt.Appendf(b, `,"targets":[{"type":"team","id":"team_%04d","name":"Platform"},{"type":"document","id":"doc_%08d","metadata":{"size":1024}}]`, i%50, i)
	b = append(b, `,"context":{"location":"203.0.113.7","user_agent":`...)
	b = appendString(b, userAgent)
	b = append(b, `},"metadata":{"bench_id":`...)
	b = appendString(b, e.BenchID(i))
	b = fmt.Appendf(b, `,"request_id":"req_%016d","mfa":true,"attempts":1,"region":"eu-west-1","plan":"enterprise"`, i)
	for k, p := range e.pad {
		b = fmt.Appendf(b, `,"pad_%02d":`, k)
		b = appendString(b, p)
	}
	return append(b, "}}"...)
}

// appendString appends s as a JSON string. The strings made here hold no
// character that JSON escapes; anything else is escaped conservatively.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = fmt.Appendf(b, `\u%04x`, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
