package witness

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/pgtest"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/postgres"
	"github.com/trailaudit/trail/internal/store/sqlite"
	"github.com/trailaudit/trail/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCosignaturesServedByEveryServer runs the submitter on one handle of
// a real database and reads the checkpoints through another, as a second
// PostgreSQL replica (or a second process on the SQLite file) would: the
// cosignatures are in the database, so both serve them.
func TestCosignaturesServedByEveryServer(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) (integrating, other store.Backend)
	}{
		{"sqlite", func(t *testing.T) (store.Backend, store.Backend) {
			path := filepath.Join(t.TempDir(), "trail.db")
			return openSQLite(t, path), openSQLite(t, path)
		}},
		{"postgres", func(t *testing.T) (store.Backend, store.Backend) {
			dsn := pgtest.New(t)
			return openPostgres(t, dsn), openPostgres(t, dsn)
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			a, other := b.open(t)
			signer := newLogSigner(t)
			w1 := startWitness(t, "w1.example", signer.Verifier())
			w2 := startWitness(t, "w2.example", signer.Verifier())
			dir := t.TempDir()
			sub, err := NewSubmitter(ctx, dir, a, SubmitterOptions{Witnesses: []Config{w1.config, w2.config}}, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			in, err := ledger.NewIntegrator(a, signer, testPrefix, ledger.Options{DataDir: dir, Interval: 10 * time.Millisecond, Signed: sub.Signed}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			if err := in.Start(runCtx); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); sub.Run(runCtx) }()
			defer func() { in.Stop(); cancel(); <-done }()

			storetest.LedgerAppend(t, a, "org_a", 300)
			in.Wake()
			served := Cosigned(other)
			waitFor(t, "the other server to serve both cosignatures at size 300", func() bool {
				msg, err := served.LatestCheckpoint(ctx, "org_a")
				if err != nil {
					return false
				}
				n, err := note.Open(msg, note.VerifierList(w1.config.Verifier, w2.config.Verifier))
				return err == nil && len(n.Sigs) == 2 && len(n.UnverifiedSigs) == 1 && hasSize(n.Text, 300)
			})
			// The witness sizes are there too, for whichever server
			// integrates next.
			for _, w := range []*testWitness{w1, w2} {
				if size, err := other.WitnessSize(ctx, w.config.Verifier.String(), testPrefix+"/org_a"); err != nil || size != 300 {
					t.Errorf("WitnessSize(%s) = %d, %v; want 300", w.config.Verifier.Name(), size, err)
				}
			}
			// A bundle read through the other server carries them.
			var bundle bytes.Buffer
			if _, err := ledger.WriteBundle(ctx, &bundle, served, "org_a", ledger.BundleOptions{Size: 300}); err != nil {
				t.Fatal(err)
			}
			rep, err := ledger.Verify(&bundle, signer.VerifierKey(), ledger.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if good, bad := CheckCosignatures(rep.Checkpoint, []*Verifier{w1.config.Verifier, w2.config.Verifier}); len(good) != 2 || len(bad) != 0 {
				t.Errorf("the bundle's checkpoint has cosignatures %v valid, %v invalid; want both valid", good, bad)
			}
		})
	}
}

// TestLegacyCosignaturesImported checks that the cosignatures an earlier
// version kept in <data>/witness-cosignatures.db are copied into the
// database on start, and the file set aside.
func TestLegacyCosignaturesImported(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LegacyCosignaturesFile)
	old, err := openDB(path, false)
	if err != nil {
		t.Fatal(err)
	}
	// The tables as earlier versions created them.
	for _, q := range []string{
		`CREATE TABLE cosignatures (org TEXT NOT NULL, size INTEGER NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (org, size, witness)) STRICT`,
		`CREATE TABLE witness_state (witness TEXT NOT NULL, origin TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (witness, origin)) STRICT`,
		`INSERT INTO cosignatures VALUES ('org_a', 5, 'wkey1', '— w1 AAAA' || char(10)), ('org_a', 7, 'wkey1', '— w1 BBBB' || char(10)), ('org_b', 2, 'wkey2', '— w2 CCCC' || char(10))`,
		`INSERT INTO witness_state VALUES ('wkey1', 'trail.test/org_a', 7), ('wkey2', 'trail.test/org_b', 2)`,
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()
	st := newMemStorage()
	signer := newLogSigner(t)
	w := startWitness(t, "w1.example", signer.Verifier())
	if _, err := NewSubmitter(context.Background(), dir, st, SubmitterOptions{Witnesses: []Config{w.config}}, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	checks := []struct {
		org  string
		size int64
		want string
	}{
		{"org_a", 5, "— w1 AAAA\n"},
		{"org_a", 7, "— w1 BBBB\n"},
		{"org_b", 2, "— w2 CCCC\n"},
	}
	for _, c := range checks {
		got, err := st.Cosignatures(ctx, c.org, c.size)
		if err != nil || len(got) != 1 || got[0].Line != c.want {
			t.Errorf("Cosignatures(%s, %d) = %+v, %v; want the line %q", c.org, c.size, got, err, c.want)
		}
	}
	if size, _ := st.WitnessSize(ctx, "wkey1", "trail.test/org_a"); size != 7 {
		t.Errorf("WitnessSize(wkey1, org_a) = %d, want 7", size)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the import: %v", path, err)
	}
	if _, err := os.Stat(path + ".imported"); err != nil {
		t.Errorf("the imported file was not set aside: %v", err)
	}
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hasSize says whether a checkpoint body is of the tree size.
func hasSize(body string, size int64) bool {
	ck, err := ledger.ParseCheckpointBody([]byte(body))
	return err == nil && ck.Size == size
}
