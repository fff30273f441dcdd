package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/replicate"
)

// TestCheckRestored compares a restored log (checkpoints at 600 and 1,000)
// with records of published checkpoints: behind one is a fork, naming the
// missing seqs; acknowledged beyond the restore is lost, counted.
func TestCheckRestored(t *testing.T) {
	ctx := context.Background()
	signer := newTestSigner(t)
	const org = "org_restore"
	tl := newTestLog(t, signer, org, 600, 400)
	note := func(size int64) string {
		n, err := tl.st.Checkpoint(ctx, org, size)
		if err != nil {
			t.Fatal(err)
		}
		return string(n)
	}
	other := newTestLog(t, signer, org, 600) // another history of the same log
	otherNote, err := other.st.Checkpoint(ctx, org, 600)
	if err != nil {
		t.Fatal(err)
	}
	fake1200 := strings.Replace(note(1000), "\n1000\n", "\n1200\n", 1)

	for _, tc := range []struct {
		name     string
		logs     []replicate.RecordLog
		fork     string // substring of the fork line, "" for none
		lost     int64
		lostLine string
	}{
		{"nothing published", nil, "", 0, ""},
		{"older published", []replicate.RecordLog{{OrganizationID: org, Size: 600, Checkpoint: note(600), Acknowledged: 1000}}, "", 0, ""},
		{"newest published", []replicate.RecordLog{{OrganizationID: org, Size: 1000, Checkpoint: note(1000), Acknowledged: 1000}}, "", 0, ""},
		{"acknowledged beyond", []replicate.RecordLog{{OrganizationID: org, Size: 1000, Checkpoint: note(1000), Acknowledged: 1012}}, "", 12, org + ": 12 (seq 1000–1011)"},
		{"published beyond", []replicate.RecordLog{{OrganizationID: org, Size: 1200, Checkpoint: fake1200, Acknowledged: 1250}},
			org + ": checkpoint of size 1,200 published; the restored log's newest covers 1,000 (seq 1000–1199 missing)", 250, ""},
		{"another history", []replicate.RecordLog{{OrganizationID: org, Size: 600, Checkpoint: string(otherNote), Acknowledged: 600}},
			org + ": the restored tree of size 1,000 does not extend the published checkpoint of size 600", 0, ""},
		{"organization missing", []replicate.RecordLog{{OrganizationID: "org_gone", Size: 5, Checkpoint: strings.Replace(note(600), "\n600\n", "\n5\n", 1), Acknowledged: 7}},
			"org_gone: checkpoint of size 5 published; the restored log's newest covers 0 (seq 0–4 missing)", 7, "org_gone: 7 (seq 0–6)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := checkRestored(ctx, tl.st.Path(), replicate.Record{Logs: tc.logs})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.fork == "" && len(res.forks) > 0:
				t.Errorf("forks %q, want none", res.forks)
			case tc.fork != "" && (len(res.forks) != 1 || !strings.Contains(res.forks[0], tc.fork)):
				t.Errorf("forks %q, want one with %q", res.forks, tc.fork)
			}
			if res.lost != tc.lost {
				t.Errorf("lost %d, want %d", res.lost, tc.lost)
			}
			if tc.lostLine != "" && (len(res.lostBy) != 1 || res.lostBy[0] != tc.lostLine) {
				t.Errorf("lost %q, want %q", res.lostBy, tc.lostLine)
			}
			if res.logs != 1 || res.events != 1000 {
				t.Errorf("restored %d logs, %d events; want 1, 1000", res.logs, res.events)
			}
		})
	}
}

// TestRestoreAndBackupUsage: bad invocations exit 2 naming what is wrong,
// and touch nothing.
func TestRestoreAndBackupUsage(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "trail.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	replica := "file://" + t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", "--data", empty}, "give one of --from"},
		{[]string{"restore", "--data", empty, "--from", replica, "--from-backup", "x"}, "give one of --from"},
		{[]string{"restore", "--data", empty, "--from", "ftp://host/x"}, "want s3://bucket/prefix or file:///path"},
		{[]string{"restore", "--data", empty, "--from", "s3://b/p", "--endpoint", "nope"}, "endpoint \"nope\""},
		{[]string{"restore", "--data", empty, "--from", replica, "--timestamp", "yesterday"}, "--timestamp \"yesterday\""},
		{[]string{"restore", "--data", empty, "--from-backup", "x", "--timestamp", "2026-01-02T15:04:05Z"}, "--timestamp is for --from"},
		{[]string{"restore", "--data", empty, "--from", replica, "--check", replica}, "--check is for --from-backup"},
		{[]string{"restore", "--data", full, "--from", replica}, "is not empty (it holds trail.db)"},
		{[]string{"backup", "--data", empty, filepath.Join(empty, "b")}, "holds no trail.db"},
		{[]string{"backup", "--data", full}, "want one argument"},
		{[]string{"serve", "--data", empty, "--check-config", "--replicate", "s3:///x"}, "--replicate"},
		{[]string{"serve", "--data", empty, "--check-config", "--replicate-endpoint", "http://127.0.0.1:9000"}, "--replicate-endpoint needs --replicate"},
		{[]string{"serve", "--data", empty, "--check-config", "--database", "postgres://u@h/db", "--replicate", replica}, "--replicate is for the embedded SQLite database"},
	} {
		code, _, stderr := runTrail(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("trail %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("refused invocations left %d files in the data directory", len(entries))
	}
	code, _, stderr := runTrail(t, "restore", "--data", filepath.Join(empty, "new"), "--from", replica)
	if code != 1 || !strings.Contains(stderr, "holds no replica of trail.db") {
		t.Errorf("restore from an empty replica: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(empty, "new")); !os.IsNotExist(err) {
		t.Errorf("a failed restore left its data directory behind: %v", err)
	}
}
