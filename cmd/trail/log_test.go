package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

const testAPIKey = "sk_test_0123456789abcdefghij"

// logServer serves the log endpoints of one testLog as a Trail server does:
// bundles written by ledger.WriteBundle, JSON errors.
type logServer struct {
	*httptest.Server
	log *testLog
	// cut, when > 0, makes bundle answers stop after that many bytes, as
	// a server that fails while writing one does.
	cut int
}

func newLogServer(t *testing.T, l *testLog) *logServer {
	s := &logServer{log: l}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/log/key", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(l.signer.VerifierKey() + "\n"))
	})
	mux.HandleFunc("GET /v1/organizations/{id}/log/checkpoint", s.authorized(func(w http.ResponseWriter, r *http.Request) {
		size, ok := s.param(w, r, "size")
		if !ok {
			return
		}
		var msg []byte
		var err error
		if size > 0 {
			msg, err = l.st.Checkpoint(r.Context(), l.org, size)
		} else {
			msg, err = l.st.LatestCheckpoint(r.Context(), l.org)
		}
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", "No checkpoint of that size.")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(msg)
	}))
	mux.HandleFunc("GET /v1/organizations/{id}/log/bundle", s.authorized(func(w http.ResponseWriter, r *http.Request) {
		var opts ledger.BundleOptions
		var ok bool
		for _, p := range []struct {
			name string
			v    *int64
		}{{"from", &opts.From}, {"to", &opts.To}, {"size", &opts.Size}, {"since", &opts.Since}} {
			if *p.v, ok = s.param(w, r, p.name); !ok {
				return
			}
		}
		var buf bytes.Buffer
		if _, err := ledger.WriteBundle(r.Context(), &buf, l.st, l.org, opts); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_range", err.Error())
			return
		}
		raw := buf.Bytes()
		if s.cut > 0 {
			raw = raw[:s.cut]
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(raw)
	}))
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *logServer) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testAPIKey {
			writeError(w, http.StatusUnauthorized, "unauthorized", "Could not authorize the request: send Authorization: Bearer sk_… with an active API key.")
			return
		}
		if r.PathValue("id") != s.log.org {
			writeError(w, http.StatusNotFound, "not_found", "Organization not found.")
			return
		}
		h(w, r)
	}
}

func (s *logServer) param(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "invalid_parameter", name+" must be a whole number.")
		return 0, false
	}
	return n, true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg, "code": code})
}

// testServer returns a server for a log of 1,000 records with checkpoints
// at 600 and 1,000.
func testServer(t *testing.T) *logServer {
	t.Helper()
	return newLogServer(t, newTestLog(t, newTestSigner(t), "org_pull", 600, 400))
}

