package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

// memHeads is a ledger.HeadStorage in memory, kept apart from the log's
// storage so that a test can roll one back and not the other.
type memHeads struct {
	mu    sync.Mutex
	heads map[string]ledger.SignedHead
}

func newMemHeads() *memHeads { return &memHeads{heads: map[string]ledger.SignedHead{}} }

func (m *memHeads) SignedHeads(context.Context) ([]ledger.SignedHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ledger.SignedHead, 0, len(m.heads))
	for _, h := range m.heads {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b ledger.SignedHead) int { return strings.Compare(a.Origin, b.Origin) })
	return out, nil
}

func (m *memHeads) RecordSignedHeads(_ context.Context, heads []ledger.SignedHead) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range heads {
		if cur, ok := m.heads[h.Origin]; !ok || h.Size > cur.Size {
			m.heads[h.Origin] = h
		}
	}
	return nil
}

func (m *memHeads) get(origin string) (ledger.SignedHead, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.heads[origin]
	return h, ok
}

// TestHeadsInTheDatabase: the newest checkpoint signed per origin is
// recorded in the database (HeadStorage), not in the data directory, and
// the fork guard holds for an integrator started with an empty data
// directory (a replaced pod), against a state file left by an older
// version, and against checkpoints outsiders hold (Options.Held) when the
// database's own record was rolled back with it.
func TestHeadsInTheDatabase(t *testing.T) {
	const org = "org_x"
	origin := testPrefix + "/" + org
	type setup struct {
		log   *memStorage // what the restarted integrator sees
		heads *memHeads
		dir   string
		held  func(context.Context) (string, []ledger.SignedHead, error)
	}
	for _, tc := range []struct {
		name string
		// prepare gets the log at 300 records integrated (signed at 100
		// and 300, first is the head at 100), its backup at 100, and the
		// heads and data directory of the first integrator.
		prepare func(t *testing.T, m, backup *memStorage, heads *memHeads, dir string, first ledger.SignedHead) setup
		reason  string // in the refusal; empty: not refused, heads at 350
	}{
		{
			name: "same database, fresh data directory",
			prepare: func(t *testing.T, m, _ *memStorage, heads *memHeads, _ string, _ ledger.SignedHead) setup {
				return setup{log: m, heads: heads, dir: t.TempDir()}
			},
		},
		{
			name: "log rolled back, fresh data directory",
			prepare: func(t *testing.T, _, backup *memStorage, heads *memHeads, _ string, _ ledger.SignedHead) setup {
				return setup{log: backup, heads: heads, dir: t.TempDir()}
			},
			reason: "but this deployment signed a checkpoint of size 300",
		},
		{
			name: "log and record rolled back, an older state file",
			prepare: func(t *testing.T, m, backup *memStorage, _ *memHeads, _ string, first ledger.SignedHead) setup {
				dir := t.TempDir()
				writeState(t, dir, origin, 300, rootOf(t, m, 300))
				old := newMemHeads()
				_ = old.RecordSignedHeads(context.Background(), []ledger.SignedHead{first})
				return setup{log: backup, heads: old, dir: dir}
			},
			// Copied into the database first, then refused from there.
			reason: "but this deployment signed a checkpoint of size 300",
		},
		{
			name: "log and record rolled back, a newer checkpoint published",
			prepare: func(t *testing.T, _, backup *memStorage, heads *memHeads, _ string, first ledger.SignedHead) setup {
				newest, _ := heads.get(origin)
				old := newMemHeads()
				_ = old.RecordSignedHeads(context.Background(), []ledger.SignedHead{first})
				return setup{log: backup, heads: old, dir: t.TempDir(),
					held: func(context.Context) (string, []ledger.SignedHead, error) {
						return "the replica's record", []ledger.SignedHead{newest}, nil
					}}
			},
			reason: "the replica's record holds a checkpoint of size 300",
		},
		{
			name: "another history published at a smaller size",
			prepare: func(t *testing.T, m, _ *memStorage, heads *memHeads, _ string, _ ledger.SignedHead) setup {
				return setup{log: m, heads: heads, dir: t.TempDir(),
					held: func(context.Context) (string, []ledger.SignedHead, error) {
						return "the replica's record", []ledger.SignedHead{{Origin: origin, Size: 50, Hash: tlog.Hash{9}}}, nil
					}}
			},
			reason: "but the replica's record holds root",
		},
		{
			name: "the record of outsiders cannot be read",
			prepare: func(t *testing.T, m, _ *memStorage, heads *memHeads, _ string, _ ledger.SignedHead) setup {
				return setup{log: m, heads: heads, dir: t.TempDir(),
					held: func(context.Context) (string, []ledger.SignedHead, error) {
						return "the replica's record", nil, errors.New("target down")
					}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m, heads, dir, signer := newMemStorage(), newMemHeads(), t.TempDir(), newSigner(t)
			addRecords(m, org, 100)
			i := startIntegrator(t, m, signer, dir, ledger.Options{Heads: heads})
			waitIdle(t, i)
			first, ok := heads.get(origin)
			if !ok || first.Size != 100 {
				t.Fatalf("recorded head %+v, %v; want size 100", first, ok)
			}
			backup := m.Clone()
			addRecords(m, org, 200)
			waitIdle(t, i)
			i.Stop()
			// The replica keeps its own record beside the database's: it
			// is what catches a database restored from an older copy.
			if _, err := os.Stat(filepath.Join(dir, ledger.StateFile)); err != nil {
				t.Errorf("no state file beside the HeadStorage: %v", err)
			}
			if h, _ := heads.get(origin); h.Size != 300 {
				t.Fatalf("recorded head at size %d, want 300", h.Size)
			}

			s := tc.prepare(t, m, backup, heads, dir, first)
			addRecords(s.log, org, 50)
			var logs bytes.Buffer
			r, err := ledger.NewIntegrator(s.log, signer, testPrefix, ledger.Options{DataDir: s.dir, Heads: s.heads, Held: s.held, Interval: time.Millisecond},
				slog.New(slog.NewTextHandler(&logs, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer r.Stop()
			waitIdle(t, r)
			reason, refused := r.Refused()[org]
			if tc.reason == "" {
				if refused {
					t.Fatalf("refused: %s", reason)
				}
				st, _ := s.log.LogState(ctx, org)
				if h, _ := s.heads.get(origin); h.Size != st.NextSeq || st.IntegratedSize != st.NextSeq {
					t.Errorf("integrated %d of %d, recorded head %d; want all", st.IntegratedSize, st.NextSeq, h.Size)
				}
				return
			}
			if !refused || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Refused()[%s] = %q, %v; want a reason containing %q\n%s", org, reason, refused, tc.reason, logs.String())
			}
			t.Log(reason)
		})
	}
}

// rootOf is the root of org_x's stored tree at size n.
func rootOf(t *testing.T, s ledger.Storage, n int64) tlog.Hash {
	t.Helper()
	o := newOracle()
	o.add(t, readAll(t, s, "org_x", n)...)
	return o.root(n)
}

// writeState writes a state file as an older version did.
func writeState(t *testing.T, dir, origin string, size int64, h tlog.Hash) {
	t.Helper()
	content := "trail signed-checkpoints v1\n" + origin + " " + strconv.FormatInt(size, 10) + " " + h.String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, ledger.StateFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStateFileCopiedIntoDatabase: the state file an older version wrote is
// copied into the database on the first start with a HeadStorage, and kept.
func TestStateFileCopiedIntoDatabase(t *testing.T) {
	const org = "org_x"
	origin := testPrefix + "/" + org
	m, dir, signer := newMemStorage(), t.TempDir(), newSigner(t)
	addRecords(m, org, 100)
	i := startIntegrator(t, m, signer, dir, ledger.Options{})
	waitIdle(t, i)
	i.Stop()
	size, root, ok := stateHead(t, dir, org)
	if !ok || size != 100 {
		t.Fatalf("state file head %d, %v; want 100", size, ok)
	}
	for _, tc := range []struct {
		name  string
		heads []ledger.SignedHead // already in the database
		want  int64
	}{
		{"empty database record", nil, 100},
		{"older database record", []ledger.SignedHead{{Origin: origin, Size: 40, Hash: rootOf(t, m, 40)}}, 100},
		{"same database record", []ledger.SignedHead{{Origin: origin, Size: 100, Hash: root}}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heads := newMemHeads()
			_ = heads.RecordSignedHeads(context.Background(), tc.heads)
			// A stopped integrator: only the startup checks run.
			r := startIntegrator(t, m, signer, dir, ledger.Options{Heads: heads})
			select {
			case <-r.CheckedC():
			case <-time.After(time.Minute):
				t.Fatal("startup checks never ended")
			}
			r.Stop()
			if h, ok := heads.get(origin); !ok || h.Size != tc.want || h.Hash != root {
				t.Errorf("database head %+v, %v; want size %d root %s", h, ok, tc.want, root)
			}
			if _, _, ok := stateHead(t, dir, org); !ok {
				t.Error("the state file is gone")
			}
			if len(r.Refused()) > 0 {
				t.Errorf("refused: %v", r.Refused())
			}
		})
	}
}
