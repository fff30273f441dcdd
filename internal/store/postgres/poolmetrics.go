package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports the connection pool's state on every scrape: how
// many connections are in use, idle and allowed, and how often and how long
// acquiring one had to wait, which is where a pool too small for the load
// shows first (docs/SCALING.md, "Connections").
type PoolCollector struct {
	pool                                                   *pgxpool.Pool
	acquired, idle, total, max                             *prometheus.Desc
	acquires, emptyAcquires, canceledAcquires, acquireWait *prometheus.Desc
	newConns                                               *prometheus.Desc
}

var _ prometheus.Collector = (*PoolCollector)(nil)

// NewPoolCollector returns a collector of pool's statistics.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("trail_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{
		pool:             pool,
		acquired:         d("acquired_connections", "Connections of the pool in use now."),
		idle:             d("idle_connections", "Idle connections of the pool now."),
		total:            d("connections", "Connections of the pool now, in use, idle or being opened."),
		max:              d("max_connections", "The most connections the pool opens (pool_max_conns)."),
		acquires:         d("acquires_total", "Connections taken from the pool."),
		emptyAcquires:    d("empty_acquires_total", "Connections taken from the pool that had to wait for one: none was idle."),
		canceledAcquires: d("canceled_acquires_total", "Waits for a connection that were given up (their request ended first)."),
		acquireWait:      d("empty_acquire_wait_seconds_total", "Time spent waiting for a connection when none was idle."),
		newConns:         d("new_connections_total", "Connections the pool opened."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.canceledAcquires, c.acquireWait, c.newConns} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(c.acquireWait, s.EmptyAcquireWaitTime().Seconds())
	counter(c.newConns, float64(s.NewConnsCount()))
}
