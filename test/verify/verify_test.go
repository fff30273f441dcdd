// Package verify_test drives the verifiable log end to end, as an auditor
// would: a real `trail serve`, `trail log pull` over HTTP, and `trail verify`
// offline — then tampers with the real SQLite file behind the server's back
// and checks that `trail verify` names what was changed and where.
package verify_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"

	"github.com/trailaudit/trail/client"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// auditor runs trail subcommands as a separate process, as a user would.
type auditor struct {
	t   *testing.T
	bin string
	dir string
}

// run runs trail with args and returns its exit code and combined output.
func (a auditor) run(args ...string) (int, string) {
	a.t.Helper()
	cmd := exec.Command(a.bin, args...)
	cmd.Dir = a.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		a.t.Fatalf("trail %v: %v", args, err)
	}
	return 0, out.String()
}

func (a auditor) ok(args ...string) string {
	a.t.Helper()
	code, out := a.run(args...)
	if code != 0 {
		a.t.Fatalf("trail %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// api returns a client of srv with its bootstrap key.
func api(t *testing.T, srv *trailtest.Server) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newOrg creates an organization.
func newOrg(t *testing.T, srv *trailtest.Server, name string) *client.Organization {
	t.Helper()
	org, err := api(t, srv).CreateOrganization(trailtest.Context(t), name, "")
	if err != nil {
		t.Fatal(err)
	}
	return org
}

// sendEvents stores n events of org in batches.
func sendEvents(t *testing.T, srv *trailtest.Server, org string, n int) {
	t.Helper()
	c := api(t, srv)
	hour := time.Now().UTC().Add(-time.Hour).Truncate(time.Hour)
	for n > 0 {
		k := min(n, 500)
		var evs []client.OrgEvent
		for i := range k {
			evs = append(evs, client.OrgEvent{OrganizationID: org, Event: client.Event{
				Action: "document.updated", OccurredAt: hour.Add(time.Duration(i%60) * time.Second),
				Actor:    client.Entity{Type: "user", ID: fmt.Sprintf("user_%d", i%7), Name: "Ada Lovelace"},
				Targets:  []client.Entity{{Type: "document", ID: fmt.Sprintf("doc_%d", i)}},
				Context:  client.EventContext{Location: "203.0.113.7", UserAgent: "test"},
				Metadata: map[string]any{"n": i},
			}})
		}
		if _, err := c.CreateEvents(trailtest.Context(t), evs); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// waitCheckpoint waits until org's newest checkpoint has the given size
// and returns its note.
func waitCheckpoint(t *testing.T, srv *trailtest.Server, org string, size int64) []byte {
	t.Helper()
	c := api(t, srv)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, err := c.GetCheckpoint(trailtest.Context(t), org, 0, "")
		if err == nil && cp.Size == size {
			return cp.Note
		}
		if err != nil && !client.IsNotFound(err) && !client.IsRetryable(err) {
			t.Fatalf("checkpoint: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d after 30s; last: %+v %v\n%s", size, cp, err, srv.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func withDB(t *testing.T, data string, fn func(db *sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "trail.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fn(db)
}

func exec1(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s changed %d rows, want 1", q, n)
	}
}

func TestPullAndVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve several times")
	}
	data := t.TempDir()
	a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
	srv := trailtest.Start(t, trailtest.Options{Data: data})

	org := newOrg(t, srv, "Acme")
	sendEvents(t, srv, org.ID, 700) // seq 0 is the organization's creation
	first := waitCheckpoint(t, srv, org.ID, 701)

	key := strings.TrimSpace(a.ok("log", "key", "--server", srv.URL))
	if _, err := note.NewVerifier(key); err != nil {
		t.Fatalf("trail log key printed %q: %v", key, err)
	}
	old := filepath.Join(a.dir, "old.checkpoint")
	a.ok("log", "checkpoint", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", old)
	if saved, _ := os.ReadFile(old); !bytes.Equal(saved, first) {
		t.Fatalf("saved checkpoint differs from the served one:\n%s\n%s", saved, first)
	}

	sendEvents(t, srv, org.ID, 300)
	waitCheckpoint(t, srv, org.ID, 1001)

	pull := func(name string, extra ...string) string {
		t.Helper()
		out := filepath.Join(a.dir, name)
		a.ok(append([]string{"log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", out}, extra...)...)
		return out
	}

	// The whole log, and the growth since the saved checkpoint.
	whole := pull("whole.bundle", "--since", old)
	out := a.ok("verify", whole, "--key", key, "--since", old)
	for _, want := range []string{"1,001 events of " + org.ID, "seq 0–1,000", "none altered, none missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("trail verify output lacks %q:\n%s", want, out)
		}
	}
	partial := pull("partial.bundle", "--from", "900")
	if out := a.ok("verify", partial, "--key", key); !strings.Contains(out, "seq 900–1,000") {
		t.Errorf("partial bundle: %s", out)
	}

	// A checkpoint is only as good as the key: another key's verifier fails.
	otherSigner, otherVerifier, err := note.GenerateKey(rand.Reader, "impostor")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := a.run("verify", whole, "--key", otherVerifier); code == 0 || !strings.Contains(strings.ToLower(out), "signature") {
		t.Errorf("verify with another key: exit %d\n%s", code, out)
	}

	// Now tamper with the server's database, as an insider with file access
	// would, and check that an auditor pulling afterwards sees exactly what
	// was done.
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	withDB(t, data, func(db *sql.DB) {
		var rec []byte
		if err := db.QueryRow(`SELECT record FROM events WHERE organization_id = ? AND seq = 123`, org.ID).Scan(&rec); err != nil {
			t.Fatal(err)
		}
		rec = bytes.Replace(rec, []byte("Ada Lovelace"), []byte("Bob Lovelace"), 1)
		exec1(t, db, `UPDATE events SET record = ? WHERE organization_id = ? AND seq = 123`, rec, org.ID)
		exec1(t, db, `DELETE FROM events WHERE organization_id = ? AND seq = 456`, org.ID)
	})
	srv = trailtest.Start(t, trailtest.Options{Data: data})
	tampered := pull("tampered.bundle")
	code, out := a.run("verify", tampered, "--key", key)
	if code == 0 {
		t.Fatalf("verify of a tampered log succeeded:\n%s", out)
	}
	for _, want := range []string{"seq 123", "seq 456"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output does not name %s:\n%s", want, out)
		}
	}

	// A checkpoint replaced by one signed with another key.
	if err := srv.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	withDB(t, data, func(db *sql.DB) {
		var msg []byte
		if err := db.QueryRow(`SELECT note FROM ledger_checkpoints WHERE organization_id = ? ORDER BY size DESC LIMIT 1`, org.ID).Scan(&msg); err != nil {
			t.Fatal(err)
		}
		ck, err := ledger.ParseCheckpointBody(msg[:bytes.Index(msg, []byte("\n\n"))+1])
		if err != nil {
			t.Fatal(err)
		}
		impostor, err := ledger.NewSignerFromKey(otherSigner)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := impostor.Sign(ck)
		if err != nil {
			t.Fatal(err)
		}
		exec1(t, db, `UPDATE ledger_checkpoints SET note = ? WHERE organization_id = ? AND size = ?`, forged, org.ID, ck.Size)
	})
	srv = trailtest.Start(t, trailtest.Options{Data: data})
	forged := pull("forged.bundle", "--from", "900")
	if code, out := a.run("verify", forged, "--key", key); code == 0 || !strings.Contains(strings.ToLower(out), "signature") {
		t.Errorf("verify of a bundle under a forged checkpoint: exit %d\n%s", code, out)
	}
}

// backend is where a test server keeps its database, and how the test
// takes a backup of it and restores one, as an operator would.
type backend struct {
	name    string
	args    func(t *testing.T) []string // flags for trail serve
	backup  func(t *testing.T, data, to string)
	restore func(t *testing.T, from, data string)
}

func backends(t *testing.T) []backend {
	sqlite := backend{name: "sqlite",
		args:    func(*testing.T) []string { return nil },
		backup:  func(t *testing.T, data, to string) { copyDB(t, data, to) },
		restore: func(t *testing.T, from, data string) { copyDB(t, from, data) },
	}
	var dsn string
	postgres := backend{name: "postgres",
		args: func(t *testing.T) []string {
			dsn = pgtest.New(t)
			return []string{"--database", dsn, "--log-origin", "trail.test/restore"}
		},
		// A backup is a copy of the database made with CREATE DATABASE …
		// TEMPLATE, named after the directory the SQLite backend copies to.
		backup: func(t *testing.T, _, to string) {
			pgCopy(t, dsn, dbName(dsn), backupName(to), false)
		},
		restore: func(t *testing.T, from, _ string) {
			pgCopy(t, dsn, backupName(from), dbName(dsn), true)
		},
	}
	return []backend{sqlite, postgres}
}

func dbName(dsn string) string {
	u, _ := url.Parse(dsn)
	return strings.TrimPrefix(u.Path, "/")
}

func backupName(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf("backup_%x", h.Sum64())
}

// pgCopy makes database to a copy of from on dsn's server (replacing to
// when replace), and drops the copies it made at cleanup.
func pgCopy(t *testing.T, dsn, from, to string, replace bool) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	ctx := trailtest.Context(t)
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if replace {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{to}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Cleanup(func() {
			c, err := pgx.Connect(context.Background(), u.String())
			if err == nil {
				c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{to}.Sanitize()+" WITH (FORCE)")
				c.Close(context.Background())
			}
		})
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{to}.Sanitize()+" TEMPLATE "+pgx.Identifier{from}.Sanitize()); err != nil {
		t.Fatal(err)
	}
}

// post sends body to path and returns the status, the Retry-After header
// and the body, whatever the status.
func post(t *testing.T, srv *trailtest.Server, path, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), string(data)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

func oneEvent(org string) string {
	return `{"organization_id":"` + org + `","event":{"action":"a.b","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `","actor":{"type":"user","id":"u"},"targets":[{"type":"t","id":"1"}],"context":{"location":"1.2.3.4"}}}`
}

// A database restored from an old backup would let the server sign a
// checkpoint that contradicts one it already handed out; it refuses, refuses
// the organization's new events too (503: acknowledging them would give
// them seqs the published checkpoint covers), says so on /readyz, keeps
// serving the other organizations, and an auditor holding the newer
// checkpoint detects the rollback. Restoring the newest database cures it.
func TestRestoredBackupIsRefusedAndDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve several times")
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			data := t.TempDir()
			args := b.args(t)
			start := func() *trailtest.Server {
				return trailtest.Start(t, trailtest.Options{Data: data, Args: args})
			}
			a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
			srv := start()
			org, other := newOrg(t, srv, "Acme"), newOrg(t, srv, "Other")
			sendEvents(t, srv, org.ID, 100)
			waitCheckpoint(t, srv, org.ID, 101)
			key := strings.TrimSpace(a.ok("log", "key", "--server", srv.URL))
			if err := srv.Stop(t); err != nil {
				t.Fatal(err)
			}
			backup := t.TempDir()
			b.backup(t, data, backup)

			srv = start()
			sendEvents(t, srv, org.ID, 50)
			waitCheckpoint(t, srv, org.ID, 151)
			newer := filepath.Join(a.dir, "newer.checkpoint")
			a.ok("log", "checkpoint", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", newer)
			if err := srv.Stop(t); err != nil {
				t.Fatal(err)
			}
			newest := t.TempDir()
			b.backup(t, data, newest)

			b.restore(t, backup, data) // the restore: 50 acknowledged events are gone
			srv = start()
			// The refusal is known before the server says it listens: the
			// very first event is refused, not acknowledged at seq 101.
			for _, path := range []string{"/audit_logs/events", "/v1/events/batch"} {
				body := oneEvent(org.ID)
				if path == "/v1/events/batch" {
					body = `{"events":[` + oneEvent(other.ID) + `,` + body + `]}`
				}
				code, retry, msg := post(t, srv, path, body)
				if code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(msg, "log_refused") ||
					!strings.Contains(msg, org.ID) || !strings.Contains(msg, "restore the newest database") {
					t.Errorf("POST %s for the rolled-back organization: %d (Retry-After %q) %s", path, code, retry, msg)
				}
			}
			code, body := get(t, srv.URL+"/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "degraded") {
				t.Errorf("/readyz after the rollback: %d %s", code, body)
			}
			if strings.Contains(body, org.ID) {
				t.Errorf("the public /readyz names an organization: %s", body)
			}
			// The operator listener says which, and why.
			if code, body := get(t, srv.MetricsURL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, org.ID) || strings.Contains(body, other.ID) {
				t.Errorf("the operator's /readyz after the rollback: %d %s", code, body)
			}
			if !strings.Contains(strings.ToLower(srv.Logs()), "refusing to sign") {
				t.Errorf("the server did not log its refusal loudly:\n%s", srv.Logs())
			}
			// Other organizations are served as before.
			if code, _, msg := post(t, srv, "/audit_logs/events", oneEvent(other.ID)); code != http.StatusCreated {
				t.Errorf("POST for another organization: %d %s", code, msg)
			}
			if b.name == "postgres" {
				// A second replica, which does not integrate (the first
				// holds the lease) and has no record of what was signed,
				// refuses the organization's events too: the integrator
				// recorded the refusal in the database, and the append
				// reads it with the seq it would take.
				replica := trailtest.Start(t, trailtest.Options{Args: append(slices.Clone(args),
					"--signing-key-file", filepath.Join(data, "signing.key"), "--master-key-file", filepath.Join(data, "master.key"))})
				code, retry, msg := post(t, replica, "/audit_logs/events", oneEvent(org.ID))
				if code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(msg, "log_refused") {
					t.Errorf("POST to another replica for the rolled-back organization: %d (Retry-After %q) %s", code, retry, msg)
				}
				if code, _, msg := post(t, replica, "/audit_logs/events", oneEvent(other.ID)); code != http.StatusCreated {
					t.Errorf("POST to another replica for another organization: %d %s", code, msg)
				}
				waitCheckpoint(t, srv, other.ID, 3)
				if err := replica.Stop(t); err != nil {
					t.Fatal(err)
				}
			} else {
				waitCheckpoint(t, srv, other.ID, 2)
			}
			// The server still serves its old checkpoint (size 101); an
			// auditor holding the size-151 checkpoint sees the rollback.
			waitCheckpoint(t, srv, org.ID, 101)
			bundle := filepath.Join(a.dir, "after-restore.bundle")
			a.ok("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", bundle)
			if code, out := a.run("verify", bundle, "--key", key, "--since", newer); code == 0 {
				t.Fatalf("verify --since a newer checkpoint accepted a rolled-back log:\n%s", out)
			}
			if err := srv.Stop(t); err != nil {
				t.Fatal(err)
			}

			// The cure: the newest database back. Nothing was stored while
			// refused, so the log continues at 151. (The other
			// organization's event went into the old database only: it is
			// now the one refused, as docs/OPERATIONS.md warns.)
			b.restore(t, newest, data)
			srv = start()
			if code, _, msg := post(t, srv, "/audit_logs/events", oneEvent(org.ID)); code != http.StatusCreated {
				t.Fatalf("POST after restoring the newest database: %d %s", code, msg)
			}
			waitCheckpoint(t, srv, org.ID, 152)
		})
	}
}

