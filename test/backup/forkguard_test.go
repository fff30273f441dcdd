package backup_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/replicate"
	"github.com/trailaudit/trail/internal/trailtest"
)

// TestOldDataDirectoryRefused: the embedded deployment's data directory is
// its database, so the database's own record of the checkpoints signed goes
// back in time with a data directory restored from an old copy. Trail then
// checks the log against what outsiders hold: with --replicate, the
// replica's record of published checkpoints. The copy, started against the
// replica that holds a newer published checkpoint, refuses the log, saying
// which checkpoint it lacks, and acknowledges no event into it.
func TestOldDataDirectoryRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts trail serve processes")
	}
	replicaDir := filepath.Join(t.TempDir(), "replica")
	r := replica{url: "file://" + replicaDir}
	data := filepath.Join(t.TempDir(), "data")
	srv := trailtest.Start(t, trailtest.Options{Data: data, Args: r.args(), Env: env()})
	org := createOrg(t, srv)
	_, base := waitSize(t, srv, org, 1)
	if !send(t, srv, org, 50) {
		t.Fatal("events refused")
	}
	waitSize(t, srv, org, base+50)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "old")
	if err := os.CopyFS(old, os.DirFS(data)); err != nil {
		t.Fatal(err)
	}

	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: r.args(), Env: env()})
	if !send(t, srv, org, 100) {
		t.Fatal("events refused")
	}
	waitSize(t, srv, org, base+150)
	if err := srv.Stop(t); err != nil {
		t.Fatal(err)
	}

	// The old copy put back in place of the data directory.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(data, os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	// The copy's own records of what was signed (the database's and the
	// signed-checkpoints file) went back in time with it: only the
	// replica's published.json can tell.
	srv = trailtest.Start(t, trailtest.Options{Data: data, Args: r.args(), Env: env()})
	want := "replica's record of published checkpoints (published.json) holds a checkpoint of size " + strconv.FormatInt(base+150, 10)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(srv.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the old data directory was not refused (%q):\n%s", want, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if send(t, srv, org, 1) {
		t.Error("an event was acknowledged into the refused log")
	}
	// The copy publishes the older checkpoints it holds; the replica's
	// record of publication must not go back with them, or the next
	// start (or a restore) would no longer see what outsiders hold.
	raw, err := os.ReadFile(filepath.Join(replicaDir, replicate.PublishedFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec replicate.Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	for _, l := range rec.Logs {
		if l.OrganizationID == org && l.Size < base+150 {
			t.Errorf("the record of published checkpoints went back to size %d of %s (published: %d)", l.Size, org, base+150)
		}
	}
	if _, size := checkpoint(t, srv, org); size > base+50 {
		t.Errorf("serves a checkpoint of size %d from the old copy of size %d", size, base+50)
	}
}
