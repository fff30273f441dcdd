package livetail

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// StreamOptions shape a Server-Sent Events stream.
type StreamOptions struct {
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies and clients know it is alive; default 15s.
	Heartbeat time.Duration
	// MaxDuration ends a stream after this long (default 1h): a client
	// reconnects with Last-Event-ID and loses nothing, and long-lived
	// connections spread again over the replicas behind a load balancer.
	MaxDuration time.Duration
	// Transform, when set, is what each event's data becomes for this
	// stream: one line of JSON made from the record (the portal sends
	// what its page shows, not the record), or nil to leave the event
	// out. Without it the data is the record as stored.
	Transform func(rec Record) []byte
}

// ServeSSE subscribes to org's log from seq from with filter f and writes
// what comes to w as Server-Sent Events (docs/LIVETAIL.md) until the
// client goes away, the stream's time is up, or the subscription ends. An
// error is returned only when the subscription is refused, before anything
// is written (ErrTooMany, ErrResumeTooOld, ErrClosed, or the store's), for
// the caller to answer in its own way.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request, org string, from int64, f Filter, opts StreamOptions) error {
	sub, err := h.Subscribe(r.Context(), org, from, f)
	if err != nil {
		return err
	}
	defer sub.Close()

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	// retry: how long a client waits before reconnecting (the SSE field).
	if _, err := fmt.Fprintf(w, "retry: 2000\n: tailing the log of %s\n\n", org); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	beat := time.NewTicker(cmp.Or(opts.Heartbeat, 15*time.Second))
	defer beat.Stop()
	end := time.NewTimer(cmp.Or(opts.MaxDuration, time.Hour))
	defer end.Stop()
	var buf []byte
	write := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for {
		select {
		case rec := <-sub.C():
			buf = appendSSE(buf[:0], rec, opts.Transform)
			// Write whatever else is waiting too, then flush once.
			for more := true; more && len(buf) < 256<<10; {
				select {
				case next := <-sub.C():
					buf = appendSSE(buf, next, opts.Transform)
				default:
					more = false
				}
			}
			if !write(buf) {
				return nil
			}
		case <-beat.C:
			if !write([]byte(": keep-alive\n\n")) {
				return nil
			}
		case <-end.C:
			// The client reconnects at once (retry above) from its
			// Last-Event-ID.
			write([]byte(": reconnect to go on\n\n"))
			return nil
		case <-sub.Done():
			code, msg := "ended", "The live tail ended."
			switch {
			case errors.Is(sub.Err(), ErrTooSlow):
				code, msg = "too_slow", "This client fell too far behind the log; reconnect with Last-Event-ID to resume after the last event received."
			case errors.Is(sub.Err(), ErrClosed):
				code, msg = "shutting_down", "This server is shutting down; reconnect with Last-Event-ID to resume."
			}
			if r.Context().Err() == nil {
				write(fmt.Appendf(nil, "event: error\ndata: {\"code\":%q,\"message\":%q}\n\n", code, msg))
			}
			return nil
		}
	}
}

// appendSSE appends one record as an SSE event: its seq as the id, the
// record (one line of JSON, byte for byte as stored) or what transform
// makes of it as the data. A record transform drops is not appended.
func appendSSE(b []byte, rec Record, transform func(Record) []byte) []byte {
	data := rec.Record
	if transform != nil {
		if data = transform(rec); data == nil {
			return b
		}
	}
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, rec.Seq, 10)
	b = append(b, "\nevent: event\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
