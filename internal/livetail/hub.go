// Package livetail follows organizations' logs as they grow and hands each
// new record, in seq order, to the subscribers whose filter it matches: the
// live tail behind GET /v1/events/stream, `trail tail` and the Admin
// Portal's live view (docs/LIVETAIL.md).
//
// Records are read from the store by seq, never from the search index, so
// a tail is read-your-writes consistent: an event acknowledged before a
// subscription starts at or before its seq is delivered, indexed or not.
// A local append wakes its organization's follower at once (Submitter);
// appends by other replicas are found by polling the log's size.
package livetail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// Source is what a Hub reads: a log's size and its records by seq. Both
// backends' stores are one.
type Source interface {
	NextSeq(ctx context.Context, org string) (int64, error)
	ReadRecords(ctx context.Context, org string, from, to int64, fn func(seq int64, record []byte) error) error
}

// Errors a subscription ends with.
var (
	// ErrTooSlow ends a subscription whose reader fell more than its
	// buffer behind: it may resume from the last seq it received.
	ErrTooSlow = errors.New("livetail: the subscriber fell too far behind")
	// ErrClosed ends every subscription when the hub closes (shutdown).
	ErrClosed = errors.New("livetail: the server is shutting down")
	// ErrTooMany refuses a subscription beyond Options.MaxSubscribers.
	ErrTooMany = errors.New("livetail: too many live tails")
	// ErrResumeTooOld refuses a resume point more than Options.MaxResume
	// records behind the log's end.
	ErrResumeTooOld = errors.New("livetail: the resume point is too far behind")
)

// Options tune a Hub. Zero values take the defaults.
type Options struct {
	// Poll is how often a followed log's size is read, to find records
	// appended by other processes; default 250ms.
	Poll time.Duration
	// Buffer is how many matching records a subscriber may have waiting
	// before it is ended with ErrTooSlow; default 1024.
	Buffer int
	// MaxSubscribers bounds the subscriptions of the hub; default 1000.
	MaxSubscribers int
	// MaxResume bounds how far behind the log's end a subscription may
	// start; default 10,000 records (older events: search or export).
	MaxResume int64
	// ReadBatch is how many records one read of a log takes at most;
	// default 512.
	ReadBatch int64
	Logger    *slog.Logger
}

// Record is a delivered record: its seq and its canonical bytes, shared by
// every subscriber and never to be modified.
type Record struct {
	Seq    int64
	Record []byte
}

// Hub follows the logs that have subscribers.
type Hub struct {
	src  Source
	opts Options
	log  *slog.Logger

	mu        sync.Mutex // guards everything below, and every follower's subs
	followers map[string]*follower
	count     int
	closed    bool
	stats     Stats
}

// Stats are a hub's counters, for metrics.
type Stats struct {
	Subscribers int   // open now
	Delivered   int64 // records handed to subscribers
	TooSlow     int64 // subscriptions ended with ErrTooSlow
}

// NewHub returns a hub reading src.
func NewHub(src Source, opts Options) *Hub {
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = 1000
	}
	if opts.MaxResume <= 0 {
		opts.MaxResume = 10_000
	}
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{src: src, opts: opts, log: opts.Logger, followers: map[string]*follower{}}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Subscribers = h.count
	return s
}

// Notify says org's log grew in this process: its follower, if any, reads
// at once instead of at its next poll.
func (h *Hub) Notify(org string) {
	h.mu.Lock()
	f := h.followers[org]
	h.mu.Unlock()
	if f != nil {
		f.wake()
	}
}

// Close ends every subscription with ErrClosed and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	var subs []*Subscription
	for _, f := range h.followers {
		for s := range f.subs {
			subs = append(subs, s)
		}
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.end(ErrClosed)
		h.leave(s)
	}
}

// Subscribe follows org's log from seq from (a negative from: from the
// log's end, only records appended from now on), delivering the records f
// matches. The subscription ends when ctx ends, when it is closed, or with
// one of the errors above.
func (h *Hub) Subscribe(ctx context.Context, org string, from int64, f Filter) (*Subscription, error) {
	next, err := h.src.NextSeq(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the size of %s's log: %w", org, err)
	}
	switch {
	case from < 0 || from > next:
		from = next
	case next-from > h.opts.MaxResume:
		return nil, fmt.Errorf("%w: seq %d is %d records behind the end of the log (at most %d)", ErrResumeTooOld, from, next-from, h.opts.MaxResume)
	}
	s := &Subscription{c: make(chan Record, h.opts.Buffer), done: make(chan struct{}), filter: f.compile(), cursor: from, hub: h}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if h.count >= h.opts.MaxSubscribers {
		h.mu.Unlock()
		return nil, ErrTooMany
	}
	h.count++
	fl := h.followers[org]
	if fl == nil {
		fl = &follower{h: h, org: org, wakeC: make(chan struct{}, 1), stopC: make(chan struct{}), subs: map[*Subscription]struct{}{}}
		h.followers[org] = fl
		go fl.run()
	}
	fl.subs[s] = struct{}{}
	s.fl = fl
	h.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			s.end(ctx.Err())
			h.leave(s)
		case <-s.done:
		}
	}()
	fl.wake()
	return s, nil
}

