package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

// memTree is an in-memory RFC 6962 tree, for building checkpoints and
// proofs in tests.
type memTree struct {
	hashes []tlog.Hash
	size   int64
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// add appends n records whose contents start with tag.
func (m *memTree) add(t testing.TB, tag string, n int) {
	t.Helper()
	for range n {
		hs, err := tlog.StoredHashes(m.size, []byte(fmt.Sprintf("%s-%d", tag, m.size)), m)
		if err != nil {
			t.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
		m.size++
	}
}

func (m *memTree) root(t testing.TB, size int64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(size, m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (m *memTree) proof(t testing.TB, from, to int64) tlog.TreeProof {
	t.Helper()
	if from == 0 || from == to {
		return nil
	}
	p, err := tlog.ProveTree(to, from, m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testLog is a log signing with a ledger.Signer.
type testLog struct {
	signer *ledger.Signer
	origin string
	tree   memTree
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{signer: s, origin: origin}
}

func (l *testLog) checkpoint(t testing.TB, size int64) []byte {
	t.Helper()
	msg, err := l.signer.Sign(ledger.Checkpoint{Origin: l.origin, Size: size, Hash: l.tree.root(t, size)})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func newTestSigner(t testing.TB, name string) *Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func post(t testing.TB, h http.Handler, body []byte) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/add-checkpoint", bytes.NewReader(body)))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestServerAddCheckpoint(t *testing.T) {
	log := newTestLog(t, "trail.example/org_1")
	log.tree.add(t, "a", 20)
	other := newTestLog(t, "trail.example/org_1") // same origin, another key
	other.tree.add(t, "b", 20)
	fork := newTestLog(t, "trail.example/org_1")
	fork.signer = log.signer // the log's own key, another history
	fork.tree.add(t, "a", 5)
	fork.tree.add(t, "fork", 15)

	ws := newTestSigner(t, "witness.example")
	srv, err := OpenServer(t.TempDir(), ws, []LogConfig{{Origin: "trail.example", Prefix: true, Verifier: log.signer.Verifier()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	req := func(old int64, proof tlog.TreeProof, note []byte) []byte { return formatAddRequest(old, proof, note) }
	// The steps run in order against one witness state.
	steps := []struct {
		name   string
		body   []byte
		status int
		answer string // expected body, when not 200
	}{
		{"malformed: no blank line", []byte("old 0\n"), 400, ""},
		{"malformed: leading zero", []byte("old 05\n\n" + string(log.checkpoint(t, 5))), 400, ""},
		{"malformed: bad proof hash", []byte("old 0\nnot-a-hash\n\n" + string(log.checkpoint(t, 5))), 400, ""},
		{"unknown origin", req(0, nil, newTestLog(t, "elsewhere.example/x").checkpoint(t, 0)), 404, ""},
		{"origin deeper than the prefix", req(0, nil, func() []byte {
			l := newTestLog(t, "trail.example/a/b")
			l.signer = log.signer
			return l.checkpoint(t, 0)
		}()), 404, ""},
		{"signed by another key", req(0, nil, other.checkpoint(t, 5)), 403, ""},
		{"old above size", req(6, nil, log.checkpoint(t, 5)), 400, ""},
		{"first checkpoint with a proof", req(0, log.tree.proof(t, 3, 5), log.checkpoint(t, 5)), 422, ""},
		{"first checkpoint", req(0, nil, log.checkpoint(t, 5)), 200, ""},
		{"stale old size", req(0, nil, log.checkpoint(t, 10)), 409, "5\n"},
		{"wrong old size", req(3, log.tree.proof(t, 3, 10), log.checkpoint(t, 10)), 409, "5\n"},
		{"bad proof", req(5, log.tree.proof(t, 4, 10), log.checkpoint(t, 10)), 422, ""},
		{"consistent", req(5, log.tree.proof(t, 5, 10), log.checkpoint(t, 10)), 200, ""},
		{"same checkpoint again", req(10, nil, log.checkpoint(t, 10)), 200, ""},
		{"fork at the same size", req(10, nil, fork.checkpoint(t, 10)), 422, ""},
		{"fork with its own proof", req(10, fork.tree.proof(t, 10, 20), fork.checkpoint(t, 20)), 422, ""},
		{"rollback", req(10, nil, log.checkpoint(t, 5)), 400, ""},
		{"consistent after the refusals", req(10, log.tree.proof(t, 10, 20), log.checkpoint(t, 20)), 200, ""},
	}
	for _, s := range steps {
		code, body := post(t, srv, s.body)
		if code != s.status {
			t.Fatalf("%s: status %d (%q), want %d", s.name, code, body, s.status)
		}
		if s.answer != "" && body != s.answer {
			t.Errorf("%s: body %q, want %q", s.name, body, s.answer)
		}
		if code != 200 {
			continue
		}
		// The answer is signature lines that verify on the checkpoint.
		_, n, _ := bytes.Cut(s.body, []byte("\n\n"))
		opened, err := note.Open(append(append([]byte{}, n...), body...), note.VerifierList(ws.Verifier()))
		if err != nil {
			t.Fatalf("%s: cosignature does not verify: %v\n%s", s.name, err, body)
		}
		if len(opened.Sigs) != 1 || !strings.HasPrefix(body, "— witness.example ") {
			t.Errorf("%s: want one cosignature line, got %q", s.name, body)
		}
	}

	// The monitoring endpoint serves the newest cosigned checkpoint.
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+originHash(log.origin)+"/checkpoint", nil))
	if rec.Code != 200 {
		t.Fatalf("GET checkpoint: %d", rec.Code)
	}
	ck, err := ledger.ParseCheckpoint(rec.Body.Bytes(), log.signer.Verifier())
	if err != nil || ck.Size != 20 {
		t.Fatalf("GET checkpoint: %+v, %v", ck, err)
	}
	if _, err := note.Open(rec.Body.Bytes(), note.VerifierList(ws.Verifier())); err != nil {
		t.Errorf("GET checkpoint: no cosignature: %v", err)
	}
}

// TestServerStatePersists: a restarted witness remembers what it cosigned.
func TestServerStatePersists(t *testing.T) {
	dir := t.TempDir()
	log := newTestLog(t, "trail.example/org_1")
	log.tree.add(t, "a", 7)
	ws, err := LoadOrCreateSigner(dir, "witness.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := []LogConfig{{Origin: "trail.example/org_1", Verifier: log.signer.Verifier()}}
	srv, err := OpenServer(dir, ws, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, srv, formatAddRequest(0, nil, log.checkpoint(t, 7))); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	srv.Close()
	ws2, err := LoadOrCreateSigner(dir, "another-name")
	if err != nil {
		t.Fatal(err)
	}
	if ws2.Verifier().String() != ws.Verifier().String() {
		t.Fatalf("key changed on restart: %s, then %s", ws.Verifier(), ws2.Verifier())
	}
	srv, err = OpenServer(dir, ws2, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if code, body := post(t, srv, formatAddRequest(0, nil, log.checkpoint(t, 7))); code != 409 || body != "7\n" {
		t.Fatalf("after restart: %d %q, want 409 \"7\\n\"", code, body)
	}
}

func TestParseVerifierKey(t *testing.T) {
	s := newTestSigner(t, "w.example")
	good := s.Verifier().String()
	tests := []struct {
		key string
		ok  bool
	}{
		{good, true},
		{strings.Replace(good, "w.example", "x.example", 1), false}, // key id no longer matches
		{"w.example+00000000", false},
		{"w.example+zzzzzzzz+AAAA", false},
		{newTestLog(t, "o").signer.VerifierKey(), false}, // an Ed25519 note key (type 0x01), not a cosigner key
	}
	for _, tt := range tests {
		_, err := ParseVerifierKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ParseVerifierKey(%q): err %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

// TestServerConcurrent: requests racing on one origin cannot roll its state
// back (exactly one of several from the same old size wins), and requests
// for many origins at once are all stored.
func TestServerConcurrent(t *testing.T) {
	log := newTestLog(t, "trail.example/org_race")
	log.tree.add(t, "a", 40)
	ws := newTestSigner(t, "witness.example")
	dir := t.TempDir()
	srv, err := OpenServer(dir, ws, []LogConfig{{Origin: "trail.example", Prefix: true, Verifier: log.signer.Verifier()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, srv, formatAddRequest(0, nil, log.checkpoint(t, 10))); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	bodies := make([][]byte, 20)
	for i := range bodies {
		size := int64(11 + i)
		bodies[i] = formatAddRequest(10, log.tree.proof(t, 10, size), log.checkpoint(t, size))
	}
	codes := make([]int, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = post(t, srv, b)
		}()
	}
	// Meanwhile, 30 other logs' first checkpoints.
	others := make([]*testLog, 30)
	for i := range others {
		others[i] = newTestLog(t, fmt.Sprintf("trail.example/org_%d", i))
		others[i].signer = log.signer
		others[i].tree.add(t, "o", 3+i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := post(t, srv, formatAddRequest(0, nil, others[i].checkpoint(t, int64(3+i)))); code != 200 {
				t.Errorf("org_%d: %d %s", i, code, body)
			}
		}()
	}
	wg.Wait()
	won := -1
	for i, c := range codes {
		switch c {
		case 200:
			if won >= 0 {
				t.Fatalf("two requests from old size 10 were both cosigned (sizes %d and %d)", 11+won, 11+i)
			}
			won = i
		case 409:
		default:
			t.Fatalf("request %d: status %d", i, c)
		}
	}
	if won < 0 {
		t.Fatal("no request won")
	}
	srv.Close()
	// The stored state, read afresh, is the winner's, and every other log's.
	srv, err = OpenServer(dir, ws, []LogConfig{{Origin: "trail.example", Prefix: true, Verifier: log.signer.Verifier()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if code, body := post(t, srv, formatAddRequest(0, nil, log.checkpoint(t, 40))); code != 409 || body != fmt.Sprintf("%d\n", 11+won) {
		t.Fatalf("after restart: %d %q, want 409 naming %d", code, body, 11+won)
	}
	for i, o := range others {
		if code, body := post(t, srv, formatAddRequest(0, nil, o.checkpoint(t, int64(3+i)))); code != 409 || body != fmt.Sprintf("%d\n", 3+i) {
			t.Fatalf("org_%d after restart: %d %q", i, code, body)
		}
	}
}

// TestServerKeyRotation: a witness configured with a log's old and new
// keys (one line each) keeps cosigning across the log's rotation: before,
// during the overlap (both signatures), and after the old key retired.
func TestServerKeyRotation(t *testing.T) {
	log := newTestLog(t, "trail.example/org_1")
	log.tree.add(t, "a", 30)
	oldKey := log.signer
	newKey := newTestLog(t, "trail.example/org_1").signer
	stranger := newTestLog(t, "trail.example/org_1").signer
	signed := func(size int64, keys ...*ledger.Signer) []byte {
		msg, err := ledger.Signers(keys).Sign(ledger.Checkpoint{Origin: log.origin, Size: size, Hash: log.tree.root(t, size)})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	for _, tc := range []struct {
		name string
		keys []*ledger.Signer // configured for the log
	}{
		{"one line per key", []*ledger.Signer{oldKey, newKey}},
		{"a key listed twice", []*ledger.Signer{oldKey, newKey, oldKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg []LogConfig
			for _, k := range tc.keys {
				lc, err := ParseLogConfig("trail.example/* " + k.VerifierKey())
				if err != nil {
					t.Fatal(err)
				}
				cfg = append(cfg, lc)
			}
			srv, err := OpenServer(t.TempDir(), newTestSigner(t, "witness.example"), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			for _, s := range []struct {
				name   string
				body   []byte
				status int
			}{
				{"old key", formatAddRequest(0, nil, signed(10, oldKey)), 200},
				{"overlap", formatAddRequest(10, log.tree.proof(t, 10, 15), signed(15, oldKey, newKey)), 200},
				{"new key after retirement", formatAddRequest(15, log.tree.proof(t, 15, 20), signed(20, newKey)), 200},
				{"a key not configured", formatAddRequest(20, log.tree.proof(t, 20, 25), signed(25, stranger)), 403},
				{"new key again", formatAddRequest(20, log.tree.proof(t, 20, 30), signed(30, newKey)), 200},
			} {
				if code, body := post(t, srv, s.body); code != s.status {
					t.Fatalf("%s: status %d (%q), want %d", s.name, code, body, s.status)
				}
			}
		})
	}
}
