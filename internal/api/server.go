package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/logbuf"
	"github.com/trailaudit/trail/internal/lograte"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/selfaudit"
	"github.com/trailaudit/trail/internal/store"
)

// Submitter durably stores a submission (the ingest group committer). It
// returns only once the submission's batch is durable, or with an error
// (ingest.ErrOverloaded, ingest.ErrStopped, store.ErrUnavailable, or the
// context's error) when nothing is known to be stored.
type Submitter interface {
	Submit(ctx context.Context, s store.Submission) (store.AppendResult, error)
}

// Config tunes a Server. Zero values take the defaults.
type Config struct {
	// Limits bound one event; zero fields take event.DefaultLimits().
	Limits event.Limits
	// MaxBatchBodyBytes caps a POST /v1/events/batch body; default 16 MiB.
	MaxBatchBodyBytes int64
	// MaxIntakeBytes bounds the request bodies of ingest requests in
	// progress (being read, parsed or waiting for their commit); beyond it
	// ingest answers 503 with Retry-After at once. Default 16 MiB: a few
	// seconds of work at this machine's ingest rate, so an accepted request
	// is answered within seconds however many clients push at once.
	MaxIntakeBytes int64
	// RateLimit is the sustained requests per second allowed to one API
	// key (0 = no limit); RateBurst the burst above it (default: the rate
	// rounded up, at least 1).
	RateLimit float64
	RateBurst int
	// TrustProxyHeaders takes the client address for audit events from
	// X-Forwarded-For (its last entry, the one the proxy in front of Trail
	// added) instead of the connection. Set it only behind such a proxy.
	TrustProxyHeaders bool
	// KeyCacheTTL is how long an API key lookup (found or not) is reused
	// before the database is asked again; default 5s. A key revoked
	// through this server is dropped from its cache at once; other
	// replicas notice within the TTL.
	KeyCacheTTL time.Duration

	Logger *slog.Logger
	// AccessLog logs one INFO line per request answered (route, status,
	// duration, key, organization); health checks at DEBUG. 503s are never
	// logged one per request, on or off: during an outage every request
	// gets one, so they are summarised (unavailableLogEvery).
	AccessLog bool
	// AccessLines, when set, writes the access log's lines itself, as
	// Logger's handler would have encoded them, without building a
	// slog.Record (docs/PERFORMANCE.md, "The request path's fixed costs");
	// it must write where Logger does. Nil: every line goes through Logger.
	AccessLines LineWriter
	// Registerer receives the HTTP metrics; Gatherer is what /metrics
	// serves. When both are nil a private registry is used for both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Now is the clock for received_at and created_at; default time.Now.
	Now func() time.Time

	// Log serves the verifiable log; its routes exist only when set.
	Log LogConfig
	// Retention serves organizations' retention settings; its routes
	// exist only when set.
	Retention RetentionConfig
	// Streams serves log streams; their routes exist only when set.
	Streams StreamsConfig
	// Exports serves asynchronous exports; its routes exist only when set.
	Exports ExportConfig
	// Schemas checks events against versioned schemas and serves the
	// schema endpoints (schemas.go); both exist only when set.
	Schemas *schema.Registry
	// Portal serves the Admin Portal; its routes exist only when set.
	Portal PortalConfig
	// Tail serves the live tail; its route exists only when set.
	Tail TailConfig
	// Privacy applies field policies at ingest and serves the policy,
	// hash and erasure routes (privacy.go); both exist only when set.
	Privacy PrivacyConfig
	// Lifecycle updates and deletes organizations and serves their
	// archive settings (lifecycle.go); the routes exist only when set.
	Lifecycle LifecycleConfig
	// Unready, when set, names what keeps this replica from doing its
	// work (database unreachable, disk short, a lease it cannot renew),
	// with a reason each: /readyz answers 503 while it names anything,
	// with the reasons on the operator listener only (health.go).
	Unready func(ctx context.Context) map[string]string
	// Audit records Trail's own administrative actions; default, a
	// recorder submitting through the Server's Submitter.
	Audit *selfaudit.Recorder
}

