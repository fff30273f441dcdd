package livetail

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exports the hub's counters to reg.
func (h *Hub) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trail_live_tail_subscribers",
			Help: "Live tails open on this server (GET /v1/events/stream and the portal's live view)."},
			func() float64 { return float64(h.Stats().Subscribers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "trail_live_tail_delivered_total",
			Help: "Records handed to live tail subscribers."},
			func() float64 { return float64(h.Stats().Delivered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "trail_live_tail_too_slow_total",
			Help: "Live tails ended because their client fell a whole buffer behind (they resume with Last-Event-ID)."},
			func() float64 { return float64(h.Stats().TooSlow) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("couldn't register live tail metrics: %w", err)
		}
	}
	return nil
}
