// Package logbuf gathers log lines that may wait a moment into fewer writes.
//
// The access log writes one line per request answered. Written one at a
// time, each line is a write system call made while the log handler holds
// its lock, so at thousands of requests a second the access log costs more
// server CPU than decoding the request (docs/PERFORMANCE.md, "CPU per
// event"). A Writer keeps such lines in a buffer and writes them out
// together: when the buffer is full, at least every interval, and at once
// before any line that may not wait.
//
// A line may wait only when it was logged with a context from MayWait
// through a Handler; every other line is written out at once, after the
// lines buffered before it, so the order of the log is kept and warnings
// and errors are never held back.
//
// A Handler made with NewEncodedHandler also writes such lines itself
// (Line), encoded exactly as the slog handler it wraps would, but without
// slog's generic machinery, which costs more than the line's fields.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Writer buffers what is written to it and writes it out to the underlying
// writer when Flush is called, when the buffer passes its limit, and at
// least every interval. Writes are whole lines (slog handlers write one
// record per call), so the underlying writer only ever sees whole lines.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	limit  int
	closed bool

	stop chan struct{}
	done chan struct{}
}

// New returns a Writer over out that keeps up to limit bytes and writes
// them out at least every interval. Close it to stop its timer and write
// out the rest.
func New(out io.Writer, interval time.Duration, limit int) *Writer {
	w := &Writer{out: out, limit: limit, buf: make([]byte, 0, limit),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

func (w *Writer) run(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush() // nowhere to report a log write's failure
		}
	}
}

// Write keeps p in the buffer, first writing out the buffer if p would take
// it past its limit. After Close it writes p through at once. A batch that
// fails to write is dropped, but p is still kept (or written through): one
// failed write loses the lines before it, never the line being logged.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(p) >= w.limit {
		ferr := w.flushLocked()
		n, err := w.out.Write(p)
		if err == nil {
			err = ferr
		}
		return n, err
	}
	var ferr error
	if len(w.buf)+len(p) > w.limit {
		ferr = w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	return len(p), ferr
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	// On failure the lines are dropped: retrying them would only grow the
	// buffer behind a writer that is gone.
	w.buf = w.buf[:0]
	return err
}

// Close stops the timer and writes out what is buffered; later writes go
// through at once. It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}

type mayWaitKey struct{}

// MayWait returns ctx marked so that a line logged with it through a Handler
// may stay buffered for a moment.
func MayWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, mayWaitKey{}, true)
}

func mayWait(ctx context.Context) bool {
	v, _ := ctx.Value(mayWaitKey{}).(bool)
	return v
}

// Handler wraps next, a handler writing to w: after each record it writes
// out w's buffer unless the record was logged with a context from MayWait.
type Handler struct {
	next slog.Handler
	w    *Writer
	enc  Encoding // Opaque unless next is known (NewEncodedHandler)
	// lines are the Lines this handler writes, for reuse (NewEncodedHandler).
	lines *sync.Pool
}

// NewHandler returns a Handler over next, which must write to w. Its Line
// returns nil: NewEncodedHandler makes one that writes lines itself.
func NewHandler(next slog.Handler, w *Writer) *Handler { return &Handler{next: next, w: w} }

// Enabled reports whether next handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r to next, then writes out the buffer unless ctx allows r
// to wait and r is below a warning: warnings and errors are never held back,
// whatever context they were logged with.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if ctx == nil || !mayWait(ctx) || r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs returns a Handler over next.WithAttrs(attrs), sharing w. It
// writes no Line itself.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), w: h.w}
}

// WithGroup returns a Handler over next.WithGroup(name), sharing w. It
// writes no Line itself.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), w: h.w}
}
