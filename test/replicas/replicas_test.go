// Package replicas_test runs several `trail serve` replicas on one real
// PostgreSQL server, as a scaled-out deployment does, under concurrent load,
// kills one of them with SIGKILL and restarts it, crashes and restarts
// PostgreSQL itself, and then checks what must hold: every acknowledged event
// stored exactly once, every organization's seqs contiguous, every checkpoint
// signed by the shared key and consistent with the ones before it, and `trail
// verify` passing on every organization's log.
package replicas_test

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type cluster struct {
	t        *testing.T
	dsn      string
	keyFile  string
	master   string // the deployment's master key, shared like the signing key
	verifier note.Verifier
	vkey     string
	client   *http.Client

	mu       sync.Mutex
	replicas []*trailtest.Server
	data     []string
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	skey, vkey, err := note.GenerateKey(crand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	master, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	masterFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(masterFile, []byte(master.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dsn: pgtest.New(t), keyFile: keyFile, master: masterFile, verifier: v, vkey: vkey,
		client: &http.Client{Timeout: 20 * time.Second}}
	c.replicas = make([]*trailtest.Server, n)
	c.data = make([]string, n)
	// Started together, as an orchestrator would: migrations and the
	// bootstrap key must cope.
	var wg sync.WaitGroup
	for i := range n {
		c.data[i] = t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := c.start(c.data[i])
			c.mu.Lock()
			c.replicas[i] = srv
			c.mu.Unlock()
		}()
	}
	wg.Wait()
	return c
}

func (c *cluster) start(data string) *trailtest.Server {
	return trailtest.Start(c.t, trailtest.Options{Data: data, Args: []string{
		"--database", c.dsn, "--signing-key-file", c.keyFile, "--master-key-file", c.master, "--log-origin", "trail.test/log", "--log-level", "info",
	}})
}

func (c *cluster) replica(i int) *trailtest.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i%len(c.replicas)]
}

type answer struct {
	code       int
	body       []byte
	retryAfter string
	took       time.Duration
}

