package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ingest"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/loadgen"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

const adminSecret = "sk_bench_admin_0123456789abcdefghijklmnop"

// eventBody is a realistic ~750-byte WorkOS create-event request.
func eventBody(org string, i int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"organization_id": org,
		"event": map[string]any{
			"action":      []string{"user.signed_in", "user.signed_out", "team.member_added", "invoice.paid", "document.viewed"}[i%5],
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
			"actor": map[string]any{"type": "user", "id": fmt.Sprintf("user_%06d", i%1000), "name": fmt.Sprintf("User Number %d", i%1000),
				"metadata": map[string]any{"role": "admin", "team": "platform"}},
			"targets": []map[string]any{{"type": "team", "id": fmt.Sprintf("team_%04d", i%50), "name": "Platform"},
				{"type": "document", "id": fmt.Sprintf("doc_%08d", i), "metadata": map[string]any{"size": 1024}}},
			"context":  map[string]any{"location": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
			"metadata": map[string]any{"request_id": fmt.Sprintf("req_%016d", i), "mfa": true, "attempts": 1, "region": "eu-west-1", "plan": "enterprise"},
		},
	})
	return b
}

// BenchmarkHTTPIngest compares single-event ingest through Trail (real SQLite,
// group commit, background indexer) against the ceiling of the HTTP layer
// alone: a handler that decodes the same body and answers 200. 64 keep-alive
// clients; b.N is the number of requests per variant.
func BenchmarkHTTPIngest(b *testing.B) {
	concurrency := 64
	if v := os.Getenv("TRAIL_BENCH_CLIENTS"); v != "" {
		concurrency, _ = strconv.Atoi(v)
	}
	for _, v := range []string{"ceiling", "trail-without-ledger", "trail"} {
		b.Run(v, func(b *testing.B) {
			var h http.Handler
			var reg *prometheus.Registry
			org := "org_bench"
			switch v {
			case "ceiling":
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var body map[string]any
					if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
						http.Error(w, err.Error(), 400)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					w.Write([]byte(`{"success":true}`))
				})
			case "trail-without-ledger":
				h, org, reg = trailHandler(b, false)
			case "trail":
				h, org, reg = trailHandler(b, true)
			}
			// Freshness: every 10 ms, how many requests have been answered
			// and how many events the indexer has made searchable; after
			// the run, for each sample, how long until the events answered
			// by then were all searchable (answers go out after the commit,
			// so every answered event is stored).
			var answered atomic.Int64
			counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r)
				answered.Add(1)
			})
			type sample struct {
				at                time.Time
				answered, indexed float64
			}
			var samples []sample
			stopSampling, sampled := make(chan struct{}), make(chan struct{})
			if reg != nil {
				go func() {
					defer close(sampled)
					t := time.NewTicker(10 * time.Millisecond)
					defer t.Stop()
					for stop := false; !stop; {
						select {
						case <-stopSampling:
							stop = true
						case <-t.C:
						}
						a := float64(answered.Load())
						samples = append(samples, sample{time.Now(), a, counterValue(b, reg, "trail_search_indexed_events_total")})
					}
				}()
			} else {
				close(sampled)
			}
			srv := httptest.NewServer(counted)
			defer srv.Close()
			client := loadgen.NewClient(concurrency)
			bodies := make([][]byte, 1024)
			for i := range bodies {
				bodies[i] = eventBody(org, int64(i))
			}
			b.ResetTimer()
			res := loadgen.Run(context.Background(), client, loadgen.Options{Concurrency: concurrency, Requests: int64(b.N)},
				func(i int64) (*http.Request, error) {
					req, err := http.NewRequest("POST", srv.URL+"/audit_logs/events", bytes.NewReader(bodies[i%int64(len(bodies))]))
					if err != nil {
						return nil, err
					}
					req.Header.Set("Authorization", "Bearer "+adminSecret)
					req.Header.Set("Content-Type", "application/json")
					return req, nil
				})
			b.StopTimer()
			if res.Errors > 0 {
				b.Fatalf("%d errors, first: %s", res.Errors, res.FirstErr)
			}
			b.ReportMetric(res.PerSecond(), "req/s")
			b.ReportMetric(float64(res.Percentile(99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.Percentile(50).Microseconds())/1000, "p50-ms")
			if reg != nil {
				// Why the latency is what it is: how many requests share a
				// commit, and how long a commit takes.
				b.ReportMetric(histogramMean(b, reg, "trail_ingest_batch_events"), "events/commit")
				b.ReportMetric(histogramMean(b, reg, "trail_ingest_commit_seconds")*1000, "commit-ms")
				deadline := time.Now().Add(30 * time.Second)
				for counterValue(b, reg, "trail_search_indexed_events_total") < float64(answered.Load()) && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				close(stopSampling)
				<-sampled
				var stalest time.Duration
				j := 0
				for _, smp := range samples {
					for j < len(samples) && samples[j].indexed < smp.answered {
						j++
					}
					if j == len(samples) {
						b.Fatalf("%v answered events never became searchable", smp.answered)
					}
					stalest = max(stalest, samples[j].at.Sub(smp.at))
				}
				b.ReportMetric(float64(stalest.Milliseconds()), "max-unsearchable-ms")
			}
		})
	}
}

// counterValue and histogramMean read the registry the handler reports to.
func counterValue(b *testing.B, reg *prometheus.Registry, name string) float64 {
	return metric(b, reg, name).GetCounter().GetValue()
}

func histogramMean(b *testing.B, reg *prometheus.Registry, name string) float64 {
	h := metric(b, reg, name).GetHistogram()
	return h.GetSampleSum() / float64(max(h.GetSampleCount(), 1))
}

// metric is the first (unlabelled) series of the metric called name.
func metric(b *testing.B, reg *prometheus.Registry, name string) *dto.Metric {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	b.Fatalf("no metric %s", name)
	return nil
}

// trailHandler is trail serve's ingest path: API, group commit, search
// indexer and, with ledger, the integrator signing checkpoints.
func trailHandler(b *testing.B, withLedger bool) (http.Handler, string, *prometheus.Registry) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/trail.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := st.CreateAPIKey(ctx, store.APIKey{ID: access.NewKeyID(now), Name: "bench", Hash: access.HashSecret(adminSecret),
		Prefix: "sk_bench", Scopes: []string{access.ScopeAdmin}, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	org := access.NewOrganizationID(now)
	if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: "Bench", CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ix := ingest.NewIndexer(st, ingest.IndexerOptions{}, nil, reg)
	wake := ix.Wake
	if withLedger {
		dir := b.TempDir()
		signer, err := ledger.LoadOrCreateSigner(dir, "bench.example")
		if err != nil {
			b.Fatal(err)
		}
		in, err := ledger.NewIntegrator(st, signer, "bench.example/log", ledger.Options{DataDir: dir, Interval: 250 * time.Millisecond}, nil, reg)
		if err != nil {
			b.Fatal(err)
		}
		if err := in.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(in.Stop)
		wake = func() { ix.Wake(); in.Wake() }
	}
	c := ingest.New(st, ingest.Options{OnCommit: wake}, nil, reg)
	c.Start()
	ix.Start(ctx)
	b.Cleanup(func() { c.Stop(); ix.Stop() })
	h := api.New(st, c, api.Config{Limits: event.DefaultLimits(), Registerer: reg, Gatherer: reg})
	h.SetReady(true)
	return h, org, reg
}
