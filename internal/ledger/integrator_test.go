package ledger_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trailaudit/trail/internal/ledger"
)

func TestIntegrator(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		signer := newSigner(t)
		dir := t.TempDir()
		// A small batch makes passes split logs and group them in chunks.
		i := startIntegrator(t, b.storage, signer, dir, ledger.Options{Batch: 700})
		sizes := map[string]int{"org_a": 1, "org_b": 300, "org_c": 2500}
		for round := range 2 {
			for org, n := range sizes {
				b.add(t, org, n)
			}
			waitIdle(t, i)
			for org, n := range sizes {
				want := int64(n * (round + 1))
				st, err := b.storage.LogState(ctx, org)
				if err != nil {
					t.Fatal(err)
				}
				if st.IntegratedSize != want || st.NextSeq != want {
					t.Fatalf("%s: state %+v, want integrated %d", org, st, want)
				}
				o := newOracle()
				o.add(t, readAll(t, b.storage, org, want)...)
				c := latest(t, b.storage, signer, org)
				if c.Origin != testPrefix+"/"+org || c.Size != want || c.Hash != o.root(want) {
					t.Fatalf("%s: checkpoint %s %d %s, want %s/%s %d %s", org, c.Origin, c.Size, c.Hash, testPrefix, org, want, o.root(want))
				}
				// Every proof against the oracle's roots.
				for _, seq := range []int64{0, want / 2, want - 1} {
					p, err := ledger.InclusionProof(ctx, b.storage, org, seq, want)
					if err != nil {
						t.Fatal(err)
					}
					if e1, e2 := o.checkInclusion(p, seq, want); e1 != nil || e2 != nil {
						t.Fatalf("%s: inclusion of %d in %d: %v / %v", org, seq, want, e1, e2)
					}
				}
				p, err := ledger.ConsistencyProof(ctx, b.storage, org, want/3+1, want)
				if err != nil {
					t.Fatal(err)
				}
				if e1, e2 := o.checkConsistency(p, want/3+1, want); e1 != nil || e2 != nil {
					t.Fatalf("%s: consistency %d→%d: %v / %v", org, want/3+1, want, e1, e2)
				}
			}
		}
		// The state file holds the newest checkpoint of every origin.
		raw, err := os.ReadFile(filepath.Join(dir, ledger.StateFile))
		if err != nil {
			t.Fatal(err)
		}
		for org := range sizes {
			c := latest(t, b.storage, signer, org)
			line := c.Origin + " " + strconv.FormatInt(c.Size, 10) + " " + c.Hash.String()
			if !strings.Contains(string(raw), line+"\n") {
				t.Errorf("state file lacks %q:\n%s", line, raw)
			}
		}
		if r := i.Refused(); len(r) != 0 {
			t.Errorf("Refused = %v", r)
		}
	})
}

func TestIntegratorRestartContinues(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		signer, dir := newSigner(t), t.TempDir()
		b.add(t, "org_r", 1000)
		first := startIntegrator(t, b.storage, signer, dir, ledger.Options{})
		waitIdle(t, first)
		first.Stop()
		old := latest(t, b.storage, signer, "org_r")

		b.add(t, "org_r", 777)
		second := startIntegrator(t, b.storage, signer, dir, ledger.Options{})
		waitIdle(t, second)
		now := latest(t, b.storage, signer, "org_r")
		if now.Size != 1777 {
			t.Fatalf("size %d, want 1777", now.Size)
		}
		o := newOracle()
		o.add(t, readAll(t, b.storage, "org_r", 1777)...)
		p, err := ledger.ConsistencyProof(context.Background(), b.storage, "org_r", old.Size, now.Size)
		if err != nil {
			t.Fatal(err)
		}
		if e1, e2 := o.checkConsistency(p, old.Size, now.Size); e1 != nil || e2 != nil || o.root(old.Size) != old.Hash {
			t.Fatalf("checkpoints across the restart are not consistent: %v / %v", e1, e2)
		}
		if r := second.Refused(); len(r) != 0 {
			t.Errorf("Refused = %v", r)
		}
	})
}

