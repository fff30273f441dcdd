package main

import (
	"bytes"
	"crypto/sha256"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/console"
	"github.com/trailaudit/trail/internal/store"
)

// `trail console link` stores a console link (org_system, intent
// operator_console, the operator named) in the server's database, prints
// it under --url, and refuses malformed command lines with exit status 2.
func TestConsoleLinkCommand(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"console"}, 2, "trail console link"},
		{"unknown subcommand", []string{"console", "revoke"}, 2, "trail console link"},
		{"argument", []string{"console", "link", "--data", dir, "extra"}, 2, "no arguments"},
		{"empty operator", []string{"console", "link", "--data", dir, "--operator", " "}, 2, "--operator"},
		{"control character", []string{"console", "link", "--data", dir, "--operator", "a\x1bb"}, 2, "--operator"},
		{"long operator", []string{"console", "link", "--data", dir, "--operator", strings.Repeat("x", 201)}, 2, "--operator"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(ctx, c.args, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want %d naming %q", code, stderr.String(), c.code, c.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	// The database exists before any command but serve and migrate opens it.
	if code := run(ctx, []string{"migrate", "--data", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("trail migrate: %d %s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"console", "link", "--data", dir, "--url", "https://trail.example.com", "--operator", "alice"}, &stdout, &stderr); code != 0 {
		t.Fatalf("trail console link: %d %s", code, stderr.String())
	}
	link := regexp.MustCompile(`https://trail\.example\.com/console/launch\?secret=csl_\S+`).FindString(stdout.String())
	if link == "" {
		t.Fatalf("no link in %q", stdout.String())
	}
	u, _ := url.Parse(link)
	st, err := openStore(ctx, &storageFlags{Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.(store.PortalLinks).PortalLink(ctx, sha256.Sum256([]byte(u.Query().Get("secret"))))
	if err != nil || l.OrganizationID != store.SystemOrganizationID || l.Intent != console.Intent || l.ExternalUserID != "alice" || !l.UsedAt.IsZero() {
		t.Fatalf("stored link %+v, %v", l, err)
	}
}
