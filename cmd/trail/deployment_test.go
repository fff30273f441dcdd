package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// refused runs trail serve with args and requires it to exit with status
// 2 before listening, saying want.
func refused(t *testing.T, args []string, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, trailtest.Binary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(out.String(), want) {
		t.Fatalf("trail serve %s: exit %d (%v), output:\n%s\nwant exit 2 and %q", strings.Join(args, " "), code, err, out.String(), want)
	}
	if strings.Contains(out.String(), "Trail listening on") {
		t.Fatalf("trail serve listened before refusing:\n%s", out.String())
	}
}

func masterKeyFile(t *testing.T) string {
	t.Helper()
	k, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The embedded deployment's identity: restarted with another master key
// (or signing key), the server refuses rather than sealing and signing with
// keys the data was not made with.
func TestDeploymentIdentitySQLite(t *testing.T) {
	data := t.TempDir()
	srv := trailtest.Start(t, trailtest.Options{Data: data})
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	refused(t, []string{"--data", data, "--master-key-file", masterKeyFile(t)}, "--master-key-file")
	// A setting one embedded server may change by restarting.
	trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--rate-limit", "50"}})
}

// Replicas on one PostgreSQL agree or do not start: the origin must be
// named, keys and deployment-wide settings must match the deployment's,
// and 'trail deployment set' changes a setting for all.
func TestDeploymentIdentityPostgres(t *testing.T) {
	dsn := pgtest.New(t)
	master := masterKeyFile(t)
	skey, _, err := note.GenerateKey(crand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	signing := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(signing, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(data string) []string {
		return []string{"--data", data, "--database", dsn, "--master-key-file", master, "--signing-key-file", signing}
	}
	refused(t, base(t.TempDir()), "--log-origin is required")
	first := append(base(t.TempDir()), "--log-origin", "trail.test/deploy", "--rate-limit", "100")
	trailtest.Start(t, trailtest.Options{Data: first[1], Args: first[2:]})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"another origin", append(base(t.TempDir()), "--log-origin", "trail.test/other", "--rate-limit", "100"), "--log-origin"},
		{"another master key", []string{"--data", t.TempDir(), "--database", dsn, "--master-key-file", masterKeyFile(t), "--signing-key-file", signing, "--log-origin", "trail.test/deploy", "--rate-limit", "100"}, "--master-key-file"},
		{"another rate limit", append(base(t.TempDir()), "--log-origin", "trail.test/deploy", "--rate-limit", "5"), "trail deployment set rate_limit 5"},
		{"private destinations", append(base(t.TempDir()), "--log-origin", "trail.test/deploy", "--rate-limit", "100", "--streams-allow-private"), "--streams-allow-private"},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.args, tc.want) })
	}

	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"deployment", "set", "--database", dsn, "rate_limit", "5"}, &out, &errOut); code != 0 {
		t.Fatalf("trail deployment set: exit %d: %s", code, errOut.String())
	}
	if code := run(t.Context(), []string{"deployment", "set", "--database", dsn, "signing_key", "x"}, &out, &errOut); code != 2 {
		t.Fatalf("trail deployment set signing_key: exit %d; the identity must not change by a setting", code)
	}
	out.Reset()
	if code := run(t.Context(), []string{"deployment", "show", "--database", dsn}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "rate_limit\t\"5\"") {
		t.Fatalf("trail deployment show: exit %d: %s %s", code, out.String(), errOut.String())
	}
	next := append(base(t.TempDir()), "--log-origin", "trail.test/deploy", "--rate-limit", "5")
	trailtest.Start(t, trailtest.Options{Data: next[1], Args: next[2:]})
}
