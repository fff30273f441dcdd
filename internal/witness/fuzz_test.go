package witness

import (
	"testing"

	"github.com/trailaudit/trail/internal/ledger"
)

// FuzzAddCheckpoint: whatever the body, the witness answers with one of the
// protocol's statuses (never 500, never a panic), and cosigns only a
// checkpoint consistent with what it cosigned before.
func FuzzAddCheckpoint(f *testing.F) {
	log := newTestLog(f, "trail.example/org_fuzz")
	log.tree.add(f, "a", 20)
	ws := newTestSigner(f, "witness.example")
	srv, err := OpenServer(f.TempDir(), ws, []LogConfig{{Origin: "trail.example", Prefix: true, Verifier: log.signer.Verifier()}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Add(formatAddRequest(0, nil, log.checkpoint(f, 5)))
	f.Add(formatAddRequest(5, log.tree.proof(f, 5, 12), log.checkpoint(f, 12)))
	f.Add(formatAddRequest(12, log.tree.proof(f, 12, 20), log.checkpoint(f, 20)))
	f.Add([]byte("old 0\n\n"))
	f.Add([]byte("old 18446744073709551616\n\ntrail.example/org_fuzz\n1\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, answer := post(t, srv, body)
		switch code {
		case 200, 400, 403, 404, 409, 422:
		default:
			t.Fatalf("status %d (%q) for %q", code, answer, body)
		}
		if code != 200 {
			return
		}
		// Anything cosigned is a checkpoint of the one true history.
		req, err := parseAddRequest(body)
		if err != nil {
			t.Fatalf("cosigned a malformed request %q", body)
		}
		noteBody, _, _ := splitNote(req.Note)
		ck, err := ledger.ParseCheckpointBody(noteBody)
		if err != nil || ck.Size > log.tree.size || ck.Hash != log.tree.root(t, ck.Size) {
			t.Fatalf("cosigned a checkpoint not of the log's history: %q", req.Note)
		}
	})
}
