// Package lifecycle_test runs trail serve as a real process, on SQLite and
// on PostgreSQL, through an organization's end of life and the verifiable
// archive (docs/ORGANIZATIONS.md, docs/ARCHIVE.md): a deleted
// organization's earlier bundles still verify, a deletion is refused while
// a stream runs and goes through when forced, a deletion interrupted by a
// crash resumes, and records past retention are archived to S3 before they
// are deleted, then verify from the archive.
package lifecycle_test

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is where a test server keeps its database.
type backend struct {
	name string
	args func(t *testing.T) []string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(*testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string {
			return []string{"--database", pgtest.New(t), "--log-origin", "trail.test/lifecycle"}
		}},
	}
}

func call(t *testing.T, srv *trailtest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

func mustCall(t *testing.T, srv *trailtest.Server, method, path, body string, want int) []byte {
	t.Helper()
	code, data := call(t, srv, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d\n%s", method, path, code, data, want, srv.Logs())
	}
	return data
}

func createOrg(t *testing.T, srv *trailtest.Server, name string) string {
	t.Helper()
	var org struct{ ID string }
	if err := json.Unmarshal(mustCall(t, srv, "POST", "/organizations", fmt.Sprintf(`{"name":%q}`, name), http.StatusCreated), &org); err != nil {
		t.Fatal(err)
	}
	return org.ID
}

// send stores n events of org.
func send(t *testing.T, srv *trailtest.Server, org string, n int) {
	t.Helper()
	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"organization_id":%q,"event":{"action":"document.updated","occurred_at":%q,"actor":{"type":"user","id":"user_%d","name":"Ada Lovelace"},"targets":[{"type":"document","id":"doc_%d"}],"context":{"location":"203.0.113.7"}}}`, org, at, i%7, i))
	}
	code, data := call(t, srv, "POST", "/v1/events/batch", `{"events":[`+strings.Join(evs, ",")+`]}`)
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("send: %d %s", code, data)
	}
}

// logSize is org's log size by its newest checkpoint (0 when none).
func logSize(t *testing.T, srv *trailtest.Server, org string) int64 {
	t.Helper()
	code, data := call(t, srv, "GET", "/v1/organizations/"+org+"/log/checkpoint", "")
	if code != http.StatusOK {
		return 0
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(lines[1], 10, 64)
	return n
}

// waitFor polls cond until it holds (a generous deadline, never a speed).
func waitFor(t *testing.T, srv *trailtest.Server, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 2 minutes\n%s", what, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trail runs the trail binary and returns its exit code and output.
func trail(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(trailtest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

func mustTrail(t *testing.T, env []string, args ...string) string {
	t.Helper()
	code, out := trail(t, env, args...)
	if code != 0 {
		t.Fatalf("trail %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// pull saves org's bundle as the server has it now.
func pull(t *testing.T, srv *trailtest.Server, org, file string) {
	t.Helper()
	mustTrail(t, nil, "log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org, "--out", file)
}

type deletion struct {
	State          string  `json:"state"`
	Step           string  `json:"step"`
	Forced         bool    `json:"forced"`
	CheckpointSize int64   `json:"checkpoint_size"`
	FinalBundle    *string `json:"final_bundle"`
}

func waitDeleted(t *testing.T, srv *trailtest.Server, org string) deletion {
	t.Helper()
	var d deletion
	waitFor(t, srv, "deletion of "+org+" completed", func() bool {
		code, data := call(t, srv, "GET", "/v1/organizations/"+org+"/deletion", "")
		return code == http.StatusOK && json.Unmarshal(data, &d) == nil && d.State == "completed"
	})
	return d
}

// recordsLeft is how many records of org the log still serves below size.
func recordsLeft(t *testing.T, srv *trailtest.Server, org string, size int64) int {
	t.Helper()
	code, data := call(t, srv, "GET", fmt.Sprintf("/v1/organizations/%s/log/records?from=0&to=%d", org, size), "")
	if code != http.StatusOK {
		t.Fatalf("records of %s: %d %s", org, code, data)
	}
	return strings.Count(string(data), `"action"`)
}

// TestDeletedOrganizationStillVerifies: a deletion is refused while a
// stream runs, goes through when forced, deletes the records and the
// credentials, and a bundle pulled before it still verifies against the
// deployment's key, as does the log the deletion kept.
func TestDeletedOrganizationStillVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(receiver.Close)
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			srv := trailtest.Start(t, trailtest.Options{Args: append(b.args(t), "--streams-allow-private")})
			org, other := createOrg(t, srv, "Leaving"), createOrg(t, srv, "Staying")
			send(t, srv, org, 50)
			send(t, srv, other, 5)
			waitFor(t, srv, "checkpoint of 51", func() bool { return logSize(t, srv, org) >= 51 })
			dir := t.TempDir()
			old := filepath.Join(dir, "before.bundle")
			pull(t, srv, org, old)
			oldSize := bundleSize(t, old)
			key := strings.TrimSpace(mustTrail(t, nil, "log", "key", "--server", srv.URL))
			var stream struct{ ID string }
			json.Unmarshal(mustCall(t, srv, "POST", "/v1/organizations/"+org+"/log_streams",
				`{"type":"webhook","name":"SIEM","config":{"url":"`+receiver.URL+`/hook","secret":"0123456789abcdef0123456789abcdef"}}`, http.StatusCreated), &stream)

			// Refused while the stream runs, naming it.
			if code, data := call(t, srv, "DELETE", "/organizations/"+org, ""); code != http.StatusConflict || !strings.Contains(string(data), stream.ID) {
				t.Fatalf("delete with a stream running: %d %s, want 409 naming %s", code, data, stream.ID)
			}
			mustCall(t, srv, "GET", "/organizations/"+org, "", http.StatusOK)
			// Forced: accepted, and carried out in the background.
			mustCall(t, srv, "DELETE", "/organizations/"+org+"?force=true", `{"reason":"contract ended"}`, http.StatusAccepted)
			d := waitDeleted(t, srv, org)
			if !d.Forced || d.CheckpointSize < 51 {
				t.Errorf("deletion %+v, want forced with a checkpoint of at least 51", d)
			}

			// Gone for the API and for ingest, its stream with it.
			mustCall(t, srv, "GET", "/organizations/"+org, "", http.StatusNotFound)
			mustCall(t, srv, "GET", "/v1/organizations/"+org+"/log_streams/"+stream.ID, "", http.StatusNotFound)
			if code, _ := call(t, srv, "POST", "/v1/events/batch", `{"events":[{"organization_id":"`+org+`","event":{"action":"a.b","occurred_at":"`+time.Now().UTC().Format(time.RFC3339)+`","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"203.0.113.7"}}}]}`); code < 400 || code >= 500 {
				t.Errorf("an event for the deleted organization: %d, want a 4xx", code)
			}
			if n := recordsLeft(t, srv, org, d.CheckpointSize); n != 0 {
				t.Errorf("%d records of the deleted organization still served", n)
			}
			if n := recordsLeft(t, srv, other, 5); n != 5 {
				t.Errorf("the other organization has %d records, want 5", n)
			}

			// The bundle pulled before still verifies, and the log the
			// deletion kept (every hash, its last checkpoint) still proves
			// the earlier checkpoint consistent with it.
			if code, out := trail(t, nil, "verify", old, "--key", key); code != 0 {
				t.Errorf("verify of a bundle pulled before the deletion: exit %d\n%s", code, out)
			}
			mustCall(t, srv, "GET", fmt.Sprintf("/v1/organizations/%s/log/proof/consistency?from=%d&to=%d", org, oldSize, d.CheckpointSize), "", http.StatusOK)
			mustCall(t, srv, "GET", fmt.Sprintf("/v1/organizations/%s/log/proof/inclusion?seq=3&size=%d", org, d.CheckpointSize), "", http.StatusOK)
		})
	}
}

