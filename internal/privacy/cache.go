package privacy

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// PolicyStore is where policies are kept (store.PrivacyStore's reader).
type PolicyStore interface {
	// PrivacyPolicies returns every organization's policy document.
	PrivacyPolicies(ctx context.Context) (map[string][]byte, error)
}

// Policies holds every organization's compiled policy in memory, so that
// ingest finds an organization's policy with one atomic load and one map
// lookup, allocating nothing (and with no policy at all, doing nothing
// else). It is loaded whole from the store: by Reload, after a policy is
// set through this process, and every RefreshInterval by Run, which is how
// a policy set through another replica reaches this one.
type Policies struct {
	st  PolicyStore
	log *slog.Logger
	cur atomic.Pointer[map[string]*Policy]
}

// RefreshInterval is how often Run reloads the policies.
const RefreshInterval = 5 * time.Second

// NewPolicies returns an empty cache over st; call Reload before serving.
func NewPolicies(st PolicyStore, log *slog.Logger) *Policies {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Policies{st: st, log: log}
	empty := map[string]*Policy{}
	p.cur.Store(&empty)
	return p
}

// For returns org's policy, or nil when it has none (or p is nil).
func (p *Policies) For(org string) *Policy {
	if p == nil {
		return nil
	}
	m := *p.cur.Load()
	if len(m) == 0 {
		return nil
	}
	return m[org]
}

// Reload reads every policy from the store. A stored document that no
// longer compiles (never written by this version) is an error: ingest must
// not run without the policy an organization set.
func (p *Policies) Reload(ctx context.Context) error {
	docs, err := p.st.PrivacyPolicies(ctx)
	if err != nil {
		return fmt.Errorf("couldn't load privacy policies: %w", err)
	}
	m := make(map[string]*Policy, len(docs))
	for org, doc := range docs {
		pol, err := Parse(doc)
		if err != nil {
			return fmt.Errorf("stored privacy policy of %s: %w", org, err)
		}
		m[org] = pol
	}
	p.cur.Store(&m)
	return nil
}

// Run reloads the policies every RefreshInterval until ctx ends, keeping
// the last good set when a reload fails.
func (p *Policies) Run(ctx context.Context) {
	t := time.NewTicker(RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Reload(ctx); err != nil && ctx.Err() == nil {
				p.log.Error("couldn't refresh privacy policies; keeping the ones loaded", "err", err)
			}
		}
	}
}
