package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/ledger"
)

// stateHead reads the state file's entry for org.
func stateHead(t *testing.T, dir, org string) (int64, tlog.Hash, bool) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, ledger.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == testPrefix+"/"+org {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			h, err := tlog.ParseHash(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return n, h, true
		}
	}
	return 0, tlog.Hash{}, false
}

// checkLog checks that org is integrated up to n, that its newest
// checkpoint matches the oracle, and that the checkpoint of size `signed`
// (one this server put in its state file) is consistent with it.
func checkLog(t *testing.T, s ledger.Storage, signer *ledger.Signer, org string, n int64, signed int64, signedRoot tlog.Hash) {
	t.Helper()
	ctx := context.Background()
	st, err := s.LogState(ctx, org)
	if err != nil || st.IntegratedSize != n {
		t.Fatalf("LogState = %+v, %v; want integrated %d", st, err, n)
	}
	o := newOracle()
	o.add(t, readAll(t, s, org, n)...)
	if c := latest(t, s, signer, org); c.Size != n || c.Hash != o.root(n) {
		t.Fatalf("newest checkpoint (%d, %s), want (%d, %s)", c.Size, c.Hash, n, o.root(n))
	}
	if signed > 0 {
		if o.root(signed) != signedRoot {
			t.Fatalf("the tree at size %d has root %s, but %s was signed", signed, o.root(signed), signedRoot)
		}
		p, err := ledger.ConsistencyProof(ctx, s, org, signed, n)
		if err != nil {
			t.Fatal(err)
		}
		if e1, e2 := o.checkConsistency(p, signed, n); e1 != nil || e2 != nil {
			t.Fatalf("not consistent with the signed checkpoint %d: %v / %v", signed, e1, e2)
		}
	}
}

func TestIntegrateFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []fault
	}{
		{"failed and not persisted", []fault{faultNotPersisted}},
		{"failed but persisted", []fault{faultPersisted}},
		{"mixed", []fault{faultNotPersisted, faultPersisted, faultNotPersisted, faultPersisted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b *backend) {
				f := &faultyStorage{Storage: b.storage}
				f.inject(tc.faults...)
				signer, dir := newSigner(t), t.TempDir()
				i := startIntegrator(t, f, signer, dir, ledger.Options{Batch: 100})
				b.add(t, "org_f", 1000)
				waitIdle(t, i)
				size, root, _ := stateHead(t, dir, "org_f")
				if size != 1000 {
					t.Fatalf("state file size %d, want 1000", size)
				}
				checkLog(t, b.storage, signer, "org_f", 1000, size, root)
				if r := i.Refused(); len(r) != 0 {
					t.Fatalf("Refused = %v", r)
				}
			})
		})
	}
}

// TestIntegrateBatchFaults injects faults into the one transaction that
// stores several logs' integrations.
func TestIntegrateBatchFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []fault
	}{
		{"failed and not persisted", []fault{faultNotPersisted}},
		{"failed but persisted", []fault{faultPersisted}},
		{"mixed", []fault{faultPersisted, faultNotPersisted, faultPersisted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b *backend) {
				f := faultyBatchStorage{&faultyStorage{Storage: b.storage}}
				f.inject(tc.faults...)
				signer, dir := newSigner(t), t.TempDir()
				orgs := []string{"org_1", "org_2", "org_3"}
				for _, org := range orgs {
					b.add(t, org, 300)
				}
				i := startIntegrator(t, f, signer, dir, ledger.Options{Batch: 1000})
				waitIdle(t, i)
				for _, org := range orgs {
					b.add(t, org, 50)
				}
				waitIdle(t, i)
				for _, org := range orgs {
					size, root, _ := stateHead(t, dir, org)
					checkLog(t, b.storage, signer, org, 350, size, root)
				}
				if f.calls < len(tc.faults) {
					t.Errorf("%d batch calls, fewer than the %d faults injected", f.calls, len(tc.faults))
				}
			})
		})
	}
}

