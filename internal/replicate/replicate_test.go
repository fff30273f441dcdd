package replicate_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite"

	"github.com/trailaudit/trail/internal/replicate"
)

// fakeS3 is an in-process S3-compatible server that can be taken down.
type fakeS3 struct {
	URL  string
	down atomic.Bool
}

func newFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	f := &fakeS3{}
	fake := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func insert(t *testing.T, db *sql.DB, from, to int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		if _, err := tx.Exec(`INSERT INTO t (n, v) VALUES (?, ?)`, i, "value"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplicateAndRestore: what Sync returned for is in a restore, on
// both kinds of target, with the files and the record of publication; a
// target that is down makes Sync fail until it is back.
func TestReplicateAndRestore(t *testing.T) {
	// Litestream's S3 client cannot combine AWS_CA_BUNDLE with its own
	// HTTP client (docs/BACKUP.md).
	t.Setenv("AWS_CA_BUNDLE", "")
	s3 := newFakeS3(t, "backups")
	getenv := func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}[k]
	}
	for _, tc := range []struct {
		name, url, endpoint string
		fake                *fakeS3
	}{
		{"file", "file://" + t.TempDir() + "/replica", "", nil},
		{"s3", "s3://backups/trail/one", s3.URL, s3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			target, err := replicate.ParseTarget(tc.url, tc.endpoint, getenv)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "trail.db")
			db := openDB(t, dbPath)
			insert(t, db, 0, 100)
			keyPath := filepath.Join(dir, "signing.key")
			if err := os.WriteFile(keyPath, []byte("PRIVATE+KEY+test\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := replicate.Start(ctx, target, replicate.Options{Databases: []string{dbPath},
				Files: []string{keyPath, filepath.Join(dir, "absent")}, Interval: time.Hour}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			insert(t, db, 100, 200)
			if err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.fake != nil {
				tc.fake.down.Store(true)
				insert(t, db, 200, 300)
				short, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := r.Sync(short); err == nil {
					t.Error("Sync succeeded with the target down")
				}
				cancel()
				tc.fake.down.Store(false)
				if err := r.Sync(ctx); err != nil {
					t.Fatalf("Sync after the target returned: %v", err)
				}
			}
			rec := replicate.Record{WrittenAt: time.Now(), Logs: []replicate.RecordLog{{OrganizationID: "org_a", Size: 5, Checkpoint: "note\n", Acknowledged: 7}}}
			if err := r.WritePublished(ctx, rec); err != nil {
				t.Fatal(err)
			}
			want := count(t, dbPath)
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}

			out := filepath.Join(t.TempDir(), "data")
			var progressed atomic.Int64
			res, err := replicate.Restore(ctx, target, out, []string{"trail.db", "witness-cosignatures.db"}, []string{"signing.key", "master.key"},
				replicate.RestoreOptions{Progress: func(done, total int64) { progressed.Store(done) }}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := count(t, filepath.Join(out, "trail.db")); got != want {
				t.Errorf("restored %d rows, want %d", got, want)
			}
			if len(res) != 2 || !res[0].Found || res[1].Found || progressed.Load() == 0 {
				t.Errorf("Restore = %+v, progress %d", res, progressed.Load())
			}
			if key, err := os.ReadFile(filepath.Join(out, "signing.key")); err != nil || string(key) != "PRIVATE+KEY+test\n" {
				t.Errorf("signing.key = %q, %v", key, err)
			}
			if _, err := os.Stat(filepath.Join(out, "master.key")); !os.IsNotExist(err) {
				t.Errorf("master.key restored though never replicated: %v", err)
			}
			got, ok, err := replicate.ReadPublished(ctx, target)
			if err != nil || !ok || len(got.Logs) != 1 || got.Logs[0] != rec.Logs[0] {
				t.Errorf("ReadPublished = %+v, %v, %v", got, ok, err)
			}
			if _, err := replicate.Restore(ctx, target, out, []string{"trail.db"}, nil, replicate.RestoreOptions{}, nil); err == nil {
				t.Error("Restore into a data directory that holds trail.db succeeded")
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		in, endpoint string
		want         string // Target.String, "" for an error
	}{
		{"file:///var/backups/trail", "", "file:///var/backups/trail"},
		{"s3://bucket/a/b/", "", "s3://bucket/a/b"},
		{"s3://bucket/p?endpoint=http://127.0.0.1:9000", "", "s3://bucket/p at http://127.0.0.1:9000"},
		{"s3://bucket/p", "https://minio.example:9000", "s3://bucket/p at https://minio.example:9000"},
		{"s3://bucket/p", "minio:9000", ""},
		{"file://relative/path", "", ""},
		{"file:relative", "", ""},
		{"s3:///nobucket", "", ""},
		{"gs://bucket/p", "", ""},
		{"/just/a/path", "", ""},
	} {
		got, err := replicate.ParseTarget(tc.in, tc.endpoint, env)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseTarget(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", tc.in, got.String(), err, tc.want)
		}
	}
}

// TestSyncSharesRounds: calls of Sync that arrive together share rounds,
// and each still returns only once what was committed before it is in the
// replica.
func TestSyncSharesRounds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		callers int
	}{
		{"one", 1},
		{"many", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			target, db, r, reg := startFileReplicator(t, replicate.Options{Interval: time.Hour})
			errs := make(chan error, tc.callers)
			for i := range tc.callers {
				insert(t, db, i*10, i*10+10)
				go func() { errs <- r.Sync(ctx) }()
			}
			for range tc.callers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "data")
			if _, err := replicate.Restore(ctx, target, out, []string{"trail.db"}, nil, replicate.RestoreOptions{}, nil); err != nil {
				t.Fatal(err)
			}
			if got, want := count(t, filepath.Join(out, "trail.db")), tc.callers*10; got != want {
				t.Errorf("restored %d rows after every Sync returned, want %d", got, want)
			}
			if rounds := metricSum(t, reg, "trail_replication_rounds_total"); rounds < 1 || rounds > float64(tc.callers) {
				t.Errorf("%v rounds for %d calls of Sync", rounds, tc.callers)
			}
		})
	}
}

