package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// workosPage is a page of WorkOS's list-organizations answer, as
// `curl https://api.workos.com/organizations` or the SDKs' listOrganizations
// return it.
const workosPage = `{
  "object": "list",
  "data": [
    {"object": "organization", "id": "org_01EHZNVPK3SFK441A1RGBFSHRT", "name": "Foo Corp",
     "allow_profiles_outside_organization": false, "domains": [{"object": "organization_domain", "id": "org_domain_01EHZNVPK2QXHMVWCEDQEKY69A", "domain": "foo-corp.com"}],
     "metadata": {"tier": "diamond"}, "external_id": "2fe01467-f7ea-4dd2-8b79-c2b4f56d0191",
     "created_at": "2021-06-25T19:07:33.155Z", "updated_at": "2021-06-25T19:08:33.155Z"},
    {"object": "organization", "id": "org_01EGS4P7QR31EZ4YWD1Z1XA176", "name": "Bar Inc",
     "domains": [], "external_id": null, "created_at": "2021-07-01T10:00:00.000Z", "updated_at": "2021-07-01T10:00:00.000Z"}
  ],
  "list_metadata": {"before": null, "after": null}
}`

// `trail org import` creates WorkOS's organizations under their ids, on
// both backends, once: a second run changes nothing; a bad file imports
// nothing and says where the problem is.
func TestOrgImportCommand(t *testing.T) {
	for _, backend := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return []string{"--data", t.TempDir()} }},
		{"postgres", func(t *testing.T) []string { return []string{"--data", t.TempDir(), "--database", pgtest.New(t)} }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			ctx := t.Context()
			storage := backend.args(t)
			trail := func(args ...string) (int, string, string) {
				t.Helper()
				full := append(append(append([]string{}, args[:2]...), storage...), args[2:]...)
				var stdout, stderr bytes.Buffer
				code := run(ctx, full, &stdout, &stderr)
				return code, stdout.String(), stderr.String()
			}
			// The CLI never migrates: the database is created first.
			if code := run(ctx, append([]string{"migrate"}, storage...), &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
				t.Fatalf("trail migrate: exit %d", code)
			}
			dir := t.TempDir()
			write := func(name, content string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			page := write("orgs.json", workosPage)

			code, out, errOut := trail("org", "import", page)
			if code != 0 || !strings.Contains(out, "Imported 2 organizations; 0 were already here.") {
				t.Fatalf("trail org import: %d %q %q", code, out, errOut)
			}
			code, out, errOut = trail("org", "import", page)
			if code != 0 || !strings.Contains(out, "Imported 0 organizations; 2 were already here.") {
				t.Fatalf("trail org import again: %d %q %q", code, out, errOut)
			}

			sf := &storageFlags{}
			fsArgs := storage
			sf.Data = fsArgs[1]
			if len(fsArgs) > 2 {
				sf.Database = fsArgs[3]
			}
			st, err := openStore(ctx, sf)
			if err != nil {
				t.Fatal(err)
			}
			foo, err := st.Organization(ctx, "org_01EHZNVPK3SFK441A1RGBFSHRT")
			if err != nil || foo.Name != "Foo Corp" || foo.ExternalID != "2fe01467-f7ea-4dd2-8b79-c2b4f56d0191" ||
				foo.CreatedAt.Format("2006-01-02T15:04:05.000Z") != "2021-06-25T19:07:33.155Z" {
				t.Errorf("imported Foo Corp = %+v, %v", foo, err)
			}
			if byExt, err := st.OrganizationByExternalID(ctx, foo.ExternalID); err != nil || byExt.ID != foo.ID {
				t.Errorf("Foo Corp by its external id = %+v, %v", byExt, err)
			}
			for _, id := range []string{"org_01EHZNVPK3SFK441A1RGBFSHRT", "org_01EGS4P7QR31EZ4YWD1Z1XA176"} {
				// One audit event in the organization's log, from the
				// first run only.
				if n, err := st.NextSeq(ctx, id); err != nil || n != 1 {
					t.Errorf("%s's log holds %d events (%v), want the import's one", id, n, err)
				}
			}
			sysBefore, err := st.NextSeq(ctx, store.SystemOrganizationID)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()

			for _, c := range []struct {
				name, content, want string
			}{
				{"not JSON", `{"data":[`, "is not WorkOS's list-organizations JSON"},
				{"no data", `{"object":"list"}`, "want an object with \"data\""},
				{"a bad id", `{"data":[{"object":"organization","id":"org_new1","name":"New"},{"object":"organization","id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":""}]}`,
					"data[0]: id must be a WorkOS organization id"},
				{"an empty name", `{"data":[{"object":"organization","id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":""}]}`, "data[0]: name must be 1 to 200 characters"},
				{"not organizations", `{"data":[{"object":"user","id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":"x"}]}`, `object is "user"`},
				{"an id twice", `{"data":[{"id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":"x"},{"id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":"y"}]}`, "is listed twice"},
				{"an external id taken here", `{"data":[{"id":"org_01EGS4P7QR31EZ4YWD1Z1XA177","name":"x"},{"id":"org_01EGS4P7QR31EZ4YWD1Z1XA178","name":"y","external_id":"2fe01467-f7ea-4dd2-8b79-c2b4f56d0191"}]}`,
					"is already org_01EHZNVPK3SFK441A1RGBFSHRT's here"},
			} {
				t.Run(c.name, func(t *testing.T) {
					code, out, errOut := trail("org", "import", write(strings.ReplaceAll(c.name, " ", "_")+".json", c.content))
					if code == 0 || !strings.Contains(errOut, c.want) {
						t.Errorf("exit %d, stdout %q, stderr %q; want a failure saying %q", code, out, errOut, c.want)
					}
				})
			}
			if code, _, errOut := trail("org", "import"); code != 2 || !strings.Contains(errOut, "name the file") {
				t.Errorf("trail org import without a file: %d %q", code, errOut)
			}
			// Nothing of the refused files was created or recorded.
			st, err = openStore(ctx, sf)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Organization(ctx, "org_01EGS4P7QR31EZ4YWD1Z1XA177"); err == nil {
				t.Error("an organization of a refused file was created")
			}
			if after, err := st.NextSeq(ctx, store.SystemOrganizationID); err != nil || after != sysBefore {
				t.Errorf("org_system's log went from %d to %d events (%v) by refused imports", sysBefore, after, err)
			}
		})
	}
}
