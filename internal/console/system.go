package console

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/trailaudit/trail/internal/store"
)

// The system page: ingest rate, search and integration lag, the disk
// reserve, and which replica holds which lease. It reads what /metrics
// already knows (this replica's registry, Operations.Metrics), the
// verifiable log's pending records and the lease table (the deployment's).

// rateSamples keeps the last samples of trail_events_accepted_total, one
// every sampleEvery (RunSampler), for the ingest rate and its chart.
type rateSamples struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	total float64
}

const (
	sampleEvery = 10 * time.Second
	keepSamples = 61 // ten minutes of rates
)

func (s *rateSamples) add(at time.Time, total float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, rateSample{at, total})
	if n := len(s.samples); n > keepSamples {
		s.samples = append(s.samples[:0], s.samples[n-keepSamples:]...)
	}
}

func (s *rateSamples) snapshot() []rateSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rateSample(nil), s.samples...)
}

// RunSampler samples this replica's accepted events every 10 seconds
// until ctx ends, for the system page's ingest rate. Without it the page
// measures between its own views.
func (c *Console) RunSampler(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		c.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample records the accepted-events counter now.
func (c *Console) sample() {
	if c.cfg.Operations.Metrics == nil {
		return
	}
	m, err := c.gather()
	if err != nil {
		c.log.Warn("couldn't read the metrics for the ingest rate", "err", err)
		return
	}
	if v, ok := m.value("trail_events_accepted_total"); ok {
		c.rates.add(c.cfg.Now(), v)
	}
}

// metrics are one gathering of the registry, by name.
type metrics map[string]*dto.MetricFamily

func (c *Console) gather() (metrics, error) {
	fams, err := c.cfg.Operations.Metrics.Gather()
	if err != nil && len(fams) == 0 {
		return nil, fmt.Errorf("gathering the metrics: %w", err)
	}
	out := metrics{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out, nil
}

// value is the sum of a counter's or gauge's series, or a histogram's mean.
func (m metrics) value(name string) (float64, bool) {
	f, ok := m[name]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, false
	}
	sum, count := 0.0, uint64(0)
	for _, s := range f.GetMetric() {
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Histogram != nil:
			sum += s.GetHistogram().GetSampleSum()
			count += s.GetHistogram().GetSampleCount()
		}
	}
	if f.GetType() == dto.MetricType_HISTOGRAM {
		if count == 0 {
			return 0, false
		}
		return sum / float64(count), true
	}
	return sum, true
}

// held lists the series of trail_lease_held at 1: the leases this replica
// holds, and its name as a holder.
func (m metrics) held() (holder string, leases []string) {
	f, ok := m["trail_lease_held"]
	if !ok {
		return "", nil
	}
	for _, s := range f.GetMetric() {
		var name string
		for _, l := range s.GetLabel() {
			switch l.GetName() {
			case "lease":
				name = l.GetValue()
			case "holder":
				holder = l.GetValue()
			}
		}
		if s.GetGauge().GetValue() == 1 {
			leases = append(leases, name)
		}
	}
	return holder, leases
}

type systemData struct {
	HasMetrics bool
	// Ingest, on this replica.
	Rate       float64 // events/s over the last minute; -1 while measuring
	RateWindow string
	RateChart  []byte
	Accepted   float64
	// Search.
	SearchKnown      bool
	SearchLagEvents  float64
	SearchLagSeconds float64
	// Integration, deployment-wide.
	LedgerKnown     bool
	Unintegrated    int64
	PendingLogs     int
	IntegrationMean float64 // mean seconds from acceptance to checkpoint, this replica
	IntegrationSeen bool
	// Disk.
	DiskKnown   bool
	DiskFree    int64
	DiskShort   bool
	DiskReserve int64
	// Leases.
	LeasesKnown bool
	Leases      []store.Lease
	Replica     string
	HeldHere    []string
}

// system is GET /console/system.
func (c *Console) system(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	ops := c.cfg.Operations
	d := systemData{Rate: -1, DiskReserve: ops.DiskReserve}
	if ops.Metrics != nil {
		m, err := c.gather()
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.HasMetrics = true
		if v, ok := m.value("trail_events_accepted_total"); ok {
			d.Accepted = v
			c.rates.add(c.cfg.Now(), v)
		}
		c.ingestRate(&d)
		d.SearchLagEvents, d.SearchKnown = m.value("trail_search_lag_events")
		d.SearchLagSeconds, _ = m.value("trail_search_lag_seconds")
		d.IntegrationMean, d.IntegrationSeen = m.value("trail_ledger_lag_seconds")
		var free, short float64
		free, d.DiskKnown = m.value("trail_disk_guard_free_bytes")
		short, _ = m.value("trail_disk_guard_short")
		d.DiskFree, d.DiskShort = int64(free), short == 1
		d.Replica, d.HeldHere = m.held()
	}
	if ops.Ledger != nil {
		pending, err := ops.Ledger.PendingLogs(r.Context())
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.LedgerKnown, d.PendingLogs = true, len(pending)
		for _, p := range pending {
			d.Unintegrated += p.NextSeq - p.IntegratedSize
		}
	}
	if ops.Leases != nil {
		leases, err := ops.Leases.Leases(r.Context())
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.LeasesKnown, d.Leases = true, leases
	}
	c.render(w, r, http.StatusOK, "system", page{Title: "System", Nav: "system", Session: s, Data: d})
}

// ingestRate fills the rate over the last minute and the chart of the
// samples kept, one bar per interval between two samples.
func (c *Console) ingestRate(d *systemData) {
	samples := c.rates.snapshot()
	if len(samples) < 2 {
		return
	}
	last := samples[len(samples)-1]
	// The rate: from the oldest sample at most a minute old (or the one
	// before the last, if the samples are further apart).
	from := samples[len(samples)-2]
	for i := len(samples) - 2; i >= 0; i-- {
		if last.at.Sub(samples[i].at) > time.Minute {
			break
		}
		from = samples[i]
	}
	if span := last.at.Sub(from.at).Seconds(); span > 0 {
		d.Rate = max(last.total-from.total, 0) / span
		d.RateWindow = fmt.Sprintf("%.0f s", span)
	}
	// A bar for each interval of the ten minutes kept, the oldest empty
	// until sampled, so that bars keep their width as samples come.
	labels := make([]string, keepSamples-len(samples))
	values := make([]float64, keepSamples-len(samples))
	for i := 1; i < len(samples); i++ {
		span := samples[i].at.Sub(samples[i-1].at).Seconds()
		v := 0.0
		if span > 0 {
			v = max(samples[i].total-samples[i-1].total, 0) / span
		}
		values = append(values, v)
		labels = append(labels, fmt.Sprintf("%s UTC: %.1f events/s", samples[i].at.UTC().Format("15:04:05"), v))
	}
	d.RateChart = barsSVG(chartWide, fmt.Sprintf("Events accepted per second by this replica, %s to %s UTC",
		samples[0].at.UTC().Format("15:04:05"), last.at.UTC().Format("15:04:05")), labels, values)
}
