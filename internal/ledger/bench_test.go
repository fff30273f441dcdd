package ledger_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/ledger"
)

// Benchmarks:
//
//	go test ./internal/ledger -run '^$' -bench 'Integrate|Verify|SHA256File' -benchtime 3x
//	go test ./internal/ledger -run '^$' -bench InclusionProof -benchtime 20000x
//	go test ./internal/ledger -run '^$' -bench IntegrationLag -benchtime 1x
//
// TRAIL_BENCH_LEAVES sets the log size (default 1,000,000).

func benchLeaves(b *testing.B) int {
	if v := os.Getenv("TRAIL_BENCH_LEAVES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("TRAIL_BENCH_LEAVES=%q", v)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkIntegrate measures integration on SQLite: records are appended
// first (not timed), then the integrator runs until it has covered them all
// with checkpoints. Each iteration starts from an unintegrated database.
func BenchmarkIntegrate(b *testing.B) {
	total := benchLeaves(b)
	for _, orgs := range []int{1, 1000} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "trail.db")
			st := openSQLite(b, path)
			for o := range orgs {
				appendEvents(b, st, fmt.Sprintf("org_%04d", o), total/orgs)
			}
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			signer := newSigner(b)
			var elapsed time.Duration
			for k := 0; b.Loop(); k++ {
				for _, q := range []string{`DELETE FROM ledger_tiles`, `DELETE FROM ledger_checkpoints`, `UPDATE organizations SET integrated_size = 0, unintegrated = next_seq > 0`} {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				i, err := ledger.NewIntegrator(st, signer, testPrefix, ledger.Options{DataDir: filepath.Join(dir, strconv.Itoa(k))}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := i.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := i.WaitIdle(context.Background()); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				i.Stop()
			}
			b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds(), "leaves/s")
		})
	}
}

// BenchmarkIntegrationLag appends at a steady rate on SQLite for a few
// seconds, waking the integrator after each commit as the ingest committer
// does, and reports the lag from each commit (acknowledgement) to the first
// stored checkpoint covering it. TRAIL_BENCH_RATE sets events/s (default
// 50,000).
func BenchmarkIntegrationLag(b *testing.B) {
	rate := 50_000
	if v := os.Getenv("TRAIL_BENCH_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	const tick = 10 * time.Millisecond
	perTick := max(1, rate*int(tick)/int(time.Second))
	dir := b.TempDir()
	path := filepath.Join(dir, "trail.db")
	st := openSQLite(b, path)
	const org = "org_lag"
	appendEvents(b, st, org, 1)
	i := startIntegrator(b, st, newSigner(b), dir, ledger.Options{Interval: 100 * time.Millisecond})
	type ack struct {
		at   int64 // unix ms
		size int64
	}
	var acks []ack
	var size int64 = 1
	for b.Loop() {
		end := time.Now().Add(5 * time.Second)
		next := time.Now()
		for time.Now().Before(end) {
			appendEvents(b, st, org, perTick)
			size += int64(perTick)
			acks = append(acks, ack{time.Now().UnixMilli(), size})
			i.Wake()
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}
	waitIdle(b, i)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var lags []time.Duration
	for _, a := range acks {
		var at int64
		if err := db.QueryRow(`SELECT min(created_at) FROM ledger_checkpoints WHERE organization_id = ? AND size >= ?`, org, a.size).Scan(&at); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, time.Duration(max(0, at-a.at))*time.Millisecond)
	}
	slices.Sort(lags)
	b.ReportMetric(float64(len(acks)*perTick)/5/float64(b.N), "events/s")
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "p50-lag-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "p99-lag-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "max-lag-ms")
}

var (
	bundleOnce sync.Once
	bundlePath string
	bundleKey  string
	bundleErr  error
)

// benchBundle writes, once per process, a bundle of a log of benchLeaves
// records of about 480 bytes each.
func benchBundle(b *testing.B) (string, string) {
	n := benchLeaves(b)
	bundleOnce.Do(func() {
		m := newMemStorage()
		const org = "org_01JTSA0000000000000BENCH"
		m.Mu.Lock()
		l := m.Log(org)
		for s := range int64(n) {
			l.Records = append(l.Records, benchRecord(org, s))
		}
		m.Mu.Unlock()
		signer := newSigner(b)
		i, err := ledger.NewIntegrator(m, signer, testPrefix, ledger.Options{DataDir: b.TempDir()}, nil, nil)
		if err != nil {
			bundleErr = err
			return
		}
		if err := i.Start(context.Background()); err != nil {
			bundleErr = err
			return
		}
		err = i.WaitIdle(context.Background())
		i.Stop()
		if err != nil {
			bundleErr = err
			return
		}
		f, err := os.CreateTemp("", "trail-bench-*.bundle")
		if err != nil {
			bundleErr = err
			return
		}
		defer f.Close()
		if _, err := ledger.WriteBundle(context.Background(), f, m, org, ledger.BundleOptions{}); err != nil {
			bundleErr = err
			return
		}
		bundlePath, bundleKey = f.Name(), signer.VerifierKey()
	})
	if bundleErr != nil {
		b.Fatal(bundleErr)
	}
	return bundlePath, bundleKey
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bundlePath != "" {
		os.Remove(bundlePath)
	}
	os.Exit(code)
}

// benchRecord is a record shaped like a typical event (about 480 bytes).
func benchRecord(org string, seq int64) []byte {
	return fmt.Appendf(nil, `{"id":"evt_01JTSA%020d","organization_id":%q,"seq":%d,"received_at":"2026-11-25T18:43:09.709Z",`+
		`"action":"user.signed_in","occurred_at":"2026-11-25T18:43:09.512Z","actor":{"id":"user_01JTSA%014d","type":"user","name":"Ada Lovelace",`+
		`"metadata":{"role":"admin"}},"targets":[{"id":"team_01JTSA%014d","type":"team","name":"Engineering"}],`+
		`"context":{"location":"203.0.113.7","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"},`+
		`"metadata":{"request_id":"req_%016x","session":"s_%08d"}}`,
		seq, org, seq, seq%1000, seq%97, seq*2654435761, seq%100000)
}

// BenchmarkVerify verifies a bundle file of benchLeaves records; compare with
// BenchmarkSHA256File, which only hashes the same file.
func BenchmarkVerify(b *testing.B) {
	path, key := benchBundle(b)
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	var records int64
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := ledger.Verify(f, key, ledger.VerifyOptions{})
		f.Close()
		if err != nil {
			b.Fatalf("%v\n%s", err, rep.String())
		}
		records += rep.Records
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSHA256File is the baseline for BenchmarkVerify: reading the same
// file through the same buffer size and hashing it once.
func BenchmarkSHA256File(b *testing.B) {
	path, _ := benchBundle(b)
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	n := int64(benchLeaves(b))
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20)); err != nil {
			b.Fatal(err)
		}
		f.Close()
		h.Sum(nil)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkInclusionProof serves inclusion proofs for random records of a
// log of benchLeaves records on SQLite, against its newest checkpoint.
func BenchmarkInclusionProof(b *testing.B) {
	n := int64(benchLeaves(b))
	st := openSQLite(b, filepath.Join(b.TempDir(), "trail.db"))
	const org = "org_proofs"
	appendEvents(b, st, org, int(n))
	i := startIntegrator(b, st, newSigner(b), b.TempDir(), ledger.Options{Interval: 100 * time.Millisecond})
	waitIdle(b, i)
	i.Stop()
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := ledger.InclusionProof(ctx, st, org, rng.Int64N(n), n); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
