package replicate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// checkpointCollector republishes Litestream's checkpoint counters, which it
// registers with Prometheus's default registry (not served by Trail), as
// trail_replication_checkpoints_total and
// trail_replication_checkpoint_seconds_total: how often Litestream
// checkpointed the replicated databases, and how long SQLite's checkpoints
// took. Each PASSIVE one runs while Litestream holds the write lock, so the
// seconds are time the writers waited (docs/PERFORMANCE.md, "Replication").
type checkpointCollector struct {
	gather prometheus.Gatherer
	dbs    map[string]bool // the paths of the databases replicated here
	count  *prometheus.Desc
	secs   *prometheus.Desc
}

func newCheckpointCollector(paths []string) *checkpointCollector {
	c := &checkpointCollector{gather: prometheus.DefaultGatherer, dbs: map[string]bool{},
		count: prometheus.NewDesc("trail_replication_checkpoints_total",
			"WAL checkpoints of the replicated databases, by mode (PASSIVE, TRUNCATE).", []string{"mode"}, nil),
		secs: prometheus.NewDesc("trail_replication_checkpoint_seconds_total",
			"Time spent in the WAL checkpoints of the replicated databases, by mode; the writers wait for PASSIVE ones.", []string{"mode"}, nil)}
	for _, p := range paths {
		c.dbs[p] = true
	}
	return c
}

func (c *checkpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.secs
}

func (c *checkpointCollector) Collect(ch chan<- prometheus.Metric) {
	fams, err := c.gather.Gather()
	if err != nil && len(fams) == 0 {
		return
	}
	for _, f := range fams {
		var desc *prometheus.Desc
		switch f.GetName() {
		case "litestream_checkpoint_count":
			desc = c.count
		case "litestream_checkpoint_seconds":
			desc = c.secs
		default:
			continue
		}
		sums := map[string]float64{}
		for _, m := range f.GetMetric() {
			var db, mode string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "db":
					db = l.GetValue()
				case "mode":
					mode = l.GetValue()
				}
			}
			if c.dbs[db] && m.GetCounter() != nil {
				sums[mode] += m.GetCounter().GetValue()
			}
		}
		for mode, v := range sums {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, mode)
		}
	}
}
