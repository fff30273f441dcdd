package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/ledger"
)

// integratorRunner runs the ledger integrator for as long as this replica
// may (always with SQLite; while it holds the lease with PostgreSQL), one
// ledger.Integrator per term, and routes wake-ups and refusal reports to
// the current one.
type integratorRunner struct {
	st       ledger.Storage
	signer   *ledger.Signer
	dataDir  string
	prefix   string // configured origin prefix
	explicit bool   // prefix came from --log-origin
	logger   *slog.Logger
	reg      prometheus.Registerer

	current atomic.Pointer[ledger.Integrator]
}

// Wake wakes the current integrator, if this replica runs one.
func (r *integratorRunner) Wake() {
	if in := r.current.Load(); in != nil {
		in.Wake()
	}
}

// Refused reports the current integrator's refusals.
func (r *integratorRunner) Refused() map[string]string {
	if in := r.current.Load(); in != nil {
		return in.Refused()
	}
	return nil
}

// run is one term: it integrates until ctx ends.
func (r *integratorRunner) run(ctx context.Context) {
	prefix, err := r.origin(ctx)
	if err != nil {
		r.logger.Error("not integrating: couldn't settle the log origin", "err", err)
		<-ctx.Done()
		return
	}
	reg := &termRegisterer{under: r.reg}
	defer reg.unregisterAll()
	// A pass every 250 ms keeps the lag to a checkpoint well under the 1 s
	// promised while storing 2.5× fewer checkpoints than the 100 ms default
	// on a deployment with many quiet organizations (docs/SCALING.md).
	in, err := ledger.NewIntegrator(r.st, r.signer, prefix, ledger.Options{DataDir: r.dataDir, Interval: 250 * time.Millisecond}, r.logger, reg)
	if err != nil {
		r.logger.Error("not integrating", "err", err)
		<-ctx.Done()
		return
	}
	if err := in.Start(ctx); err != nil {
		r.logger.Error("not integrating: couldn't start the integrator", "err", err)
		<-ctx.Done()
		return
	}
	r.current.Store(in)
	<-ctx.Done()
	r.current.CompareAndSwap(in, nil)
	in.Stop()
}

// origin is the origin prefix to sign under: the one the database's
// checkpoints already carry, so that every replica and every restart keeps
// signing the same logs; the configured one only for a database with no
// checkpoint yet.
func (r *integratorRunner) origin(ctx context.Context) (string, error) {
	note, org, err := anyStoredCheckpoint(ctx, r.st)
	if err != nil {
		return "", err
	}
	if note == nil {
		return r.prefix, nil
	}
	ck, err := ledger.ParseCheckpoint(note, r.signer.Verifier())
	if err != nil {
		return "", fmt.Errorf("checkpoint of %s: %w", org, err)
	}
	stored, ok := strings.CutSuffix(ck.Origin, "/"+org)
	if !ok {
		return "", fmt.Errorf("checkpoint of %s has origin %q, which does not end in its organization", org, ck.Origin)
	}
	if stored != r.prefix && r.explicit {
		return "", fmt.Errorf("--log-origin %q differs from %q, the origin the database's checkpoints carry; verifiers treat a new origin as a different log", r.prefix, stored)
	}
	return stored, nil
}

// termRegisterer registers an integrator's metrics for one term and
// unregisters them when the term ends, so the next term can register its own.
type termRegisterer struct {
	under prometheus.Registerer
	mu    sync.Mutex
	cs    []prometheus.Collector
}

func (t *termRegisterer) Register(c prometheus.Collector) error {
	if t.under == nil {
		return nil
	}
	if err := t.under.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *termRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *termRegisterer) Unregister(c prometheus.Collector) bool {
	if t.under == nil {
		return false
	}
	return t.under.Unregister(c)
}

func (t *termRegisterer) unregisterAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.under.Unregister(c)
	}
	t.cs = nil
}
