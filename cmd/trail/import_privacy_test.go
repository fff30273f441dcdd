package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/trailtest"
)

// `trail import` applies the organization's field policy, as ingest does:
// an imported history must not store what the API would not keep.
func TestImportAppliesFieldPolicy(t *testing.T) {
	export := filepath.Join(trailtest.ModuleRoot(), "test", "sdk", "testdata", "workos-audit-log-export.csv")
	const org = "org_01EHZNVPK3SFK441A1RGBFSHRT"
	for _, backend := range []struct {
		name    string
		storage func(t *testing.T) *storageFlags
	}{
		{"sqlite", func(t *testing.T) *storageFlags { return &storageFlags{Data: t.TempDir()} }},
		{"postgres", func(t *testing.T) *storageFlags { return &storageFlags{Data: t.TempDir(), Database: pgtest.New(t)} }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ctx := t.Context()
			sf := backend.storage(t)
			storage := []string{"--data", sf.Data}
			if sf.Database != "" {
				storage = append(storage, "--database", sf.Database)
			}
			trail := func(args ...string) (int, string) {
				t.Helper()
				var stdout, stderr bytes.Buffer
				code := run(ctx, append(append([]string{args[0]}, storage...), args[1:]...), &stdout, &stderr)
				return code, stdout.String() + stderr.String()
			}
			if code, out := trail("migrate"); code != 0 {
				t.Fatalf("trail migrate: %d %s", code, out)
			}
			orgs := filepath.Join(t.TempDir(), "orgs.json")
			if err := os.WriteFile(orgs, []byte(workosPage), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run(ctx, append(append([]string{"org", "import"}, storage...), orgs), &stdout, &stderr); code != 0 {
				t.Fatalf("trail org import: %d %s", code, stderr.String())
			}
			keys, err := keyring.Generate()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sf.Data, keyring.FileName), []byte(keys.String()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := openStore(ctx, sf)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.SetPrivacyPolicy(ctx, org, []byte(`{"fields":{"actor.id":"hmac","actor.name":"redact","context.location":"redact"}}`), time.Now()); err != nil {
				t.Fatal(err)
			}
			if code, out := trail("import", "--org", org, export); code != 0 {
				t.Fatalf("trail import: %d %s", code, out)
			}
			page, err := st.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 10, Actions: []string{"user.signed_in"}})
			if err != nil || len(page.Events) == 0 {
				t.Fatalf("imported events: %v %v", page.Events, err)
			}
			rec := string(page.Events[0].Record)
			want := keys.FieldHasher().Hash(org, "user_01GBNJC3MX9ZZJW1FSTF4C5938")
			for _, secret := range []string{"user_01GBNJC3MX9ZZJW1FSTF4C5938", "Jon Smith", "123.123.123.123"} {
				if strings.Contains(rec, secret) {
					t.Errorf("the imported record holds %q: %s", secret, rec)
				}
			}
			if !strings.Contains(rec, want) || !strings.Contains(rec, `"privacy":{"hashed":["actor.id"],"redacted":["actor.name","context.location"]}`) {
				t.Errorf("the imported record is not protected as the policy says (hash %s): %s", want, rec)
			}
		})
	}
}
