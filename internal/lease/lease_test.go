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
	"github.com/trailaudit/trail/internal/store/postgres"
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

func startReplica(t *testing.T, dsn, holder string, active *atomic.Int32, maxActive *atomic.Int32) *replica {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{pool: pool, cancel: cancel, done: make(chan struct{})}
	opts := lease.Options{TTL: time.Second, Renew: 100 * time.Millisecond, Holder: holder}
	go func() {
		defer close(r.done)
		lease.Run(ctx, pool, "integrator", opts, nil, func(ctx context.Context) {
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

// migrated is a fresh database with Trail's schema, leases table included.
func migrated(t *testing.T) string {
	t.Helper()
	dsn := pgtest.New(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dsn
}

func TestOneHolderAndTakeover(t *testing.T) {
	dsn := migrated(t)
	// The first replica reaches the database through a proxy that can
	// freeze, as a stopped process or a partition would.
	px := newProxy(t, dsn)
	var active, maxActive atomic.Int32
	replicas := []*replica{
		startReplica(t, px.dsn, "r0", &active, &maxActive),
	}
	waitFor(t, "the first replica taking the lease", func() bool { return replicas[0].running.Load() })
	replicas = append(replicas,
		startReplica(t, dsn, "r1", &active, &maxActive),
		startReplica(t, dsn, "r2", &active, &maxActive))
	holder := func() *replica {
		for _, r := range replicas {
			if r.running.Load() {
				return r
			}
		}
		return nil
	}

	// The holder stalls: it stops its work by its deadline, and another
	// replica takes the lease once it expires, never both at once.
	px.freeze()
	took := waitFor(t, "another replica taking over from a stalled holder", func() bool {
		h := holder()
		return h != nil && h != replicas[0]
	})
	t.Logf("takeover from a stalled holder: %v", took)
	if replicas[0].running.Load() {
		t.Error("the stalled holder still runs the work")
	}
	px.thaw()

	// A clean stop hands over at once (the lease is released).
	h := holder()
	waitFor(t, "a holder", func() bool { h = holder(); return h != nil })
	h.stop()
	took = waitFor(t, "takeover after a clean stop", func() bool { n := holder(); return n != nil && n != h })
	t.Logf("takeover after a clean stop: %v", took)

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

// The fencing token grows with every change of holder, and the table
// names the holder.
func TestTokenAndHolder(t *testing.T) {
	dsn := migrated(t)
	var active, maxActive atomic.Int32
	a := startReplica(t, dsn, "a", &active, &maxActive)
	waitFor(t, "a taking the lease", func() bool { return a.running.Load() })
	row := func() (holder string, token int64) {
		if err := a.pool.QueryRow(context.Background(), `SELECT holder, token FROM leases WHERE name = 'integrator'`).Scan(&holder, &token); err != nil {
			t.Fatal(err)
		}
		return holder, token
	}
	h1, t1 := row()
	a.stop()
	b := startReplica(t, dsn, "b", &active, &maxActive)
	waitFor(t, "b taking the lease", func() bool { return b.running.Load() })
	h2, t2 := row()
	if h1 != "a" || h2 != "b" || t2 <= t1 {
		t.Fatalf("holders %q then %q, tokens %d then %d; want a then b with a growing token", h1, h2, t1, t2)
	}
}

// A holder that cannot renew (its database connection frozen) reports the
// lease in Health.Problems until it reaches the database again; a replica
// that finds the lease held elsewhere reports nothing.
func TestHealthReportsFailingRenewals(t *testing.T) {
	dsn := migrated(t)
	px := newProxy(t, dsn)
	pool, err := pgxpool.New(context.Background(), px.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	other, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holding atomic.Bool
	health, otherHealth := lease.NewHealth(), lease.NewHealth()
	opts := lease.Options{TTL: time.Second, Renew: 100 * time.Millisecond, Holder: "a", Health: health}
	done := make(chan struct{})
	go func() {
		defer close(done)
		lease.Run(ctx, pool, "integrator", opts, nil, func(ctx context.Context) {
			holding.Store(true)
			<-ctx.Done()
			holding.Store(false)
		})
	}()
	waitFor(t, "the lease taken", holding.Load)
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		lease.Run(ctx, other, "integrator", lease.Options{TTL: time.Second, Renew: 100 * time.Millisecond, Holder: "b", Health: otherHealth},
			nil, func(ctx context.Context) { <-ctx.Done() })
	}()
	if p := health.Problems(); len(p) != 0 {
		t.Fatalf("a healthy holder reports %v", p)
	}
	px.freeze()
	waitFor(t, "the frozen holder reporting the lease", func() bool { return health.Problems()["lease integrator"] != "" })
	if p := otherHealth.Problems(); len(p) != 0 {
		t.Errorf("the replica that reaches the database reports %v", p)
	}
	px.thaw()
	waitFor(t, "the holder healthy again", func() bool { return len(health.Problems()) == 0 })
	cancel()
	<-done
	<-otherDone
}

// TestLeasesAsTheStoreReadsThem: what a holder writes is what operators
// read through store.LeaseStore (the console's system page): the holder
// while it holds, no holder once it released the lease.
func TestLeasesAsTheStoreReadsThem(t *testing.T) {
	dsn := migrated(t)
	st, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var active, maxActive atomic.Int32
	r := startReplica(t, dsn, "replica-a:42", &active, &maxActive)
	waitFor(t, "the replica taking the lease", func() bool { return r.running.Load() })
	leases, err := st.Leases(context.Background())
	if err != nil || len(leases) != 1 || leases[0].Name != "integrator" || leases[0].Holder != "replica-a:42" || !leases[0].Held || leases[0].Token < 1 {
		t.Fatalf("Leases = %+v, %v; want integrator held by replica-a:42", leases, err)
	}
	r.stop()
	leases, err = st.Leases(context.Background())
	if err != nil || len(leases) != 1 || leases[0].Held {
		t.Fatalf("after release, Leases = %+v, %v; want the lease not held", leases, err)
	}
}