// Server is the HTTP API. It implements http.Handler.
type Server struct {
	st       store.Store
	sub      Submitter
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	patterns map[string]string // pattern → scope required (routes.go)
	ready    atomic.Bool
	draining atomic.Bool
	keys     *keyCache
	limiter  *limiter
	metrics  *metrics
	// unavailable logs the 503s answered, one line per interval with the
	// count of the others.
	unavailable *slog.Logger
	intake      intakeBudgets
	parsing     chan struct{} // parseTurn's turns, one per core
	bodies      bodyBuffers   // single events' request bodies (ingest.go)

	metricsHandler http.Handler
	auditor        *selfaudit.Recorder
	// orgResources are the GET /organizations/{id}/<resource> endpoints
	// (retention.go), built with the routes.
	orgResources map[string]orgResource
}

var _ http.Handler = (*Server)(nil)

// New returns a Server reading and writing st, submitting events through
// sub. It starts not ready: call SetReady(true) once the process can serve.
func New(st store.Store, sub Submitter, cfg Config) *Server {
	def := event.DefaultLimits()
	if cfg.Limits.MaxTargets <= 0 {
		cfg.Limits.MaxTargets = def.MaxTargets
	}
	if cfg.Limits.MaxFuture <= 0 {
		cfg.Limits.MaxFuture = def.MaxFuture
	}
	if cfg.Limits.MaxBodyBytes <= 0 {
		cfg.Limits.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxBatchBodyBytes <= 0 {
		cfg.MaxBatchBodyBytes = 16 << 20
	}
	if cfg.MaxIntakeBytes <= 0 {
		cfg.MaxIntakeBytes = 16 << 20
	}
	if cfg.KeyCacheTTL <= 0 {
		cfg.KeyCacheTTL = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil && cfg.Gatherer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Gatherer == nil {
		if g, ok := cfg.Registerer.(prometheus.Gatherer); ok {
			cfg.Gatherer = g
		} else {
			cfg.Gatherer = prometheus.NewRegistry() // serves nothing
		}
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry() // collected nowhere
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		st: st, sub: sub, cfg: cfg, log: cfg.Logger,
		mux:         http.NewServeMux(),
		patterns:    map[string]string{},
		keys:        newKeyCache(cfg.KeyCacheTTL, 10_000),
		metrics:     newMetrics(cfg.Registerer, cfg.Logger),
		unavailable: slog.New(lograte.New(cfg.Logger.Handler(), unavailableLogEvery, nil)),
		parsing:     make(chan struct{}, runtime.GOMAXPROCS(0)),
		intake: intakeBudgets{known: semaphore.NewWeighted(cfg.MaxIntakeBytes),
			// Room for one chunked body of the largest size allowed.
			chunked: semaphore.NewWeighted(max(cfg.MaxIntakeBytes, cfg.MaxBatchBodyBytes+1))},
	}
	s.metricsHandler = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	s.auditor = cfg.Audit
	if s.auditor == nil {
		s.auditor = selfaudit.New(sub, selfaudit.Config{Limits: cfg.Limits, Now: cfg.Now, Logger: cfg.Logger,
			TrustProxyHeaders: cfg.TrustProxyHeaders})
	}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	s.routes()
	return s
}

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Drain makes /readyz answer 503 "shutting_down" from now on, while every
// other route goes on serving: load balancers take this replica out of
// rotation before its listener closes (trail serve --shutdown-delay).
func (s *Server) Drain() { s.draining.Store(true) }

// handlerFunc is a route's handler. A returned error is rendered by
// renderError: an *apiError as it is, anything else as 503 or 500.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handlePublic(pattern string, h handlerFunc) {
	s.patterns[pattern] = publicRoute
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := checkPathText(r, pattern)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.renderError(w, r, err)
		}
	}))
}

