package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// The key commands refuse mistakes with exit status 2 and a message naming
// what is wrong, on both backends, and never leave a deployment without
// an active signing key.
func TestKeyCommandsRefuseMistakes(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			data := t.TempDir()
			storage := []string{"--data", data}
			var args []string
			if backend == "postgres" {
				dsn := pgtest.New(t)
				storage = []string{"--database", dsn, "--data", data}
				args = []string{"--database", dsn, "--log-origin", "trail.test/keys"}
			}
			srv := trailtest.Start(t, trailtest.Options{Data: data, Args: args})
			if err := srv.Stop(t); err != nil {
				t.Fatal(err)
			}
			cli := func(a ...string) (int, string) {
				var out, errOut bytes.Buffer
				// The storage flags right after the command words: some
				// commands stop reading flags at the first argument.
				n := min(len(a), 2)
				code := run(t.Context(), append(append(append([]string{}, a[:n]...), storage...), a[n:]...), &out, &errOut)
				return code, out.String() + errOut.String()
			}
			code, list := cli("signing-key", "list")
			if code != 0 {
				t.Fatalf("trail signing-key list: exit %d\n%s", code, list)
			}
			first := strings.Fields(strings.Split(list, "\n")[1])[0]
			for _, tc := range []struct {
				name string
				args []string
				want string
			}{
				{"no subcommand", []string{"signing-key"}, "say what to do"},
				{"unknown subcommand", []string{"signing-key", "delete"}, "say what to do"},
				{"retire the only active key", []string{"signing-key", "retire", first}, "the only active signing key"},
				{"revoke the only active key", []string{"signing-key", "revoke", first}, "the only active signing key"},
				{"retire an unknown key", []string{"signing-key", "retire", "nobody+00000000"}, "not one of the deployment's signing keys"},
				{"retire without a key", []string{"signing-key", "retire"}, "give the key to retire"},
				{"freeze without a reason", []string{"signing-key", "freeze"}, "say why"},
				{"rotate with arguments", []string{"signing-key", "rotate", "now"}, "takes no arguments"},
				{"deployment set of the key history", []string{"deployment", "set", "--", "signing_keys", "[]"}, "identity"},
				{"deployment set of the freeze", []string{"deployment", "set", "--", "log_frozen", "x"}, "identity"},
				{"master-key without a subcommand", []string{"master-key"}, "say what to do"},
				{"streams resume without --all", []string{"streams", "resume"}, "--all"},
				{"streams resume of a bad state", []string{"streams", "resume", "--all", "--state", "active"}, "--state"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					code, out := cli(tc.args...)
					if code != 2 || !strings.Contains(out, tc.want) {
						t.Fatalf("trail %s: exit %d, want 2 saying %q:\n%s", strings.Join(tc.args, " "), code, tc.want, out)
					}
				})
			}
			// A rotation, then the old key may retire, but not twice.
			if code, out := cli("signing-key", "rotate"); code != 0 {
				t.Fatalf("trail signing-key rotate: exit %d\n%s", code, out)
			}
			if code, out := cli("signing-key", "retire", first); code != 0 {
				t.Fatalf("trail signing-key retire: exit %d\n%s", code, out)
			}
			if code, out := cli("signing-key", "retire", first); code != 2 || !strings.Contains(out, "retired already") {
				t.Fatalf("retiring twice: exit %d\n%s", code, out)
			}
			code, hist := cli("signing-key", "history")
			if code != 0 || !strings.HasPrefix(hist, "trail-keys v1\n"+first+" retired ") || strings.Contains(hist, "PRIVATE") {
				t.Fatalf("trail signing-key history: exit %d\n%s", code, hist)
			}
			// The server starts again with the new key, from the database.
			trailtest.Start(t, trailtest.Options{Data: data, Args: args})
		})
	}
}