// leave takes an ended subscription out of its follower; the last one out
// stops the follower. It may be called more than once.
func (h *Hub) leave(s *Subscription) {
	h.mu.Lock()
	fl := s.fl
	if _, ok := fl.subs[s]; !ok {
		h.mu.Unlock()
		return
	}
	delete(fl.subs, s)
	h.count--
	if len(fl.subs) == 0 {
		delete(h.followers, fl.org)
		close(fl.stopC)
	}
	h.mu.Unlock()
}

// Subscription is one subscriber's view of a log.
type Subscription struct {
	hub    *Hub
	fl     *follower
	c      chan Record
	done   chan struct{}
	filter *compiled
	cursor int64 // the next seq to consider; only the follower uses it after Subscribe

	once sync.Once
	err  error
}

// C delivers the matching records in seq order. It is never closed: read
// it together with Done.
func (s *Subscription) C() <-chan Record { return s.c }

// Done is closed when the subscription has ended; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription ended, once Done is closed.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.end(context.Canceled)
	s.hub.leave(s)
}

// end ends the subscription with err, once; it reports whether this call
// ended it.
func (s *Subscription) end(err error) bool {
	ended := false
	s.once.Do(func() {
		s.err = err
		close(s.done)
		ended = true
	})
	return ended
}

// follower reads one organization's log for its subscribers.
type follower struct {
	h     *Hub
	org   string
	wakeC chan struct{}
	stopC chan struct{}              // closed when its last subscriber left
	subs  map[*Subscription]struct{} // guarded by h.mu
}

func (f *follower) wake() {
	select {
	case f.wakeC <- struct{}{}:
	default:
	}
}

// run reads the log whenever woken or polled, and delivers. Only run
// sends on the subscriptions' channels and moves their cursors, so each
// subscriber sees its records in seq order.
func (f *follower) run() {
	t := time.NewTicker(f.h.opts.Poll)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stopC
		cancel()
	}()
	for {
		select {
		case <-f.stopC:
			return
		case <-f.wakeC:
		case <-t.C:
		}
		if err := f.pass(ctx); err != nil && ctx.Err() == nil {
			f.h.log.Warn("live tail: couldn't read the log", "organization_id", f.org, "err", err)
		}
	}
}

// pass reads the records no subscriber has considered yet, up to the log's
// end, and delivers each to the subscribers it matches.
func (f *follower) pass(ctx context.Context) error {
	f.h.mu.Lock()
	subs := make([]*Subscription, 0, len(f.subs))
	for s := range f.subs {
		subs = append(subs, s)
	}
	f.h.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}
	next, err := f.h.src.NextSeq(ctx, f.org)
	if err != nil {
		return err
	}
	for {
		lo := next
		for _, s := range subs {
			lo = min(lo, s.cursor)
		}
		if lo >= next {
			return nil
		}
		hi := min(next, lo+f.h.opts.ReadBatch)
		var delivered, slow int64
		err := f.h.src.ReadRecords(ctx, f.org, lo, hi, func(seq int64, record []byte) error {
			var rec *event.Record // parsed once, for the first subscriber that filters
			shared := Record{Seq: seq}
			for _, s := range subs {
				if seq < s.cursor || s.Err() != nil {
					continue
				}
				if !s.filter.all() {
					if rec == nil {
						r, err := event.ParseRecord(record)
						if err != nil {
							return fmt.Errorf("couldn't parse record %d of %s: %w", seq, f.org, err)
						}
						rec = r
					}
					if !s.filter.match(rec) {
						continue
					}
				}
				if shared.Record == nil {
					shared.Record = append([]byte(nil), record...)
				}
				select {
				case s.c <- shared:
					delivered++
				default:
					// Its reader is a whole buffer behind: end it rather
					// than hold records for it without bound. It resumes
					// from the last seq it received.
					if s.end(ErrTooSlow) {
						slow++
						go f.h.leave(s)
					}
				}
			}
			return nil
		})
		f.h.mu.Lock()
		f.h.stats.Delivered += delivered
		f.h.stats.TooSlow += slow
		f.h.mu.Unlock()
		if err != nil {
			return err
		}
		// Seqs without a record (bodies deleted by retention) are passed over.
		for _, s := range subs {
			s.cursor = max(s.cursor, hi)
		}
	}
}

// Submitter stores submissions; it is the shape of the ingest committer.
type Submitter interface {
	Submit(ctx context.Context, s store.Submission) (store.AppendResult, error)
}

// NotifyingSubmitter wraps next so that every submission it stores wakes
// the followers of the organizations it touched.
func (h *Hub) NotifyingSubmitter(next Submitter) Submitter {
	return &notifying{next: next, h: h}
}

type notifying struct {
	next Submitter
	h    *Hub
}

func (n *notifying) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	res, err := n.next.Submit(ctx, s)
	if err == nil && res.Err == nil && !res.Replayed {
		last := ""
		for _, e := range s.Events {
			if e.OrganizationID != last {
				n.h.Notify(e.OrganizationID)
				last = e.OrganizationID
			}
		}
	}
	return res, err
}