// TestCheckpointMetrics: Litestream's checkpoints of the replicated
// database are counted on the registry given to Start, and none of a
// database this replicator does not replicate; whether they run between
// rounds or inside them, the replica holds every row committed before
// the last Sync.
func TestCheckpointMetrics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pages   int  // Options.CheckpointPages
		inRound bool // Options.CheckpointInRound
		want    bool
	}{
		{"every round", 1, false, true},
		{"every round, inside it", 1, true, true},
		{"default threshold", 0, false, false}, // a few rows stay under DefaultCheckpointPages
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			target, db, r, reg := startFileReplicator(t, replicate.Options{Interval: time.Hour,
				CheckpointPages: tc.pages, CheckpointInRound: tc.inRound, RoundGap: time.Millisecond})
			for i := range 3 {
				insert(t, db, i*10, i*10+10)
				if err := r.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// A checkpoint a round leaves to do comes before the
			// next round: after the second, the first's was taken.
			n := metricSum(t, reg, "trail_replication_checkpoints_total")
			if got := n > 0; got != tc.want {
				t.Errorf("trail_replication_checkpoints_total = %v after three rounds, want some: %v", n, tc.want)
			}
			out := t.TempDir()
			if _, err := replicate.Restore(ctx, target, out, []string{"trail.db"}, nil, replicate.RestoreOptions{}, nil); err != nil {
				t.Fatal(err)
			}
			if got := count(t, filepath.Join(out, "trail.db")); got != 30 {
				t.Errorf("restored %d rows after three rounds, want 30", got)
			}
		})
	}
}

// startFileReplicator opens a database in a temporary directory and starts
// replicating it, with opts, to a directory target; it is closed with the
// test.
func startFileReplicator(t *testing.T, opts replicate.Options) (replicate.Target, *sql.DB, *replicate.Replicator, *prometheus.Registry) {
	t.Helper()
	ctx := context.Background()
	target, err := replicate.ParseTarget("file://"+t.TempDir()+"/replica", "", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "trail.db")
	db := openDB(t, dbPath)
	reg := prometheus.NewRegistry()
	opts.Databases = []string{dbPath}
	r, err := replicate.Start(ctx, target, opts, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	return target, db, r, reg
}

// metricSum sums a counter over its labels (0 when absent).
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