// handle registers an authenticated route. scope, when not "", is required
// of the key.
func (s *Server) handle(pattern, scope string, h handlerFunc) {
	s.patterns[pattern] = scope
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			if _, ok := asAPIError(err); !ok && ingestRoutes[pattern] {
				s.metrics.rejectFailed(r.Context(), err, 0)
			}
			s.renderError(w, r, err)
			return
		}
		info := infoFrom(r)
		info.principal = &p
		if s.limiter != nil {
			if ok, retry := s.limiter.allow(p.ID, time.Now()); !ok {
				s.renderError(w, r, errRateLimited(retry))
				return
			}
		}
		if scope != "" && !p.Can(scope) {
			s.renderError(w, r, errForbidden(scope))
			return
		}
		if err := checkPathText(r, pattern); err != nil {
			s.renderError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.renderError(w, r, err)
		}
	}))
}

// requestInfo travels with the request (as a pointer in its context) so the
// handlers can add what the request log and metrics report.
type requestInfo struct {
	id        string
	principal *access.Principal // nil before authentication
	orgID     string            // the organization the request concerned
	err       error             // an internal error behind a 5xx
}

type infoKey struct{}

func infoFrom(r *http.Request) *requestInfo {
	if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// principal is the authenticated caller; only call it from handlers
// registered with handle.
func principal(r *http.Request) access.Principal {
	if p := infoFrom(r).principal; p != nil {
		return *p
	}
	return access.Principal{}
}

// setOrg records the organization a request concerns, for the request log.
func setOrg(r *http.Request, orgID string) { infoFrom(r).orgID = orgID }

// ServeHTTP runs one request: request id, panic recovery, routing (with
// JSON 404 and 405), the handler, then the request log and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{id: requestID(r.Header.Get("X-Request-ID"))}
	w.Header()["X-Request-Id"] = []string{info.id} // Set("X-Request-ID"), without canonicalizing the key each time
	rec := &recorder{ResponseWriter: w}
	ctx := selfaudit.WithRequest(r.Context(), info.id, func(org string) { info.orgID = org })
	r = r.WithContext(context.WithValue(ctx, infoKey{}, info))

	h, pattern := s.mux.Handler(r)
	route := pattern
	if _, ok := s.patterns[pattern]; !ok {
		route = "unmatched" // never the raw path: it would explode the label set
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic while serving a request", "request_id", info.id, "method", r.Method,
				"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				writeAPIError(rec, errInternal(info.id))
			}
		}
		d := time.Since(start)
		// A complete answer goes out before the metrics and the access log
		// are written, not after: a client waiting for it (one sending
		// events one after another) should not also wait for them
		// (docs/PERFORMANCE.md, "One client, stage by stage"). Only an
		// answer that declared its length: flushing any other would turn
		// it chunked.
		if rec.wroteHeader && len(rec.Header()["Content-Length"]) > 0 {
			_ = http.NewResponseController(rec).Flush()
		}
		s.observe(r, rec, info, route, d)
	}()
	if route == "unmatched" {
		s.unmatched(rec, r, h)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

func errInternal(requestID string) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "internal_error",
		message: "Trail hit an internal error; retry, and if it persists report request id " + requestID + " to the operator."}
}

// renderError answers a handler's error.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := asAPIError(err); ok {
		writeAPIError(w, e)
		return
	}
	info := infoFrom(r)
	info.err = err
	switch {
	case errors.Is(err, store.ErrUnavailable):
		writeAPIError(w, errStorageUnavailable)
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The client went away; nobody reads this answer.
		writeAPIError(w, &apiError{status: 499, code: "client_closed_request", message: "The client closed the request."})
	default:
		s.log.Error("request failed", "request_id", info.id, "method", r.Method, "path", r.URL.Path, "err", err)
		writeAPIError(w, errInternal(info.id))
	}
}

