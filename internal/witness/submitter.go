package witness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
)

// Config is one witness a log asks for cosignatures: its submission URL
// prefix (add-checkpoint is POSTed to URL + "/add-checkpoint") and its
// verifier key.
type Config struct {
	URL      string
	Verifier *Verifier
}

// ParseConfig parses "<URL> <verifier key>" (either order), as --witness and
// the witness file take it.
func ParseConfig(s string) (Config, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Config{}, fmt.Errorf("witness %q: want \"<URL> <verifier key>\"", s)
	}
	u, k := f[0], f[1]
	if !isURL(u) {
		u, k = k, u
	}
	if !isURL(u) {
		return Config{}, fmt.Errorf("witness %q: no http:// or https:// URL", s)
	}
	v, err := ParseVerifierKey(k)
	if err != nil {
		return Config{}, err
	}
	return Config{URL: strings.TrimSuffix(u, "/"), Verifier: v}, nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// ReadConfigFile reads witnesses, one "<URL> <verifier key>" per line; blank
// lines and lines starting with # are skipped.
func ReadConfigFile(path string) ([]Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read witness file: %w", err)
	}
	var out []Config
	sc := bufio.NewScanner(bytes.NewReader(raw))
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c, err := ParseConfig(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// SubmitterOptions configure a Submitter. Zero values take the defaults.
type SubmitterOptions struct {
	Witnesses []Config
	// Quorum is how many cosignatures each checkpoint should get; logs
	// whose newest checkpoint has fewer after QuorumGrace are counted in
	// trail_witness_below_quorum_logs (default: every witness).
	Quorum      int
	QuorumGrace time.Duration // default 10s
	// Timeout bounds one add-checkpoint round trip (default 10s).
	Timeout time.Duration
	// Concurrency is the most requests in flight to one witness, each for
	// a different log (default 256). Logs wait their turn oldest first.
	Concurrency int
	// MinInterval is the shortest time between two requests to one
	// witness for one log (default 1s): a log signing a checkpoint
	// every integrator pass sends the newest of them, so the requests per
	// witness follow the number of active logs, not the event rate.
	MinInterval time.Duration
	Client      *http.Client
	// Fork, when set, is called once per organization when a witness
	// shows that the log forked: it holds a checkpoint the log's current
	// tree does not extend. The server refuses the organization.
	Fork func(org, reason string)
}

// job is a checkpoint to get cosigned.
type job struct {
	org      string
	origin   string
	size     int64
	note     []byte
	signedAt time.Time
}

// Submitter asks witnesses to cosign the checkpoints the integrator signs,
// away from the ingest path: Signed only records the newest checkpoint per
// organization, and each witness is sent, per organization, at most one
// request at a time and one per MinInterval, for the newest checkpoint
// waiting (older ones are skipped: a cosignature of the newest covers them,
// by consistency). The cosignatures are stored in the log's database
// (ledger.CosignatureStorage), many per transaction.
type Submitter struct {
	st ledger.Storage
	cs *cosigStore
	// writes is the queue of cosignatures to store; closed (under
	// writesMu, setting writesClosed) once Run's workers returned. A
	// CheckStored still answering then drops its writes.
	writes       chan cosigWrite
	writesMu     sync.RWMutex
	writesClosed bool
	opts         SubmitterOptions
	logger       *slog.Logger
	workers      []*worker
	m            submitterMetrics

	mu     sync.Mutex
	latest map[string]*logStatus // org → its newest checkpoint's cosigning
	forked map[string]bool

	// onCosigned, when set (benchmarks), is called with each cosignature
	// stored.
	onCosigned func(witness, org string, size int64)
}

type logStatus struct {
	size     int64
	signedAt time.Time
	cosigs   int
}

type submitterMetrics struct {
	requests *prometheus.CounterVec
	up       *prometheus.GaugeVec
	forks    *prometheus.CounterVec
	lag      prometheus.Histogram
}

// NewSubmitter returns a submitter for the log in st, which must keep
// cosignatures (ledger.CosignatureStorage) and serves consistency proofs
// and sizes. The cosignatures an earlier version kept in
// dataDir/witness-cosignatures.db are copied into st first. reg may be nil.
func NewSubmitter(ctx context.Context, dataDir string, st CosigningStorage, opts SubmitterOptions, logger *slog.Logger, reg prometheus.Registerer) (*Submitter, error) {
	var db ledger.CosignatureStorage = st
	if len(opts.Witnesses) == 0 {
		return nil, errors.New("no witnesses configured")
	}
	if opts.Quorum <= 0 {
		opts.Quorum = len(opts.Witnesses)
	}
	if opts.Quorum > len(opts.Witnesses) {
		return nil, fmt.Errorf("a quorum of %d cosignatures needs at least %d witnesses, %d configured", opts.Quorum, opts.Quorum, len(opts.Witnesses))
	}
	if opts.QuorumGrace <= 0 {
		opts.QuorumGrace = 10 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 256
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = time.Second
	}
	if opts.Client == nil {
		// Keep-alive connections, as the protocol recommends: enough
		// idle ones per witness for every request in flight.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = opts.Concurrency
		opts.Client = &http.Client{Transport: t}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, w := range opts.Witnesses {
		if seen[w.Verifier.String()] {
			return nil, fmt.Errorf("witness key %s is configured twice", w.Verifier)
		}
		seen[w.Verifier.String()] = true
	}
	if err := importLegacy(ctx, dataDir, db, logger); err != nil {
		return nil, err
	}
	s := &Submitter{st: st, cs: &cosigStore{db: db, sizes: map[[2]string]int64{}}, writes: make(chan cosigWrite, maxWriteBatch),
		opts: opts, logger: logger, latest: map[string]*logStatus{}, forked: map[string]bool{}}
	s.m = submitterMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trail_witness_requests_total",
			Help: "add-checkpoint requests to witnesses, by witness and result (cosigned, conflict, fork, rejected, error)."}, []string{"witness", "result"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trail_witness_up",
			Help: "1 if the witness's last answer was a protocol answer, 0 if it was unreachable or failed (5xx, timeout)."}, []string{"witness"}),
		forks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trail_witness_forks_total",
			Help: "Organizations a witness showed to have a forked log (it cosigned a tree the log does not extend)."}, []string{"witness"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "trail_witness_cosign_lag_seconds",
			Help:    "Time from signing a checkpoint to storing a witness's cosignature of it.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}}),
	}
	if reg != nil {
		reg.MustRegister(s.m.requests, s.m.up, s.m.forks, s.m.lag,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_witness_below_quorum_logs",
				Help: "Organizations whose newest checkpoint has had fewer cosignatures than the quorum for longer than the grace period."},
				s.belowQuorum))
	}
	for _, c := range opts.Witnesses {
		w := &worker{s: s, cfg: c, key: c.Verifier.String(), name: c.Verifier.Name(),
			pending: map[string]job{}, inflight: map[string]bool{}, sent: map[string]time.Time{},
			wake: make(chan struct{}, 1)}
		s.m.up.WithLabelValues(w.name).Set(1)
		s.workers = append(s.workers, w)
	}
	return s, nil
}

