package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/store"
)

// metrics are the API's Prometheus series. Labels are bounded: route is a
// mux pattern (or "unmatched"), never a raw path.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series caches each route's and status's children of requests and
	// duration (routeStatus → routeSeries): looking them up by label
	// values hashes the labels on every request.
	series    sync.Map
	accepted  prometheus.Counter
	rejected  *prometheus.CounterVec
	idemReuse prometheus.Counter
}

// Reasons an event is rejected, the values of trail_events_rejected_total's
// reason label.
const (
	rejectInvalid     = "invalid"      // failed validation
	rejectTooLarge    = "too_large"    // body over the limit
	rejectUnknownOrg  = "unknown_org"  // no such organization (or not the key's)
	rejectUnavailable = "unavailable"  // overloaded, stopping, or storage down
	rejectInternal    = "internal"     // an unexpected failure
	rejectIdempotency = "bad_idem_key" // unusable Idempotency-Key header
)

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "trail_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"route"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_events_accepted_total", Help: "Events accepted through the API (idempotent replays not counted).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trail_events_rejected_total", Help: "Events refused by the API, by reason.",
		}, []string{"reason"}),
		idemReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_idempotency_key_reused_total",
			Help: "Ingest requests that reused an Idempotency-Key with another body within 24 hours; answered with the first request's result, nothing stored.",
		}),
	}
	m.requests = register(reg, log, m.requests)
	m.idemReuse = register(reg, log, m.idemReuse)
	m.duration = register(reg, log, m.duration)
	m.accepted = register(reg, log, m.accepted)
	m.rejected = register(reg, log, m.rejected)
	// Every reason has its series from the start, at 0, so that alert
	// rules and rate() see them before the first refusal.
	for _, r := range []string{rejectInvalid, rejectTooLarge, rejectUnknownOrg, rejectUnavailable, rejectInternal, rejectIdempotency, rejectSchema} {
		m.rejected.WithLabelValues(r)
	}
	return m
}

// register registers c, or reuses the collector already registered under its
// name (two servers on one registry, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, log *slog.Logger, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Error("couldn't register an HTTP metric; it will not be exported", "err", err)
	return c
}

type routeStatus struct {
	route  string
	status int
}

type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	k := routeStatus{route, status}
	v, ok := m.series.Load(k)
	if !ok {
		// Routes and statuses are bounded (a mux pattern or "unmatched"),
		// so the cache is too.
		v, _ = m.series.LoadOrStore(k, &routeSeries{
			requests: m.requests.WithLabelValues(route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(route),
		})
	}
	rs := v.(*routeSeries)
	rs.requests.Inc()
	rs.duration.Observe(d.Seconds())
}

func (m *metrics) reject(reason string, events int) {
	m.rejected.WithLabelValues(reason).Add(float64(max(events, 1)))
}

// rejectFailed counts events refused because a lookup failed on Trail's
// side, not for anything the caller sent: the API key, an organization or
// a schema that the database could not be asked for (503, "unavailable"),
// or an unexpected failure ("internal"). A request the client abandoned
// (ctx ended) is not counted. Before the body is read events is 0, and
// the request counts as one.
func (m *metrics) rejectFailed(ctx context.Context, err error, events int) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		m.reject(rejectUnavailable, events)
	case ctx.Err() != nil:
	default:
		m.reject(rejectInternal, events)
	}
}

// ingestRoutes are the routes whose refusals trail_events_rejected_total
// counts.
var ingestRoutes = map[string]bool{"POST /audit_logs/events": true, "POST /v1/events/batch": true}
