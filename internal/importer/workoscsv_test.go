package importer

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/testclock"
)

// readAll reads every row of content, collecting the rows and the problems.
func readAll(t testing.TB, content string, now time.Time) ([]Row, []Problem, error) {
	rd, err := NewReader(strings.NewReader(content), now, event.DefaultLimits())
	if err != nil {
		return nil, nil, err
	}
	var rows []Row
	var problems []Problem
	for {
		row, err := rd.Next()
		if err == io.EOF {
			return rows, problems, nil
		}
		var pe *ProblemsError
		if !errors.As(err, &pe) {
			if err != nil {
				t.Fatalf("Next: %v is not a *ProblemsError", err)
			}
			rows = append(rows, row)
			continue
		}
		problems = append(problems, pe.Problems...)
		if Fatal(err) {
			return rows, problems, nil
		}
	}
}

func TestReaderRows(t *testing.T) {
	now := testclock.Now(t)
	const header = "id,occurred_at,action,actor_id,actor_type,actor_name,targets,location,user_agent,metadata,version\n"
	for _, tc := range []struct {
		name    string
		row     string
		problem string // "" when the row is good
		tail    string // the canonical tail's end, for good rows
	}{
		{"minimal", `e1,2022-09-02T17:14:57.094Z,user.signed_in,u1,user,,,10.0.0.1,,,`,
			"", `"targets":[],"context":{"location":"10.0.0.1"},"imported":{"source":"workos","id":"e1"}`},
		{"everything", `e1,2022-09-02T17:14:57Z,doc.updated,u1,user,Jon,"[{""id"":""d"",""type"":""doc"",""metadata"":{""k"":1}}]",10.0.0.1,ua,"{""b"":true,""a"":""x""}",2`,
			"", `"metadata":{"a":"x","b":true},"imported":{"source":"workos","id":"e1"}`},
		{"spreadsheet guard undone", `e1,2022-09-02T17:14:57Z,a.b,u1,user,'=cmd,,'@home,,,`,
			"", `"actor":{"id":"u1","type":"user","name":"=cmd"},"targets":[],"context":{"location":"@home"},"imported":{"source":"workos","id":"e1"}`},
		{"apostrophe kept when not a guard", `e1,2022-09-02T17:14:57Z,a.b,u1,user,'Neill,,x,,,`,
			"", `"name":"'Neill"`},
		{"bad version", `e1,2022-09-02T17:14:57Z,a.b,u1,user,,,x,,,v2`, `version "v2" must be a whole number`, ""},
		{"zero version", `e1,2022-09-02T17:14:57Z,a.b,u1,user,,,x,,,0`, `version "0" must be a whole number of at least 1`, ""},
		{"missing actor type", `e1,2022-09-02T17:14:57Z,a.b,u1,,,,x,,,`, "actor_type: ", ""},
		{"missing location", `e1,2022-09-02T17:14:57Z,a.b,u1,user,,,,,,`, "location: ", ""},
		{"metadata array", `e1,2022-09-02T17:14:57Z,a.b,u1,user,,,x,,[1],`, "metadata (metadata): ", ""},
		{"far future", `e1,2999-01-01T00:00:00Z,a.b,u1,user,,,x,,,`, "occurred_at: must not be more than", ""},
		{"control character in id", "e\x01,2022-09-02T17:14:57Z,a.b,u1,user,,,x,,,", "id must be at most 200 characters of text", ""},
		{"long id", strings.Repeat("e", 201) + ",2022-09-02T17:14:57Z,a.b,u1,user,,,x,,,", "id must be at most 200", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, problems, err := readAll(t, header+tc.row+"\n", now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if len(problems) > 0 || len(rows) != 1 {
					t.Fatalf("rows %d, problems %v", len(rows), problems)
				}
				if tail := string(rows[0].Draft.Tail); !strings.Contains(tail, tc.tail) {
					t.Fatalf("tail %s\nwant it to contain %s", tail, tc.tail)
				}
				if rows[0].Line != 2 || rows[0].SourceID == "" {
					t.Fatalf("row %+v", rows[0])
				}
				return
			}
			if len(rows) != 0 || len(problems) != 1 || problems[0].Line != 2 || !strings.Contains(problems[0].Msg, tc.problem) {
				t.Fatalf("rows %d, problems %+v; want one problem on line 2 saying %q", len(rows), problems, tc.problem)
			}
		})
	}
}

