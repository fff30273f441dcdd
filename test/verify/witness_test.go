package verify_test

import (
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/trailtest"
	"github.com/trailaudit/trail/internal/witness"
)

// authGet returns the status and body of an authenticated GET.
func authGet(t *testing.T, srv *trailtest.Server, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// waitCosigned waits until org's newest checkpoint has the given size and a
// valid cosignature from every witness.
func waitCosigned(t *testing.T, srv *trailtest.Server, org string, size int64, ws []*witness.Verifier) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ck, err := api(t, srv).GetCheckpoint(trailtest.Context(t), org, 0, "")
		if err == nil {
			good, _ := witness.CheckCosignatures(ck.Note, ws)
			if ck.Size == size && len(good) == len(ws) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d cosigned by all witnesses after 60s; last: %+v %v\n%s", size, ck, err, srv.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func replaceDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.RemoveAll(to); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestWitnessesCatchARestoredFork: Trail and two trail witness processes.
// The operator restores the data directory from an older copy and the log
// grows differently: the witnesses refuse to cosign, Trail logs the fork
// and refuses the organization, and a bundle of the forked history fails
// `trail verify --witness … --quorum 2` although its log signature is fine.
func TestWitnessesCatchARestoredFork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve and two trail witness processes")
	}
	a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
	skey, vkey, err := note.GenerateKey(rand.Reader, "trail.e2e")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logArg := "trail.e2e/* " + vkey
	w1 := trailtest.StartWitness(t, "", "--name", "w1.example", "--log", logArg)
	w2 := trailtest.StartWitness(t, "", "--name", "w2.example", "--log", logArg)
	var vs []*witness.Verifier
	for _, w := range []*trailtest.Witness{w1, w2} {
		v, err := witness.ParseVerifierKey(w.VerifierKey)
		if err != nil {
			t.Fatalf("witness printed %q: %v", w.VerifierKey, err)
		}
		vs = append(vs, v)
	}
	args := []string{"--log-origin", "trail.e2e", "--signing-key-file", keyFile,
		"--witness", w1.URL + " " + w1.VerifierKey, "--witness", w2.URL + " " + w2.VerifierKey, "--witness-quorum", "2"}
	verifyArgs := func(bundle string) []string {
		return []string{"verify", bundle, "--key", vkey, "--witness", w1.VerifierKey, "--witness", w2.VerifierKey, "--quorum", "2"}
	}

	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data, Args: args})
	org := newOrg(t, srv, "Acme")
	sendEvents(t, srv, org.ID, 100)
	waitCosigned(t, srv, org.ID, 101, vs)
	bundle := filepath.Join(a.dir, "cosigned.bundle")
	a.ok("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", bundle)
	out := a.ok(verifyArgs(bundle)...)
	for _, want := range []string{"Cosigned by witness w1.example", "Cosigned by witness w2.example", "Witness quorum met: 2 of 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify of a cosigned bundle does not say %q:\n%s", want, out)
		}
	}

	// The backup, taken while the server is stopped.
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	replaceDir(t, data, backup)
	// The records of the checkpoints signed (in the database and in the
	// data directory's signed-checkpoints file) go back in time with the
	// copy: only the witnesses can tell.
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: args})
	sendEvents(t, srv, org.ID, 50)
	waitCosigned(t, srv, org.ID, 151, vs)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}

	// The restore: 50 acknowledged, cosigned events are gone. Before it
	// acknowledges any event, Trail sends the stored checkpoints to the
	// witnesses, which hold a larger tree: a fork, the organization is
	// refused, and not one event is acknowledged into the restored log.
	replaceDir(t, backup, data)
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: args})
	// From the first moment: checking (503), then refused (503).
	if code, b := postEvent(t, srv, org.ID); code != http.StatusServiceUnavailable {
		t.Errorf("an event right after the restored server started: %d %s, want 503", code, b)
	}
	waitFork(t, srv)
	refusesEvents(t, srv, org.ID)
	// What it serves is the restored, cosigned history of size 101: a
	// prefix of the witnessed one, which still meets the quorum.
	restored := filepath.Join(a.dir, "restored.bundle")
	a.ok("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", restored)
	if out := a.ok(verifyArgs(restored)...); !strings.Contains(out, "checkpoint size 101") {
		t.Errorf("verify of the restored log's bundle:\n%s", out)
	}
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}

	// An operator who hides the restore by running without witnesses:
	// the log grows differently, checkpoint 161 is signed, uncosigned.
	var unwitnessed []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--witness" || args[i] == "--witness-quorum" {
			i++
			continue
		}
		unwitnessed = append(unwitnessed, args[i])
	}
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: unwitnessed})
	sendEvents(t, srv, org.ID, 60)
	waitCheckpoint(t, srv, org.ID, 161)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	// With the witnesses back, checkpoint 161 is refused as a fork at
	// once, and the organization with it.
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: args})
	waitFork(t, srv)
	refusesEvents(t, srv, org.ID)
	for _, w := range []*trailtest.Witness{w1, w2} {
		if !strings.Contains(w.Logs(), "evidence of a fork") {
			t.Errorf("witness %s did not log the refused checkpoint:\n%s", w.URL, w.Logs())
		}
	}

	// The forked checkpoint carries the log's valid signature: plain
	// verify accepts it. The witnesses' quorum does not.
	forked := filepath.Join(a.dir, "forked.bundle")
	a.ok("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", forked)
	a.ok("verify", forked, "--key", vkey)
	code, out := a.run(verifyArgs(forked)...)
	if code != 1 || !strings.Contains(out, "not enough witness cosignatures") ||
		!strings.Contains(out, "No cosignature of witness w1.example, w2.example") {
		t.Fatalf("verify --quorum 2 of the forked bundle: exit %d, want 1 naming both witnesses:\n%s", code, out)
	}
}

