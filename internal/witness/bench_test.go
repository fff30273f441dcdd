package witness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
)

// BenchmarkCosignLag measures the checkpoint-to-cosigned lag: for every
// checkpoint the integrator signs, the time until both witnesses have
// cosigned it or a larger checkpoint of the same log (which covers it). The
// load is TRAIL_BENCH_RATE events per second (default 5,000) spread over
// TRAIL_BENCH_ORGS organizations (default 1,000) for TRAIL_BENCH_SECONDS
// (default 10), with the integrator's pass interval of trail serve (250 ms)
// and two witnesses over HTTP on loopback, each with its SQLite state. It
// reports p50, p99 and max lag, cosignatures per witness per second, the
// cores the process used and the CPU time per cosignature.
// TRAIL_BENCH_MIN_INTERVAL_MS sets SubmitterOptions.MinInterval (default
// 1000, the submitter's).
//
//	go test -run '^$' -bench CosignLag -benchtime 1x ./internal/witness/
func BenchmarkCosignLag(b *testing.B) {
	rate := envInt(b, "TRAIL_BENCH_RATE", 5000)
	orgs := envInt(b, "TRAIL_BENCH_ORGS", 1000)
	seconds := envInt(b, "TRAIL_BENCH_SECONDS", 10)
	interval := time.Duration(envInt(b, "TRAIL_BENCH_MIN_INTERVAL_MS", 1000)) * time.Millisecond
	for range b.N {
		signer := newLogSigner(b)
		w1 := startWitness(b, "w1.example", signer.Verifier())
		w2 := startWitness(b, "w2.example", signer.Verifier())
		st := newMemStorage()
		dir := b.TempDir()
		sub, err := NewSubmitter(context.Background(), dir, st, SubmitterOptions{Witnesses: []Config{w1.config, w2.config}, MinInterval: interval}, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			b.Fatal(err)
		}
		type pending struct {
			size int64
			at   time.Time
		}
		var mu sync.Mutex
		waiting := map[string][]pending{}         // org → checkpoints not yet covered by both
		cosigned := map[string]map[string]int64{} // org → witness → largest size cosigned
		var lags []time.Duration
		requests := 0
		sub.onCosigned = func(witness, org string, size int64) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			requests++
			if cosigned[org] == nil {
				cosigned[org] = map[string]int64{}
			}
			cosigned[org][witness] = max(cosigned[org][witness], size)
			both := min(cosigned[org]["w1.example"], cosigned[org]["w2.example"])
			keep := waiting[org][:0]
			for _, p := range waiting[org] {
				if p.size <= both {
					lags = append(lags, now.Sub(p.at))
				} else {
					keep = append(keep, p)
				}
			}
			waiting[org] = keep
		}
		signed := func(org string, size int64, note []byte) {
			mu.Lock()
			waiting[org] = append(waiting[org], pending{size, time.Now()})
			mu.Unlock()
			sub.Signed(org, size, note)
		}
		in, err := ledger.NewIntegrator(st, signer, testPrefix, ledger.Options{DataDir: dir, Interval: 250 * time.Millisecond, Signed: signed}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := in.Start(ctx); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); sub.Run(ctx) }()

		b.ResetTimer()
		cpu0 := cpuTime(b)
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		sent := 0
		for time.Since(start) < time.Duration(seconds)*time.Second {
			<-tick.C
			due := int(time.Since(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				addRecords(st, "org_"+strconv.Itoa(sent%orgs), "a", 1)
			}
			in.Wake()
		}
		tick.Stop()
		// Wait until every checkpoint is covered.
		for deadline := time.Now().Add(2 * time.Minute); ; {
			mu.Lock()
			n := 0
			for _, w := range waiting {
				n += len(w)
			}
			mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d checkpoints still not cosigned by both witnesses", n)
			}
			in.Wake()
			time.Sleep(50 * time.Millisecond)
		}
		elapsed := time.Since(start)
		cpu := cpuTime(b) - cpu0
		b.StopTimer()
		in.Stop()
		cancel()
		<-done

		mu.Lock()
		slices.Sort(lags)
		q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
		b.ReportMetric(float64(len(lags)), "checkpoints")
		b.ReportMetric(q(0.5).Seconds(), "p50-lag-s")
		b.ReportMetric(q(0.99).Seconds(), "p99-lag-s")
		b.ReportMetric(lags[len(lags)-1].Seconds(), "max-lag-s")
		b.ReportMetric(float64(requests)/2/elapsed.Seconds(), "cosigns/witness/s")
		// What the process got of the machine, and what a cosignature
		// cost it all in (integrator, client, both witnesses): on a busy
		// shared machine the lag follows the first, not the design.
		b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores-used")
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(max(requests, 1)), "cpu-ms/cosign")
		mu.Unlock()
	}
}

// cpuTime returns the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatal(fmt.Errorf("%s=%q: want a positive integer", name, v))
	}
	return n
}
