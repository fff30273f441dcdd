package ops_test

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/trailtest"
)

// While PostgreSQL is down, a replica's /readyz answers 503 (the operator
// listener says the database is the reason, the public one only its
// status); once it is back, 200 again, and events are accepted.
func TestReadyzDuringDatabaseOutage(t *testing.T) {
	f := newFleet(t)
	srv := f.start(t, trailtest.Binary(t), t.TempDir())
	dumpOnFailure(t, func() []*trailtest.Server { return []*trailtest.Server{srv} })
	orgs := createOrgs(t, srv, 1)
	waitFor(t, "/readyz 200 before the outage", func() bool { code, _ := readyz(srv.URL); return code == 200 })

	up := pgtest.Down(t)
	restarted := false
	defer func() {
		if !restarted {
			up() // the other tests share the server
		}
	}()
	var public string
	waitFor(t, "/readyz 503 while the database is down", func() bool {
		code, body := readyz(srv.URL)
		public = body
		return code == 503
	})
	if !strings.Contains(public, `"unavailable"`) || strings.Contains(public, "database") {
		t.Errorf("public /readyz during the outage: %s; want its status only", public)
	}
	var detail struct {
		Status   string
		Problems map[string]string
	}
	waitFor(t, "the operator /readyz naming the database", func() bool {
		code, body := readyz(srv.MetricsURL)
		return code == 503 && json.Unmarshal([]byte(body), &detail) == nil && detail.Problems["database"] != ""
	})
	t.Logf("operator /readyz during the outage: %v", detail.Problems)

	up()
	restarted = true
	waitFor(t, "/readyz 200 once the database is back", func() bool { code, _ := readyz(srv.URL); return code == 200 })
	tr := newTracker()
	waitFor(t, "an event acknowledged after the outage", func() bool { _, ok := tr.batch(srv.URL, srv.Key, orgs, 1); return ok })
	checkLogs(t, srv, orgs, tr)
}

// On SIGTERM, /readyz answers 503 for the shutdown delay while the
// listener still accepts and serves requests: an event sent then is
// acknowledged and is in the log after a restart.
func TestReadyzDuringShutdownDelay(t *testing.T) {
	data := t.TempDir()
	// The delay outlasts the few requests below by far; nothing is
	// timed: the test stops the server itself afterwards.
	srv := trailtest.Start(t, trailtest.Options{Data: data, Args: []string{"--shutdown-delay", "20s"}})
	dumpOnFailure(t, func() []*trailtest.Server { return []*trailtest.Server{srv} })
	orgs := createOrgs(t, srv, 1)
	if code, body := readyz(srv.URL); code != 200 {
		t.Fatalf("/readyz before SIGTERM: %d %s", code, body)
	}
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz 503 after SIGTERM", func() bool {
		code, body := readyz(srv.URL)
		return code == 503 && strings.Contains(body, "shutting_down")
	})
	if code, body := readyz(srv.MetricsURL); code != 503 {
		t.Errorf("operator /readyz during the shutdown delay: %d %s", code, body)
	}
	tr := newTracker()
	if a, ok := tr.batch(srv.URL, srv.Key, orgs, 3); !ok {
		t.Fatalf("ingest during the shutdown delay: %d %v %s", a.code, a.err, a.body)
	}
	if a := do(srv.URL, "", "GET", "/healthz", nil); a.code != 200 {
		t.Errorf("/healthz during the shutdown delay: %d %v", a.code, a.err)
	}
	if err := srv.Stop(t); err != nil {
		t.Fatalf("trail serve exited with %v after the shutdown delay\n%s", err, srv.Logs())
	}
	again := trailtest.Start(t, trailtest.Options{Data: data})
	checkLogs(t, again, orgs, tr)
}
