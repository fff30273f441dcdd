package ledger

import "github.com/prometheus/client_golang/prometheus"

// metrics are aggregated over organizations: no per-organization labels, so
// their cardinality stays fixed however many tenants there are.
type metrics struct {
	leaves       prometheus.Counter
	passTime     prometheus.Histogram
	passErrors   prometheus.Counter
	lag          prometheus.Histogram
	unintegrated prometheus.Gauge
	worstLog     prometheus.Gauge
	pendingLogs  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, refused func() float64) metrics {
	m := metrics{
		leaves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_ledger_leaves_integrated_total", Help: "Records added to Merkle trees and covered by a stored checkpoint.",
		}),
		passTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "trail_ledger_pass_seconds", Help: "Duration of one integration pass that had work.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		passErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trail_ledger_pass_errors_total", Help: "Integration passes that failed (retried).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "trail_ledger_lag_seconds",
			Help: "Per log and pass: from acceptance (received_at) of the oldest record a new checkpoint covers to that checkpoint's commit.",
			// Fine around a second, where LogInterval and the passes put it.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 5, 10, 30, 60},
		}),
		unintegrated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trail_ledger_unintegrated_records", Help: "Accepted records not yet covered by a checkpoint, all logs together, at the last pass.",
		}),
		worstLog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trail_ledger_max_log_unintegrated_records", Help: "The most records waiting in any one log, at the last pass.",
		}),
		pendingLogs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trail_ledger_pending_logs", Help: "Logs with records waiting for integration, at the last pass.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.leaves, m.passTime, m.passErrors, m.lag, m.unintegrated, m.worstLog, m.pendingLogs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "trail_ledger_refused_logs", Help: "Logs the integrator refuses to extend because the database disagrees with what it signed (see logs and /readyz).",
			}, refused))
	}
	return m
}