// waitFork waits until the server logged the fork both witnesses show and
// counted it in /metrics.
// forkCounted reports whether metrics count at least one fork that witness
// reported.
func forkCounted(metrics []byte, witness string) bool {
	return regexp.MustCompile(`(?m)^trail_witness_forks_total\{witness="` + regexp.QuoteMeta(witness) + `"\} [1-9]`).Match(metrics)
}

func waitFork(t *testing.T, srv *trailtest.Server) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(srv.Logs(), "the log forked from a checkpoint the witness cosigned") {
		if time.Now().After(deadline) {
			t.Fatalf("Trail never logged the fork:\n%s", srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		res, err := http.Get(srv.MetricsURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(res.Body)
		res.Body.Close()
		// At least the organization's log; the system log too when it
		// grew, and was cosigned, after the copy was taken.
		if forkCounted(metrics, "w1.example") && forkCounted(metrics, "w2.example") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never counted both witnesses' fork reports:\n%s", metrics)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusesEvents checks that the server fails closed for org: /readyz
// answers 503 (naming it only on the operator listener), and an event for
// it gets 503 log_refused.
func refusesEvents(t *testing.T, srv *trailtest.Server, org string) {
	t.Helper()
	if code, body := authGet(t, srv, "/readyz"); code != http.StatusServiceUnavailable || strings.Contains(string(body), org) {
		t.Errorf("public /readyz = %d %s, want 503 naming no organization", code, body)
	}
	res, err := http.Get(srv.MetricsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), org) {
		t.Errorf("the operator listener's /readyz does not name the refused organization: %s", body)
	}
	if code, b := postEvent(t, srv, org); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "log_refused") {
		t.Errorf("an event for the forked organization: %d %s, want 503 log_refused", code, b)
	}
}

// postEvent posts one event for org and returns the answer.
func postEvent(t *testing.T, srv *trailtest.Server, org string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/audit_logs/events", strings.NewReader(`{"organization_id":"`+org+`","event":{"action":"after.fork",`+
		`"occurred_at":"`+time.Now().UTC().Format(time.RFC3339)+`","actor":{"type":"user","id":"u"},"targets":[],"context":{"location":"203.0.113.7"}}}`))
	req.Header.Set("Authorization", "Bearer "+srv.Key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}
