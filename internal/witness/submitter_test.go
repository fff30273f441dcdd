package witness

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
)

const testPrefix = "trail.test"

// testWitness is an in-process witness server for the prefix.
type testWitness struct {
	srv    *Server
	http   *httptest.Server
	config Config
}

func startWitness(t testing.TB, name string, logKey note.Verifier) *testWitness {
	t.Helper()
	signer := newTestSigner(t, name)
	srv, err := OpenServer(t.TempDir(), signer, []LogConfig{{Origin: testPrefix, Prefix: true, Verifier: logKey}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &testWitness{srv: srv, http: hs, config: Config{URL: hs.URL, Verifier: signer.Verifier()}}
}

// logServer is a log as trail serve runs it: integrator, submitter.
type logServer struct {
	st        *memStorage
	in        *ledger.Integrator
	sub       *Submitter
	reg       *prometheus.Registry
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	forkCalls map[string]string
}

func startLog(t *testing.T, st *memStorage, signer *ledger.Signer, dir string, witnesses []Config, quorum int) *logServer {
	t.Helper()
	ls := &logServer{st: st, reg: prometheus.NewRegistry(), done: make(chan struct{}), forkCalls: map[string]string{}}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	sub, err := NewSubmitter(context.Background(), dir, st, SubmitterOptions{Witnesses: witnesses, Quorum: quorum, Timeout: 5 * time.Second,
		MinInterval: 20 * time.Millisecond,
		Fork: func(org, reason string) {
			ls.mu.Lock()
			ls.forkCalls[org] = reason
			ls.mu.Unlock()
			ls.in.Refuse(org, reason)
		}}, logger, ls.reg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ledger.NewIntegrator(st, signer, testPrefix, ledger.Options{DataDir: dir, Interval: 10 * time.Millisecond, Signed: sub.Signed}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls.in, ls.sub = in, sub
	ctx, cancel := context.WithCancel(context.Background())
	ls.cancel = cancel
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { defer close(ls.done); sub.Run(ctx) }()
	t.Cleanup(ls.stop)
	return ls
}

func (ls *logServer) stop() {
	if ls.cancel == nil {
		return
	}
	ls.in.Stop()
	ls.cancel()
	<-ls.done
	ls.cancel = nil
}

func (ls *logServer) forked(org string) string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.forkCalls[org]
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newLogSigner(t testing.TB) *ledger.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cosigners returns the names of the witnesses whose cosignatures on org's
// newest checkpoint (as the API serves it) verify, and its size.
func cosigners(t *testing.T, ls *logServer, org string, ws ...*testWitness) (int64, []string) {
	t.Helper()
	msg, err := Cosigned(ls.st).LatestCheckpoint(context.Background(), org)
	if err != nil {
		return 0, nil
	}
	var vs []note.Verifier
	for _, w := range ws {
		vs = append(vs, w.config.Verifier)
	}
	body, _, _ := splitNote(msg)
	ck, err := ledger.ParseCheckpointBody(body)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		return ck.Size, nil
	}
	var names []string
	for _, s := range n.Sigs {
		names = append(names, s.Name)
	}
	return ck.Size, names
}

func TestSubmitterCosigns(t *testing.T) {
	signer := newLogSigner(t)
	w1 := startWitness(t, "w1.example", signer.Verifier())
	w2 := startWitness(t, "w2.example", signer.Verifier())
	st := newMemStorage()
	ls := startLog(t, st, signer, t.TempDir(), []Config{w1.config, w2.config}, 2)

	for round := range 5 {
		for _, org := range []string{"org_a", "org_b", "org_c"} {
			addRecords(st, org, "a", 3+round)
		}
		ls.in.Wake()
		for _, org := range []string{"org_a", "org_b", "org_c"} {
			want := int64(0)
			for r := range round + 1 {
				want += int64(3 + r)
			}
			waitFor(t, org+" cosigned by both at its newest size", func() bool {
				size, names := cosigners(t, ls, org, w1, w2)
				return size == want && len(names) == 2
			})
		}
	}
	if got := metricValue(t, ls.sub.m.forks.WithLabelValues("w1.example")); got != 0 {
		t.Errorf("forks: %v", got)
	}
	// /metrics has the checkpoint-to-cosigned lag: one observation per
	// cosignature stored.
	families, err := ls.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lagCount uint64
	for _, f := range families {
		if f.GetName() == "trail_witness_cosign_lag_seconds" {
			lagCount = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if lagCount < 2*3 {
		t.Errorf("trail_witness_cosign_lag_seconds has %d observations, want at least one per witness and organization", lagCount)
	}
	// Status says what each witness last cosigned (the integrity page).
	status, err := ls.sub.Status(context.Background(), "org_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 2 || status[0].Name != "w1.example" || status[1].Name != "w2.example" {
		t.Fatalf("status: %+v", status)
	}
	for _, s := range status {
		if s.Size != 25 || s.At.IsZero() || time.Since(s.At) > time.Hour || s.Key == "" {
			t.Errorf("status of %s: %+v, want size 25 cosigned just now", s.Name, s)
		}
	}
	// The served note still verifies with the log key alone, as before
	// witnesses: cosignatures are extra signature lines.
	msg, _ := Cosigned(st).LatestCheckpoint(context.Background(), "org_a")
	if _, err := ledger.ParseCheckpoint(msg, signer.Verifier()); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitterWitnessDown: a witness that is down delays nothing; the
// other cosigns, and the down one catches up with the newest checkpoint
// when it returns.
func TestSubmitterWitnessDown(t *testing.T) {
	signer := newLogSigner(t)
	w1 := startWitness(t, "w1.example", signer.Verifier())
	var down sync.Mutex
	isDown := true
	w2srv := newTestSigner(t, "w2.example")
	srv2, err := OpenServer(t.TempDir(), w2srv, []LogConfig{{Origin: testPrefix, Prefix: true, Verifier: signer.Verifier()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	hs2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down.Lock()
		d := isDown
		down.Unlock()
		if d {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		srv2.ServeHTTP(w, r)
	}))
	defer hs2.Close()
	w2 := &testWitness{srv: srv2, http: hs2, config: Config{URL: hs2.URL, Verifier: w2srv.Verifier()}}

	st := newMemStorage()
	ls := startLog(t, st, signer, t.TempDir(), []Config{w1.config, w2.config}, 2)
	addRecords(st, "org_a", "a", 10)
	ls.in.Wake()
	waitFor(t, "w1's cosignature", func() bool {
		size, names := cosigners(t, ls, "org_a", w1, w2)
		return size == 10 && len(names) == 1 && names[0] == "w1.example"
	})
	waitFor(t, "w2 reported down", func() bool { return metricValue(t, ls.sub.m.up.WithLabelValues("w2.example")) == 0 })
	if err := ls.in.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	down.Lock()
	isDown = false
	down.Unlock()
	waitFor(t, "w2's cosignature once it is back", func() bool {
		_, names := cosigners(t, ls, "org_a", w1, w2)
		return len(names) == 2
	})
}

// TestSubmitterFork: the log's state is restored from an older copy and
// then grows differently; the witnesses refuse and the log reports a fork.
func TestSubmitterFork(t *testing.T) {
	tests := []struct {
		name  string
		after int // records added after the restore
	}{
		{"restored log stays smaller than what the witness saw", 5},   // 409 naming a size the log does not have
		{"restored log grows past what the witness saw", 30},          // 422: the proof from the witness's size fails
		{"restored log reaches exactly the size the witness saw", 10}, // 422: same size, another root
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := newLogSigner(t)
			w1 := startWitness(t, "w1.example", signer.Verifier())
			w2 := startWitness(t, "w2.example", signer.Verifier())
			witnesses := []Config{w1.config, w2.config}
			st := newMemStorage()
			dir := t.TempDir()
			ls := startLog(t, st, signer, dir, witnesses, 2)
			addRecords(st, "org_a", "a", 10)
			addRecords(st, "org_b", "b", 10)
			ls.in.Wake()
			waitFor(t, "cosigned at 10", func() bool {
				s1, n1 := cosigners(t, ls, "org_a", w1, w2)
				s2, n2 := cosigners(t, ls, "org_b", w1, w2)
				return s1 == 10 && len(n1) == 2 && s2 == 10 && len(n2) == 2
			})
			// The backup, taken while stopped.
			ls.stop()
			backup := st.Clone()
			backupDir := t.TempDir()
			copyDir(t, dir, backupDir)
			ls = startLog(t, st, signer, dir, witnesses, 2)
			addRecords(st, "org_a", "a", 10)
			ls.in.Wake()
			waitFor(t, "cosigned at 20", func() bool {
				s, n := cosigners(t, ls, "org_a", w1, w2)
				return s == 20 && len(n) == 2
			})
			ls.stop()

			// The restore: database and data directory as they were.
			restored := backup
			ls = startLog(t, restored, signer, backupDir, witnesses, 2)
			addRecords(restored, "org_a", "forked", tt.after)
			addRecords(restored, "org_b", "b", 5) // an organization that did not fork
			ls.in.Wake()
			waitFor(t, "the fork reported", func() bool { return ls.forked("org_a") != "" })
			if _, ok := ls.in.Refused()["org_a"]; !ok {
				t.Errorf("org_a is not refused after the fork: %v", ls.in.Refused())
			}
			waitFor(t, "both witnesses report the fork", func() bool {
				return metricValue(t, ls.sub.m.forks.WithLabelValues("w1.example")) >= 1 &&
					metricValue(t, ls.sub.m.forks.WithLabelValues("w2.example")) >= 1
			})
			if _, names := cosigners(t, ls, "org_a", w1, w2); len(names) != 0 {
				t.Errorf("the forked checkpoint got cosignatures from %v", names)
			}
			// Other organizations carry on.
			waitFor(t, "org_b cosigned at 15", func() bool {
				s, n := cosigners(t, ls, "org_b", w1, w2)
				return s == 15 && len(n) == 2
			})
			if _, ok := ls.in.Refused()["org_b"]; ok {
				t.Errorf("org_b refused: %v", ls.in.Refused())
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestWorkerTake checks the order and pace of requests to one witness on a
// fixed clock: oldest log first, at most Concurrency in flight, one request
// per log at a time and per MinInterval, and only the newest checkpoint of
// a log waiting is sent (the others are coalesced into it).
func TestWorkerTake(t *testing.T) {
	w := &worker{s: &Submitter{opts: SubmitterOptions{MinInterval: time.Second, Concurrency: 2}},
		pending: map[string]job{}, inflight: map[string]bool{}, sent: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	t0 := time.Now()
	type step struct {
		name     string
		add      []job    // signed before the step
		done     []string // orgs whose request ended before the step
		at       time.Duration
		want     []string // org:size taken, in order
		wantNext time.Duration
	}
	j := func(org string, size int64) job { return job{org: org, size: size} }
	steps := []step{
		{name: "oldest first, Concurrency at most", add: []job{j("a", 1), j("b", 1), j("c", 1)},
			want: []string{"a:1", "b:1"}},
		{name: "nothing while full", add: []job{j("a", 2), j("a", 3)}, at: 10 * time.Millisecond},
		{name: "c next; a waits for MinInterval", done: []string{"a", "b"}, at: 100 * time.Millisecond,
			want: []string{"c:1"}, wantNext: time.Second},
		{name: "a's newest only, once MinInterval passed", done: []string{"c"}, add: []job{j("b", 2)}, at: time.Second,
			want: []string{"a:3", "b:2"}},
		{name: "an older checkpoint never replaces a newer", add: []job{j("d", 5), j("d", 4)}, done: []string{"a", "b"}, at: 1100 * time.Millisecond,
			want: []string{"d:5"}},
	}
	for _, s := range steps {
		for _, org := range s.done {
			delete(w.inflight, org)
		}
		for _, j := range s.add {
			w.add(j)
		}
		jobs, next := w.take(t0.Add(s.at))
		var got []string
		for _, j := range jobs {
			got = append(got, fmt.Sprintf("%s:%d", j.org, j.size))
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: took %v, want %v", s.name, got, s.want)
		}
		var wantNext time.Time
		if s.wantNext > 0 {
			wantNext = t0.Add(s.wantNext)
		}
		if !next.Equal(wantNext) {
			t.Errorf("%s: next %v, want %v", s.name, next.Sub(t0), s.wantNext)
		}
	}
}

// TestSubmitterCheckStored: a database restored from an older copy is
// found forked by the startup check, before any new checkpoint is signed;
// a log the witnesses agree with is not.
func TestSubmitterCheckStored(t *testing.T) {
	signer := newLogSigner(t)
	w1 := startWitness(t, "w1.example", signer.Verifier())
	w2 := startWitness(t, "w2.example", signer.Verifier())
	witnesses := []Config{w1.config, w2.config}
	st := newMemStorage()
	dir := t.TempDir()
	ls := startLog(t, st, signer, dir, witnesses, 2)
	addRecords(st, "org_a", "a", 10)
	addRecords(st, "org_b", "b", 10)
	ls.in.Wake()
	waitFor(t, "cosigned at 10", func() bool {
		s1, n1 := cosigners(t, ls, "org_a", w1, w2)
		s2, n2 := cosigners(t, ls, "org_b", w1, w2)
		return s1 == 10 && len(n1) == 2 && s2 == 10 && len(n2) == 2
	})
	ls.stop()
	backup := st.Clone()
	ls = startLog(t, st, signer, dir, witnesses, 2)
	addRecords(st, "org_a", "a", 10)
	ls.in.Wake()
	waitFor(t, "org_a cosigned at 20", func() bool {
		s, n := cosigners(t, ls, "org_a", w1, w2)
		return s == 20 && len(n) == 2
	})
	ls.stop()

	ls = startLog(t, backup, signer, t.TempDir(), witnesses, 2)
	if err := ls.sub.CheckStored(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ls.forked("org_a") == "" {
		t.Error("the startup check did not find org_a's restored log forked")
	}
	if why := ls.forked("org_b"); why != "" {
		t.Errorf("org_b, which the witnesses agree with, reported forked: %s", why)
	}
	// A check still answering when Run has returned (shutdown) drops
	// what it would have stored.
	ls.stop()
	if err := ls.sub.CheckStored(context.Background()); err != nil {
		t.Fatal(err)
	}
}