// A row spanning several lines (a quoted newline) is reported by the line
// it starts on, and so is the row after it.
func TestReaderLines(t *testing.T) {
	content := "id,occurred_at,action,actor_id,actor_type,location,metadata\n" +
		"e1,2022-09-02T17:14:57Z,a.b,u1,user,x,\"{\"\"note\"\":\n\"\"two lines\"\"}\"\n" +
		"e2,2022-09-02T17:14:57Z,a.b,u1,,x,\n"
	rows, problems, err := readAll(t, content, testclock.Now(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Line != 2 || len(problems) != 1 || problems[0].Line != 4 {
		t.Fatalf("rows %+v problems %+v", rows, problems)
	}
}

func TestReaderHeader(t *testing.T) {
	for _, tc := range []struct{ name, header, problem string }{
		{"empty", "", "the file is empty"},
		{"missing action", "id,occurred_at,actor_id,actor_type,location\n", `no "action" column`},
		{"duplicate column", "id,id,occurred_at,action,actor_id,actor_type,location\n", `column "id" appears twice`},
		{"not csv", "id,\"occurred_at\n", "not CSV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tc.header), testclock.Now(t), event.DefaultLimits())
			var pe *ProblemsError
			if !errors.As(err, &pe) || !strings.Contains(pe.Error(), tc.problem) {
				t.Fatalf("NewReader: %v; want %q", err, tc.problem)
			}
		})
	}
	// A byte-order mark, unknown columns and the exporter's own seq and
	// received_at are fine; the latter are reported as not imported.
	rd, err := NewReader(strings.NewReader("\ufeffid,occurred_at,action,actor_id,actor_type,location,seq,received_at,extra\n"), testclock.Now(t), event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rd.Ignored(), ","); got != "extra,seq,received_at" {
		t.Fatalf("Ignored() = %s", got)
	}
}

// The WorkOS export the end-to-end tests import reads cleanly.
func TestReaderTestdata(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "test", "sdk", "testdata", "workos-audit-log-export.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, problems, err := readAll(t, string(raw), testclock.Now(t))
	if err != nil || len(problems) > 0 || len(rows) != 3 {
		t.Fatalf("rows %d problems %v err %v", len(rows), problems, err)
	}
}

// FuzzReader: any file is read without a panic or a hang; every row it
// accepts has a canonical tail that parses back as a record with its
// import, and every problem names a line of the file.
func FuzzReader(f *testing.F) {
	f.Add([]byte("id,occurred_at,action,actor_id,actor_type,actor_name,targets,location,user_agent,metadata,version\n" +
		"e1,2022-09-02T17:14:57.094Z,user.signed_in,u1,user,Jon,\"[{\"\"id\"\":\"\"t\"\",\"\"type\"\":\"\"team\"\"}]\",10.0.0.1,ua,\"{\"\"a\"\":1}\",1\n"))
	f.Add([]byte("id,occurred_at,action,actor_id,actor_type,location\ne1,x,a,b,c,d\n\"e2"))
	f.Add([]byte("\ufeffid,occurred_at,action,actor_id,actor_type,location,seq,received_at\n'=e,2022-09-02T17:14:57Z,a.b,u,user,'-x,1,2\n"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // the fuzz target's own fixed clock: no test asserts a date against it
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Count(string(data), "\n") + 1
		rd, err := NewReader(strings.NewReader(string(data)), now, event.DefaultLimits())
		if err != nil {
			var pe *ProblemsError
			if !errors.As(err, &pe) {
				t.Fatalf("NewReader: %T %v", err, err)
			}
			return
		}
		for {
			row, err := rd.Next()
			if err == io.EOF {
				return
			}
			var pe *ProblemsError
			if errors.As(err, &pe) {
				for _, p := range pe.Problems {
					if p.Line < 0 || p.Line > lines {
						t.Fatalf("problem on line %d of a %d-line file: %s", p.Line, lines, p.Msg)
					}
				}
				if Fatal(err) {
					return
				}
				continue
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			rec := event.AppendRecord(nil, event.Accepted{ID: "evt_1", OrganizationID: "org_1", ReceivedAt: now}, row.Draft.Tail)
			back, err := event.ParseRecord(rec)
			if err != nil {
				t.Fatalf("an accepted row's record does not parse back: %v\n%s", err, rec)
			}
			if back.Imported == nil || back.Imported.ID != row.SourceID || back.Imported.Source != SourceWorkOS {
				t.Fatalf("record %s lost its import", rec)
			}
		}
	})
}
