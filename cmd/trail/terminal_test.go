package main

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/textsafe"
)

// TestTerminalOutputEscaped: names and errors the CLI prints to a terminal
// carry control and invisible characters escaped, never raw.
func TestTerminalOutputEscaped(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	trail := func(words int, args ...string) (int, string, string) {
		t.Helper()
		full := args
		if words >= 0 { // a command with a database
			full = append(append(append([]string{}, args[:words]...), "--data", dir), args[words:]...)
		}
		var stdout, stderr bytes.Buffer
		code := run(ctx, full, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	raw := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool {
			return r != '\n' && r != '\t' && (textsafe.IsControl(r) || textsafe.IsInvisible(r))
		})
	}
	_, vkey, err := note.GenerateKey(rand.Reader, "trail.test")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := trail(1, "migrate"); code != 0 {
		t.Fatalf("trail migrate: %d %q", code, errOut)
	}
	// Names with control characters are refused now, but a database can
	// hold them from before.
	st, err := openStore(ctx, &storageFlags{Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateOrganization(ctx, store.Organization{ID: access.NewOrganizationID(now), Name: "Evil\x1b[2J\a\u202eCorp",
		ExternalID: "ext\r\u009b1", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, c := range []struct {
		words   int
		args    []string
		code    int
		escaped string // what the hostile part must look like
	}{
		{2, []string{"org", "create", "--name", "Evil\x1b[2J"}, 2, "must not contain control characters"},
		{2, []string{"key", "create", "--name", "k\x1b[2J", "--scope", "admin"}, 2, "without control characters"},
		{2, []string{"org", "list"}, 0, `Evil\x1b[2J\x07\u202eCorp`},
		{2, []string{"org", "list"}, 0, `ext\x0d\u009b1`},
		{-1, []string{"verify", "no-such-\x1b]0;title\a.ndjson", "--key", vkey}, 2, `no-such-\x1b]0;title\x07.ndjson`}, // exit 2: a usage error
	} {
		code, out, errOut := trail(c.words, c.args...)
		if code != c.code {
			t.Fatalf("trail %q: exit %d, want %d\n%s%s", c.args, code, c.code, out, errOut)
		}
		if raw(out) || raw(errOut) {
			t.Errorf("trail %q printed raw control characters: %q %q", c.args, out, errOut)
		}
		if !strings.Contains(out+errOut, c.escaped) {
			t.Errorf("trail %q: %q %q, want %s in it", c.args, out, errOut, c.escaped)
		}
	}
}
