package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/testclock"
)

const lgPrefix = "trail.test"

var lgEpoch = testclock.Must().Add(-time.Hour)

func lgOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lgAppend appends n events to org, creating it first if needed.
func lgAppend(t *testing.T, s *Store, org string, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.LogState(ctx, org); errors.Is(err, store.ErrNotFound) {
		if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: lgEpoch, UpdatedAt: lgEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := event.ParseEvent([]byte(`{"action":"user.signed_in","occurred_at":"`+testclock.Format(lgEpoch.Add(-877*time.Millisecond))+`",`+
		`"actor":{"id":"user_1","type":"user"},"targets":[{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7"}}`),
		lgEpoch, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for n > 0 {
		k := min(n, 4096)
		var sub store.Submission
		now := lgEpoch
		for range k {
			sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
		}
		res, err := s.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append: %v %v", err, res[0].Err)
		}
		n -= k
	}
}

func lgSigner(t *testing.T) *ledger.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, lgPrefix)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lgIntegrate runs an integrator until it has nothing left to do and stops
// it; it returns the integrator (for Refused) and what it logged.
func lgIntegrate(t *testing.T, s *Store, signer *ledger.Signer, dir string) (*ledger.Integrator, string) {
	t.Helper()
	var logs bytes.Buffer
	i, err := ledger.NewIntegrator(s, signer, lgPrefix, ledger.Options{DataDir: dir, Interval: time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = i.WaitIdle(ctx)
	i.Stop()
	if err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
	return i, logs.String()
}

// TestLedgerQueryPlans checks that the integrator's queries use indexes:
// the (organization_id, seq) index for records and the partial index for
// pending logs.
func TestLedgerQueryPlans(t *testing.T) {
	s := lgOpen(t, filepath.Join(t.TempDir(), "trail.db"))
	for _, tc := range []struct {
		query string
		args  []any
		uses  string
	}{
		{`SELECT seq, record FROM events WHERE organization_id = ? AND seq >= ? AND seq < ? ORDER BY seq LIMIT ?`,
			[]any{"a", 0, 9, 10}, "USING INDEX events_org_seq (organization_id=? AND seq>? AND seq<?)"},
		{`SELECT id, integrated_size, next_seq FROM organizations WHERE unintegrated AND next_seq > integrated_size`,
			nil, "organizations_unintegrated"},
		{`SELECT level, n, data FROM ledger_tiles WHERE organization_id = ? AND (level, n) IN (VALUES (?, ?), (?, ?), (?, ?))`,
			[]any{"a", 0, 1, 1, 0, 2, 0}, "USING PRIMARY KEY (organization_id=? AND level=? AND n=?)"},
	} {
		rows, err := s.read.Query(`EXPLAIN QUERY PLAN `+tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan.WriteString(detail + "\n")
		}
		rows.Close()
		if !strings.Contains(plan.String(), tc.uses) {
			t.Errorf("%s\nplan does not use %s:\n%s", tc.query, tc.uses, plan.String())
		}
	}
}

func TestLedgerMigrationDown(t *testing.T) {
	ctx := context.Background()
	s := lgOpen(t, filepath.Join(t.TempDir(), "trail.db"))
	p, err := Migrator(s.write)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatalf("down to 1: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

// lgSetup makes a database with 1,000 integrated records of org and returns
// the store, its path, the signer and the data directory.
func lgSetup(t *testing.T, org string) (*Store, string, *ledger.Signer, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "trail.db")
	s := lgOpen(t, path)
	lgAppend(t, s, org, 1000)
	signer := lgSigner(t)
	lgIntegrate(t, s, signer, dir)
	return s, path, signer, dir
}

func lgVerify(t *testing.T, s *Store, org string, signer *ledger.Signer) ledger.Report {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ledger.WriteBundle(context.Background(), &buf, s, org, ledger.BundleOptions{}); err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{})
	if err != nil && !errors.Is(err, ledger.ErrVerificationFailed) {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// TestLedgerTamperedDatabase alters the SQLite file directly, through its own
// connection as an attacker with file access would, and checks that a bundle
// written from it fails verification saying what and where.
func TestLedgerTamperedDatabase(t *testing.T) {
	const org = "org_tamper"
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB)
		kind    ledger.ProblemKind
		details []string
	}{
		{"one byte of a record changed", func(t *testing.T, db *sql.DB) {
			var rec []byte
			if err := db.QueryRow(`SELECT record FROM events WHERE organization_id = ? AND seq = 37`, org).Scan(&rec); err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(rec, []byte("signed_in"))
			rec[i] = 'S'
			lgExec(t, db, `UPDATE events SET record = ? WHERE organization_id = ? AND seq = 37`, rec, org)
		}, ledger.ProblemAltered, []string{"seq 37 (line "}},
		{"record deleted", func(t *testing.T, db *sql.DB) {
			lgExec(t, db, `DELETE FROM events WHERE organization_id = ? AND seq = 37`, org)
		}, ledger.ProblemMissing, []string{"seq 37 is not in the bundle"}},
		{"two records' bodies swapped", func(t *testing.T, db *sql.DB) {
			var r10, r20 []byte
			db.QueryRow(`SELECT record FROM events WHERE organization_id = ? AND seq = 10`, org).Scan(&r10)
			db.QueryRow(`SELECT record FROM events WHERE organization_id = ? AND seq = 20`, org).Scan(&r20)
			lgExec(t, db, `UPDATE events SET record = ? WHERE organization_id = ? AND seq = 10`, r20, org)
			lgExec(t, db, `UPDATE events SET record = ? WHERE organization_id = ? AND seq = 20`, r10, org)
		}, ledger.ProblemReordered, []string{"holds seq 20 where seq 10 belongs", "holds seq 10 where seq 20 belongs"}},
		{"log truncated", func(t *testing.T, db *sql.DB) {
			lgExec(t, db, `DELETE FROM events WHERE organization_id = ? AND seq >= 990`, org)
			lgExec(t, db, `UPDATE organizations SET next_seq = 990 WHERE id = ?`, org)
		}, ledger.ProblemTruncated, []string{"the last 10 records (seq 990–999)"}},
		{"checkpoint replaced, signed by another key", func(t *testing.T, db *sql.DB) {
			var msg []byte
			if err := db.QueryRow(`SELECT note FROM ledger_checkpoints WHERE organization_id = ? AND size = 1000`, org).Scan(&msg); err != nil {
				t.Fatal(err)
			}
			forged, err := note.Sign(&note.Note{Text: textOf(t, msg)}, lgSignerRaw(t))
			if err != nil {
				t.Fatal(err)
			}
			lgExec(t, db, `UPDATE ledger_checkpoints SET note = ? WHERE organization_id = ? AND size = 1000`, string(forged), org)
		}, ledger.ProblemSignature, []string{"is not signed by key " + lgPrefix}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path, signer, _ := lgSetup(t, org)
			if rep := lgVerify(t, s, org, signer); !rep.OK() {
				t.Fatalf("before tampering: %s", rep.String())
			}
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, db)
			db.Close()
			rep := lgVerify(t, s, org, signer)
			if rep.OK() {
				t.Fatalf("tampering went unnoticed: %s", rep.String())
			}
			for _, d := range tc.details {
				found := false
				for _, p := range rep.Problems {
					found = found || p.Kind == tc.kind && strings.Contains(p.Detail, d)
				}
				if !found {
					t.Errorf("no %q problem saying %q:\n%s", tc.kind, d, rep.String())
				}
			}
			t.Log(rep.String())
		})
	}
}

func lgExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// textOf returns the text of a signed note, signatures removed.
func textOf(t *testing.T, msg []byte) string {
	t.Helper()
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("not a note: %q", msg)
	}
	return string(msg[:i+1])
}

// lgSignerRaw is a note signer with the same name as the real key but
// another key.
func lgSignerRaw(t *testing.T) note.Signer {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, lgPrefix)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLedgerRestoredBackupRefused restores an older copy of the database file
// under a server that has since signed larger checkpoints: it must refuse to
// sign for the organization, and say why.
func TestLedgerRestoredBackupRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  int // events appended after the restore
		reason string
	}{
		{"events missing", 0, "restored from an older backup"},
		{"other events written since", 250, "another history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			const org = "org_restore"
			dir := t.TempDir()
			path := filepath.Join(dir, "trail.db")
			backup := filepath.Join(t.TempDir(), "backup.db")
			signer := lgSigner(t)

			s, err := Open(ctx, path, nil)
			if err != nil {
				t.Fatal(err)
			}
			lgAppend(t, s, org, 100)
			lgAppend(t, s, "org_fine", 10)
			lgIntegrate(t, s, signer, dir)
			if _, err := s.write.ExecContext(ctx, `VACUUM INTO ?`, backup); err != nil {
				t.Fatal(err)
			}
			lgAppend(t, s, org, 200)
			lgIntegrate(t, s, signer, dir)
			s.Close()

			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suffix)
			}
			raw, err := os.ReadFile(backup)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			s = lgOpen(t, path)
			lgAppend(t, s, org, tc.after)
			lgAppend(t, s, "org_fine", 5)
			i, logs := lgIntegrate(t, s, signer, dir)
			reason, refused := i.Refused()[org]
			if !refused || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Refused()[%s] = %q, %v; want a reason with %q\nlogs:\n%s", org, reason, refused, tc.reason, logs)
			}
			// Ingest asks Admit: the refused log's events are not to be
			// acknowledged, the others' are.
			var re *ledger.RefusedError
			if err := i.Admit(org); !errors.As(err, &re) || re.Organization != org {
				t.Errorf("Admit(%s) = %v, want a RefusedError", org, err)
			}
			if err := i.Admit("org_fine"); err != nil {
				t.Errorf("Admit(org_fine) = %v", err)
			}
			if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "org="+org) || !strings.Contains(logs, "signed_size=300") {
				t.Errorf("the refusal was not logged loudly:\n%s", logs)
			}
			if st, _ := s.LogState(ctx, org); st.IntegratedSize != 100 {
				t.Errorf("refused log integrated to %d", st.IntegratedSize)
			}
			if st, _ := s.LogState(ctx, "org_fine"); st.IntegratedSize != 15 {
				t.Errorf("other log integrated to %d, want 15", st.IntegratedSize)
			}
			t.Log(reason)
		})
	}
}