// TestCrashBetweenStateFileAndCommit stops the integrator right after it
// wrote the state file and failed its database commit (the process died
// between the two), then restarts it on the same data directory.
func TestCrashBetweenStateFileAndCommit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fault        fault
		moreBefore   int // records appended while "down"
		restartBatch int
	}{
		{"not persisted", faultNotPersisted, 0, 0},
		{"persisted", faultPersisted, 0, 0},
		{"not persisted, more records since", faultNotPersisted, 321, 0},
		{"not persisted, restart batch smaller than the signed size", faultNotPersisted, 50, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b *backend) {
				ctx := context.Background()
				signer, dir := newSigner(t), t.TempDir()
				b.add(t, "org_c", 100)
				first := startIntegrator(t, b.storage, signer, dir, ledger.Options{})
				waitIdle(t, first)
				first.Stop()

				f := &faultyStorage{Storage: b.storage, called: make(chan struct{}, 1)}
				f.inject(tc.fault)
				for range 100 {
					f.inject(faultNotPersisted) // nothing more gets through before the "crash"
				}
				crashing := startIntegrator(t, f, signer, dir, ledger.Options{})
				b.add(t, "org_c", 400)
				<-f.called
				crashing.Stop()

				signed, root, _ := stateHead(t, dir, "org_c")
				if signed != 500 {
					t.Fatalf("state file size %d, want 500", signed)
				}
				st, _ := b.storage.LogState(ctx, "org_c")
				if want := map[fault]int64{faultNotPersisted: 100, faultPersisted: 500}[tc.fault]; st.IntegratedSize != want {
					t.Fatalf("integrated size after the crash %d, want %d", st.IntegratedSize, want)
				}

				b.add(t, "org_c", tc.moreBefore)
				restarted := startIntegrator(t, b.storage, signer, dir, ledger.Options{Batch: tc.restartBatch})
				waitIdle(t, restarted)
				if r := restarted.Refused(); len(r) != 0 {
					t.Fatalf("Refused = %v", r)
				}
				n := int64(500 + tc.moreBefore)
				checkLog(t, b.storage, signer, "org_c", n, signed, root)
				if tc.moreBefore > 0 && tc.restartBatch == 0 {
					return // one checkpoint covers all, checked consistent with the signed one
				}
				// The first pass integrated exactly up to the size signed
				// before the crash, even beyond its batch.
				msg, err := b.storage.Checkpoint(ctx, "org_c", signed)
				if err != nil {
					t.Fatalf("no checkpoint of the size signed before the crash: %v", err)
				}
				if c, err := ledger.ParseCheckpoint(msg, signer.Verifier()); err != nil || c.Hash != root {
					t.Fatalf("checkpoint %d = %+v, %v; want root %s", signed, c, err, root)
				}
			})
		})
	}
}

// refusalCase prepares a storage whose state disagrees with what the
// integrator signed (its state file in dir).
type refusalCase struct {
	name   string
	noAdd  bool // append no records to the broken log
	break_ func(t *testing.T, m *memStorage, backup *memStorage, dir string, signer *ledger.Signer) *memStorage
	reason string // in the refusal
}

