package event

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.record from the current encoder")

// goldenAccepted is what acceptance assigns in every golden record.
var goldenAccepted = Accepted{
	ID:             "evt_01JDGOLDEN0000000000000000",
	OrganizationID: "org_golden",
	Seq:            7,
	ReceivedAt:     time.Date(2026, 11, 25, 18, 43, 10, 123e6, time.UTC),
}

// goldenNow is the server clock of the golden tests.
var goldenNow = time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)

// TestGolden pins the canonical record format: each testdata/golden/NAME.json
// request body must encode to exactly NAME.record (the record plus a newline,
// so the files read well). These bytes are Merkle leaves; a change here breaks
// every existing log, so -update is for new cases, not for making a diff go away.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			org, d, err := ParseCreate(body, goldenNow, DefaultLimits())
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if org != goldenAccepted.OrganizationID {
				t.Fatalf("organization_id %q", org)
			}
			got := append(AppendRecord(nil, goldenAccepted, d.Tail), '\n')
			path := strings.TrimSuffix(in, ".json") + ".record"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("record differs from %s\n got %s\nwant %s", path, got, want)
			}
			checkRoundTrip(t, got[:len(got)-1])
		})
	}
}
