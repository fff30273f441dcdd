package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// runLedger runs the conformance cases of ledger.Storage,
// ledger.BatchStorage, ledger.CosignatureStorage and ledger.HeadStorage.
func runLedger[S store.Backend](t *testing.T, d Driver[S]) {
	t.Run("Storage", func(t *testing.T) { testLedgerStorage(t, d) })
	t.Run("PendingLogs", func(t *testing.T) { testLedgerPending(t, d) })
	t.Run("IntegrateBatch", func(t *testing.T) { testLedgerIntegrateBatch(t, d) })
	t.Run("Integrator", func(t *testing.T) { testLedgerIntegrator(t, d) })
	t.Run("Cosignatures", func(t *testing.T) { testCosignatures(t, d) })
	t.Run("SignedHeads", func(t *testing.T) { testSignedHeads(t, d) })
	t.Run("RecentRecords", func(t *testing.T) { testRecentRecords(t, d) })
}

// testRecentRecords: what the integrator reads through a store's cache of
// the records it just committed (ledger.RecentRecordReader) is byte for
// byte what the database holds — for events of one or several
// organizations per commit, a submission large enough to be written
// another way, replays of an idempotency key and refused submissions —
// before and after the records are integrated.
func testRecentRecords[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	rr, ok := any(s).(ledger.RecentRecordReader)
	if !ok {
		t.Skip("the store keeps no committed records in memory")
	}
	a, c := orgID("R", 1), orgID("R", 2)
	mustCreateOrg(t, s, a, t0)
	mustCreateOrg(t, s, c, t0)
	// A read first: a store may keep records only while its integrator
	// reads them (PostgreSQL, where one replica of several integrates).
	if err := rr.ReadRecentRecords(ctx, a, 0, 0, func(int64, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ap := newAppender(t, s, 11)
	ap.appendOK(t0, ap.sub(a))
	ap.appendOK(t0, ap.sub(a, c, a), idempotent(ap.sub(c), "recent-key", "body"), ap.sub("org_unknown"))
	ap.appendOK(t0, idempotent(ap.sub(c), "recent-key", "body")) // replayed
	many := make([]string, 300)
	for i := range many {
		many[i] = []string{a, c}[i%2]
	}
	ap.appendOK(t0, ap.sub(many...))

	same := func(what, org string, from, to int64) {
		t.Helper()
		read := func(f func(context.Context, string, int64, int64, func(int64, []byte) error) error) map[int64]string {
			out := map[int64]string{}
			if err := f(ctx, org, from, to, func(seq int64, rec []byte) error {
				out[seq] = string(rec) // copied: rec may be valid only until fn returns
				return nil
			}); err != nil {
				t.Fatalf("%s: reading %s [%d, %d): %v", what, org, from, to, err)
			}
			return out
		}
		got, want := read(rr.ReadRecentRecords), read(s.ReadRecords)
		if int64(len(want)) != to-from {
			t.Fatalf("%s: the database has %d records of %s in [%d, %d)", what, len(want), org, from, to)
		}
		for seq := from; seq < to; seq++ {
			if got[seq] != want[seq] {
				t.Errorf("%s: record %d of %s read as %q, stored as %q", what, seq, org, got[seq], want[seq])
			}
		}
	}
	for _, org := range []string{a, c} {
		st, err := s.LogState(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		same("before integration", org, 0, st.NextSeq)
		same("a middle range", org, 1, st.NextSeq-1)
	}

	// Integrated (the integrator reading through the cache): the bundles,
	// which read the database, verify; and what the cache let go of comes
	// from the database, alike.
	signer := integrateAll(t, s)
	for _, org := range []string{a, c} {
		st, err := s.LogState(ctx, org)
		if err != nil || st.IntegratedSize != st.NextSeq {
			t.Fatalf("LogState(%s) = %+v, %v; want all integrated", org, st, err)
		}
		same("after integration", org, 0, st.NextSeq)
		var buf bytes.Buffer
		if _, err := ledger.WriteBundle(ctx, &buf, s, org, ledger.BundleOptions{}); err != nil {
			t.Fatalf("WriteBundle(%s): %v", org, err)
		}
		if rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{}); err != nil || !rep.OK() {
			t.Fatalf("Verify(%s): %v\n%s", org, err, rep.String())
		}
	}
}

const ledgerPrefix = "trail.test"

var ledgerEpoch = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

// LedgerAppend appends n copies of one small event to org, creating the
// organization first if needed, in submissions of at most 4,096 events.
func LedgerAppend(t testing.TB, s store.Backend, org string, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.LogState(ctx, org); errors.Is(err, store.ErrNotFound) {
		if err := s.CreateOrganization(ctx, store.Organization{ID: org, Name: org, CreatedAt: ledgerEpoch, UpdatedAt: ledgerEpoch}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := event.ParseEvent([]byte(`{"action":"user.signed_in","occurred_at":"2026-11-25T17:59:59.123Z",`+
		`"actor":{"id":"user_1","type":"user"},"targets":[{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7"}}`),
		ledgerEpoch, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for n > 0 {
		k := min(n, 4096)
		var sub store.Submission
		now := time.Now()
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

func testLedgerStorage[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	const org = "org_storage"
	if _, err := s.LogState(ctx, org); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LogState of an unknown organization: %v", err)
	}
	LedgerAppend(t, s, org, 5000) // more than one ReadRecords batch in both backends
	LedgerAppend(t, s, "org_other", 3)

	pending, err := s.PendingLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pending, func(a, b ledger.LogState) int { return strings.Compare(a.OrganizationID, b.OrganizationID) })
	if want := []ledger.LogState{{OrganizationID: "org_other", NextSeq: 3}, {OrganizationID: org, NextSeq: 5000}}; !slices.Equal(pending, want) {
		t.Fatalf("PendingLogs = %v, want %v", pending, want)
	}
	if logs, err := s.IntegratedLogs(ctx); err != nil || len(logs) != 0 {
		t.Fatalf("IntegratedLogs before any integration = %v, %v", logs, err)
	}

	// ReadRecords streams in seq order, bytes as stored, skipping gaps.
	var seqs []int64
	err = s.ReadRecords(ctx, org, 0, 5000, func(seq int64, rec []byte) error {
		if !bytes.Contains(rec, []byte(`"seq":`+strconv.FormatInt(seq, 10)+`,`)) {
			t.Fatalf("record %d: %s", seq, rec)
		}
		if seq%97 == 0 { // `{"id":"evt_` + 26 characters of ULID
			if got, err := s.Event(ctx, string(rec[7:7+30])); err != nil || !bytes.Equal(got.Record, rec) {
				t.Fatalf("record %d differs from Event's: %v\n%s\n%s", seq, err, rec, got.Record)
			}
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil || len(seqs) != 5000 || seqs[0] != 0 || seqs[4999] != 4999 || !slices.IsSorted(seqs) {
		t.Fatalf("ReadRecords: %d records, %v", len(seqs), err)
	}
	seqs = nil
	if err := s.ReadRecords(ctx, org, 4090, 4100, func(seq int64, _ []byte) error { seqs = append(seqs, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int64{4090, 4091, 4092, 4093, 4094, 4095, 4096, 4097, 4098, 4099}; !slices.Equal(seqs, want) {
		t.Fatalf("ReadRecords(4090, 4100) = %v, want %v", seqs, want)
	}
	if b.DeleteRecord != nil {
		b.DeleteRecord(t, s, org, 4095)
		seqs = nil
		s.ReadRecords(ctx, org, 4090, 4100, func(seq int64, _ []byte) error { seqs = append(seqs, seq); return nil })
		if want := []int64{4090, 4091, 4092, 4093, 4094, 4096, 4097, 4098, 4099}; !slices.Equal(seqs, want) {
			t.Fatalf("ReadRecords over a gap = %v, want %v", seqs, want)
		}
	}
	stop := errors.New("stop")
	if err := s.ReadRecords(ctx, org, 0, 10, func(int64, []byte) error { return stop }); err != stop {
		t.Fatalf("ReadRecords returned %v, want the callback's error", err)
	}
	n := 0
	if err := s.ReadRecords(ctx, "org_none", 0, 10, func(int64, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("ReadRecords of an unknown organization = %d records, %v", n, err)
	}

	// Integrate is a compare-and-swap on the integrated size.
	tile := func(l int, n int64, w int, fill byte) ledger.TileData {
		return ledger.TileData{Tile: tlog.Tile{H: 8, L: l, N: n, W: w}, Data: bytes.Repeat([]byte{fill}, w*32)}
	}
	if err := s.Integrate(ctx, org, 0, 10, []ledger.TileData{tile(0, 0, 10, 1)}, []byte("note 10\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		old, new int64
		err      error
	}{
		{0, 20, ledger.ErrSizeChanged},    // stale size
		{10, 5001, ledger.ErrSizeChanged}, // beyond the log
	} {
		if err := s.Integrate(ctx, org, tc.old, tc.new, nil, []byte("x\n")); !errors.Is(err, tc.err) {
			t.Errorf("Integrate(%d→%d) = %v, want %v", tc.old, tc.new, err, tc.err)
		}
	}
	if err := s.Integrate(ctx, "org_none", 0, 1, nil, []byte("x\n")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Integrate of an unknown organization = %v", err)
	}
	if err := s.Integrate(ctx, org, 10, 10, nil, []byte("x\n")); err == nil {
		t.Error("Integrate that does not grow succeeded")
	}
	// All or nothing: a bad tile after a good one stores neither, nor the size.
	bad := tile(0, 1, 3, 9)
	bad.Data = bad.Data[:40]
	if err := s.Integrate(ctx, org, 10, 300, []ledger.TileData{tile(0, 0, 256, 2), bad}, []byte("note 300\n")); err == nil {
		t.Fatal("Integrate with a malformed tile succeeded")
	}
	if st, _ := s.LogState(ctx, org); st.IntegratedSize != 10 {
		t.Fatalf("integrated size %d after a failed Integrate", st.IntegratedSize)
	}
	if _, err := s.Checkpoint(ctx, org, 300); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("checkpoint of a failed Integrate: %v", err)
	}
	// A wider version replaces the tile.
	if err := s.Integrate(ctx, org, 10, 300, []ledger.TileData{tile(0, 0, 256, 3), tile(0, 1, 44, 4), tile(1, 0, 1, 5)}, []byte("note 300\n")); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadTiles(ctx, org, []tlog.Tile{{H: 8, L: 1, N: 0, W: 1}, {H: 8, L: 0, N: 0, W: 5}, {H: 8, L: 0, N: 1, W: 44}})
	if err != nil || len(got[0]) != 32 || len(got[1]) != 256*32 || got[1][0] != 3 || len(got[2]) != 44*32 || got[2][0] != 4 || got[0][0] != 5 {
		t.Fatalf("ReadTiles = %d %d %d bytes, %v", len(got[0]), len(got[1]), len(got[2]), err)
	}
	// The same tile twice in one request is answered twice.
	if got, err := s.ReadTiles(ctx, org, []tlog.Tile{{H: 8, L: 0, N: 1, W: 2}, {H: 8, L: 0, N: 1, W: 44}}); err != nil || len(got[0]) != 44*32 || len(got[1]) != 44*32 {
		t.Fatalf("ReadTiles of one tile twice = %v", err)
	}
	if got, err := s.ReadTiles(ctx, org, nil); err != nil || len(got) != 0 {
		t.Fatalf("ReadTiles(nothing) = %v, %v", got, err)
	}
	for _, missing := range []tlog.Tile{{H: 8, L: 0, N: 1, W: 45}, {H: 8, L: 0, N: 2, W: 1}, {H: 8, L: 2, N: 0, W: 1}} {
		if _, err := s.ReadTiles(ctx, org, []tlog.Tile{missing}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReadTiles(%s) = %v, want ErrNotFound", missing.Path(), err)
		}
	}
	if _, err := s.ReadTiles(ctx, "org_other", []tlog.Tile{{H: 8, L: 0, N: 0, W: 1}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadTiles of another organization's tile = %v, want ErrNotFound", err)
	}

	// Checkpoints: every one kept; the newest is the largest.
	for size, want := range map[int64]string{10: "note 10\n", 300: "note 300\n"} {
		if c, err := s.Checkpoint(ctx, org, size); err != nil || string(c) != want {
			t.Errorf("Checkpoint(%d) = %q, %v", size, c, err)
		}
	}
	if c, err := s.LatestCheckpoint(ctx, org); err != nil || string(c) != "note 300\n" {
		t.Errorf("LatestCheckpoint = %q, %v", c, err)
	}
	if _, err := s.LatestCheckpoint(ctx, "org_other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestCheckpoint without one = %v", err)
	}
	if _, err := s.Checkpoint(ctx, org, 11); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Checkpoint of a size never signed = %v", err)
	}
	logs, err := s.IntegratedLogs(ctx)
	if err != nil || len(logs) != 1 || logs[0] != (ledger.LogState{OrganizationID: org, IntegratedSize: 300, NextSeq: 5000}) {
		t.Errorf("IntegratedLogs = %v, %v", logs, err)
	}
	if st, err := s.LogState(ctx, org); err != nil || st != (ledger.LogState{OrganizationID: org, IntegratedSize: 300, NextSeq: 5000}) {
		t.Errorf("LogState = %+v, %v", st, err)
	}
}

func testLedgerIntegrateBatch[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	for _, org := range []string{"org_a", "org_b", "org_c"} {
		LedgerAppend(t, s, org, 10)
	}
	one := func(org string, old, new int64) ledger.Integration {
		return ledger.Integration{OrganizationID: org, OldSize: old, NewSize: new,
			Tiles:      []ledger.TileData{{Tile: tlog.Tile{H: 8, L: 0, N: 0, W: int(new)}, Data: make([]byte, 32*new)}},
			Checkpoint: []byte(org + " " + strconv.FormatInt(new, 10) + "\n")}
	}
	// A stale compare-and-swap, or an unknown organization, skips its log
	// only; the batch need not be in organization order.
	errs, err := s.IntegrateBatch(ctx, []ledger.Integration{one("org_c", 0, 10), one("org_b", 3, 5), one("org_none", 0, 1), one("org_a", 0, 5)})
	if err != nil || len(errs) != 4 || errs[0] != nil || !errors.Is(errs[1], ledger.ErrSizeChanged) || !errors.Is(errs[2], store.ErrNotFound) || errs[3] != nil {
		t.Fatalf("IntegrateBatch = %v, %v", errs, err)
	}
	for org, want := range map[string]int64{"org_a": 5, "org_b": 0, "org_c": 10} {
		if st, _ := s.LogState(ctx, org); st.IntegratedSize != want {
			t.Errorf("%s integrated %d, want %d", org, st.IntegratedSize, want)
		}
	}
	if c, err := s.Checkpoint(ctx, "org_c", 10); err != nil || string(c) != "org_c 10\n" {
		t.Errorf("checkpoint of a batch = %q, %v", c, err)
	}
	if _, err := s.Checkpoint(ctx, "org_b", 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("checkpoint of a skipped integration: %v", err)
	}
	if errs, err := s.IntegrateBatch(ctx, nil); err != nil || len(errs) != 0 {
		t.Errorf("IntegrateBatch(nothing) = %v, %v", errs, err)
	}
	// A failing statement fails the whole transaction.
	if b.InsertCheckpoint != nil {
		b.InsertCheckpoint(t, s, "org_b", 7, "x")
		if _, err := s.IntegrateBatch(ctx, []ledger.Integration{one("org_a", 5, 8), one("org_b", 0, 7)}); err == nil {
			t.Fatal("IntegrateBatch with a conflicting checkpoint succeeded")
		}
		if st, _ := s.LogState(ctx, "org_a"); st.IntegratedSize != 5 {
			t.Errorf("org_a integrated %d after a failed batch, want 5", st.IntegratedSize)
		}
		if _, err := s.Checkpoint(ctx, "org_a", 8); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("checkpoint of a failed batch: %v", err)
		}
	}
}

// testLedgerIntegrator runs the real integrator over the store while events
// are appended, then checks every organization's bundle offline.
func testLedgerIntegrator[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	skey, _, err := note.GenerateKey(rand.Reader, ledgerPrefix)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	in, err := ledger.NewIntegrator(s, signer, ledgerPrefix, ledger.Options{DataDir: t.TempDir(), Interval: time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	orgs := map[string]int{"org_i1": 0, "org_i2": 0, "org_i3": 0}
	for round := range 4 {
		for org := range orgs {
			n := 100 + 300*round
			LedgerAppend(t, s, org, n)
			orgs[org] += n
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = in.WaitIdle(wctx)
	in.Stop()
	if err != nil {
		t.Fatalf("WaitIdle: %v\n%s", err, logs.String())
	}
	for org, n := range orgs {
		st, err := s.LogState(ctx, org)
		if err != nil || st.IntegratedSize != int64(n) || st.NextSeq != int64(n) {
			t.Fatalf("LogState(%s) = %+v, %v; want %d integrated", org, st, err, n)
		}
		var buf bytes.Buffer
		if _, err := ledger.WriteBundle(ctx, &buf, s, org, ledger.BundleOptions{}); err != nil {
			t.Fatalf("WriteBundle(%s): %v", org, err)
		}
		rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{})
		if err != nil || !rep.OK() {
			t.Fatalf("Verify(%s): %v\n%s", org, err, rep.String())
		}
	}
}

// testLedgerPending follows one log through the list of pending logs: a
// log is listed exactly while it holds records beyond its integrated size,
// and a submission refused for another organization adds nothing to it.
func testLedgerPending[S store.Backend](t *testing.T, b Driver[S]) {
	ctx := context.Background()
	s := b.Open(t)
	const org = "org_pending"
	LedgerAppend(t, s, org, 0)
	d, err := event.ParseEvent([]byte(`{"action":"user.signed_in","occurred_at":"2026-11-25T17:59:59.123Z","actor":{"id":"user_1","type":"user"},"targets":[],"context":{"location":"203.0.113.7"}}`),
		ledgerEpoch, event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	refused := func(t *testing.T) {
		now := time.Now()
		sub := store.Submission{Events: []store.PendingEvent{
			{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail},
			{OrganizationID: "org_missing", ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail},
		}}
		res, err := s.Append(ctx, []store.Submission{sub}, now)
		if err != nil || !errors.Is(res[0].Err, store.ErrNotFound) {
			t.Fatalf("Append naming a missing organization = %v, %v; want its ErrNotFound", err, res[0].Err)
		}
	}
	integrate := func(old, new int64) func(t *testing.T) {
		return func(t *testing.T) {
			if err := s.Integrate(ctx, org, old, new, nil, []byte(fmt.Sprintf("note %d\n", new))); err != nil {
				t.Fatalf("Integrate(%d→%d): %v", old, new, err)
			}
		}
	}
	appendN := func(n int) func(t *testing.T) { return func(t *testing.T) { LedgerAppend(t, s, org, n) } }
	for _, step := range []struct {
		name string
		do   func(t *testing.T)
		want []ledger.LogState // the pending logs after it
	}{
		{"created", func(*testing.T) {}, nil},
		{"refused with another organization", refused, nil},
		{"appended", appendN(3), []ledger.LogState{{OrganizationID: org, NextSeq: 3}}},
		{"integrated", integrate(0, 3), nil},
		{"refused after integration", refused, nil},
		{"appended again", appendN(2), []ledger.LogState{{OrganizationID: org, IntegratedSize: 3, NextSeq: 5}}},
		{"integrated in part", integrate(3, 4), []ledger.LogState{{OrganizationID: org, IntegratedSize: 4, NextSeq: 5}}},
		{"integrated the rest", integrate(4, 5), nil},
	} {
		step.do(t)
		got, err := s.PendingLogs(ctx)
		if err != nil {
			t.Fatalf("%s: PendingLogs: %v", step.name, err)
		}
		if !slices.Equal(got, step.want) {
			t.Fatalf("%s: PendingLogs = %v, want %v", step.name, got, step.want)
		}
	}
}