// bundleSize is the size of a bundle's checkpoint.
func bundleSize(t *testing.T, bundle string) int64 {
	t.Helper()
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(raw), "\n", 5)
	// trail-bundle v1, checkpoint <n>, then the note: origin, size.
	n, err := strconv.ParseInt(lines[3], 10, 64)
	if err != nil {
		t.Fatalf("bundle header %q: %v", lines[:4], err)
	}
	return n
}

// TestDeletionResumesAfterCrash: the server dies (SIGKILL) right after the
// deletion recorded its credentials step; restarted, it finishes the
// deletion, and the earlier bundle still verifies.
func TestDeletionResumesAfterCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			data, args := t.TempDir(), b.args(t)
			srv := trailtest.Start(t, trailtest.Options{Data: data, Args: args, Env: []string{"TRAIL_TEST_DELETION_CRASH_AFTER=records"}})
			org := createOrg(t, srv, "Crashing")
			send(t, srv, org, 30)
			waitFor(t, srv, "checkpoint of 31", func() bool { return logSize(t, srv, org) >= 31 })
			dir := t.TempDir()
			old := filepath.Join(dir, "before.bundle")
			pull(t, srv, org, old)
			key := strings.TrimSpace(mustTrail(t, nil, "log", "key", "--server", srv.URL))
			// The process ends itself after the step, maybe before it
			// answered: the deletion was recorded before it began.
			if code, data := call(t, srv, "DELETE", "/organizations/"+org, ""); code != http.StatusAccepted && code != 0 {
				t.Fatalf("delete: %d %s", code, data)
			}
			waitFor(t, srv, "the server to die after the deletion's credentials step", func() bool {
				code, _ := call(t, srv, "GET", "/healthz", "")
				return code == 0
			})
			srv.Kill()

			srv = trailtest.Start(t, trailtest.Options{Data: data, Args: args})
			d := waitDeleted(t, srv, org)
			if d.CheckpointSize < 31 {
				t.Errorf("deletion %+v, want a checkpoint of at least 31", d)
			}
			if n := recordsLeft(t, srv, org, d.CheckpointSize); n != 0 {
				t.Errorf("%d records left after the resumed deletion", n)
			}
			if code, out := trail(t, nil, "verify", old, "--key", key); code != 0 {
				t.Errorf("verify of a bundle pulled before the deletion: exit %d\n%s", code, out)
			}
		})
	}
}

