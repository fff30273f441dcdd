package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/trailaudit/trail/internal/api"
	"github.com/trailaudit/trail/internal/diskguard"
	"github.com/trailaudit/trail/internal/lease"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// readiness gathers what keeps this replica from doing its work, for
// /readyz (api.Config.Unready): its database not answering a cheap query
// within pingTimeout, its disk guard holding ingest back (SQLite), and a
// lease it could not take or renew. The result is kept for cacheFor, so
// that load balancers polling every replica often cost the database one
// query a second at most.
type readiness struct {
	ping   func(ctx context.Context) error
	guard  *diskguard.Guard // nil: no guard (PostgreSQL, or disabled)
	leases *lease.Health

	pingTimeout, cacheFor time.Duration

	mu       sync.Mutex
	at       time.Time
	problems map[string]string
}

func newReadiness(ping func(ctx context.Context) error, guard *diskguard.Guard, leases *lease.Health) *readiness {
	return &readiness{ping: ping, guard: guard, leases: leases, pingTimeout: time.Second, cacheFor: time.Second}
}

// Unready implements api.Config.Unready.
func (r *readiness) Unready(ctx context.Context) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < r.cacheFor {
		return r.problems
	}
	problems := map[string]string{}
	if r.ping != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.pingTimeout)
		err := r.ping(pctx)
		cancel()
		if err != nil {
			problems["database"] = fmt.Sprintf("the database did not answer a query (timeout %s): %v", r.pingTimeout, err)
		}
	}
	if r.guard != nil {
		if err := r.guard.Check(); err != nil {
			problems["disk"] = err.Error()
		}
	}
	for name, why := range r.leases.Problems() {
		problems[name] = why
	}
	r.problems, r.at = problems, time.Now()
	return problems
}

// drain is the first step of a graceful shutdown: /readyz answers 503 for
// delay while the listener still accepts and serves every request, so that
// load balancers stop sending new ones before the listener closes (clients
// then never see a refused connection), as Loki's -shutdown-delay does.
func drain(handler *api.Server, delay time.Duration, logger *slog.Logger) {
	handler.Drain()
	if delay <= 0 {
		return
	}
	logger.Info("readiness off; still serving during the shutdown delay", "delay", delay.String())
	time.Sleep(delay)
}

// pinger is what readiness asks of the database; both stores have it.
type pinger interface {
	Ping(ctx context.Context) error
}

var (
	_ pinger = (*sqlite.Store)(nil)
	_ pinger = (*postgres.Store)(nil)
)

// pingOf is st's Ping (nil, and no database check, for a store without
// one).
func pingOf(st any) func(ctx context.Context) error {
	if p, ok := st.(pinger); ok {
		return p.Ping
	}
	return nil
}
