package replicas_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/trailtest"
	"github.com/trailaudit/trail/internal/witness"
)

// TestReplicasServeCosignatures: two replicas on one PostgreSQL database ask
// a witness for cosignatures; only the one holding the integrator lease
// sends checkpoints, but the cosignatures are stored in the database, so
// both serve the cosigned checkpoint note.
func TestReplicasServeCosignatures(t *testing.T) {
	c := newCluster(t, 0)
	w := trailtest.StartWitness(t, "", "--name", "w1.example", "--log", "trail.test/log/* "+c.vkey)
	v, err := witness.ParseVerifierKey(w.VerifierKey)
	if err != nil {
		t.Fatalf("witness printed %q: %v", w.VerifierKey, err)
	}
	start := func() *trailtest.Server {
		return trailtest.Start(t, trailtest.Options{Data: t.TempDir(), Args: []string{
			"--database", c.dsn, "--signing-key-file", c.keyFile, "--master-key-file", c.master, "--log-origin", "trail.test/log",
			"--witness", w.URL + " " + w.VerifierKey,
		}})
	}
	a := start()
	b := start()
	var org struct{ ID string }
	if err := json.Unmarshal(c.must(a, "POST", "/organizations", `{"name":"Acme"}`), &org); err != nil {
		t.Fatal(err)
	}
	for n := range 20 {
		c.must(a, "POST", "/audit_logs/events", eventJSON(org.ID, n))
	}
	for _, r := range []*trailtest.Server{a, b} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			ck, note, ok := c.checkpoint(r, org.ID)
			if ok && ck.Size >= 20 { // and the organization's creation
				if good, _ := witness.CheckCosignatures(note, []*witness.Verifier{v}); len(good) == 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s never served a checkpoint of the 20 events cosigned by the witness; last:\n%s\n%s", r.URL, note, r.Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