func TestRefusesInconsistentDatabase(t *testing.T) {
	const org = "org_x"
	for _, tc := range []refusalCase{
		{
			name: "restored from an older backup",
			break_: func(t *testing.T, m, backup *memStorage, dir string, _ *ledger.Signer) *memStorage {
				return backup
			},
			reason: "restored from an older backup",
		},
		{
			name: "restored, then other records written",
			break_: func(t *testing.T, m, backup *memStorage, dir string, _ *ledger.Signer) *memStorage {
				backup.Mu.Lock()
				l := backup.Logs[org]
				for s := len(l.Records); s < 400; s++ {
					l.Records = append(l.Records, bytes.Replace(record(org, int64(s)), []byte("user.signed_in"), []byte("user.deleted!!"), 1))
				}
				backup.Mu.Unlock()
				return backup
			},
			reason: "another history",
		},
		{
			// The right edge of the tree: what extending it reads.
			name: "stored tile altered",
			break_: func(t *testing.T, m, backup *memStorage, dir string, _ *ledger.Signer) *memStorage {
				m.Mu.Lock()
				m.Logs[org].Tiles[[2]int64{0, 1}][5] ^= 1
				m.Mu.Unlock()
				return m
			},
			reason: "another history",
		},
		{
			name: "stored tile altered, state file lost",
			break_: func(t *testing.T, m, backup *memStorage, dir string, _ *ledger.Signer) *memStorage {
				m.Mu.Lock()
				m.Logs[org].Tiles[[2]int64{1, 0}][5] ^= 1
				m.Mu.Unlock()
				os.Remove(filepath.Join(dir, ledger.StateFile))
				return m
			},
			reason: "does not match its stored tiles",
		},
		{
			name: "newest checkpoint replaced",
			break_: func(t *testing.T, m, backup *memStorage, dir string, signer *ledger.Signer) *memStorage {
				msg, err := signer.Sign(ledger.Checkpoint{Origin: testPrefix + "/" + org, Size: 300, Hash: tlog.Hash{7}})
				if err != nil {
					t.Fatal(err)
				}
				m.Mu.Lock()
				m.Logs[org].Checkpoints[300] = msg
				m.Mu.Unlock()
				os.Remove(filepath.Join(dir, ledger.StateFile))
				return m
			},
			reason: "does not match its stored tiles",
		},
		{
			name:  "organization missing",
			noAdd: true,
			break_: func(t *testing.T, m, backup *memStorage, dir string, _ *ledger.Signer) *memStorage {
				backup.Mu.Lock()
				delete(backup.Logs, org)
				backup.Mu.Unlock()
				return backup
			},
			reason: "has no organization",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			m := newMemStorage()
			signer, dir := newSigner(t), t.TempDir()
			addRecords(m, org, 100)
			addRecords(m, "org_ok", 10)
			i := startIntegrator(t, m, signer, dir, ledger.Options{})
			waitIdle(t, i)
			backup := m.Clone()
			addRecords(m, org, 200)
			waitIdle(t, i)
			i.Stop()

			s := tc.break_(t, m, backup, dir, signer)
			before, _ := s.LogState(ctx, org)
			addRecords(s, "org_ok", 5)
			if !tc.noAdd {
				addRecords(s, org, 50)
			}
			var logs bytes.Buffer
			r, err := ledger.NewIntegrator(s, signer, testPrefix, ledger.Options{DataDir: dir, Interval: time.Millisecond},
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
			if !refused || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Refused()[%s] = %q, %v; want a reason containing %q", org, reason, refused, tc.reason)
			}
			if _, ok := r.Refused()["org_ok"]; ok {
				t.Error("org_ok refused too")
			}
			if st, _ := s.LogState(ctx, "org_ok"); st.IntegratedSize != 15 {
				t.Errorf("org_ok integrated %d, want 15: other logs must go on", st.IntegratedSize)
			}
			if st, _ := s.LogState(ctx, org); st.IntegratedSize != before.IntegratedSize {
				t.Errorf("refused log went from integrated size %d to %d", before.IntegratedSize, st.IntegratedSize)
			}
			r.Stop()
			out := logs.String()
			for _, want := range []string{"level=ERROR", "refusing to sign", "org=" + org, tc.reason} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			t.Log(reason)
		})
	}
}

func TestStartRejectsCorruptStateFile(t *testing.T) {
	for _, content := range []string{"", "garbage\n", "trail signed-checkpoints v1\norigin 12\n", "trail signed-checkpoints v1\no x AAAA\n"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ledger.StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		i, err := ledger.NewIntegrator(newMemStorage(), newSigner(t), testPrefix, ledger.Options{DataDir: dir}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := i.Start(context.Background()); err == nil || !strings.Contains(err.Error(), ledger.StateFile) {
			i.Stop()
			t.Errorf("Start with state file %q: err = %v", content, err)
		}
	}
}

func TestStateFileKeepsOtherPrefixes(t *testing.T) {
	dir := t.TempDir()
	other := fmt.Sprintf("trail signed-checkpoints v1\nother.example/org_1 5 %s\n", tlog.Hash{1})
	if err := os.WriteFile(filepath.Join(dir, ledger.StateFile), []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newMemStorage()
	i := startIntegrator(t, m, newSigner(t), dir, ledger.Options{})
	addRecords(m, "org_1", 3)
	waitIdle(t, i)
	raw, _ := os.ReadFile(filepath.Join(dir, ledger.StateFile))
	if !strings.Contains(string(raw), "other.example/org_1 5 ") || !strings.Contains(string(raw), testPrefix+"/org_1 3 ") {
		t.Errorf("state file:\n%s", raw)
	}
	if len(i.Refused()) != 0 {
		t.Errorf("Refused = %v", i.Refused())
	}
}
