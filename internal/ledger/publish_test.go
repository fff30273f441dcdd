package ledger_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// fakeReplica fails every Sync while down.
type fakeReplica struct {
	down  atomic.Bool
	syncs atomic.Int64
}

func (r *fakeReplica) Sync(context.Context) error {
	r.syncs.Add(1)
	if r.down.Load() {
		return errors.New("replica target unreachable")
	}
	return nil
}

// published collects what the gate hands on.
type published struct {
	mu       sync.Mutex
	records  [][]ledger.PublishedLog
	upTo     map[string]int64
	recorded map[string]int64
}

func (p *published) record(_ context.Context, logs []ledger.PublishedLog) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, logs)
	for _, l := range logs {
		p.recorded[l.OrganizationID] = l.Size
	}
	return nil
}

func (p *published) published(org string, size int64, _ []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recorded[org] < size {
		panic("published before recorded")
	}
	p.upTo[org] = size
}

func (p *published) size(org string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upTo[org]
}

// waitPublished polls until the gate's storage shows org's checkpoint of
// size.
func waitPublished(t *testing.T, s ledger.Storage, signer *ledger.Signer, org string, size int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		msg, err := s.LatestCheckpoint(context.Background(), org)
		if err == nil {
			c, err := ledger.ParseCheckpoint(msg, signer.Verifier())
			if err != nil {
				t.Fatal(err)
			}
			if c.Size == size {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint of size %d of %s not published after a minute (last: %v)", size, org, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishGate: a checkpoint is served only once the replica holds it;
// while the replica is down the log grows, the published checkpoint stays,
// and it catches up when the replica is back. Before the first round after
// a start nothing is served.
func TestPublishGate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		signer := newSigner(t)
		rep := &fakeReplica{}
		got := &published{upTo: map[string]int64{}, recorded: map[string]int64{}}
		reg := prometheus.NewRegistry()
		gate := ledger.NewPublishGate(b.storage, rep, ledger.GateOptions{Record: got.record, Published: got.published, Retry: 10 * time.Millisecond}, testLogger(t), reg)
		view := gate.Storage()
		if _, err := view.LatestCheckpoint(ctx, "org_a"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("before the first round: %v, want ErrUnavailable", err)
		}
		i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{Signed: gate.Signed})
		go gate.Run(ctx)

		b.add(t, "org_a", 10)
		waitIdle(t, i)
		waitPublished(t, view, signer, "org_a", 10)
		if got.size("org_a") != 10 {
			t.Errorf("witnesses got size %d, want 10", got.size("org_a"))
		}

		rep.down.Store(true)
		b.add(t, "org_a", 5)
		b.add(t, "org_b", 3)
		waitIdle(t, i)
		for before := rep.syncs.Load(); rep.syncs.Load() < before+3; {
			time.Sleep(5 * time.Millisecond)
		}
		waitPublished(t, view, signer, "org_a", 10)
		if _, err := view.Checkpoint(ctx, "org_a", 15); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Checkpoint(15) while held: %v, want ErrNotFound", err)
		}
		if _, err := view.LatestCheckpoint(ctx, "org_b"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("org_b's first checkpoint while held: %v, want ErrNotFound", err)
		}
		if st, err := view.LogState(ctx, "org_a"); err != nil || st.IntegratedSize != 10 || st.NextSeq != 15 {
			t.Errorf("LogState while held = %+v, %v; want integrated 10 of 15", st, err)
		}
		if got.size("org_a") != 10 {
			t.Errorf("witnesses got size %d while the replica was down", got.size("org_a"))
		}

		addedAt := time.Now() // every record of the logs was acknowledged before it
		rep.down.Store(false)
		waitPublished(t, view, signer, "org_a", 15)
		waitPublished(t, view, signer, "org_b", 3)
		got.mu.Lock()
		last := got.records[len(got.records)-1]
		got.mu.Unlock()
		if len(last) != 2 || last[0].OrganizationID != "org_a" || last[0].Size != 15 || last[0].Accepted != 15 || last[1].Size != 3 {
			t.Errorf("last record = %+v", last)
		}
		// The counts are exact up to AcceptedAt: taken after every
		// record above was acknowledged, they include them all.
		for _, l := range last {
			if l.AcceptedAt.Before(addedAt) {
				t.Errorf("%s counted at %v, before its last records were acknowledged (%v)", l.OrganizationID, l.AcceptedAt, addedAt)
			}
		}
		// Every delay observed is a real one: under the minute this test
		// may take, not an age since the zero time.
		var h *dto.Histogram
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "trail_checkpoint_publication_delay_seconds" {
				h = f.GetMetric()[0].GetHistogram()
			}
		}
		if h.GetSampleCount() == 0 || h.GetSampleSum() > float64(h.GetSampleCount())*60 {
			t.Errorf("publication delays: %d samples, sum %v s", h.GetSampleCount(), h.GetSampleSum())
		}
		i.Stop()

		// A new gate over the same storage holds what is stored until a
		// round shows the replica has it.
		rep.down.Store(true)
		gate2 := ledger.NewPublishGate(b.storage, rep, ledger.GateOptions{Retry: 10 * time.Millisecond}, testLogger(t), nil)
		go gate2.Run(ctx)
		for before := rep.syncs.Load(); rep.syncs.Load() < before+2; {
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := gate2.Storage().LatestCheckpoint(ctx, "org_a"); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("restarted gate with the replica down: %v, want ErrUnavailable", err)
		}
		rep.down.Store(false)
		waitPublished(t, gate2.Storage(), signer, "org_a", 15)
	})
}
