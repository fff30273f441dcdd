package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// FullPolicy says what Publish does when the queue (or the spool) is full.
type FullPolicy int

const (
	// Block waits up to PublisherOptions.BlockTimeout for room, then
	// returns ErrFull: the event is not published and the caller knows.
	// It is the default; nothing is dropped without the caller being told.
	Block FullPolicy = iota
	// Drop returns ErrDropped at once and counts the event in
	// Stats.Dropped, for applications that prefer losing audit events to
	// waiting.
	Drop
)

// SyncPolicy says when the spool is flushed to stable storage (fsync).
type SyncPolicy int

const (
	// SyncEveryBatch fsyncs each group of events the spool writes before
	// Publish returns: an event Publish accepted survives the
	// application's crash and the machine's (power loss included).
	SyncEveryBatch SyncPolicy = iota
	// SyncInterval fsyncs every PublisherOptions.SyncInterval: an event
	// Publish accepted survives the application's crash (it is in the
	// operating system's cache); a crash of the machine loses at most the
	// events of the last interval.
	SyncInterval
	// SyncNever leaves flushing to the operating system (and to the end
	// of each segment and Close): as SyncInterval, with no bound on what a
	// machine crash loses.
	SyncNever
)

// Errors of Publish.
var (
	// ErrFull: the queue or spool stayed full for BlockTimeout; the event
	// was not published.
	ErrFull = errors.New("trail publisher: queue full")
	// ErrDropped: the queue or spool was full and the policy is Drop; the
	// event was not published (and is counted in Stats.Dropped).
	ErrDropped = errors.New("trail publisher: queue full, event dropped")
	// ErrClosed: the publisher is closed.
	ErrClosed = errors.New("trail publisher: closed")
)

// PublisherOptions tune a Publisher. Zero values take the defaults.
type PublisherOptions struct {
	// BatchSize is the most events one POST /v1/events/batch carries
	// (default 500, at most 1000); BatchBytes the most bytes of events
	// (default 4 MiB). FlushInterval is how long events wait for a batch
	// to fill before they are sent anyway (default 200 ms).
	BatchSize     int
	BatchBytes    int
	FlushInterval time.Duration
	// Concurrency is how many batches are in flight at once without a
	// spool (default 2). With a spool batches go one at a time, in order.
	Concurrency int

	// QueueSize is how many events wait in memory (default 10,000).
	QueueSize int
	// Full is the policy when the queue or spool is full; BlockTimeout
	// bounds how long Block waits (default 5 s). With a spool it bounds
	// the whole of Publish, the spool's write (and fsync) included: keep
	// it well above the disk's fsync time.
	Full         FullPolicy
	BlockTimeout time.Duration

	// SpoolDir, when set, is a directory where events are kept on disk
	// from Publish until Trail has stored them, so they survive the
	// application's crash and Trail's outages; a restarted Publisher on
	// the same directory delivers what is left. One Publisher at a time
	// per directory.
	SpoolDir string
	// Sync is when the spool is fsynced; SyncInterval is the interval of
	// the SyncInterval policy (default 1 s).
	Sync         SyncPolicy
	SyncInterval time.Duration
	// MaxSpoolBytes bounds the spool on disk (default 1 GiB); past it the
	// Full policy applies. SegmentBytes is the size of one spool file
	// (default 16 MiB); the spool frees space a segment at a time.
	MaxSpoolBytes int64
	SegmentBytes  int64

	// MinBackoff and MaxBackoff bound the delay between retries of a
	// batch (defaults 100 ms and 30 s); the delay doubles, with jitter,
	// and is at least what Trail asked for in Retry-After.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives what the publisher does: retries (warn), events
	// Trail refused (error), drops (warn). Default: none.
	Logger *slog.Logger
}

