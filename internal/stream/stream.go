// Package stream is the log stream delivery engine (docs/DESIGN.md §6): it sends each
// organization's events, in seq order and at least once, to the streams'
// destinations — Datadog, Splunk HEC, S3-compatible object storage, HTTPS
// webhooks, syslog, Azure Sentinel and Google Cloud Storage — one file per
// destination.
//
// Each stream has a durable cursor (store.Stream.Cursor, the seq of the next
// event to deliver). A worker per stream reads a batch of records from the
// cursor, sends it, and only then advances the cursor with a compare-and-set;
// a crash between the send and the advance resends the batch, so receivers
// see each event at least once and drop repeats by the event's id. Failures
// back off exponentially with jitter (honouring Retry-After); a destination
// that refuses the credentials or configuration moves the stream to
// "invalid" and nothing is retried until an administrator changes it.
//
// Destinations are behind the Destination interface; every network call has
// a timeout and goes through a dialer that refuses loopback, private,
// link-local and cloud metadata addresses unless the operator allows them
// (Policy), checked on the address actually dialed so DNS cannot rebind
// around it.
package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event is one record to deliver.
type Event struct {
	OrganizationID string
	Seq            int64
	// Record is the canonical record, exactly as stored (docs/DESIGN.md §2); it
	// carries the event's id, which receivers use to drop repeats.
	Record []byte
}

// ID returns the event's id ("evt_…") from its record.
func (e Event) ID() string { return recordString(e.Record, `"id":"`) }

// ReceivedAt returns when Trail accepted the event, from its record.
func (e Event) ReceivedAt() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, recordString(e.Record, `"received_at":"`))
	return t
}

// recordString returns the string value following key in a canonical
// record. The fields id … received_at come first in a fixed order and never
// hold escapes, so a scan of the record's head finds them.
func recordString(rec []byte, key string) string {
	head := rec[:min(len(rec), 256)]
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return ""
	}
	v := head[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return ""
	}
	return string(v[:j])
}

// Limits bound one batch for a destination.
type Limits struct {
	MaxEvents int // events per batch
	MaxBytes  int // sum of the records' sizes per batch
}

// Destination delivers batches to one stream's receiver. Implementations
// are used by one goroutine at a time.
type Destination interface {
	// Limits bounds the batches Send is given. A single record larger than
	// MaxBytes is sent alone.
	Limits() Limits
	// Send delivers the events (in seq order, at least one). It returns
	// nil only when the destination acknowledged all of them. Any error
	// means none of them may be assumed delivered; a *Failure says how
	// to go on. Send must give up when ctx ends.
	Send(ctx context.Context, batch []Event) error
	// Close releases connections.
	Close() error
}

// Failure is a delivery error that says what to do next.
type Failure struct {
	// Permanent: the destination refused the credentials or the
	// configuration (e.g. 401, 403, 404); retrying unchanged is pointless.
	Permanent bool
	// TooLarge: the destination refused the batch's size (413); the
	// engine retries at once with smaller batches.
	TooLarge bool
	// RetryAfter is the wait the destination asked for (429/503), or 0.
	RetryAfter time.Duration
	// Status is the HTTP status the destination answered, or 0.
	Status int
	Err    error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

func permanent(format string, args ...any) error {
	return &Failure{Permanent: true, Err: fmt.Errorf(format, args...)}
}

// maxExcerpt bounds how much of a destination's answer is quoted in a
// failure, which the tenant sees (the test endpoint, last_error, the
// portal): enough for "invalid token", too little to read an internal
// service through a misdirected stream.
const maxExcerpt = 64

// httpFailure classifies an HTTP answer other than 2xx. body is at most
// the first bytes of the answer; a short, sanitised excerpt of it is quoted
// in the message, after the status code and its standard text (never the
// destination's own reason phrase).
func httpFailure(resp *http.Response, body []byte, now time.Time) error {
	status := strconv.Itoa(resp.StatusCode)
	if t := http.StatusText(resp.StatusCode); t != "" {
		status += " " + t
	}
	msg := fmt.Sprintf("%s answered %s", resp.Request.URL.Host, status)
	if b := Excerpt(string(body), maxExcerpt); b != "" {
		msg += ": " + b
	}
	f := &Failure{Err: errors.New(msg), Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code == http.StatusRequestEntityTooLarge:
		f.TooLarge = true
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code == http.StatusTooEarly || code >= 500:
		f.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	case code >= 400:
		f.Permanent = true
	default: // 1xx or 3xx: a redirect is not followed (it could lead anywhere)
		f.Permanent = true
	}
	return f
}

// maxRetryAfter caps a destination's Retry-After, so a bogus answer cannot
// stall a stream for days.
const maxRetryAfter = 10 * time.Minute

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Excerpt returns at most n runes of s as a single line of printable text:
// invalid UTF-8, control, format (bidi, zero-width) and other unprintable
// characters become spaces, runs of spaces one space, and a cut is marked
// with "…".
func Excerpt(s string, n int) string {
	var b strings.Builder
	runes, space := 0, false
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if runes == n {
			b.WriteString("…")
			return b.String()
		}
		if space {
			if runes+1 == n {
				b.WriteString("…")
				return b.String()
			}
			b.WriteByte(' ')
			runes++
			space = false
		}
		b.WriteRune(r)
		runes++
	}
	return b.String()
}