// Run sends checkpoints to the witnesses until ctx ends, then stores the
// cosignatures received and returns. It runs once.
func (s *Submitter) Run(ctx context.Context) {
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		s.cs.writeLoop(s.writes, s.logger, s.stored)
	}()
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	s.writesMu.Lock()
	s.writesClosed = true
	close(s.writes)
	s.writesMu.Unlock()
	<-stored
}

// write queues w for storing, unless Run has returned (the witness holds
// what it cosigned either way).
func (s *Submitter) write(w cosigWrite) {
	s.writesMu.RLock()
	defer s.writesMu.RUnlock()
	if !s.writesClosed {
		s.writes <- w
	}
}

// stored takes a batch of writes once in the database.
func (s *Submitter) stored(batch []cosigWrite) {
	now := time.Now()
	for _, w := range batch {
		if w.cosig.Line == "" {
			continue
		}
		s.m.lag.Observe(now.Sub(w.signedAt).Seconds())
		if s.onCosigned != nil {
			s.onCosigned(w.name, w.cosig.OrganizationID, w.cosig.Size)
		}
		s.cosigned(w.cosig.OrganizationID, w.cosig.Size)
	}
}

// Signed takes a checkpoint the integrator just stored (its Options.Signed
// hook). It never blocks on a witness.
func (s *Submitter) Signed(org string, size int64, checkpoint []byte) {
	body, _, err := splitNote(checkpoint)
	if err != nil {
		s.logger.Error("not sending a checkpoint to witnesses: not a signed note", "org", org, "err", err)
		return
	}
	ck, err := ledger.ParseCheckpointBody(body)
	if err != nil {
		s.logger.Error("not sending a checkpoint to witnesses", "org", org, "err", err)
		return
	}
	now := time.Now()
	s.mu.Lock()
	s.latest[org] = &logStatus{size: size, signedAt: now}
	s.mu.Unlock()
	j := job{org: org, origin: ck.Origin, size: size, note: checkpoint, signedAt: now}
	for _, w := range s.workers {
		w.add(j)
	}
}