func TestLogKey(t *testing.T) {
	srv := testServer(t)
	vkey := srv.log.signer.VerifierKey()

	code, stdout, stderr := runTrail(t, "log", "key", "--server", srv.URL)
	if code != 0 || stdout != vkey+"\n" {
		t.Errorf("--server: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, vkey)
	}
	t.Setenv("TRAIL_SERVER", srv.URL)
	if code, stdout, _ := runTrail(t, "log", "key"); code != 0 || stdout != vkey+"\n" {
		t.Errorf("TRAIL_SERVER: exit %d, stdout %q", code, stdout)
	}

	// Offline, from a data directory: the key is read, never created.
	dir := t.TempDir()
	signer, err := ledger.LoadOrCreateSigner(dir, "trail.example")
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runTrail(t, "log", "key", "--data", dir); code != 0 || stdout != signer.VerifierKey()+"\n" {
		t.Errorf("--data: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	empty := t.TempDir()
	code, _, stderr = runTrail(t, "log", "key", "--data", empty)
	if code != 1 || !strings.Contains(stderr, "no signing key in "+empty) {
		t.Errorf("--data without a key: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(empty, ledger.SigningKeyFile)); !os.IsNotExist(err) {
		t.Errorf("log key created a signing key: %v", err)
	}
	t.Setenv("TRAIL_DATA", dir)
	t.Setenv("TRAIL_SERVER", "")
	if code, stdout, _ := runTrail(t, "log", "key"); code != 0 || stdout != signer.VerifierKey()+"\n" {
		t.Errorf("TRAIL_DATA: exit %d, stdout %q", code, stdout)
	}

	if code, _, stderr := runTrail(t, "log", "key", "--data", dir, "--server", srv.URL); code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("--data and --server: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runTrail(t, "log", "key", "--server", srv.URL+"/nowhere"); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("wrong path: exit %d, stderr %q", code, stderr)
	}
}

func TestLogCheckpoint(t *testing.T) {
	srv := testServer(t)
	auth := []string{"--server", srv.URL, "--api-key", testAPIKey, "--org", srv.log.org}
	newest := srv.log.checkpoint(t, 1000)

	code, stdout, stderr := runTrail(t, append([]string{"log", "checkpoint"}, auth...)...)
	if code != 0 || stdout != string(newest) {
		t.Errorf("to stdout: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	out := filepath.Join(t.TempDir(), "org_pull.600.checkpoint")
	code, stdout, stderr = runTrail(t, append([]string{"log", "checkpoint", "--size", "600", "--out", out}, auth...)...)
	if code != 0 || stdout != "Saved checkpoint size 600 of org_pull to "+out+".\n" {
		t.Errorf("--out: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, srv.log.checkpoint(t, 600)) {
		t.Errorf("saved %q, %v", got, err)
	}

	code, _, stderr = runTrail(t, append([]string{"log", "checkpoint", "--size", "700"}, auth...)...)
	if code != 1 || !strings.Contains(stderr, "No checkpoint of that size. (404 Not Found, not_found)") {
		t.Errorf("unknown size: exit %d, stderr %q", code, stderr)
	}
}

func TestLogPull(t *testing.T) {
	srv := testServer(t)
	vkey := srv.log.signer.VerifierKey()
	auth := []string{"--server", srv.URL, "--api-key", testAPIKey, "--org", srv.log.org}
	pull := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		return runTrail(t, append(append([]string{"log", "pull"}, auth...), args...)...)
	}
	dir := t.TempDir()

	t.Run("whole log", func(t *testing.T) {
		out := filepath.Join(dir, "all.bundle")
		code, stdout, stderr := pull(t, "--out", out)
		want := "Saved 1,000 records of org_pull (seq 0–999, "
		if code != 0 || !strings.HasPrefix(stdout, want) || !strings.HasSuffix(stdout, " under checkpoint size 1,000 to "+out+".\n") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, srv.log.bundle(t, ledger.BundleOptions{})) {
			t.Errorf("the saved file is not the server's bundle (%v)", err)
		}
		if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
			t.Errorf("%s.tmp left behind: %v", out, err)
		}
		code, stdout, stderr = runTrail(t, "verify", out, "--key", vkey)
		if code != 0 || !strings.Contains(stdout, "1,000 events of org_pull (seq 0–999) match checkpoint size 1,000") {
			t.Errorf("verify: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	t.Run("range", func(t *testing.T) {
		out := filepath.Join(dir, "range.bundle")
		code, stdout, stderr := pull(t, "--from", "300", "--to", "700", "--out", out)
		if code != 0 || !strings.HasPrefix(stdout, "Saved 400 records of org_pull (seq 300–699, ") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if code, stdout, _ := runTrail(t, "verify", out, "--key", vkey); code != 0 || !strings.Contains(stdout, "none missing in that range") {
			t.Errorf("verify: exit %d, stdout %q", code, stdout)
		}
	})

	t.Run("since an older checkpoint", func(t *testing.T) {
		older := filepath.Join(dir, "older.checkpoint")
		if code, _, stderr := runTrail(t, append([]string{"log", "checkpoint", "--size", "600", "--out", older}, auth...)...); code != 0 {
			t.Fatalf("log checkpoint: %s", stderr)
		}
		out := filepath.Join(dir, "since.bundle")
		code, stdout, stderr := pull(t, "--since", older, "--out", out)
		if code != 0 || !strings.Contains(stdout, "checked the consistency proof from your checkpoint size 600") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		// A checkpoint of the same size with another root: another history.
		// pull checks the proof it saves and fails loudly.
		saved, err := os.ReadFile(older)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(saved), "\n", 4)
		lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		forked := writeTemp(t, "forked", []byte(strings.Join(lines, "\n")))
		if code, _, stderr := pull(t, "--since", forked, "--out", filepath.Join(dir, "forked.bundle")); code != 1 ||
			!strings.Contains(stderr, "FORK") || !strings.Contains(stderr, "does not extend your checkpoint size 600") {
			t.Errorf("pull --since a checkpoint of another history: exit %d, stderr %q", code, stderr)
		}
		code, stdout, stderr = runTrail(t, "verify", out, "--key", vkey, "--since", older)
		if code != 0 || !strings.Contains(stdout, "consistent with your older checkpoint size 600: the log only grew") {
			t.Errorf("verify --since: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}

		// Only the records added since, as docs/VERIFYING.md suggests.
		out = filepath.Join(dir, "new.bundle")
		code, stdout, stderr = pull(t, "--size", "1000", "--from", "600", "--since", older, "--out", out)
		if code != 0 || !strings.HasPrefix(stdout, "Saved 400 records of org_pull (seq 600–999, ") {
			t.Fatalf("--from 600: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		code, stdout, stderr = runTrail(t, "verify", out, "--key", vkey, "--since", older)
		want := "400 events of org_pull (seq 600–999) match checkpoint size 1,000 signed by trail.test: none altered, none missing in that range. " +
			"Checkpoint size 1,000 is consistent with your older checkpoint size 600: the log only grew."
		if code != 0 || strings.TrimSpace(stdout) != want {
			t.Errorf("verify --from 600 --since: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}

		// --size below the older checkpoint's size is a mistake.
		if code, _, stderr := pull(t, "--size", "500", "--since", older, "--out", out); code != 2 || !strings.Contains(stderr, "more than --size") {
			t.Errorf("--size 500 --since 600: exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("to standard output", func(t *testing.T) {
		code, stdout, stderr := pull(t, "--from", "990", "--out", "-")
		if code != 0 || stdout != string(srv.log.bundle(t, ledger.BundleOptions{From: 990})) ||
			!strings.HasPrefix(stderr, "Saved 10 records of org_pull (seq 990–999, ") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("environment", func(t *testing.T) {
		t.Setenv("TRAIL_SERVER", srv.URL)
		t.Setenv("TRAIL_API_KEY", testAPIKey)
		out := filepath.Join(dir, "env.bundle")
		if code, stdout, stderr := runTrail(t, "log", "pull", "--org", srv.log.org, "--out", out); code != 0 {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	otherOrg := writeTemp(t, "other.checkpoint", []byte("trail.test/org_other\n5\n"+strings.Repeat("A", 43)+"=\n\n— trail.test AAAA\n"))
	for _, tc := range []struct {
		name   string
		args   []string // after "log pull"
		code   int
		stderr string
	}{
		{"no --out", auth, 2, "--out FILE is required"},
		{"no --server", []string{"--api-key", testAPIKey, "--org", "org_pull", "--out", "x"}, 2, "--server is required"},
		{"no --api-key", []string{"--server", srv.URL, "--org", "org_pull", "--out", "x"}, 2, "--api-key is required"},
		{"no --org", []string{"--server", srv.URL, "--api-key", testAPIKey, "--out", "x"}, 2, "--org is required"},
		{"bad --server", []string{"--server", "trail.example.com", "--api-key", testAPIKey, "--org", "org_pull", "--out", "x"}, 2, "give the server's URL"},
		{"--to before --from", append([]string{"--from", "5", "--to", "4", "--out", "x"}, auth...), 2, "must not be less than --from"},
		{"stray argument", append([]string{"--out", "x", "extra"}, auth...), 2, `unexpected argument "extra"`},
		{"--since not a checkpoint", append([]string{"--since", writeTemp(t, "junk", []byte("hello\n")), "--out", "x"}, auth...), 2, "is not a checkpoint note"},
		{"--since of another org", append([]string{"--since", otherOrg, "--out", "x"}, auth...), 2, "is a checkpoint of org_other, not of org_pull"},
		{"bad API key", []string{"--server", srv.URL, "--api-key", "sk_wrong", "--org", "org_pull", "--out", "x"}, 1,
			"the server refused: Could not authorize the request: send Authorization: Bearer sk_… with an active API key. (401 Unauthorized, unauthorized)"},
		{"unknown org", []string{"--server", srv.URL, "--api-key", testAPIKey, "--org", "org_nope", "--out", "x"}, 1,
			"the server refused: Organization not found. (404 Not Found, not_found)"},
		{"range beyond the log", append([]string{"--from", "5", "--to", "2000", "--out", "x"}, auth...), 1, "(400 Bad Request, invalid_range)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x")
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				if a == "x" {
					a = out
				}
				args[i] = a
			}
			code, stdout, stderr := runTrail(t, append([]string{"log", "pull"}, args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stderr to contain %q", code, tc.code, stdout, stderr, tc.stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was written: %v", out, err)
			}
		})
	}

	t.Run("unreachable server", func(t *testing.T) {
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		out := filepath.Join(t.TempDir(), "x")
		code, _, stderr := pull(t, "--server", gone.URL, "--out", out) // the later --server wins
		if code != 1 || !strings.Contains(stderr, "couldn't reach the Trail server at "+gone.URL) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("answer cut short", func(t *testing.T) {
		srv.cut = len(srv.log.bundle(t, ledger.BundleOptions{})) / 2
		defer func() { srv.cut = 0 }()
		out := filepath.Join(t.TempDir(), "cut.bundle")
		code, _, stderr := pull(t, "--out", out)
		if code != 1 || !strings.Contains(stderr, "before the bundle's end line") || !strings.Contains(stderr, "nothing was saved") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		for _, p := range []string{out, out + ".tmp"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s exists: %v", p, err)
			}
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var stdout, stderr bytes.Buffer
		out := filepath.Join(t.TempDir(), "x")
		code := run(ctx, append(append([]string{"log", "pull"}, auth...), "--out", out), &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "context canceled") {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	})
}
