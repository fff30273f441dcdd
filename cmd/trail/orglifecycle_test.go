package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
)

// `trail org update` and `trail org delete` on both backends: an update
// changes what it is told to, a delete hides the organization, revokes its
// keys, and refuses a second time.
func TestOrgUpdateAndDeleteCommands(t *testing.T) {
	for _, backend := range []struct {
		name string
		args func(t *testing.T) *storageFlags
	}{
		{"sqlite", func(t *testing.T) *storageFlags { return &storageFlags{Data: t.TempDir()} }},
		{"postgres", func(t *testing.T) *storageFlags { return &storageFlags{Data: t.TempDir(), Database: pgtest.New(t)} }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ctx := t.Context()
			sf := backend.args(t)
			storage := []string{"--data", sf.Data}
			if sf.Database != "" {
				storage = append(storage, "--database", sf.Database)
			}
			trail := func(args ...string) (int, string, string) {
				t.Helper()
				full := append(append(append([]string{}, args[:2]...), storage...), args[2:]...)
				var stdout, stderr bytes.Buffer
				code := run(ctx, full, &stdout, &stderr)
				return code, stdout.String(), stderr.String()
			}
			if code := run(ctx, append([]string{"migrate"}, storage...), &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
				t.Fatalf("trail migrate: exit %d", code)
			}
			_, out, _ := trail("org", "create", "--name", "Acme", "--external-id", "acme-1")
			id := regexp.MustCompile(`org_[0-9A-Z]{26}`).FindString(out)
			if id == "" {
				t.Fatalf("org create said %q", out)
			}
			if code, _, _ := trail("key", "create", "--name", "tenant", "--org", id, "--scope", "events:write"); code != 0 {
				t.Fatalf("key create: exit %d", code)
			}
			steps := []struct {
				args     []string
				code     int
				contains string
			}{
				{[]string{"org", "update", id}, 2, "say what to change"},
				{[]string{"org", "update", id, "--name", ""}, 2, "--name"},
				{[]string{"org", "update", id, "--external-id", "x", "--clear-external-id"}, 2, "not both"},
				{[]string{"org", "update", "org_01EHZNVPK3SFK441A1RGBFSHRT", "--name", "X"}, 1, "no organization"},
				{[]string{"org", "update", id, "--name", "Acme, Inc.", "--external-id", "acme-2"}, 0, "Updated organization " + id},
				{[]string{"org", "update", id, "--clear-external-id"}, 0, "Updated"},
				{[]string{"org", "delete", id, "--reason", "contract ended"}, 0, "Deleted organization " + id},
				{[]string{"org", "delete", id}, 1, "was deleted"},
				{[]string{"org", "update", id, "--name", "Back"}, 1, "no organization"},
			}
			for _, s := range steps {
				code, stdout, stderr := trail(s.args...)
				if code != s.code || !strings.Contains(stdout+stderr, s.contains) {
					t.Fatalf("trail %s: exit %d\n%s%s\nwant exit %d containing %q", strings.Join(s.args, " "), code, stdout, stderr, s.code, s.contains)
				}
			}
			st, err := openStore(ctx, sf)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			d, err := st.OrganizationDeletion(ctx, id)
			if err != nil || d.Name != "Acme, Inc." || d.Reason != "contract ended" {
				t.Errorf("deletion record %+v, %v", d, err)
			}
			page, err := st.ListAPIKeys(ctx, store.ListParams{Limit: 100, OrganizationID: id})
			if err != nil || len(page.Data) != 1 || page.Data[0].RevokedAt.IsZero() {
				t.Errorf("the organization's key: %+v, %v; want it revoked", page.Data, err)
			}
		})
	}
}