// TestUnintegratedFlag follows the flag behind PendingLogs through appends,
// integration and the migration that introduced it: a log is pending
// exactly while it has records beyond its integrated size.
func TestUnintegratedFlag(t *testing.T) {
	ctx := context.Background()
	pending := func(t *testing.T, s *Store) []string {
		t.Helper()
		logs, err := s.PendingLogs(ctx)
		if err != nil {
			t.Fatalf("PendingLogs: %v", err)
		}
		var ids []string
		for _, l := range logs {
			ids = append(ids, l.OrganizationID)
		}
		slices.Sort(ids)
		return ids
	}
	for _, tc := range []struct {
		name string
		// steps run in order on a fresh database with a signer and data
		// directory; want is the pending logs after them.
		steps func(t *testing.T, s *Store, signer *ledger.Signer, dir string)
		want  []string
	}{
		{"fresh organizations", func(t *testing.T, s *Store, _ *ledger.Signer, _ string) {
			lgAppend(t, s, "org_a", 0)
		}, nil},
		{"appended", func(t *testing.T, s *Store, _ *ledger.Signer, _ string) {
			lgAppend(t, s, "org_a", 3)
			lgAppend(t, s, "org_b", 1)
		}, []string{"org_a", "org_b"}},
		{"refused with another organization", func(t *testing.T, s *Store, _ *ledger.Signer, _ string) {
			lgAppend(t, s, "org_a", 0)
			now := time.Now()
			sub := store.Submission{Events: []store.PendingEvent{
				{OrganizationID: "org_a", ID: event.NewID(now), ReceivedAt: now, Tail: []byte(`}`)},
				{OrganizationID: "org_missing", ID: event.NewID(now), ReceivedAt: now, Tail: []byte(`}`)},
			}}
			if res, err := s.Append(ctx, []store.Submission{sub}, now); err != nil || !errors.Is(res[0].Err, store.ErrNotFound) {
				t.Fatalf("Append naming a missing organization = %v, %v", err, res[0].Err)
			}
		}, nil},
		{"integrated", func(t *testing.T, s *Store, signer *ledger.Signer, dir string) {
			lgAppend(t, s, "org_a", 3)
			lgIntegrate(t, s, signer, dir)
		}, nil},
		{"appended after integration", func(t *testing.T, s *Store, signer *ledger.Signer, dir string) {
			lgAppend(t, s, "org_a", 3)
			lgAppend(t, s, "org_b", 2)
			lgIntegrate(t, s, signer, dir)
			lgAppend(t, s, "org_b", 1)
		}, []string{"org_b"}},
		{"migrated with a pending log", func(t *testing.T, s *Store, signer *ledger.Signer, dir string) {
			lgAppend(t, s, "org_a", 3)
			lgIntegrate(t, s, signer, dir)
			lgAppend(t, s, "org_b", 2)
			p, err := Migrator(s.write)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 16); err != nil {
				t.Fatalf("down to 16: %v", err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		}, []string{"org_b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := lgOpen(t, filepath.Join(dir, "trail.db"))
			tc.steps(t, s, lgSigner(t), dir)
			if got := pending(t, s); !slices.Equal(got, tc.want) {
				t.Errorf("pending logs %v, want %v", got, tc.want)
			}
			// The flag itself, not only the query's second condition:
			// set logs are what the partial index holds.
			var flagged int
			if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM organizations WHERE unintegrated`).Scan(&flagged); err != nil {
				t.Fatal(err)
			}
			if flagged != len(tc.want) {
				t.Errorf("%d organizations flagged unintegrated, want %d", flagged, len(tc.want))
			}
		})
	}
}
