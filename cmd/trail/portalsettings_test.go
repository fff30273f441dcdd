package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `trail portal settings` sets an organization's Admin Portal brand and
// framing allowlist, keeping what it is not told, refusing bad values with
// a usage error naming the flag; `trail serve --check-config` checks the
// deployment's.
func TestPortalSettingsCommand(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	trail := func(words int, args ...string) (int, string, string) {
		t.Helper()
		full := append(append(append([]string{}, args[:words]...), "--data", dir), args[words:]...)
		var stdout, stderr bytes.Buffer
		code := run(ctx, full, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, _, errOut := trail(1, "migrate"); code != 0 {
		t.Fatalf("trail migrate: %d %q", code, errOut)
	}
	_, out, _ := trail(2, "org", "create", "--name", "Acme")
	org := regexp.MustCompile(`org_\w+`).FindString(out)
	logo := filepath.Join(t.TempDir(), "logo.svg")
	if err := os.WriteFile(logo, []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string // in the output (stdout, or stderr for an error)
	}{
		{"set", []string{"--product-name", "Acme Audit", "--accent", "#0a7e3b", "--frame-origins", "https://app.example.com, http://localhost:3000", org}, 0, "Set the Admin Portal settings"},
		{"logo", []string{"--logo-file", logo, org}, 0, "Set"},
		{"show", []string{org}, 0, "product name: Acme Audit\naccent: #0a7e3b\nlogo: 41 bytes image/svg+xml\nframe origins: https://app.example.com http://localhost:3000"},
		{"bad accent", []string{"--accent", "red", org}, 2, "accent colour"},
		{"bad origin", []string{"--frame-origins", "http://app.example.com", org}, 2, "--frame-origins"},
		{"wildcard origin", []string{"--frame-origins", "https://*.example.com", org}, 2, "wildcards"},
		{"bad logo", []string{"--logo-file", "logo.gif", org}, 2, "--logo-file"},
		{"unknown org", []string{"--accent", "#000000", "org_nope"}, 2, "no organization"},
		{"clear", []string{"--frame-origins", "-", "--logo-file", "-", org}, 0, "Set"},
		{"show cleared", []string{org}, 0, "logo: 0 bytes \nframe origins: \n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := trail(2, append([]string{"portal", "settings"}, tt.args...)...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("trail portal settings %q: %d\n%s%s\nwant %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"--portal-accent", "#123456", "--portal-frame-origins", "https://app.example.com", "--vendor-name", "Example Cloud"}, 0},
		{[]string{"--portal-accent", "blue"}, 2},
		{[]string{"--portal-frame-origins", "https://app.example.com/path"}, 2},
		{[]string{"--portal-logo-file", filepath.Join(t.TempDir(), "missing.png")}, 2},
	} {
		code, _, errOut := trail(1, append([]string{"serve", "--check-config"}, tt.args...)...)
		if code != tt.code {
			t.Errorf("serve --check-config %q: %d %s, want %d", tt.args, code, errOut, tt.code)
		}
	}
}