// CheckStored sends every integrated log's newest stored checkpoint to
// every witness and returns once each answered, failed or ctx ended. A
// witness holding a checkpoint the stored log does not extend — the
// database or data directory was restored from an older copy — shows as a
// fork (Fork is called), so the server refuses the log before it
// acknowledges any new event of it. A witness that does not answer is
// skipped (logged, as always): it cannot tell. It needs Run running.
func (s *Submitter) CheckStored(ctx context.Context) error {
	logs, err := s.st.IntegratedLogs(ctx)
	if err != nil {
		return fmt.Errorf("couldn't list the logs to check with the witnesses: %w", err)
	}
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, l := range logs {
		msg, err := s.st.LatestCheckpoint(ctx, l.OrganizationID)
		if err != nil {
			return fmt.Errorf("couldn't read the newest checkpoint of %s: %w", l.OrganizationID, err)
		}
		body, _, err := splitNote(msg)
		if err != nil {
			return fmt.Errorf("stored checkpoint of %s: %w", l.OrganizationID, err)
		}
		ck, err := ledger.ParseCheckpointBody(body)
		if err != nil {
			return fmt.Errorf("stored checkpoint of %s: %w", l.OrganizationID, err)
		}
		j := job{org: l.OrganizationID, origin: ck.Origin, size: ck.Size, note: msg, signedAt: time.Now()}
		for _, w := range s.workers {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_ = w.submit(ctx, j) // failures are logged; a fork is reported
			}()
		}
	}
	return nil
}

// Down returns the names of the witnesses whose last request failed:
// checkpoints are published without their cosignatures meanwhile.
func (s *Submitter) Down() []string {
	var down []string
	for _, w := range s.workers {
		if w.down.Load() {
			down = append(down, w.name)
		}
	}
	return down
}

func (s *Submitter) belowQuorum() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.latest {
		if l.cosigs < s.opts.Quorum && time.Since(l.signedAt) > s.opts.QuorumGrace {
			n++
		}
	}
	return float64(n)
}

func (s *Submitter) cosigned(org string, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.latest[org]; l != nil && l.size == size {
		l.cosigs++
		if l.cosigs == s.opts.Quorum {
			delete(s.latest, org) // settled: nothing to watch
		}
	}
}

// fork reports evidence of a fork of org's log, once per organization.
func (s *Submitter) fork(w *worker, org, reason string, attrs ...any) {
	s.m.forks.WithLabelValues(w.name).Inc()
	s.mu.Lock()
	already := s.forked[org]
	s.forked[org] = true
	s.mu.Unlock()
	s.logger.Error("witness refused a checkpoint: the log forked from a checkpoint the witness cosigned (was the data directory or database restored from an older copy?)",
		append([]any{"org", org, "witness", w.name, "reason", reason}, attrs...)...)
	if !already && s.opts.Fork != nil {
		s.opts.Fork(org, "fork: "+reason)
	}
}

// worker sends checkpoints to one witness.
type worker struct {
	s    *Submitter
	cfg  Config
	key  string // verifier key, the witness's identity in the store
	name string
	down atomic.Bool // its last request failed (trail_witness_up 0)

	mu       sync.Mutex
	pending  map[string]job // org → newest checkpoint not yet sent
	queue    []string       // the orgs of pending, in the order they came
	inflight map[string]bool
	sent     map[string]time.Time // org → when its last request was sent
	forked   map[string]bool
	backoff  time.Duration
	until    time.Time // no requests before, after failures
	wake     chan struct{}
}

func (w *worker) add(j job) {
	w.mu.Lock()
	if w.forked[j.org] {
		w.mu.Unlock()
		return
	}
	w.put(j)
	w.mu.Unlock()
	w.poke()
}

// put makes j the checkpoint of its org to send, unless a bigger one
// waits; the caller holds mu. An org waiting keeps its place in the queue.
func (w *worker) put(j job) {
	p, ok := w.pending[j.org]
	if !ok {
		w.queue = append(w.queue, j.org)
	}
	if !ok || p.size < j.size {
		w.pending[j.org] = j
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	var sending sync.WaitGroup
	defer sending.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		w.mu.Lock()
		now := time.Now()
		if wait := w.until.Sub(now); wait > 0 {
			timer.Reset(wait)
			w.mu.Unlock()
			continue
		}
		jobs, next := w.take(now)
		for _, j := range jobs {
			sending.Add(1)
			go func() {
				defer sending.Done()
				err := w.submit(ctx, j)
				w.mu.Lock()
				delete(w.inflight, j.org)
				if err != nil && ctx.Err() == nil {
					// Try again later, unless a newer checkpoint came.
					w.put(j)
					w.backoff = min(max(2*w.backoff, 250*time.Millisecond), 30*time.Second)
					w.until = time.Now().Add(w.backoff)
				} else if err == nil {
					w.backoff = 0
				}
				w.mu.Unlock()
				w.poke()
			}()
		}
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
		w.mu.Unlock()
	}
}

