// Package privacy_test drives field policies and erasures end to end on
// real `trail serve` processes, on SQLite and PostgreSQL: redacted and
// hashed values are found in no file of the data directory (WAL files
// included), in no PostgreSQL dump and in no server log, while a search by
// the keyed hash finds their events; an erasure killed (SIGKILL) midway
// finishes after a restart, and `trail verify` reports the erased records
// as erased, not missing.
package privacy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backend is where a test's servers keep their data.
type backend struct {
	name string
	dsn  string // "" for SQLite
	args []string
}

func backends(t *testing.T) []func(t *testing.T) backend {
	return []func(t *testing.T) backend{
		func(t *testing.T) backend { return backend{name: "sqlite"} },
		func(t *testing.T) backend {
			dsn := pgtest.New(t)
			return backend{name: "postgres", dsn: dsn, args: []string{"--database", dsn, "--log-origin", "trail.test/privacy"}}
		},
	}
}

func each(t *testing.T, f func(t *testing.T, b backend)) {
	for i, mk := range backends(t) {
		name := []string{"sqlite", "postgres"}[i]
		t.Run(name, func(t *testing.T) { f(t, mk(t)) })
	}
}

// call sends a JSON request with the server's admin key and decodes the
// answer into out (when not nil), requiring status want.
func call(t *testing.T, srv *trailtest.Server, method, path, body string, want int, out any, headers ...string) {
	t.Helper()
	req, err := http.NewRequestWithContext(trailtest.Context(t), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

func newClient(t *testing.T, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitIntegrated waits for a checkpoint of org of at least size.
func waitIntegrated(t *testing.T, c *client.Client, org string, size int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cp, err := c.GetCheckpoint(trailtest.Context(t), org, 0, "")
		if err == nil && cp.Size >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %s reaches size %d after 2 minutes (%v)", org, size, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// searchCount counts org's events matching q, polling until want (the
// search index may lag on SQLite) or a deadline.
func searchCount(t *testing.T, srv *trailtest.Server, org string, q url.Values, want int) int {
	t.Helper()
	q.Set("organization_id", org)
	q.Set("limit", "100")
	deadline := time.Now().Add(time.Minute)
	for {
		var page struct{ Data []json.RawMessage }
		call(t, srv, "GET", "/v1/events?"+q.Encode(), "", http.StatusOK, &page)
		if len(page.Data) == want || time.Now().After(deadline) {
			return len(page.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The values a policy keeps out of storage. Each is unique enough that
// finding it anywhere means it leaked.
var secrets = []string{
	"alice.secret.7f3a@example.com", // actor id and metadata email: hashed
	"Alice Secretname Q9Z",          // actor name: redacted
	"198.51.100.177",                // location: redacted
	"SSN-731-44-9052",               // metadata ssn: redacted
}

func secretEvent(org string, i int) client.OrgEvent {
	return client.OrgEvent{OrganizationID: org, Event: client.Event{
		Action: "user.signed_in", OccurredAt: time.Now().UTC().Add(-time.Minute),
		Actor:    client.Entity{ID: secrets[0], Type: "user", Name: secrets[1]},
		Targets:  []client.Entity{{ID: fmt.Sprintf("doc_%d", i), Type: "document"}},
		Context:  client.EventContext{Location: secrets[2]},
		Metadata: map[string]any{"email": secrets[0], "ssn": secrets[3], "plan": "pro"},
	}}
}

// TestRedactedValuesNeverReachDisk sets a policy, sends events through the
// single and the batch endpoints (with idempotency keys), and then looks
// for the secret values in every file of the data directory, in a
// PostgreSQL dump and in the server's logs.
func TestRedactedValuesNeverReachDisk(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		srv := trailtest.Start(t, trailtest.Options{Args: append([]string{"--log-level", "debug"}, b.args...)})
		c := newClient(t, srv)
		ctx := trailtest.Context(t)
		org, err := c.CreateOrganization(ctx, "privacy", "")
		if err != nil {
			t.Fatal(err)
		}
		call(t, srv, "PUT", "/v1/organizations/"+org.ID+"/privacy_policy",
			`{"fields":{"actor.id":"hmac","actor.name":"redact","metadata.email":"hmac","metadata.ssn":"redact","context.location":"redact"}}`, http.StatusOK, nil)
		const n = 30
		for i := range 10 {
			body, _ := json.Marshal(secretEvent(org.ID, i))
			call(t, srv, "POST", "/audit_logs/events", string(body), http.StatusCreated, nil, "Idempotency-Key", fmt.Sprintf("single-%d", i))
		}
		var batch []client.OrgEvent
		for i := 10; i < n; i++ {
			batch = append(batch, secretEvent(org.ID, i))
		}
		raw, _ := json.Marshal(map[string]any{"events": batch})
		call(t, srv, "POST", "/v1/events/batch", string(raw), http.StatusCreated, nil, "Idempotency-Key", "batch-1")
		waitIntegrated(t, c, org.ID, n+2) // the organization's creation and the policy change too

		var h struct{ HMAC string }
		call(t, srv, "POST", "/v1/organizations/"+org.ID+"/hmac", `{"value":"`+secrets[0]+`"}`, http.StatusOK, &h)
		if got := searchCount(t, srv, org.ID, url.Values{"actor_id": {h.HMAC}}, n); got != n {
			t.Errorf("search by the keyed hash found %d events, want %d", got, n)
		}
		if got := searchCount(t, srv, org.ID, url.Values{"actor_id": {secrets[0]}}, 0); got != 0 {
			t.Errorf("search by the plain value found %d events", got)
		}

		leaks := map[string][]string{}
		look := func(where string, data []byte) {
			for _, s := range secrets {
				if bytes.Contains(data, []byte(s)) {
					leaks[s] = append(leaks[s], where)
				}
			}
		}
		// While the server runs (its WAL files in place), then after it
		// stopped.
		grepDir(t, srv.Data, look)
		if err := srv.Stop(t); err != nil {
			t.Fatalf("stop: %v", err)
		}
		grepDir(t, srv.Data, look)
		look("the server's log", []byte(srv.Logs()))
		if b.dsn != "" {
			look("pg_dump", pgDump(t, b.dsn))
		}
		for s, where := range leaks {
			t.Errorf("%q leaked into %v", s, where)
		}
	})
}

// grepDir hands every regular file under dir to look.
func grepDir(t *testing.T, dir string, look func(where string, data []byte)) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		look(path, data)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", dir)
	}
}

// pgDump dumps the database of dsn with the newest pg_dump installed.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	bin := "pg_dump"
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump"); len(dirs) > 0 {
		slices.Sort(dirs)
		bin = dirs[len(dirs)-1]
	}
	out, err := exec.Command(bin, "--data-only", dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("privacy_policies")) {
		t.Fatalf("the dump does not hold the privacy tables:\n%s", out[:min(len(out), 2000)])
	}
	return out
}

type erasure struct {
	ID, State   string
	Planned     int64
	Erased      int64
	Subject     string
	Tombstones  string  `json:"tombstone_seqs"`
	CompletedAt *string `json:"completed_at"`
}

// TestErasureSurvivesKillAndVerifies erases one actor's events, kills the
// server (SIGKILL) while the erasure deletes them one per batch, restarts
// it, and checks that the erasure completes, that the subject's events are
// gone and the others kept, and that `trail verify` reports the erased
// records as erased by the request.
func TestErasureSurvivesKillAndVerifies(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		data := t.TempDir()
		slow := append([]string{"--erasure-batch-size", "1", "--erasure-batch-pause", "300ms"}, b.args...)
		first := trailtest.Start(t, trailtest.Options{Data: data, Args: slow})
		c := newClient(t, first)
		ctx := trailtest.Context(t)
		org, err := c.CreateOrganization(ctx, "erasure", "")
		if err != nil {
			t.Fatal(err)
		}
		const each = 12
		var events []client.OrgEvent
		for i := range 2 * each {
			actor := "alice@example.com"
			if i%2 == 1 {
				actor = "bob@example.com"
			}
			events = append(events, client.OrgEvent{OrganizationID: org.ID, Event: client.Event{
				Action: "doc.viewed", OccurredAt: time.Now().UTC().Add(-time.Minute),
				Actor:   client.Entity{ID: actor, Type: "user", Name: "Reader"},
				Targets: []client.Entity{{ID: fmt.Sprintf("doc_%d", i), Type: "document"}},
				Context: client.EventContext{Location: "203.0.113.7"},
			}})
		}
		if _, err := c.CreateEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		waitIntegrated(t, c, org.ID, 2*each+1)

		path := "/v1/organizations/" + org.ID + "/erasures"
		req := `{"actor_id":"alice@example.com","reason":"GDPR Article 17 request 2026-42","request_id":"gdpr-42"}`
		var job erasure
		call(t, first, "POST", path, req, http.StatusAccepted, &job)
		for deadline := time.Now().Add(time.Minute); ; {
			call(t, first, "GET", path+"/"+job.ID, "", http.StatusOK, &job)
			if job.State == "erasing" && job.Erased >= 2 {
				break
			}
			if job.State == "completed" || time.Now().After(deadline) {
				t.Fatalf("the erasure was not caught midway: %+v\n%s", job, first.Logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
		first.Kill()

		second := trailtest.Start(t, trailtest.Options{Data: data, Args: b.args})
		for deadline := time.Now().Add(2 * time.Minute); ; {
			call(t, second, "GET", path+"/"+job.ID, "", http.StatusOK, &job)
			if job.State == "completed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the erasure did not complete after the restart: %+v\n%s", job, second.Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if job.Planned != each || job.Erased != each || job.Tombstones == "" || strings.Contains(job.Subject, "alice") {
			t.Errorf("completed erasure %+v, want %d erased and a tombstone", job, each)
		}
		// The same request id answers with the same erasure.
		var again erasure
		call(t, second, "POST", path, req, http.StatusOK, &again)
		if again.ID != job.ID {
			t.Errorf("the request again started %s, not %s", again.ID, job.ID)
		}
		if got := searchCount(t, second, org.ID, url.Values{"actor_id": {"alice@example.com"}}, 0); got != 0 {
			t.Errorf("%d events of the erased actor are still found", got)
		}
		if got := searchCount(t, second, org.ID, url.Values{"actor_id": {"bob@example.com"}}, each); got != each {
			t.Errorf("%d events of the other actor are found, want %d", got, each)
		}

		// trail verify on a bundle of the whole log says which records
		// were erased, by which request.
		c = newClient(t, second)
		var tomb int64
		fmt.Sscan(job.Tombstones, &tomb)
		waitIntegrated(t, c, org.ID, tomb+1)
		var bundle bytes.Buffer
		if err := c.PullBundle(ctx, org.ID, client.BundleOptions{}, &bundle); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "bundle")
		if err := os.WriteFile(file, bundle.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := c.LogKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(trailtest.Binary(t), "verify", file, "--key", key).CombinedOutput()
		if err != nil {
			t.Fatalf("trail verify: %v\n%s", err, out)
		}
		if want := fmt.Sprintf("%d records erased (not missing", each); !strings.Contains(string(out), want) ||
			!strings.Contains(string(out), "erased by request "+job.ID) {
			t.Errorf("trail verify says:\n%s\nwant %q and the erasure %s", out, want, job.ID)
		}
		if strings.Contains(bundle.String(), "alice@example.com") {
			t.Error("the bundle still holds the erased actor")
		}
	})
}
