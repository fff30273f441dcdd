package stream_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/stream"
)

// gauge returns the value of the metric name whose labels include every
// pair of labels, or -1.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
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
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
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

// TestMetrics: after delivery the fleet's aggregates by destination type
// show no lag, the delivered count and the stream's state, and no series
// is labelled with a stream or organization id.
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
	webhook := map[string]string{"type": stream.TypeWebhook}
	// The engine's positions catch up at its next pass (every 20 ms here).
	for range 500 {
		if gauge(t, reg, "trail_streams_lag_events", webhook) == 0 {
			break
		}
		<-h.changedOrTick()
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"trail_streams_lag_events", webhook, 0},
		{"trail_streams_lag_seconds_max", webhook, 0},
		{"trail_streams_delivered_events_total", webhook, 30},
		{"trail_streams_delivery_failures_total", webhook, 0},
		{"trail_streams", map[string]string{"type": stream.TypeWebhook, "state": "active"}, 1},
		{"trail_streams", map[string]string{"type": stream.TypeWebhook, "state": "error"}, 0},
		{"trail_streams", map[string]string{"type": stream.TypeS3, "state": "active"}, 0},
		{"trail_streams_lag_events", map[string]string{"type": stream.TypeS3}, 0},
	} {
		if got := gauge(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// A replica that stops delivering (its lease lost) reports no stream,
	// so that summed over the fleet each stream counts once.
	h.halt()
	if got := gauge(t, reg, "trail_streams", map[string]string{"type": stream.TypeWebhook, "state": "active"}); got != 0 {
		t.Errorf("trail_streams{active} = %v after the engine stopped, want 0", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream_id" || l.GetName() == "organization_id" {
					t.Errorf("%s is labelled %s: per-stream detail belongs in the API", mf.GetName(), l.GetName())
				}
			}
		}
	}
}