func copyDB(t *testing.T, from, to string) {
	t.Helper()
	for _, name := range []string{"trail.db", "trail.db-wal", "trail.db-shm"} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if os.IsNotExist(err) {
			os.Remove(filepath.Join(to, name))
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A server given a signing key other than the one its database's
// checkpoints carry refuses to start, instead of publishing checkpoints no
// verifier can check.
func TestWrongSigningKeyRefused(t *testing.T) {
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	org := newOrg(t, srv, "Acme")
	waitCheckpoint(t, srv, org.ID, 1)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	other, _, err := note.GenerateKey(rand.Reader, "other")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(trailtest.Binary(t), "serve", "--data", data, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--shutdown-delay", "0s")
	cmd.Env = append(os.Environ(), "TRAIL_SIGNING_KEY="+other)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("trail serve started with a foreign signing key:\n%s", out)
	}
	if !strings.Contains(string(out), "is not one of the deployment's signing keys") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}

	// The right key, given explicitly, works (as replicas sharing it would).
	key, err := os.ReadFile(filepath.Join(data, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "shared.key")
	os.WriteFile(keyFile, key, 0o600)
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--signing-key-file", keyFile}})
	if err := api(t, srv).CreateEvent(trailtest.Context(t), org.ID, client.Event{Action: "a.b", OccurredAt: time.Now().Add(-time.Hour),
		Actor: client.Entity{Type: "user", ID: "u"}, Targets: []client.Entity{{Type: "t", ID: "1"}},
		Context: client.EventContext{Location: "1.2.3.4"}}); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, srv, org.ID, 2)
}

// copyDir replaces the directory to with a copy of from (files and
// subdirectories), as restoring a whole data directory from a backup does.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A whole data directory restored from an older copy (the record of what
// was signed included) cannot tell the server what it signed since: it
// signs a checkpoint that forks from one it handed out. `trail log pull
// --since` with the newer checkpoint fails loudly; with an older one it
// still succeeds.
func TestPullSinceDetectsRestoredDataDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve several times")
	}
	data := t.TempDir()
	a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	org := newOrg(t, srv, "Acme")
	sendEvents(t, srv, org.ID, 100)
	waitCheckpoint(t, srv, org.ID, 101)
	older := filepath.Join(a.dir, "older.checkpoint")
	a.ok("log", "checkpoint", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", older)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, data, backup)

	srv = trailtest.Start(t, trailtest.Options{Data: data})
	sendEvents(t, srv, org.ID, 50)
	waitCheckpoint(t, srv, org.ID, 151)
	newer := filepath.Join(a.dir, "newer.checkpoint")
	a.ok("log", "checkpoint", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", newer)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}

	copyDir(t, backup, data) // the whole directory: nothing remembers size 151
	srv = trailtest.Start(t, trailtest.Options{Data: data})
	sendEvents(t, srv, org.ID, 60)
	waitCheckpoint(t, srv, org.ID, 161) // a fork of the published size 151

	tests := []struct {
		name     string
		since    string
		ok       bool
		wantSays []string
	}{
		{"older checkpoint", older, true, []string{"checked the consistency proof from your checkpoint size 101", "only grew"}},
		{"newer checkpoint", newer, false, []string{"FORK", "does not extend your checkpoint size 151", "history was rewritten", "newer.checkpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(a.dir, tt.name+".bundle")
			code, said := a.run("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--since", tt.since, "--out", out)
			if (code == 0) != tt.ok {
				t.Errorf("trail log pull --since %s: exit %d\n%s", tt.name, code, said)
			}
			for _, want := range tt.wantSays {
				if !strings.Contains(said, want) {
					t.Errorf("trail log pull --since %s does not say %q:\n%s", tt.name, want, said)
				}
			}
			// trail verify agrees with pull.
			if code, said := a.run("verify", out, "--since", tt.since, "--key", strings.TrimSpace(a.ok("log", "key", "--server", srv.URL))); (code == 0) != tt.ok {
				t.Errorf("trail verify --since %s: exit %d\n%s", tt.name, code, said)
			}
		})
	}
}
