package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TailQuery selects what Tail follows: one organization's new events, with
// the search's filters that apply to events still to come.
type TailQuery struct {
	// OrganizationID is required unless the key is restricted to one.
	OrganizationID string
	// Actions are exact names, prefixes ending in "*" (user.*), or "*".
	Actions    []string
	ActorID    string
	ActorName  string
	TargetType string
	TargetID   string // needs TargetType
	Text       string // every word must be a word of the event
	// From, when set, starts at this seq: the events from it on that are
	// already in the log come first (at most 10,000 behind its end).
	// Unset, the tail starts at the log's end.
	From *int64
}

func (q TailQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("organization_id", q.OrganizationID)
	for _, a := range q.Actions {
		v.Add("action", a)
	}
	set("actor_id", q.ActorID)
	set("actor_name", q.ActorName)
	set("target_type", q.TargetType)
	set("target_id", q.TargetID)
	set("q", q.Text)
	if q.From != nil {
		v.Set("since_seq", itoa(*q.From))
	}
	return v
}

// TailEvent is one event of a live tail: its record, byte for byte as
// stored, decoded.
type TailEvent struct {
	Seq    int64
	Record Record
}

// errTailEnded is a stream the server ended in an orderly way; Tail
// reconnects.
var errTailEnded = errors.New("the server ended the stream")

// Tail follows an organization's log (GET /v1/events/stream, Server-Sent
// Events) and calls fn with each new event matching q, in seq order, until
// ctx ends or fn returns an error (which Tail returns). When the
// connection drops, or the server ends the stream (shutting down, or this
// client fell behind), Tail reconnects after the last seq it delivered,
// so no event is missed or repeated; a refusal that retrying cannot
// change (a bad filter, an unknown organization, a missing scope) is
// returned at once.
func (c *Client) Tail(ctx context.Context, q TailQuery, fn func(TailEvent) error) error {
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as it lasts
	// The same server, key and User-Agent, over hc.
	stream := *c
	stream.hc = &hc
	last := int64(-1)
	backoff := 250 * time.Millisecond
	for {
		err := stream.tailOnce(ctx, q, last, func(ev TailEvent) error {
			last = ev.Seq
			backoff = 250 * time.Millisecond
			return fn(ev)
		})
		var apiErr *Error
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errTailEnded):
			continue // at once: the server said to
		case errors.As(err, &apiErr) && !apiErr.Retryable():
			return err
		case err != nil && !errors.As(err, &apiErr) && !isStreamBreak(err):
			return err // fn's own error
		}
		wait := backoff
		if apiErr != nil && apiErr.RetryAfter > 0 {
			wait = apiErr.RetryAfter
		}
		backoff = min(backoff*2, 10*time.Second)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// streamBreak marks a stream that broke while it was being read.
type streamBreak struct{ err error }

func (s streamBreak) Error() string { return "the live tail's connection broke: " + s.err.Error() }
func (s streamBreak) Unwrap() error { return s.err }

func isStreamBreak(err error) bool {
	var sb streamBreak
	return errors.As(err, &sb)
}

// tailOnce reads one stream, resuming after seq last (-1: from q's start).
func (c *Client) tailOnce(ctx context.Context, q TailQuery, last int64, fn func(TailEvent) error) error {
	rq := request{method: http.MethodGet, path: "/v1/events/stream", query: q.values()}
	if last >= 0 {
		rq.query.Del("since_seq")
		rq.opts = append(rq.opts, func(h http.Header) { h.Set("Last-Event-ID", strconv.FormatInt(last, 10)) })
	}
	rq.opts = append(rq.opts, func(h http.Header) { h.Set("Accept", "text/event-stream") })
	resp, err := c.send(ctx, rq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20) // a record is at most a few MiB
	var id, name string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				name = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			continue
		}
		// A blank line ends an event (the SSE format).
		switch name {
		case "event":
			seq, err := strconv.ParseInt(id, 10, 64)
			if err != nil {
				return fmt.Errorf("the live tail sent an event with id %q, not a seq", truncate(id, 40))
			}
			var ev TailEvent
			ev.Seq = seq
			if err := json.Unmarshal([]byte(data.String()), &ev.Record); err != nil {
				return fmt.Errorf("decoding event %d of the live tail: %w", seq, err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		case "error":
			return errTailEnded
		}
		id, name = "", ""
		data.Reset()
	}
	if err := sc.Err(); err != nil {
		return streamBreak{err}
	}
	return errTailEnded // the server closed the stream (its time limit)
}
