package verify_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
	"github.com/trailaudit/trail/internal/witness"
)

// waitKeys waits until srv's key history says state for vkey.
func waitKeys(t *testing.T, srv *trailtest.Server, vkey string, state ledger.KeyState) *ledger.KeyHistory {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := get(t, srv.URL+"/v1/log/keys")
		if code == 200 {
			h, err := ledger.ParseKeyHistory(body)
			if err != nil {
				t.Fatalf("GET /v1/log/keys: %v\n%s", err, body)
			}
			if k, ok := h.Find(vkey); ok && k.State == state {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key history of %s does not say %s for %s after 60s: %d %s\n%s", srv.URL, state, vkey, code, body, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logSigners returns which of the keys signed the checkpoint note.
func logSigners(t *testing.T, msg []byte, vkeys ...string) []string {
	t.Helper()
	var vs []note.Verifier
	for _, k := range vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, msg)
	}
	var out []string
	for _, s := range n.Sigs {
		for _, k := range vkeys {
			if strings.HasPrefix(k, s.Name+"+") && vkeyHash(t, k) == s.Hash {
				out = append(out, k)
			}
		}
	}
	return out
}

func vkeyHash(t *testing.T, vkey string) uint32 {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v.KeyHash()
}

// TestSigningKeyRotation rotates the signing key of a running fleet (two
// replicas on one PostgreSQL, one witness): events before; rotate, and
// checkpoints carry both keys' signatures; the witness learns the new key;
// retire the old one, and checkpoints carry the new key's alone while the
// witness keeps cosigning. A whole-log bundle verifies with the key
// history (and the witness); with the old key only it fails; a bundle
// pulled before the rotation still verifies with the history.
func TestSigningKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two trail serve replicas and a trail witness")
	}
	a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
	dsn := pgtest.New(t)
	skey, oldKey, err := note.GenerateKey(rand.Reader, "trail.rot")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(a.dir, "signing.key")
	master, _ := keyring.Generate()
	masterFile := filepath.Join(a.dir, "master.key")
	for f, text := range map[string]string{keyFile: skey, masterFile: master.String()} {
		if err := os.WriteFile(f, []byte(text+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wdata := t.TempDir()
	w := trailtest.StartWitness(t, wdata, "--name", "w1.example", "--log", "trail.rot/* "+oldKey)
	wv, err := witness.ParseVerifierKey(w.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	ws := []*witness.Verifier{wv}
	common := []string{"--database", dsn, "--log-origin", "trail.rot", "--master-key-file", masterFile,
		"--witness", w.URL + " " + w.VerifierKey}
	// The first replica brings the deployment's first key; the second
	// has none configured and signs with the keys in the database.
	r1 := trailtest.Start(t, trailtest.Options{Args: append([]string{"--signing-key-file", keyFile}, common...)})
	r2 := trailtest.Start(t, trailtest.Options{Args: common})
	defer func() {
		if t.Failed() {
			t.Logf("replica 1:\n%s\nreplica 2:\n%s\nwitness:\n%s", r1.Logs(), r2.Logs(), w.Logs())
		}
	}()
	var org struct{ ID string }
	json.Unmarshal(request(t, r1, "POST", "/organizations", `{"name":"Acme"}`), &org)
	sendEvents(t, r1, org.ID, 20)
	waitCosigned(t, r1, org.ID, 21, ws)
	before := filepath.Join(a.dir, "before.bundle")
	a.ok("log", "pull", "--server", r1.URL, "--api-key", r1.Key, "--org", org.ID, "--out", before)

	// Rotate: every replica signs with both keys within seconds.
	out := a.ok("signing-key", "rotate", "--database", dsn, "--master-key-file", masterFile)
	newKey := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "trail.rot+") {
			newKey = strings.TrimSuffix(f, ".")
			break
		}
	}
	if _, err := note.NewVerifier(newKey); err != nil {
		t.Fatalf("trail signing-key rotate printed no verifier key (%v):\n%s", err, out)
	}
	for _, r := range []*trailtest.Server{r1, r2} {
		waitKeys(t, r, newKey, ledger.KeyActive)
	}
	sendEvents(t, r2, org.ID, 10)
	overlap := waitCheckpoint(t, r1, org.ID, 31)
	if got := logSigners(t, overlap, oldKey, newKey); len(got) != 2 {
		t.Fatalf("a checkpoint of the overlap is signed by %d of the two keys:\n%s", len(got), overlap)
	}
	waitCosigned(t, r1, org.ID, 31, ws)

	// The witness learns the new key: one more --log line, restarted on
	// its state and address.
	w.Stop(t)
	u, err := url.Parse(w.URL)
	if err != nil {
		t.Fatal(err)
	}
	w = trailtest.StartWitness(t, wdata, "--listen", u.Host, "--name", "w1.example",
		"--log", "trail.rot/* "+oldKey, "--log", "trail.rot/* "+newKey)

	// Retire the old key: checkpoints carry the new key's signature
	// alone, and the witness keeps cosigning.
	a.ok("signing-key", "retire", "--database", dsn, oldKey)
	for _, r := range []*trailtest.Server{r1, r2} {
		waitKeys(t, r, oldKey, ledger.KeyRetired)
	}
	sendEvents(t, r1, org.ID, 10)
	after := waitCheckpoint(t, r2, org.ID, 41)
	if got := logSigners(t, after, oldKey, newKey); len(got) != 1 || got[0] != newKey {
		t.Fatalf("a checkpoint after the retirement is signed by %v, want the new key alone:\n%s", got, after)
	}
	waitCosigned(t, r1, org.ID, 41, ws)

	// Verifiers: the key history from the server.
	history := filepath.Join(a.dir, "trail.keys")
	if err := os.WriteFile(history, []byte(a.ok("log", "keys", "--server", r2.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Pulled from the replica that asks the witness (it serves the
	// cosignatures it collected).
	whole := filepath.Join(a.dir, "whole.bundle")
	a.ok("log", "pull", "--server", r1.URL, "--api-key", r1.Key, "--org", org.ID, "--out", whole)
	out = a.ok("verify", whole, "--key", history, "--witness", w.VerifierKey, "--quorum", "1")
	for _, want := range []string{"41 events of " + org.ID, "Signed by key trail.rot+", "Witness quorum met: 1 of 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify with the key history does not say %q:\n%s", want, out)
		}
	}
	a.ok("verify", whole, "--key", newKey)
	a.ok("verify", whole, "--key", oldKey, "--key", newKey)
	if code, out := a.run("verify", whole, "--key", oldKey); code != 1 || !strings.Contains(out, "is not signed by key") {
		t.Errorf("verify of a checkpoint after the retirement with the old key only: exit %d, want 1 saying so:\n%s", code, out)
	}
	// A bundle of before the rotation, signed by the now retired key.
	out = a.ok("verify", before, "--key", history)
	if !strings.Contains(out, "(retired ") {
		t.Errorf("verify of an old bundle does not say its key is retired:\n%s", out)
	}
	// A revoked key's signatures prove nothing.
	a.ok("signing-key", "revoke", "--database", dsn, oldKey)
	revoked := filepath.Join(a.dir, "revoked.keys")
	h := waitKeys(t, r1, oldKey, ledger.KeyRevoked)
	if err := os.WriteFile(revoked, []byte(h.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := a.run("verify", before, "--key", revoked); code != 1 || !strings.Contains(out, "revoked (compromised) key") {
		t.Errorf("verify of a bundle signed only by a revoked key: exit %d, want 1 saying so:\n%s", code, out)
	}
	a.ok("verify", whole, "--key", revoked)
	if bytes.Contains([]byte(a.ok("signing-key", "list", "--database", dsn)), []byte("PRIVATE")) {
		t.Error("trail signing-key list shows a private key")
	}
}

// TestCompromiseProcedure follows docs/OPERATIONS.md's procedure for a
// compromised signing key on a running server: freeze (ingest answers 503
// and nothing is signed), rotate, revoke the old key, unfreeze. Events
// sent afterwards are signed by the new key alone, and a whole-log bundle
// verifies with the key history, in which the old key is revoked.
func TestCompromiseProcedure(t *testing.T) {
	a := auditor{t: t, bin: trailtest.Binary(t), dir: t.TempDir()}
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	var org struct{ ID string }
	json.Unmarshal(request(t, srv, "POST", "/organizations", `{"name":"Acme"}`), &org)
	sendEvents(t, srv, org.ID, 10)
	waitCheckpoint(t, srv, org.ID, 11)
	oldKey := strings.TrimSpace(a.ok("log", "key", "--server", srv.URL))

	a.ok("signing-key", "freeze", "--data", data, "key file found on a lost laptop")
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, body := post(t, srv, "/audit_logs/events", oneEvent(org.ID))
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest still answers %d 60s after the freeze: %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, metrics := get(t, srv.MetricsURL+"/metrics"); code != 200 || !strings.Contains(metrics, "trail_log_frozen 1") {
		t.Errorf("/metrics while frozen: %d, no trail_log_frozen 1", code)
	}
	a.ok("signing-key", "rotate", "--data", data)
	a.ok("signing-key", "revoke", "--data", data, oldKey)
	a.ok("signing-key", "unfreeze", "--data", data)
	deadline = time.Now().Add(60 * time.Second)
	for {
		code, _, body := post(t, srv, "/audit_logs/events", oneEvent(org.ID))
		if code == 201 || code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest still answers %d 60s after the unfreeze: %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	history := filepath.Join(a.dir, "trail.keys")
	if err := os.WriteFile(history, []byte(a.ok("log", "keys", "--server", srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := ledger.ParseKeyHistory(a.ok("log", "keys", "--server", srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	newKey := h.Active()[0].VerifierKey
	// Every event accepted before the freeze, and the ones after, under a
	// checkpoint of the new key alone.
	var ck []byte
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, data := authGet(t, srv, "/v1/organizations/"+org.ID+"/log/checkpoint")
		ck = data
		if got := logSigners(t, ck, oldKey, newKey); len(got) == 1 && got[0] == newKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of the new key alone after 60s:\n%s\n%s", ck, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	bundle := filepath.Join(a.dir, "whole.bundle")
	a.ok("log", "pull", "--server", srv.URL, "--api-key", srv.Key, "--org", org.ID, "--out", bundle)
	out := a.ok("verify", bundle, "--key", history)
	if !strings.Contains(out, "none altered, none missing") {
		t.Errorf("verify after the compromise procedure:\n%s", out)
	}
	if code, out := a.run("verify", bundle, "--key", oldKey); code != 1 {
		t.Errorf("verify with the compromised key alone: exit %d, want 1:\n%s", code, out)
	}
}

// request sends one API request with the server's admin key and returns
// the answer's body, failing the test on a status of 300 or more.
func request(t *testing.T, srv *trailtest.Server, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
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
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, data)
	}
	return data
}