func (c *cluster) do(r *trailtest.Server, method, path, body string, headers ...string) answer {
	req, err := http.NewRequest(method, r.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.Key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	res, err := c.client.Do(req)
	if err != nil {
		return answer{body: []byte(err.Error()), took: time.Since(start)}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return answer{code: res.StatusCode, body: data, retryAfter: res.Header.Get("Retry-After"), took: time.Since(start)}
}

func (c *cluster) must(r *trailtest.Server, method, path, body string) []byte {
	c.t.Helper()
	a := c.do(r, method, path, body)
	if a.code < 200 || a.code > 299 {
		c.t.Fatalf("%s %s: %d %s", method, path, a.code, a.body)
	}
	return a.body
}

// eventJSON is event n of org, which occurred an hour before the real
// clock the replicas read.
func eventJSON(org string, n int) string {
	at := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.000Z")
	return fmt.Sprintf(`{"organization_id":%q,"event":{"action":"doc.edited","occurred_at":%q,"actor":{"type":"user","id":"user_%d"},"targets":[{"type":"doc","id":"doc_%d"}],"context":{"location":"203.0.113.7"},"metadata":{"n":%d}}}`, org, at, n%5, n, n)
}

// record is what the checks need of a stored record.
type record struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	Action   string `json:"action"`
	Metadata struct {
		N int `json:"n"`
	} `json:"metadata"`
}

// api is a client of replica r with the shared admin key.
func (c *cluster) api(r *trailtest.Server) *client.Client {
	c.t.Helper()
	cl, err := client.New(r.URL, r.Key, client.WithHTTPClient(c.client))
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// newOrg creates an organization through replica r.
func (c *cluster) newOrg(r *trailtest.Server, name string) string {
	c.t.Helper()
	o, err := c.api(r).CreateOrganization(context.Background(), name, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return o.ID
}

func (c *cluster) records(r *trailtest.Server, org string) []record {
	c.t.Helper()
	var out []record
	err := c.api(r).LogRecords(context.Background(), org, 0, 0, func(line []byte) error {
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("record line %q: %w", line, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// checkpoint is org's newest checkpoint as replica r serves it, checked
// against the shared key; false when r has none to give.
func (c *cluster) checkpoint(r *trailtest.Server, org string) (ledger.Checkpoint, []byte, bool) {
	ck, err := c.api(r).GetCheckpoint(context.Background(), org, 0, c.vkey)
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return ledger.Checkpoint{}, nil, false
	case err != nil:
		c.t.Errorf("a checkpoint does not verify with the shared key: %v", err)
		return ledger.Checkpoint{}, nil, false
	}
	return ledger.Checkpoint{Origin: ck.Origin, Size: ck.Size, Hash: ck.Hash}, ck.Note, true
}

func TestReplicasUnderLoadAndFailures(t *testing.T) {
	c := newCluster(t, 3)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i := range 3 {
			for _, line := range strings.Split(c.replica(i).Logs(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) {
					t.Logf("replica %d: %s", i, line)
				}
			}
		}
	})
	var orgs []string
	for i := range 3 {
		orgs = append(orgs, c.newOrg(c.replica(i), fmt.Sprintf("Tenant %d", i)))
	}

	// The same idempotent request through two replicas at once is stored
	// once.
	idem := strings.Replace(eventJSON(orgs[0], 0), "doc.edited", "idem.once", 1)
	var iw sync.WaitGroup
	for i := range 2 {
		iw.Add(1)
		go func() {
			defer iw.Done()
			if a := c.do(c.replica(i), "POST", "/audit_logs/events", idem, "Idempotency-Key", "same-key-two-replicas"); a.code != 201 {
				t.Errorf("idempotent event through replica %d: %d %s", i, a.code, a.body)
			}
		}()
	}
	iw.Wait()

	// Every checkpoint any replica serves during the run, per organization.
	var ckMu sync.Mutex
	seen := map[string]map[int64]ledger.Checkpoint{}
	for _, o := range orgs {
		seen[o] = map[int64]ledger.Checkpoint{}
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for i := 0; ; i++ {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			org := orgs[i%len(orgs)]
			if ck, _, ok := c.checkpoint(c.replica(i), org); ok {
				ckMu.Lock()
				if prev, dup := seen[org][ck.Size]; dup && prev.Hash != ck.Hash {
					t.Errorf("%s: two checkpoints of size %d with different roots", org, ck.Size)
				}
				seen[org][ck.Size] = ck
				ckMu.Unlock()
			}
		}
	}()

	// Load: clients spread events for the same organizations over every
	// replica until told to stop. n is unique per event; acked records
	// which were acknowledged (201), attempted which were sent at all.
	var acked, attempted sync.Map
	var sent, ok503, retry503, took503 atomic.Int64
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for w := range 8 {
		load.Add(1)
		go func() {
			defer load.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				n := w*1_000_000 + i
				org := orgs[rng.IntN(len(orgs))]
				r := c.replica(w + i)
				attempted.Store(n, true)
				sent.Add(1)
				a := c.do(r, "POST", "/audit_logs/events", eventJSON(org, n))
				switch {
				case a.code == 201:
					acked.Store(n, org)
				case a.code == 503:
					ok503.Add(1)
					if a.retryAfter != "" {
						retry503.Add(1)
					}
					took503.Add(int64(a.took))
					time.Sleep(20 * time.Millisecond)
				case a.code == 0:
					time.Sleep(20 * time.Millisecond) // a killed replica: connection refused
				default:
					t.Errorf("event %d: %d %s", n, a.code, a.body)
					return
				}
			}
		}()
	}

	time.Sleep(1500 * time.Millisecond)

	// SIGKILL the replica holding the integrator lease mid-load, and
	// restart it.
	leader := -1
	for deadline := time.Now().Add(time.Minute); leader < 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i := range 3 {
			if strings.Contains(c.replica(i).Logs(), "lease taken") {
				leader = i
			}
		}
	}
	if leader < 0 {
		t.Fatal("no replica reports holding the integrator lease within a minute")
	}
	c.replica(leader).Kill()
	time.Sleep(700 * time.Millisecond)
	restarted := c.start(c.data[leader])
	c.mu.Lock()
	c.replicas[leader] = restarted
	c.mu.Unlock()
	time.Sleep(1500 * time.Millisecond)

	// Crash PostgreSQL under load: requests fail fast with 503 and
	// Retry-After while it is down, and the service recovers by itself.
	before503 := ok503.Load()
	pgtest.Restart(t, 2*time.Second)
	if ok503.Load() == before503 {
		t.Errorf("no request got 503 while PostgreSQL was down")
	}
	recovered := time.Now()
	for {
		a := c.do(c.replica(0), "POST", "/audit_logs/events", eventJSON(orgs[0], 999_999_999))
		if a.code == 201 {
			acked.Store(999_999_999, orgs[0])
			attempted.Store(999_999_999, true)
			break
		}
		if time.Since(recovered) > 30*time.Second {
			t.Fatalf("ingest did not recover within 30s of PostgreSQL's restart: %d %s", a.code, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ingest recovered %v after PostgreSQL came back", time.Since(recovered).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	close(stopLoad)
	load.Wait()
	t.Logf("sent %d events, %d answered 503 (%d with Retry-After), in %v on average", sent.Load(), ok503.Load(), retry503.Load(),
		time.Duration(took503.Load()/max(ok503.Load(), 1)).Round(time.Millisecond))
	if ok503.Load() != retry503.Load() {
		t.Errorf("%d of %d 503 answers lacked Retry-After", ok503.Load()-retry503.Load(), ok503.Load())
	}

	// Every acknowledged event exactly once, nothing unsent, seqs contiguous.
	total := 0
	for _, org := range orgs {
		recs := c.records(c.replica(1), org)
		count := map[int]int{}
		for i, rec := range recs {
			if rec.Seq != int64(i) {
				t.Fatalf("%s: line %d holds seq %d: the log is not contiguous", org, i, rec.Seq)
			}
			if rec.Action == "doc.edited" {
				count[rec.Metadata.N]++
				if _, ok := attempted.Load(rec.Metadata.N); !ok {
					t.Errorf("%s: stored event n=%d was never sent", org, rec.Metadata.N)
				}
			}
		}
		if org == orgs[0] {
			once := 0
			for _, rec := range recs {
				if rec.Action == "idem.once" {
					once++
				}
			}
			if once != 1 {
				t.Errorf("the idempotent event sent through two replicas is stored %d times, want 1", once)
			}
		}
		for n, k := range count {
			if k > 1 {
				t.Errorf("%s: event n=%d stored %d times", org, n, k)
			}
		}
		acked.Range(func(k, v any) bool {
			if v.(string) == org && count[k.(int)] != 1 {
				t.Errorf("%s: acknowledged event n=%d stored %d times", org, k.(int), count[k.(int)])
			}
			return true
		})
		total += len(recs)

		// The log is fully covered by a checkpoint within seconds.
		deadline := time.Now().Add(15 * time.Second)
		for {
			if ck, _, ok := c.checkpoint(c.replica(2), org); ok && ck.Size == int64(len(recs)) {
				ckMu.Lock()
				seen[org][ck.Size] = ck
				ckMu.Unlock()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no checkpoint of size %d within 15s", org, len(recs))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	close(stopWatch)
	<-watchDone
	t.Logf("%d events in %d logs", total, len(orgs))

	// Every checkpoint seen is consistent with the ones before it.
	for _, org := range orgs {
		var sizes []int64
		for s := range seen[org] {
			sizes = append(sizes, s)
		}
		slices.Sort(sizes)
		for i := 1; i < len(sizes); i++ {
			a, b := seen[org][sizes[i-1]], seen[org][sizes[i]]
			p, err := c.api(c.replica(i)).GetConsistencyProof(context.Background(), org, a.Size, b.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p.Proof, b.Size, b.Hash, a.Size, a.Hash); err != nil {
				t.Errorf("%s: checkpoint %d is not consistent with checkpoint %d: %v", org, b.Size, a.Size, err)
			}
		}
		t.Logf("%s: %d checkpoints seen, each consistent with the one before", org, len(sizes))
	}

	// trail verify passes on every organization's log.
	bin := trailtest.Binary(t)
	dir := t.TempDir()
	for _, org := range orgs {
		out := filepath.Join(dir, org+".bundle")
		r := c.replica(0)
		if b, err := exec.Command(bin, "log", "pull", "--server", r.URL, "--api-key", r.Key, "--org", org, "--out", out).CombinedOutput(); err != nil {
			t.Fatalf("trail log pull: %v\n%s", err, b)
		}
		b, err := exec.Command(bin, "verify", out, "--key", c.vkey).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "none altered, none missing") {
			t.Errorf("trail verify %s: %v\n%s", org, err, b)
		}
	}
}