// take removes from the queue the checkpoints to send at now, oldest log
// first, and marks their logs in flight; the caller holds mu. A log with a
// request in flight, or sent one less than MinInterval before now, keeps
// its place; next is when the first log held back by MinInterval may go
// (zero if none is).
func (w *worker) take(now time.Time) (jobs []job, next time.Time) {
	keep := w.queue[:0]
	for i, org := range w.queue {
		if len(w.inflight) >= w.s.opts.Concurrency {
			keep = append(keep, w.queue[i:]...)
			break
		}
		j, ok := w.pending[org]
		if !ok {
			continue
		}
		if w.inflight[org] {
			keep = append(keep, org)
			continue
		}
		if at := w.sent[org].Add(w.s.opts.MinInterval); at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			keep = append(keep, org)
			continue
		}
		delete(w.pending, org)
		w.inflight[org] = true
		w.sent[org] = now
		jobs = append(jobs, j)
	}
	clear(w.queue[len(keep):])
	w.queue = keep
	return jobs, next
}

// errTransient marks a failure worth retrying later.
var errTransient = errors.New("witness request failed")

// submit gets j cosigned by the witness, or finds it cannot be.
func (w *worker) submit(ctx context.Context, j job) error {
	s := w.s
	log := s.logger.With("witness", w.name, "org", j.org, "size", j.size)
	known, err := s.cs.known(ctx, w.key, j.origin)
	if err != nil {
		return err
	}
	for range 4 {
		if known > j.size {
			// The witness holds a bigger tree than this checkpoint's: a
			// newer checkpoint was cosigned already, or the log lost
			// records the witness saw.
			st, err := s.st.LogState(ctx, j.org)
			if err != nil {
				return fmt.Errorf("couldn't read the log state of %s: %w", j.org, err)
			}
			if st.IntegratedSize < known {
				w.forkFound(ctx, j, known, fmt.Sprintf("the witness cosigned size %d, but this log has only %d records integrated", known, st.IntegratedSize))
				return nil
			}
			if j, err = w.newest(ctx, j); err != nil {
				return err
			}
			if known > j.size {
				return nil
			}
		}
		proof, err := ledger.ConsistencyProof(ctx, s.st, j.org, known, j.size)
		if err != nil {
			return fmt.Errorf("couldn't prove size %d of %s consistent with size %d: %w", j.size, j.org, known, err)
		}
		status, body, err := w.post(ctx, formatAddRequest(known, proof, j.note))
		if err != nil {
			s.m.requests.WithLabelValues(w.name, "error").Inc()
			s.m.up.WithLabelValues(w.name).Set(0)
			w.down.Store(true)
			log.Warn("witness unreachable; the checkpoint is published without its cosignature", "err", err)
			return fmt.Errorf("%w: %w", errTransient, err)
		}
		s.m.up.WithLabelValues(w.name).Set(1)
		w.down.Store(false)
		switch status {
		case http.StatusOK:
			line, err := w.cosignature(j.note, body)
			if err != nil {
				s.m.requests.WithLabelValues(w.name, "error").Inc()
				log.Warn("witness answered without a valid cosignature", "err", err)
				return fmt.Errorf("%w: %w", errTransient, err)
			}
			// Stored in the background, with others: the witness holds
			// j.size from now on whether or not the store succeeds.
			s.cs.remember(w.key, j.origin, j.size)
			s.write(cosigWrite{
				cosig:    ledger.Cosignature{OrganizationID: j.org, Size: j.size, Witness: w.key, Line: line},
				size:     ledger.WitnessSize{Witness: w.key, Origin: j.origin, Size: j.size},
				signedAt: j.signedAt, name: w.name,
			})
			s.m.requests.WithLabelValues(w.name, "cosigned").Inc()
			return nil
		case http.StatusConflict:
			s.m.requests.WithLabelValues(w.name, "conflict").Inc()
			k, err := strconv.ParseInt(strings.TrimSuffix(string(body), "\n"), 10, 64)
			if err != nil || k < 0 {
				log.Warn("witness answered 409 without a tree size", "body", string(body))
				return fmt.Errorf("%w: 409 without a size", errTransient)
			}
			if k == known {
				return fmt.Errorf("%w: witness answered 409 with the size sent, %d", errTransient, k)
			}
			log.Info("witness holds another size than the one remembered; retrying from it", "remembered", known, "witness_size", k)
			known = k
			s.cs.remember(w.key, j.origin, k)
			s.write(cosigWrite{size: ledger.WitnessSize{Witness: w.key, Origin: j.origin, Size: k}})
		case http.StatusUnprocessableEntity:
			if known == 0 {
				s.m.requests.WithLabelValues(w.name, "error").Inc()
				log.Error("witness refused a first checkpoint as unprocessable", "answer", string(body))
				return fmt.Errorf("%w: 422", errTransient)
			}
			w.forkFound(ctx, j, known, fmt.Sprintf("this log's tree of size %d is not consistent with the checkpoint of size %d the witness cosigned (%s)", j.size, known, strings.TrimSpace(string(body))))
			return nil
		case http.StatusNotFound, http.StatusForbidden:
			s.m.requests.WithLabelValues(w.name, "rejected").Inc()
			log.Error("witness does not accept this log: it must be configured with this log's origin (or prefix) and verifier key", "status", status, "answer", strings.TrimSpace(string(body)))
			return fmt.Errorf("%w: %d", errTransient, status)
		default:
			s.m.requests.WithLabelValues(w.name, "error").Inc()
			s.m.up.WithLabelValues(w.name).Set(0)
			w.down.Store(true)
			log.Warn("witness failed; the checkpoint is published without its cosignature", "status", status, "answer", strings.TrimSpace(string(body)))
			return fmt.Errorf("%w: status %d", errTransient, status)
		}
	}
	return fmt.Errorf("%w: the witness's size kept changing", errTransient)
}