func (o *PublisherOptions) defaults() {
	if o.BatchSize <= 0 || o.BatchSize > 1000 {
		o.BatchSize = min(max(o.BatchSize, 500), 1000)
		if o.BatchSize <= 0 {
			o.BatchSize = 500
		}
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 2
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10_000
	}
	if o.BlockTimeout <= 0 {
		o.BlockTimeout = 5 * time.Second
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.MaxSpoolBytes <= 0 {
		o.MaxSpoolBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats are a Publisher's counters, for the application to export.
type Stats struct {
	Published uint64 // events Publish accepted (returned nil for)
	Delivered uint64 // events Trail stored
	Rejected  uint64 // events Trail refused as invalid (4xx), logged and given up
	Dropped   uint64 // events refused by the Drop policy
	Refused   uint64 // Publish calls that returned another error (ErrFull, ErrClosed, the context's)
	Batches   uint64 // batches Trail stored
	Retries   uint64 // batch attempts that failed and were retried
	// Queued is the events waiting in memory; SpoolBytes the bytes of the
	// spool's segments not yet delivered.
	Queued     int
	SpoolBytes int64
}

// Publisher sends events to Trail in the background. Publish never waits
// on the network: it queues the event (and, with a spool, writes it to
// local disk) and returns; the publisher batches the events to
// POST /v1/events/batch, retries what fails with backoff, and sends each
// batch with an idempotency key so a retry never stores an event twice.
//
// What Publish returning nil promises depends on the options:
//
//   - Without SpoolDir, the event is in memory; Close sends what is queued
//     within its deadline and reports what it could not. A crash of the
//     application loses the queued events.
//   - With SpoolDir and SyncEveryBatch, the event is on stable storage: it
//     reaches Trail exactly once, whatever crashes in between (the
//     application, the machine, Trail), as long as the spool directory
//     survives and Trail comes back within its idempotency window (24 h)
//     for a batch that was in flight at the crash.
//   - With SpoolDir and SyncInterval or SyncNever, the event is in the
//     spool file (the operating system's cache): the application's crash
//     loses nothing; a crash of the machine may lose the events written
//     since the last fsync, never more than that, and never stores one
//     twice.
//
// Events Trail refuses as invalid (a 4xx other than 401, 403, 408 and
// 429) are logged, counted in Stats.Rejected and given up, after the
// batch is split to find them: one bad event never blocks the others.
type Publisher struct {
	c    *Client
	opts PublisherOptions
	log  *slog.Logger

	in       chan pubItem
	closing  chan struct{}
	closed   atomic.Bool
	inflight atomic.Int64

	// life ends the background work (cancelling in-flight requests) when
	// Close's deadline passes.
	life     context.Context
	stopLife context.CancelFunc
	done     chan struct{}

	spool *spool // nil without SpoolDir

	published, delivered, rejected, dropped, refused, batches, retries atomic.Uint64

	waiters sync.Pool
}

// pubItem is an event on its way to the batcher or the spool writer.
type pubItem struct {
	org string
	ev  Event
	w   *waiter // set with a spool: Publish waits for the write
}

// waiter is how a Publish call waits for the spool writer. state: 0
// waiting, 1 taken by the writer (it will answer on ch), 2 abandoned by
// Publish (the writer skips the event).
type waiter struct {
	ch    chan error
	state atomic.Int32
	timer *time.Timer
}

// NewPublisher starts a Publisher sending through c. With
// opts.SpoolDir it opens (or creates) the spool and starts delivering
// what an earlier run left in it.
func NewPublisher(c *Client, opts PublisherOptions) (*Publisher, error) {
	opts.defaults()
	p := &Publisher{c: c, opts: opts, log: opts.Logger,
		in: make(chan pubItem, opts.QueueSize), closing: make(chan struct{}), done: make(chan struct{})}
	p.life, p.stopLife = context.WithCancel(context.Background())
	p.waiters.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &waiter{ch: make(chan error, 1), timer: t}
	}
	if opts.SpoolDir != "" {
		sp, err := openSpool(opts.SpoolDir, opts, p.log)
		if err != nil {
			p.stopLife()
			return nil, err
		}
		p.spool = sp
		go p.runSpool()
	} else {
		go p.runMemory()
	}
	return p, nil
}

// Publish hands ev, an event of organization orgID, to the publisher. It
// does not wait on the network. The publisher keeps ev's maps and slices
// until the event is sent: do not change them after Publish.
//
// It returns nil once the event is queued (in memory, or with a spool,
// written to the spool under its SyncPolicy); ErrFull or ErrDropped when
// there was no room under the FullPolicy; ErrClosed after Close; or ctx's
// error if ctx ends while Publish waits for room.
func (p *Publisher) Publish(ctx context.Context, orgID string, ev Event) error {
	// inflight counts the calls that may still enqueue, so that Close
	// knows when the queue has all it will get.
	p.inflight.Add(1)
	if p.closed.Load() {
		p.inflight.Add(-1)
		p.refused.Add(1)
		return ErrClosed
	}
	if p.spool == nil {
		defer p.inflight.Add(-1)
		return p.publishMemory(ctx, pubItem{org: orgID, ev: ev})
	}
	return p.publishSpool(ctx, orgID, ev)
}

func (p *Publisher) publishMemory(ctx context.Context, it pubItem) error {
	select {
	case p.in <- it:
		p.published.Add(1)
		return nil
	default:
	}
	if p.opts.Full == Drop {
		p.dropped.Add(1)
		return ErrDropped
	}
	t := time.NewTimer(p.opts.BlockTimeout)
	defer t.Stop()
	select {
	case p.in <- it:
		p.published.Add(1)
		return nil
	case <-t.C:
		p.refused.Add(1)
		return ErrFull
	case <-ctx.Done():
		p.refused.Add(1)
		return ctx.Err()
	case <-p.closing:
		p.refused.Add(1)
		return ErrClosed
	}
}

func (p *Publisher) publishSpool(ctx context.Context, orgID string, ev Event) error {
	w := p.waiters.Get().(*waiter)
	w.state.Store(0)
	it := pubItem{org: orgID, ev: ev, w: w}
	w.timer.Reset(p.opts.BlockTimeout)
	if err := p.enqueueSpool(ctx, w, it); err != nil {
		return err
	}
	var why error
	select {
	case err := <-w.ch:
		w.timer.Stop()
		p.waiters.Put(w)
		return p.count(err)
	case <-w.timer.C:
		why = ErrFull
	case <-ctx.Done():
		w.timer.Stop()
		why = ctx.Err()
	}
	if w.state.CompareAndSwap(0, 2) {
		// The writer has not taken it and now never will; it still holds
		// w, so w is not reused.
		p.refused.Add(1)
		return why
	}
	err := <-w.ch // taken: the write is under way
	w.timer.Stop()
	p.waiters.Put(w)
	return p.count(err)
}

// enqueueSpool hands it to the spool writer, under the Full policy.
func (p *Publisher) enqueueSpool(ctx context.Context, w *waiter, it pubItem) error {
	defer p.inflight.Add(-1)
	select {
	case p.in <- it:
		return nil
	default:
	}
	if p.opts.Full == Drop {
		w.timer.Stop()
		p.waiters.Put(w)
		p.dropped.Add(1)
		return ErrDropped
	}
	select {
	case p.in <- it:
		return nil
	case <-w.timer.C:
		p.waiters.Put(w)
		p.refused.Add(1)
		return ErrFull
	case <-ctx.Done():
		w.timer.Stop()
		p.waiters.Put(w)
		p.refused.Add(1)
		return ctx.Err()
	case <-p.closing:
		w.timer.Stop()
		p.waiters.Put(w)
		p.refused.Add(1)
		return ErrClosed
	}
}

func (p *Publisher) count(err error) error {
	switch {
	case err == nil:
		p.published.Add(1)
	case errors.Is(err, ErrDropped):
		p.dropped.Add(1)
	default:
		p.refused.Add(1)
	}
	return err
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	s := Stats{Published: p.published.Load(), Delivered: p.delivered.Load(), Rejected: p.rejected.Load(),
		Dropped: p.dropped.Load(), Refused: p.refused.Load(), Batches: p.batches.Load(), Retries: p.retries.Load(),
		Queued: len(p.in)}
	if p.spool != nil {
		s.SpoolBytes = p.spool.liveBytes.Load()
	}
	return s
}

// Close stops accepting events and delivers what is queued, until ctx
// ends. Without a spool, events not delivered by then are lost and Close
// says how many; with a spool they stay in it for the next Publisher on
// the directory, and Close returns nil once they are all safely on disk.
func (p *Publisher) Close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	close(p.closing)
	for p.inflight.Load() > 0 { // Publish calls finishing their enqueue
		time.Sleep(time.Millisecond)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stopLife()
		<-p.done
	}
	p.stopLife()
	if p.spool != nil {
		left := p.spool.liveBytes.Load()
		err := p.spool.close()
		if left > 0 {
			p.log.Info("trail publisher closed with events left in the spool; the next start delivers them",
				"spool", p.opts.SpoolDir, "bytes", left)
		}
		return err
	}
	lost := int64(p.published.Load()) - int64(p.delivered.Load()) - int64(p.rejected.Load())
	if lost > 0 {
		return fmt.Errorf("trail publisher closed with %d events not delivered: %w", lost, ctx.Err())
	}
	return nil
}

// encodeItem appends the JSON of one batch item,
// {"organization_id":…,"event":…}, to b.
func encodeItem(b []byte, it *pubItem) ([]byte, error) {
	ev, err := json.Marshal(it.ev)
	if err != nil {
		return b, fmt.Errorf("encoding an event of %s: %w", it.org, err)
	}
	org, _ := json.Marshal(it.org)
	b = append(b, `{"organization_id":`...)
	b = append(b, org...)
	b = append(b, `,"event":`...)
	b = append(b, ev...)
	return append(b, '}'), nil
}

// batchBody joins encoded items into a POST /v1/events/batch body.
func batchBody(buf []byte, recs [][]byte) []byte {
	buf = append(buf[:0], `{"events":[`...)
	for i, r := range recs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, r...)
	}
	return append(buf, "]}"...)
}

