package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/trailtest"
)

// `trail import` brings WorkOS's CSV export of an organization into its log,
// on both backends: every event once (a second run stores nothing), with
// its original occurred_at and its WorkOS id in the record; a file with a
// mistake anywhere stores nothing and names each line.
func TestImportCommand(t *testing.T) {
	export, err := os.ReadFile(filepath.Join(trailtest.ModuleRoot(), "test", "sdk", "testdata", "workos-audit-log-export.csv"))
	if err != nil {
		t.Fatal(err)
	}
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
			trail := func(args ...string) (int, string, string) {
				t.Helper()
				words := 1 // the command, and its subcommand if it has one
				if args[0] == "org" {
					words = 2
				}
				full := append(append(append([]string{}, args[:words]...), storage...), args[words:]...)
				var stdout, stderr bytes.Buffer
				code := run(ctx, full, &stdout, &stderr)
				return code, stdout.String(), stderr.String()
			}
			dir := t.TempDir()
			write := func(name, content string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			good := write("export.csv", string(export))
			// The CLI never migrates: the database is created first.
			if code, _, errOut := trail("migrate"); code != 0 {
				t.Fatalf("trail migrate: %d %q", code, errOut)
			}

			if code, _, errOut := trail("import", "--org", org, good); code == 0 || !strings.Contains(errOut, "no organization "+org) {
				t.Fatalf("import into a missing organization: %d %q", code, errOut)
			}
			if code, out, errOut := trail("org", "import", write("orgs.json", workosPage)); code != 0 {
				t.Fatalf("trail org import: %d %q %q", code, out, errOut)
			}

			// Bad files: nothing stored, every problem named by line.
			header := "id,occurred_at,action,actor_id,actor_type,actor_name,targets,location,user_agent,metadata,version\n"
			row := func(id, occurred, action, targets, metadata string) string {
				return id + "," + occurred + "," + action + ",user_1,user,Jon," + targets + ",10.0.0.1,ua," + metadata + ",\n"
			}
			for _, bad := range []struct {
				name, content string
				want          []string
			}{
				{"empty", "", []string{"line 1: the file is empty"}},
				{"no id column", "occurred_at,action,actor_id,actor_type,location\n", []string{`line 1: the header has no "id" column`}},
				{"mistakes on two lines", header +
					row("e1", "2022-09-02T17:14:57.094Z", "user.signed_in", "[]", "") +
					row("e2", "yesterday", "user.signed_in", "[]", "") +
					row("e3", "2022-09-02T17:14:57.094Z", "user.signed_in", `"[{""id"":""t""}]"`, `"{""nested"":{""a"":1}}"`),
					[]string{"line 3: occurred_at: must be an RFC 3339 timestamp", "line 4: targets (targets[0].type): ", "line 4: ", "metadata (metadata.nested)"}},
				{"duplicate id", header + row("e1", "2022-09-02T17:14:57.094Z", "a.b", "[]", "") + row("e1", "2022-09-02T17:14:58.094Z", "a.b", "[]", ""),
					[]string{`line 3: id "e1" is also the id of line 2`}},
				{"empty id", header + row("", "2022-09-02T17:14:57.094Z", "a.b", "[]", ""), []string{"line 2: id is empty"}},
				{"wrong field count", header + "e1,2022-09-02T17:14:57.094Z,a.b\n", []string{"line 2: has 3 fields, the header has 11"}},
				{"targets not JSON", header + row("e1", "2022-09-02T17:14:57.094Z", "a.b", "team_1", ""), []string{"line 2: targets must be a JSON array"}},
				{"bare quote", header + `e1,2022-09-02T17:14:57.094Z,a"b,user_1,user,Jon,[],10.0.0.1,ua,,` + "\n", []string{"line 2: not CSV"}},
			} {
				code, out, errOut := trail("import", "--org", org, write(bad.name+".csv", bad.content))
				if code == 0 || !strings.Contains(errOut, "nothing was imported") {
					t.Errorf("%s: exit %d, %q %q; want a refusal", bad.name, code, out, errOut)
					continue
				}
				for _, w := range bad.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("%s: %q does not say %q", bad.name, errOut, w)
					}
				}
			}
			st, err := openStore(ctx, sf)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if n, err := st.NextSeq(ctx, org); err != nil || n != 1 { // the org import's own audit event
				t.Fatalf("after refused imports the log holds %d events (%v), want only the organization's import", n, err)
			}

			code, out, errOut := trail("import", "--org", org, good)
			if code != 0 || !strings.Contains(out, "Imported 3 into "+org) || !strings.Contains(out, "seq 1–3") ||
				!strings.Contains(out, "the columns seq, received_at") {
				t.Fatalf("trail import: %d %q %q", code, out, errOut)
			}
			code, out, errOut = trail("import", "--org", org, good)
			if code != 0 || !strings.Contains(out, "Imported none") || !strings.Contains(out, "3 were imported before") {
				t.Fatalf("trail import again: %d %q %q", code, out, errOut)
			}

			// The log: the organization's import, three imported events, the
			// import's own audit event; nothing from the second run.
			if n, err := st.NextSeq(ctx, org); err != nil || n != 5 {
				t.Fatalf("log size %d (%v), want 5", n, err)
			}
			page, err := st.SearchEvents(ctx, store.EventQuery{OrganizationID: org, Limit: 10, Order: store.OrderAsc})
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			var imported []*event.Record
			for _, e := range page.Events {
				rec, err := event.ParseRecord(e.Record)
				if err != nil {
					t.Fatal(err)
				}
				actions = append(actions, rec.Action)
				if rec.Imported != nil {
					imported = append(imported, rec)
				}
			}
			if len(imported) != 3 {
				t.Fatalf("%d imported records among %v, want 3", len(imported), actions)
			}
			byID := map[string]*event.Record{}
			for _, r := range imported {
				if r.Imported.Source != "workos" {
					t.Errorf("record %s: imported from %q", r.ID, r.Imported.Source)
				}
				byID[r.Imported.ID] = r
			}
			first := byID["audit_log_event_01GBZK5MP7TD1YCFQHFR22180V"]
			if first == nil || first.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z") != "2022-09-02T17:14:57.094Z" || first.Action != "user.signed_in" ||
				first.Actor.ID != "user_01GBNJC3MX9ZZJW1FSTF4C5938" || first.UserAgent != "Chrome/104.0.0.0" {
				t.Errorf("first imported event: %+v", first)
			}
			second := byID["audit_log_event_01GBZK6Q2T4HJ3KXNYF5Y1QW9R"]
			if second == nil || second.Version != 1 || second.Targets[0].Name != "Q3 plan, draft" || second.Metadata["words"] == nil {
				t.Errorf("second imported event: %+v", second)
			}
			// The export's spreadsheet guard ('=Admin Bot) is not part of the name.
			if third := byID["audit_log_event_01GC0A1B2C3D4E5F6G7H8J9K0M"]; third == nil || third.Actor.Name != "=Admin Bot" {
				t.Errorf("third imported event: %+v", third)
			}
			if !strings.HasSuffix(string(mustEvent(t, st, first.ID)), `,"imported":{"source":"workos","id":"audit_log_event_01GBZK5MP7TD1YCFQHFR22180V"}}`) {
				t.Errorf("record does not end with its import: %s", mustEvent(t, st, first.ID))
			}
			if actions[len(actions)-1] != "trail.events.imported" {
				t.Errorf("actions %v: the import is not audited last", actions)
			}
		})
	}
}

func mustEvent(t *testing.T, st store.Store, id string) []byte {
	t.Helper()
	e, err := st.Event(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Record
}
