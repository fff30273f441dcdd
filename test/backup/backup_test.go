// Package backup_test runs trail serve --replicate, trail backup and trail
// restore as real processes: the disk is lost while events flow, the data
// directory comes back from the replica, and nothing a published checkpoint
// covers is missing (docs/BACKUP.md).
package backup_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/trailtest"
)

// fakeS3 is an S3-compatible server in the test process that can be taken
// down (it answers 503, as an unreachable region or a full outage would
// look to a client that retries).
type fakeS3 struct {
	url  string
	down atomic.Bool
}

func newFakeS3(t testing.TB) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("trail-backups"); err != nil {
		t.Fatal(err)
	}
	f := &fakeS3{}
	fake := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// replica is where a test replicates to.
type replica struct {
	url      string
	endpoint string
	s3       *fakeS3
}

func (r replica) args() []string {
	a := []string{"--replicate", r.url}
	if r.endpoint != "" {
		a = append(a, "--replicate-endpoint", r.endpoint)
	}
	return a
}

// env is the S3 credentials (gofakes3 checks none). AWS_CA_BUNDLE is
// cleared: Litestream's S3 client refuses it (docs/BACKUP.md).
func env() []string {
	return []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_CA_BUNDLE="}
}

func targets(t *testing.T) []replica {
	s3 := newFakeS3(t)
	return []replica{
		{url: "file://" + filepath.Join(t.TempDir(), "replica")},
		{url: "s3://trail-backups/prod/trail", endpoint: s3.url, s3: s3},
	}
}