// runMemory batches the in-memory queue and sends with Concurrency
// senders.
func (p *Publisher) runMemory() {
	defer close(p.done)
	batches := make(chan [][]byte, p.opts.Concurrency)
	var wg sync.WaitGroup
	for range p.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for recs := range batches {
				p.deliver(recs, newKey())
			}
		}()
	}
	var (
		recs  [][]byte
		size  int
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	flush := func() {
		if len(recs) > 0 {
			batches <- recs
			recs, size = nil, 0
		}
		timer.Stop()
	}
	add := func(it pubItem) {
		b, err := encodeItem(nil, &it)
		if err != nil {
			p.rejected.Add(1)
			p.log.Error("trail publisher: an event cannot be encoded; it is given up", "organization_id", it.org, "err", err)
			return
		}
		if size+len(b) > p.opts.BatchBytes {
			flush()
		}
		if len(recs) == 0 {
			timer.Reset(p.opts.FlushInterval)
		}
		recs = append(recs, b)
		size += len(b)
		if len(recs) >= p.opts.BatchSize {
			flush()
		}
	}
loop:
	for {
		select {
		case it := <-p.in:
			add(it)
		case <-timer.C:
			flush()
		case <-p.closing:
			break loop
		}
	}
	// Closing: no Publish enqueues any more once inflight is 0.
	for p.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	for {
		select {
		case it := <-p.in:
			add(it)
			continue
		default:
		}
		break
	}
	flush()
	close(batches)
	wg.Wait()
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "trail-pub-" + hex.EncodeToString(b[:])
}