// newest returns j replaced by org's newest stored checkpoint if that is
// bigger.
func (w *worker) newest(ctx context.Context, j job) (job, error) {
	msg, err := w.s.st.LatestCheckpoint(ctx, j.org)
	if err != nil {
		return j, fmt.Errorf("couldn't read the newest checkpoint of %s: %w", j.org, err)
	}
	body, _, err := splitNote(msg)
	if err != nil {
		return j, err
	}
	ck, err := ledger.ParseCheckpointBody(body)
	if err != nil {
		return j, err
	}
	if ck.Size > j.size {
		j.size, j.note = ck.Size, msg
	}
	return j, nil
}

func (w *worker) forkFound(ctx context.Context, j job, known int64, reason string) {
	w.s.m.requests.WithLabelValues(w.name, "fork").Inc()
	w.mu.Lock()
	if w.forked == nil {
		w.forked = map[string]bool{}
	}
	w.forked[j.org] = true
	delete(w.pending, j.org) // and out of the queue at its next scan
	w.mu.Unlock()
	attrs := []any{"size", j.size, "witness_size", known, "checkpoint", string(j.note)}
	if ck := w.witnessCheckpoint(ctx, j.origin); ck != "" {
		attrs = append(attrs, "witness_checkpoint", ck)
	}
	w.s.fork(w, j.org, reason, attrs...)
}

// witnessCheckpoint fetches, best effort, the checkpoint the witness
// cosigned for origin (the protocol's monitoring endpoint), as evidence.
func (w *worker) witnessCheckpoint(ctx context.Context, origin string) string {
	ctx, cancel := context.WithTimeout(ctx, w.s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.URL+"/"+originHash(origin)+"/checkpoint", nil)
	if err != nil {
		return ""
	}
	resp, err := w.s.opts.Client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

func (w *worker) post(ctx context.Context, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("couldn't make the request: %w", err)
	}
	resp, err := w.s.opts.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil {
		return 0, nil, fmt.Errorf("couldn't read the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// cosignature returns the signature line of the witness's key in body that
// verifies on the checkpoint note; other lines are ignored.
func (w *worker) cosignature(msg, body []byte) (string, error) {
	n, err := note.Open(append(append([]byte{}, msg...), body...), note.VerifierList(w.cfg.Verifier))
	if err != nil {
		return "", fmt.Errorf("the cosignature does not verify with the configured key %s: %w", w.name, err)
	}
	for _, sig := range n.Sigs {
		if sig.Name == w.cfg.Verifier.Name() && sig.Hash == w.cfg.Verifier.KeyHash() {
			return "— " + sig.Name + " " + sig.Base64 + "\n", nil
		}
	}
	return "", errors.New("no cosignature of the witness's key")
}