func TestIntegratorLifecycle(t *testing.T) {
	m := newMemStorage()
	signer := newSigner(t)
	i, err := ledger.NewIntegrator(m, signer, testPrefix, ledger.Options{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	i.Stop() // before Start: harmless
	i.Wake()
	i.Wake() // never blocks

	i, err = ledger.NewIntegrator(m, signer, testPrefix, ledger.Options{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := i.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	waitIdle(t, i) // nothing to do at all
	i.Stop()
	i.Stop()
	if err := i.WaitIdle(context.Background()); !errors.Is(err, ledger.ErrStopped) {
		t.Errorf("WaitIdle after Stop = %v, want ErrStopped", err)
	}
	select {
	case <-i.Idle():
	default:
		t.Error("Idle after Stop is not closed")
	}

	// Cancelling the context stops it too.
	ctx, cancel := context.WithCancel(context.Background())
	i, err = ledger.NewIntegrator(m, signer, testPrefix, ledger.Options{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	if err := i.WaitIdle(wctx); !errors.Is(err, ledger.ErrStopped) && err != nil {
		t.Errorf("WaitIdle after cancel = %v", err)
	}
	i.Stop()
}

func TestNewIntegratorValidates(t *testing.T) {
	signer := newSigner(t)
	for _, tc := range []struct {
		prefix string
		opts   ledger.Options
	}{
		{"", ledger.Options{DataDir: "x"}},
		{"has space", ledger.Options{DataDir: "x"}},
		{"trailing/", ledger.Options{DataDir: "x"}},
		{"ok.example", ledger.Options{}},
	} {
		if _, err := ledger.NewIntegrator(newMemStorage(), signer, tc.prefix, tc.opts, nil, nil); err == nil {
			t.Errorf("NewIntegrator(%q, %+v) succeeded", tc.prefix, tc.opts)
		}
	}
}

func TestIntegratorMetrics(t *testing.T) {
	m := newMemStorage()
	reg := prometheus.NewRegistry()
	i, err := ledger.NewIntegrator(m, newSigner(t), testPrefix, ledger.Options{DataDir: t.TempDir(), Interval: time.Millisecond}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer i.Stop()
	addRecords(m, "org_m1", 10)
	addRecords(m, "org_m2", 5)
	waitIdle(t, i)
	if got := metricValue(t, reg, "trail_ledger_leaves_integrated_total"); got != 15 {
		t.Errorf("leaves integrated = %v, want 15", got)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 8 {
		t.Errorf("registered %d metrics (%v), want 8", len(mfs), err)
	}
}

// metricValue returns the value of a registered counter or gauge.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// refusalMem is a memStorage that records refusals, as PostgreSQL does for
// its replicas (ledger.RefusalStorage).
type refusalMem struct {
	*memStorage
	mu      sync.Mutex
	refused map[string]string
}

func (r *refusalMem) SetLogRefused(_ context.Context, org, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason == "" {
		delete(r.refused, org)
	} else {
		r.refused[org] = reason
	}
	return nil
}

func (r *refusalMem) RefusedLogs(context.Context) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.refused), nil
}

// A database behind what this server signed is refused before the first
// event could be admitted, the refusal is recorded for the other replicas,
// and a stale one (a log whose check passes) is cleared; restoring the
// newest database clears it too.
func TestIntegratorAdmitAndRecordedRefusals(t *testing.T) {
	signer, dir := newSigner(t), t.TempDir()
	newest := newMemStorage()
	addRecords(newest, "org_a", 100)
	addRecords(newest, "org_b", 10)
	first := startIntegrator(t, newest, signer, dir, ledger.Options{})
	waitIdle(t, first)
	first.Stop()
	backup := newest.Clone()
	addRecords(newest, "org_a", 50)
	second := startIntegrator(t, newest, signer, dir, ledger.Options{})
	waitIdle(t, second)
	second.Stop()

	tests := []struct {
		name        string
		storage     *memStorage
		recorded    map[string]string // before the start
		wantRefused []string
	}{
		{"restored backup", backup, map[string]string{"org_b": "stale", "org_c": "another replica's"}, []string{"org_a"}},
		{"newest database again", newest, map[string]string{"org_a": "from the backup's days"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &refusalMem{memStorage: tt.storage, refused: maps.Clone(tt.recorded)}
			i := startIntegrator(t, rs, signer, dir, ledger.Options{})
			select {
			case <-i.CheckedC():
			case <-time.After(time.Minute):
				t.Fatal("the startup checks did not end")
			}
			got, _ := rs.RefusedLogs(context.Background())
			// A log this server never signed for keeps another replica's
			// refusal: it cannot vouch for it.
			if _, ok := tt.recorded["org_c"]; ok && got["org_c"] != tt.recorded["org_c"] {
				t.Errorf("another replica's refusal of org_c was not kept: %v", got)
			}
			delete(got, "org_c")
			if want := len(tt.wantRefused); len(got) != want {
				t.Errorf("recorded refusals %v, want %v", got, tt.wantRefused)
			}
			for _, org := range []string{"org_a", "org_b"} {
				refused := slices.Contains(tt.wantRefused, org)
				var re *ledger.RefusedError
				if err := i.Admit(org); (errors.As(err, &re) && re.Organization == org) != refused || (!refused && err != nil) {
					t.Errorf("Admit(%s) = %v, want refused: %v", org, err, refused)
				}
				if _, ok := got[org]; ok != refused {
					t.Errorf("%s recorded as refused: %v, want %v", org, ok, refused)
				}
			}
			i.Stop()
		})
	}
}

// TestIntegratorLogInterval checks that a log signed less than LogInterval
// ago waits while it has fewer than LogRecords records waiting, that
// reaching LogRecords makes it due, and that WaitIdle signs it at once.
func TestIntegratorLogInterval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		type signing struct {
			org  string
			size int64
		}
		signed := make(chan signing, 100)
		i := startIntegrator(t, b.storage, newSigner(t), t.TempDir(), ledger.Options{
			LogInterval: time.Hour, LogRecords: 5,
			Signed: func(org string, size int64, _ []byte) { signed <- signing{org, size} },
		})
		next := func(org string) int64 {
			t.Helper()
			deadline := time.After(time.Minute)
			for {
				select {
				case s := <-signed:
					if s.org == org {
						return s.size
					}
					t.Errorf("signed %s at %d, want only %s", s.org, s.size, org)
				case <-deadline:
					t.Fatalf("no checkpoint of %s signed within a minute", org)
				}
			}
		}
		for _, step := range []struct {
			name string
			add  map[string]int // records added, org_a's first
			want signing        // the next checkpoint signed
			idle bool           // WaitIdle before looking
		}{
			{name: "first checkpoint at once", add: map[string]int{"org_a": 3}, want: signing{"org_a", 3}},
			// org_b's pass sees org_a's two waiting records and leaves them.
			{name: "trickle waits", add: map[string]int{"org_a": 2, "org_b": 1}, want: signing{"org_b", 1}},
			{name: "enough records are due", add: map[string]int{"org_a": 3}, want: signing{"org_a", 8}},
			{name: "WaitIdle signs everything", add: map[string]int{"org_a": 1}, want: signing{"org_a", 9}, idle: true},
		} {
			for _, org := range []string{"org_a", "org_b"} {
				if n := step.add[org]; n > 0 {
					b.add(t, org, n)
				}
			}
			if step.idle {
				waitIdle(t, i)
			}
			if got := next(step.want.org); got != step.want.size {
				t.Fatalf("%s: signed %s at %d, want %d", step.name, step.want.org, got, step.want.size)
			}
		}
	})
}

// Flushed signs every record committed before it was asked for, even a
// trickle LogInterval would leave waiting, and returns while another
// writer keeps appending (other replicas do, on PostgreSQL): the logs never
// stop growing, so Idle would not return, but a stopping replica only
// needs its own acknowledged events signed.
func TestIntegratorFlushed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		signer := newSigner(t)
		i := startIntegrator(t, b.storage, signer, t.TempDir(), ledger.Options{LogInterval: time.Hour, LogRecords: 1000})
		b.add(t, "org_a", 3)
		waitIdle(t, i) // the first checkpoint, at 3
		b.add(t, "org_a", 2)
		b.add(t, "org_b", 1)

		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // another writer, appending until the flush is over
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
					b.add(t, "org_c", 1)
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := i.WaitFlushed(ctx)
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("WaitFlushed while another writer appends: %v", err)
		}
		for org, want := range map[string]int64{"org_a": 5, "org_b": 1} {
			if got := latest(t, b.storage, signer, org).Size; got < want {
				t.Errorf("%s: newest checkpoint at %d after the flush, want ≥ %d", org, got, want)
			}
		}
		i.Stop()
		if err := i.WaitFlushed(context.Background()); !errors.Is(err, ledger.ErrStopped) {
			t.Errorf("WaitFlushed after Stop: %v, want ErrStopped", err)
		}
	})
}
