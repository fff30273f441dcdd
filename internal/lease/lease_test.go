package lease_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// replica is one process's view: its own pool, its own Run.
type replica struct {
	pool    *pgxpool.Pool
	cancel  context.CancelFunc
	done    chan struct{}
	running atomic.Bool
	terms   atomic.Int32
}

func startReplica(t *testing.T, dsn string, active *atomic.Int32, maxActive *atomic.Int32) *replica {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{pool: pool, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		lease.Run(ctx, pool, "integrator", lease.Options{Retry: 50 * time.Millisecond, Check: 50 * time.Millisecond}, nil, func(ctx context.Context) {
			n := active.Add(1)
			for {
				m := maxActive.Load()
				if n <= m || maxActive.CompareAndSwap(m, n) {
					break
				}
			}
			r.running.Store(true)
			r.terms.Add(1)
			<-ctx.Done()
			r.running.Store(false)
			active.Add(-1)
		})
	}()
	t.Cleanup(func() { r.stop(); pool.Close() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > time.Minute {
			t.Fatalf("%s did not happen within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestOneHolderAndTakeover(t *testing.T) {
	dsn := pgtest.New(t)
	var active, maxActive atomic.Int32
	replicas := []*replica{
		startReplica(t, dsn, &active, &maxActive),
		startReplica(t, dsn, &active, &maxActive),
		startReplica(t, dsn, &active, &maxActive),
	}
	holder := func() *replica {
		for _, r := range replicas {
			if r.running.Load() {
				return r
			}
		}
		return nil
	}
	waitFor(t, "a replica taking the lease", func() bool { return holder() != nil })

	// The holder's database session dies (as when its process is killed
	// or its connection drops): another replica takes over.
	first := holder()
	admin, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "another replica taking over", func() bool {
		h := holder()
		return h != nil && h != first || first.terms.Load() > 1
	})
	t.Logf("takeover after the holder's session died: %v", took)

	// A clean stop hands over too.
	h := holder()
	waitFor(t, "a holder", func() bool { h = holder(); return h != nil })
	h.stop()
	waitFor(t, "takeover after a clean stop", func() bool { n := holder(); return n != nil && n != h })

	if m := maxActive.Load(); m > 1 {
		t.Fatalf("%d replicas held the lease at once", m)
	}
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()
	if n := active.Load(); n != 0 {
		t.Fatalf("%d holders still running after every replica stopped", n)
	}
}

func TestKeysDiffer(t *testing.T) {
	if lease.Key("integrator") == lease.Key("indexer") {
		t.Fatal("two lease names share a lock key")
	}
}
