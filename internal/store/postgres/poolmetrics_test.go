package postgres_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store/postgres"
)

func TestPoolCollector(t *testing.T) {
	s, err := postgres.Open(context.Background(), pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CountAPIKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(postgres.NewPoolCollector(s.Pool()))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			got[mf.GetName()] = g.GetValue()
		} else {
			got[mf.GetName()] = m.GetCounter().GetValue()
		}
	}
	if len(got) != 9 || got["trail_db_pool_max_connections"] < 1 || got["trail_db_pool_acquires_total"] < 1 || got["trail_db_pool_connections"] < 1 {
		t.Fatalf("pool metrics %v: want all nine, a maximum, connections and acquires", got)
	}
}
