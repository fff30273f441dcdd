// Package lograte limits how often a log line repeats. During an outage the
// same failure is met by every request and every retry of a background
// job; one line per occurrence buries everything else in the log and costs
// the log pipeline more than the outage itself. A Handler passes on the
// first record of each message, then at most one per interval, and adds to
// each passed record how many of that message it dropped since the last
// one (the "suppressed" attribute), so counts are never lost, only folded.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Handler is a slog.Handler that rate-limits records by message. Handlers
// derived from it (WithAttrs, WithGroup) share its limits.
type Handler struct {
	next  slog.Handler
	state *state
}

type state struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed int64
}

// maxMessages bounds the messages remembered; past it the table is
// cleared (a burst of distinct messages passes, which is harmless).
const maxMessages = 1024

// New returns a Handler passing to next at most one record per message
// every interval. now is the clock (nil: time.Now).
func New(next slog.Handler, every time.Duration, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{next: next, state: &state{every: every, now: now, seen: map[string]*entry{}}}
}

// Enabled reports whether next handles records of level l.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r on unless a record of the same message passed less than
// the interval ago; then it only counts it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	now := s.now()
	s.mu.Lock()
	e := s.seen[r.Message]
	if e == nil {
		if len(s.seen) >= maxMessages {
			clear(s.seen)
		}
		e = &entry{}
		s.seen[r.Message] = e
	} else if now.Sub(e.last) < s.every {
		e.suppressed++
		s.mu.Unlock()
		return nil
	}
	e.last = now
	suppressed := e.suppressed
	e.suppressed = 0
	s.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", suppressed), slog.Duration("suppressed_over", s.every))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a Handler with attrs, sharing h's limits.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup returns a Handler with the group, sharing h's limits.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}