// fakeS3 is an S3-compatible server in the test process that can be taken
// down (503), recording the Object Lock headers of each PUT.
type fakeS3 struct {
	url     string
	backend *s3mem.Backend
	down    atomic.Bool
	mu      sync.Mutex
	locks   []string // "<mode> <retain-until>" of each PUT
}

func newFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(f.backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPut {
			f.mu.Lock()
			f.locks = append(f.locks, r.Header.Get("X-Amz-Object-Lock-Mode")+" "+r.Header.Get("X-Amz-Object-Lock-Retain-Until-Date"))
			f.mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// keys lists the objects under prefix.
func (f *fakeS3) keys(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	list, err := f.backend.ListBucket(bucket, &gofakes3.Prefix{Prefix: prefix, HasPrefix: true}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Contents {
		out = append(out, c.Key)
	}
	return out
}

func metric(t *testing.T, srv *trailtest.Server, name string) float64 {
	t.Helper()
	res, err := http.Get(srv.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestArchiveThenRetentionThenVerify: with the archive down, retention
// deletes nothing; once it is up, every record past retention is written
// to S3 under Object Lock and only then deleted, and `trail verify` checks
// the archived bundle straight from its s3:// URL against the deployment's
// key.
func TestArchiveThenRetentionThenVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve")
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s3 := newFakeS3(t, "trail-archive")
			s3.down.Store(true)
			creds := []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_CA_BUNDLE="}
			// The sweeper's clock is 40 days ahead: every record is past
			// the default 30-day retention.
			future := time.Now().UTC().Add(40 * 24 * time.Hour).Format(time.RFC3339)
			srv := trailtest.Start(t, trailtest.Options{Env: creds, Args: append(b.args(t),
				"--archive", "s3://trail-archive/prod", "--archive-endpoint", s3.url,
				"--archive-lock-mode", "GOVERNANCE", "--archive-lock-days", "2555",
				"--retention-test-now", future, "--retention-sweep-interval", "200ms")})
			org := createOrg(t, srv, "Archived")
			send(t, srv, org, 40)
			waitFor(t, srv, "checkpoint of 41", func() bool { return logSize(t, srv, org) >= 41 })
			size := logSize(t, srv, org)
			key := strings.TrimSpace(mustTrail(t, nil, "log", "key", "--server", srv.URL))

			// Archive down: writes fail, nothing is deleted.
			waitFor(t, srv, "a failed archive write", func() bool { return metric(t, srv, "trail_archive_failures_total") >= 2 })
			if n := recordsLeft(t, srv, org, size); n != int(size) {
				t.Fatalf("with the archive down, %d of %d records are left; retention must wait for the archive", n, size)
			}
			if lag := metric(t, srv, "trail_archive_lag_seconds"); lag <= 0 {
				t.Errorf("trail_archive_lag_seconds = %v while the archive is down, want > 0", lag)
			}

			// Archive up: archived, then deleted.
			s3.down.Store(false)
			waitFor(t, srv, "records archived and deleted", func() bool { return recordsLeft(t, srv, org, size) == 0 })
			var setting struct {
				ArchivedTo int64 `json:"archived_to"`
				Enabled    bool  `json:"enabled"`
			}
			json.Unmarshal(mustCall(t, srv, "GET", "/v1/organizations/"+org+"/archive", "", http.StatusOK), &setting)
			if !setting.Enabled || setting.ArchivedTo < size {
				t.Errorf("archive setting %+v, want enabled and archived to at least %d", setting, size)
			}
			keys := s3.keys(t, "trail-archive", "prod/"+org+"/")
			if len(keys) == 0 {
				t.Fatalf("nothing archived under prod/%s/", org)
			}
			s3.mu.Lock()
			for _, l := range s3.locks {
				if !strings.HasPrefix(l, "GOVERNANCE 2") {
					t.Errorf("a PUT carried object lock %q, want GOVERNANCE until a date", l)
				}
			}
			s3.mu.Unlock()
			verified := 0
			for _, k := range keys {
				code, out := trail(t, creds, "verify", "s3://trail-archive/"+k, "--endpoint", s3.url, "--key", key)
				if code != 0 {
					t.Errorf("verify s3://trail-archive/%s: exit %d\n%s", k, code, out)
				}
				verified++
			}
			if verified == 0 {
				t.Error("no archived bundle verified")
			}
			if metric(t, srv, "trail_archive_bundles_written_total") < 1 {
				t.Error("trail_archive_bundles_written_total did not count the bundles")
			}

			// Deleted with a final bundle: it lands in the archive too, and
			// verifies from there.
			mustCall(t, srv, "DELETE", "/organizations/"+org+"?final_bundle=true", "", http.StatusAccepted)
			d := waitDeleted(t, srv, org)
			if d.FinalBundle == nil || !strings.HasPrefix(*d.FinalBundle, "s3://trail-archive/prod/"+org+"/final-") {
				t.Fatalf("deletion %+v, want a final bundle in the archive", d)
			}
			if code, out := trail(t, creds, "verify", *d.FinalBundle, "--endpoint", s3.url, "--key", key); code != 0 {
				t.Errorf("verify %s: exit %d\n%s", *d.FinalBundle, code, out)
			}
		})
	}
}
