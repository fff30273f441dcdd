package stream_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/stream"
)

// gauge returns the value of the metric name with the given stream_id (and
// state, when not ""), or -1.
func gauge(t *testing.T, reg *prometheus.Registry, name, id, state string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream_id" && l.GetValue() != id || l.GetName() == "state" && state != "" && l.GetValue() != state {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// TestMetrics: after delivery the stream shows no lag, its delivered count
// and its state in Prometheus.
func TestMetrics(t *testing.T) {
	h := newHarness(t, stream.Options{})
	reg := prometheus.NewRegistry()
	h.engine = stream.New(h.st, h.codec, stream.Options{Poll: 20 * time.Millisecond, OnAdvance: func(id string, c int64) {
		h.mu.Lock()
		h.cursors[id] = c
		h.mu.Unlock()
	}}, nil, reg)
	var s sink
	srv := webhookReceiver(t, &s, nil)
	h.appendEvents(30)
	id := h.createStream(stream.TypeWebhook, webhookConfig(srv.URL), 0)
	h.start()
	h.waitCursor(id, 30)
	// The engine's positions catch up at its next pass (every 20 ms here).
	for range 500 {
		if gauge(t, reg, "trail_stream_lag_events", id, "") == 0 {
			break
		}
		<-h.changedOrTick()
	}
	checks := []struct {
		name, state string
		want        float64
	}{
		{"trail_stream_lag_events", "", 0},
		{"trail_stream_lag_seconds", "", 0},
		{"trail_stream_delivered_events_total", "", 30},
		{"trail_stream_delivery_failures_total", "", 0},
		{"trail_stream_state", "active", 1},
	}
	for _, c := range checks {
		if got := gauge(t, reg, c.name, id, c.state); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if synced := gauge(t, reg, "trail_stream_last_synced_timestamp_seconds", id, ""); synced < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last synced %v", synced)
	}
}