// unmatched answers a request no route matched, in JSON: 405 when the path
// exists with other methods, 404 otherwise, and the mux's redirects (to a
// cleaned path) as they are.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	path := truncate(r.URL.Path, 200)
	switch {
	case cw.status == http.StatusMethodNotAllowed:
		allow := cw.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeAPIError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			message: fmt.Sprintf("%s is not allowed on %s; use %s.", r.Method, path, allow)})
	case cw.status >= 300 && cw.status < 400 && cw.header.Get("Location") != "":
		w.Header().Set("Location", cw.header.Get("Location"))
		writeAPIError(w, &apiError{status: cw.status, code: "redirect",
			message: "Use the canonical path " + cw.header.Get("Location") + "."})
	default:
		writeAPIError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			message: fmt.Sprintf("Trail has no endpoint %s %s: check the method and path against the API documentation.", r.Method, path)})
	}
}

func (s *Server) observe(r *http.Request, rec *recorder, info *requestInfo, route string, d time.Duration) {
	status := rec.status
	if !rec.wroteHeader {
		status = http.StatusOK
	}
	s.metrics.observe(route, status, d)
	if status == http.StatusServiceUnavailable && route != "GET /readyz" {
		attrs := []any{"route", route}
		if info.err != nil {
			attrs = append(attrs, "err", info.err.Error())
		}
		s.unavailable.Warn("answering 503: Trail cannot serve requests for now (storage unavailable, overloaded, out of disk, a refused log, or stopping); one line per 10 s, with the count of the others", attrs...)
		return
	}
	if !s.cfg.AccessLog {
		return
	}
	level := slog.LevelInfo
	switch route {
	case "GET /healthz", "GET /readyz":
		level = slog.LevelDebug
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	// The line may wait in serve's log buffer (internal/logbuf): one write
	// per request would cost more CPU than decoding the request. Where the
	// handler can, it writes the line itself, as slog would have encoded
	// it, without building a slog.Record.
	if s.cfg.AccessLines != nil {
		if l := s.cfg.AccessLines.Line(time.Now(), level, "request"); l != nil {
			l.String("request_id", info.id)
			l.String("method", r.Method)
			l.String("route", route)
			l.String("path", r.URL.Path)
			l.Int("status", int64(status))
			l.Int("bytes", rec.bytes)
			l.Float("duration_ms", float64(d.Microseconds())/1000)
			l.String("remote", r.RemoteAddr)
			if info.principal != nil {
				l.String("key_id", info.principal.ID)
			}
			if info.orgID != "" {
				l.String("organization_id", info.orgID)
			}
			if info.err != nil {
				l.String("err", info.err.Error())
			}
			_ = l.End(level, true) // nowhere to report a log write's failure
			return
		}
	}
	// A fixed array, not a growing slice: no allocation per request.
	var buf [11]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", r.RemoteAddr))
	if info.principal != nil {
		attrs = append(attrs, slog.String("key_id", info.principal.ID))
	}
	if info.orgID != "" {
		attrs = append(attrs, slog.String("organization_id", info.orgID))
	}
	if info.err != nil {
		attrs = append(attrs, slog.String("err", info.err.Error()))
	}
	s.log.LogAttrs(logbuf.MayWait(context.WithoutCancel(r.Context())), level, "request", attrs...)
}

// LineWriter writes a log line itself (logbuf.Handler, as trail serve
// sets it up); Line returns nil where it cannot.
type LineWriter interface {
	Line(t time.Time, level slog.Level, msg string) *logbuf.Line
}

// unavailableLogEvery is how often a 503 is logged at most: the first of
// an outage at once, then one line per interval saying how many more.
const unavailableLogEvery = 10 * time.Second

// requestID echoes a client's X-Request-ID when it is short and plain, and
// makes a new one otherwise.
func requestID(given string) string {
	if len(given) > 0 && len(given) <= 128 {
		ok := true
		for i := 0; i < len(given) && ok; i++ {
			c := given[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				c == '-' || c == '_' || c == '.' || c == ':'
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recorder remembers the status and size of the answer.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *recorder) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter records what the mux's own 404/405/redirect handlers would
// answer, so it can be answered in JSON instead.
type captureWriter struct {
	header http.Header
	status int
}

func (w *captureWriter) Header() http.Header { return w.header }
func (w *captureWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *captureWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