// errStopped: the publisher's life ended (Close's deadline) before the
// batch was delivered.
var errStopped = errors.New("trail publisher stopped")

// deliver sends recs as one batch under key until Trail stores it (or
// refuses some events as invalid: those are split out, logged and given
// up). It returns errStopped when the publisher stops first.
func (p *Publisher) deliver(recs [][]byte, key string) error {
	var body []byte
	backoff := p.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		body = batchBody(body, recs)
		_, err := p.c.sendBatch(p.life, body, key)
		if err == nil {
			p.delivered.Add(uint64(len(recs)))
			p.batches.Add(1)
			return nil
		}
		if p.life.Err() != nil {
			return errStopped
		}
		var e *Error
		if errors.As(err, &e) && permanent(e) {
			return p.rejectedBatch(recs, key, e)
		}
		p.retries.Add(1)
		wait := backoff/2 + mrand.N(backoff/2+1)
		if e != nil && e.RetryAfter > wait {
			wait = e.RetryAfter
		}
		p.log.Warn("trail publisher: a batch failed; retrying", "events", len(recs), "attempt", attempt+1,
			"retry_in", wait.String(), "err", err)
		select {
		case <-time.After(wait):
		case <-p.life.Done():
			return errStopped
		}
		backoff = min(backoff*2, p.opts.MaxBackoff)
	}
}

// permanent reports whether Trail refused the batch for what it holds, so
// that sending it again cannot help: 4xx but 401 and 403 (a key that may
// be fixed), 408 and 429.
func permanent(e *Error) bool {
	switch {
	case e.StatusCode < 400 || e.StatusCode > 499:
		return false
	case e.StatusCode == http.StatusUnauthorized, e.StatusCode == http.StatusForbidden,
		e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusTooManyRequests:
		return false
	}
	return true
}

var batchIndex = regexp.MustCompile(`^events\[(\d+)\]`)

// rejectedBatch handles a batch Trail refused: the events its field errors
// name are given up and the rest sent again; without such errors the
// batch is split in two until the bad events are alone.
func (p *Publisher) rejectedBatch(recs [][]byte, key string, e *Error) error {
	if len(recs) == 1 {
		p.rejected.Add(1)
		p.log.Error("trail publisher: Trail refused an event; it is given up", "err", e.Error(), "event", truncate(string(recs[0]), 2000))
		return nil
	}
	bad := map[int]bool{}
	for _, fe := range e.Errors {
		if m := batchIndex.FindStringSubmatch(fe.Field); m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && i < len(recs) {
				bad[i] = true
			}
		}
	}
	if len(bad) > 0 && len(bad) < len(recs) {
		var rest [][]byte
		for i, r := range recs {
			if bad[i] {
				p.rejected.Add(1)
				p.log.Error("trail publisher: Trail refused an event; it is given up", "err", e.Error(), "event", truncate(string(r), 2000))
				continue
			}
			rest = append(rest, r)
		}
		return p.deliver(rest, key+"-r")
	}
	h := len(recs) / 2
	if err := p.deliver(recs[:h], key+"-a"); err != nil {
		return err
	}
	return p.deliver(recs[h:], key+"-b")
}

// sendBatch posts an encoded batch body with an idempotency key.
func (c *Client) sendBatch(ctx context.Context, body []byte, key string) ([]Accepted, error) {
	resp, err := c.send(ctx, request{method: http.MethodPost, path: "/v1/events/batch", body: body, opts: []CallOption{IdempotencyKey(key)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Data []Accepted `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("reading the answer of POST /v1/events/batch: %w", err)
	}
	return out.Data, nil
}
