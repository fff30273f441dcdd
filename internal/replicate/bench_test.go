package replicate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/replicate"
)

// BenchmarkCheckpointers measures whether the writer's own checkpoints
// must stop when Litestream replicates a file (docs/BACKUP.md): a writer
// commits batches for two seconds, as ingest does, while Litestream
// replicates to a directory and brings the replica up to date every 250
// ms, with and without a PASSIVE checkpoint every 100 ms on another
// connection (what sqlite.Store does unless LeaveCheckpoints is called).
// It reports rows committed a second, the largest WAL seen, and checks
// that a restore holds every row.
//
//	go test ./internal/replicate -run '^$' -bench Checkpointers -benchtime 1x
func BenchmarkCheckpointers(b *testing.B) {
	for _, own := range []bool{false, true} {
		name := "litestream-only"
		if own {
			name = "with-own-checkpoints"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				ctx := context.Background()
				dir := b.TempDir()
				path := filepath.Join(dir, "trail.db")
				db := openDB(b, path)
				target, err := replicate.ParseTarget("file://"+filepath.Join(dir, "replica"), "", os.Getenv)
				if err != nil {
					b.Fatal(err)
				}
				r, err := replicate.Start(ctx, target, replicate.Options{Databases: []string{path}, Interval: 250 * time.Millisecond}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				stop := make(chan struct{})
				done := make(chan struct{})
				var walMax atomic.Int64
				go func() {
					defer close(done)
					ck := openDB(b, path)
					t := time.NewTicker(100 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
						}
						if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > walMax.Load() {
							walMax.Store(fi.Size())
						}
						if own {
							ck.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
						}
					}
				}()
				start := time.Now()
				n := 0
				payload := strings.Repeat("x", 600)
				for time.Since(start) < 2*time.Second {
					tx, err := db.Begin()
					if err != nil {
						b.Fatal(err)
					}
					for range 200 {
						if _, err := tx.Exec(`INSERT INTO t (n, v) VALUES (?, ?)`, n, payload); err != nil {
							b.Fatal(err)
						}
						n++
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				close(stop)
				<-done
				if err := r.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "rows/s")
				b.ReportMetric(float64(walMax.Load())/(1<<20), "wal-max-MiB")
				out := filepath.Join(b.TempDir(), "restored")
				if _, err := replicate.Restore(ctx, target, out, []string{"trail.db"}, nil, replicate.RestoreOptions{}, nil); err != nil {
					b.Fatal(err)
				}
				if got := count(b, filepath.Join(out, "trail.db")); got != n {
					b.Errorf("restored %d rows of %d", got, n)
				}
			}
		})
	}
}