func call(t *testing.T, srv *trailtest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

func createOrg(t *testing.T, srv *trailtest.Server) string {
	t.Helper()
	code, data := call(t, srv, "POST", "/organizations", `{"name":"Acme"}`)
	if code != http.StatusCreated {
		t.Fatalf("create organization: %d %s", code, data)
	}
	var org struct{ ID string }
	if err := json.Unmarshal(data, &org); err != nil {
		t.Fatal(err)
	}
	return org.ID
}

// send posts n events to org in one batch; it reports whether they were
// acknowledged.
func send(t *testing.T, srv *trailtest.Server, org string, n int) bool {
	t.Helper()
	var evs []string
	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"organization_id":%q,"event":{"action":"document.updated","occurred_at":%q,"actor":{"type":"user","id":"user_%d"},"targets":[{"type":"document","id":"doc_%d"}],"context":{"location":"203.0.113.7"}}}`, org, at, i%7, i))
	}
	code, _ := call(t, srv, "POST", "/v1/events/batch", `{"events":[`+strings.Join(evs, ",")+`]}`)
	return code == http.StatusOK || code == http.StatusCreated
}

// checkpoint returns org's published checkpoint note and its size (0
// when none is published).
func checkpoint(t *testing.T, srv *trailtest.Server, org string) ([]byte, int64) {
	t.Helper()
	code, data := call(t, srv, "GET", "/v1/organizations/"+org+"/log/checkpoint", "")
	if code != http.StatusOK {
		return nil, 0
	}
	body, _, _ := bytes.Cut(data, []byte("\n\n"))
	ck, err := ledger.ParseCheckpointBody(append(body, '\n'))
	if err != nil {
		t.Fatalf("checkpoint of %s: %v\n%s", org, err, data)
	}
	return data, ck.Size
}

// waitSize polls until org's published checkpoint has at least size.
func waitSize(t *testing.T, srv *trailtest.Server, org string, size int64) ([]byte, int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		note, got := checkpoint(t, srv, org)
		if got >= size {
			return note, got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d of %s published after 2 minutes (last %d)\n%s", size, org, got, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricsText reads the server's /metrics from the operator listener.
func metricsText(tb testing.TB, srv *trailtest.Server) string {
	tb.Helper()
	res, err := http.Get(srv.MetricsURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d %v", res.StatusCode, err)
	}
	return string(data)
}

// metric returns the value of an unlabelled metric on the operator
// listener.
func metric(t *testing.T, srv *trailtest.Server, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(metricsText(t, srv), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s on /metrics", name)
	return 0
}

// trail runs the trail binary and returns its exit code and output.
func trail(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(trailtest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func restoreArgs(r replica, data string, extra ...string) []string {
	a := []string{"restore", "--from", r.url, "--data", data}
	if r.endpoint != "" {
		a = append(a, "--endpoint", r.endpoint)
	}
	return append(a, extra...)
}

var lostLine = regexp.MustCompile(`LOST: ([0-9,]+) events`)

// TestRestoreAfterDiskLoss: events flow into a server replicating to a
// directory and to S3; the process is killed and its data directory
// deleted. trail restore brings it back from the replica, the restarted
// server holds every event a published checkpoint covered, its log
// verifies against the checkpoints published before the loss, and it goes
// on taking and replicating events.
func TestRestoreAfterDiskLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve and trail restore processes")
	}
	for _, r := range targets(t) {
		name := "file"
		if r.s3 != nil {
			name = "s3"
		}
		t.Run(name, func(t *testing.T) {
			srv := trailtest.Start(t, trailtest.Options{Args: r.args(), Env: env()})
			org := createOrg(t, srv)
			vkey := strings.TrimSpace(mustTrail(t, "log", "key", "--data", srv.Data))
			// Creating the organization logged an event in its log.
			_, base := waitSize(t, srv, org, 1)

			// Events flow while the test saves published checkpoints.
			var acked atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if send(t, srv, org, 100) {
						acked.Add(100)
					}
				}
			}()
			dir := t.TempDir()
			var saved []string
			var last int64
			for i := range 3 {
				note, size := waitSize(t, srv, org, last+1)
				last = size
				p := filepath.Join(dir, fmt.Sprintf("checkpoint-%d", i))
				if err := os.WriteFile(p, note, 0o600); err != nil {
					t.Fatal(err)
				}
				saved = append(saved, p)
			}
			// The disk is lost with events in flight.
			srv.Kill()
			close(stop)
			wg.Wait()
			if err := os.RemoveAll(srv.Data); err != nil {
				t.Fatal(err)
			}

			data := filepath.Join(t.TempDir(), "restored")
			code, stdout, stderr := trail(t, restoreArgs(r, data)...)
			if code != 0 || !strings.Contains(stdout, "the restored log extends every one") {
				t.Fatalf("trail restore: exit %d\n%s%s", code, stdout, stderr)
			}
			var lost int64
			if m := lostLine.FindStringSubmatch(stdout); m != nil {
				lost, _ = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
			}

			srv2 := trailtest.Start(t, trailtest.Options{Data: data, Args: r.args(), Env: env()})
			_, size := waitSize(t, srv2, org, last)
			// Published, so never lost; what is lost is counted, and
			// never more than the client saw acknowledged beyond.
			if lost > base+acked.Load()-size {
				t.Errorf("restore reports %d events lost; the client saw %d acknowledged and %d came back", lost, acked.Load(), size)
			}
			t.Logf("%d events acknowledged, %d restored, %d reported lost (published up to %d)", acked.Load(), size, lost, last)
			for _, p := range saved {
				bundle := filepath.Join(dir, "since.bundle")
				if code, out, errOut := trail(t, "log", "pull", "--server", srv2.URL, "--api-key", srv2.Key, "--org", org, "--since", p, "--out", bundle); code != 0 {
					t.Fatalf("trail log pull --since %s: exit %d\n%s%s", p, code, out, errOut)
				}
				if code, out, errOut := trail(t, "verify", bundle, "--key", vkey, "--since", p); code != 0 || !strings.Contains(out, "none missing") {
					t.Errorf("trail verify --since %s: exit %d\n%s%s", p, code, out, errOut)
				}
			}
			// The restored server takes events and publishes them.
			if !send(t, srv2, org, 10) {
				t.Fatal("the restored server refused events")
			}
			waitSize(t, srv2, org, size+10)
		})
	}
}

func mustTrail(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := trail(t, args...)
	if code != 0 {
		t.Fatalf("trail %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// TestReplicaTargetDown: with the S3 target down, ingest goes on and
// publication waits; when it is back, checkpoints catch up, and a restore
// holds every event.
func TestReplicaTargetDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve and trail restore processes, and waits out an outage")
	}
	s3 := newFakeS3(t)
	r := replica{url: "s3://trail-backups/outage", endpoint: s3.url, s3: s3}
	srv := trailtest.Start(t, trailtest.Options{Args: r.args(), Env: env()})
	org := createOrg(t, srv)
	// Creating the organization logged an event in its log.
	_, base := waitSize(t, srv, org, 1)
	if !send(t, srv, org, 100) {
		t.Fatal("events refused")
	}
	waitSize(t, srv, org, base+100)

	s3.down.Store(true)
	total := base + 100
	// An outage of half a minute (the design holds for longer ones: the
	// WAL is copied into local LTX files meanwhile, and checkpointed).
	outage := time.Now().Add(30 * time.Second)
	for time.Now().Before(outage) {
		if !send(t, srv, org, 50) {
			t.Fatalf("ingest stopped while the replica target was down\n%s", srv.Logs())
		}
		total += 50
		time.Sleep(500 * time.Millisecond)
	}
	// The integrator signed them, the gate holds them.
	deadline := time.Now().Add(time.Minute)
	for metric(t, srv, "trail_checkpoints_held") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint held while the target was down\n%s", srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, size := checkpoint(t, srv, org); size != base+100 {
		t.Errorf("published a checkpoint of size %d while the replica target was down, want %d", size, base+100)
	}
	if up := metric(t, srv, "trail_replication_up"); up != 0 {
		t.Errorf("trail_replication_up = %v with the target down", up)
	}

	s3.down.Store(false)
	waitSize(t, srv, org, total)
	srv.Kill()
	if err := os.RemoveAll(srv.Data); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "restored")
	code, stdout, stderr := trail(t, restoreArgs(r, data)...)
	if code != 0 || strings.Contains(stdout, "LOST") {
		t.Fatalf("trail restore: exit %d\n%s%s", code, stdout, stderr)
	}
	srv2 := trailtest.Start(t, trailtest.Options{Data: data, Args: r.args(), Env: env()})
	if _, size := waitSize(t, srv2, org, total); size != total {
		t.Errorf("restored log has %d events, want %d", size, total)
	}
}

// TestBackupWhileServing: trail backup snapshots a running server; the
// backup restores while it is not behind the published checkpoints, and
// is refused, saying what it lacks, once the log has grown past it.
func TestBackupWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve, trail backup and trail restore processes")
	}
	r := replica{url: "file://" + filepath.Join(t.TempDir(), "replica")}
	srv := trailtest.Start(t, trailtest.Options{Args: r.args(), Env: env()})
	org := createOrg(t, srv)
	for range 5 {
		if !send(t, srv, org, 100) {
			t.Fatal("events refused")
		}
	}
	waitSize(t, srv, org, 500)
	// A backup taken while events flow is consistent: a server starts
	// on it (its startup checks compare every tree with its checkpoint).
	flowing := filepath.Join(t.TempDir(), "flowing.backup")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			send(t, srv, org, 100)
		}
	}()
	mustTrail(t, "backup", "--data", srv.Data, flowing)
	<-done
	copied := filepath.Join(t.TempDir(), "copied")
	mustTrail(t, "restore", "--from-backup", flowing, "--data", copied)
	other := trailtest.Start(t, trailtest.Options{Data: copied})
	if _, size := waitSize(t, other, org, 500); size < 500 {
		t.Errorf("a server on the backup publishes size %d", size)
	}
	other.Stop(t)

	// A backup of everything published restores, checked.
	waitSize(t, srv, org, 1000)
	file := filepath.Join(t.TempDir(), "trail.backup")
	mustTrail(t, "backup", "--data", srv.Data, file)
	fresh := filepath.Join(t.TempDir(), "a")
	if out := mustTrail(t, "restore", "--from-backup", file, "--check", r.url, "--data", fresh); !strings.Contains(out, "extends every one") {
		t.Errorf("restore of a fresh backup: %s", out)
	}

	// The log grows and is published past the backup.
	if !send(t, srv, org, 100) {
		t.Fatal("events refused")
	}
	waitSize(t, srv, org, 1100)
	stale := filepath.Join(t.TempDir(), "b")
	code, stdout, stderr := trail(t, "restore", "--from-backup", file, "--check", r.url, "--data", stale)
	if code == 0 || !strings.Contains(stderr, "would fork history") || !regexp.MustCompile(org+`: checkpoint of size [0-9,]+ published; the restored log's newest covers [0-9,]+ \(seq [0-9]+–[0-9]+ missing\)`).MatchString(stderr) {
		t.Errorf("restore of a backup behind a published checkpoint: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(stale, "trail.db")); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s behind: %v", filepath.Join(stale, "trail.db"), err)
	}
}
