package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// RunRetention runs the conformance suite of store.RetentionStore, and the
// retention sweeper (package retention) over the store with a clock the
// test moves: bodies gone, search entries gone, tree hashes and checkpoints
// kept, and the remainder of each log still verifies. When the store is a
// store.PartitionDropper that can create past partitions
// (EnsurePartitions), whole-partition drops are checked too.
func runRetention[S store.Backend](t *testing.T, d Driver[S]) {
	t.Run("Settings", func(t *testing.T) { testRetentionSettings(t, d.Open(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, d.Open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testPruneConcurrent(t, d.Open(t)) })
	t.Run("Sweep", func(t *testing.T) { testSweep(t, d) })
	t.Run("Compaction", func(t *testing.T) { testCompaction(t, d) })
	t.Run("Partitions", func(t *testing.T) {
		if d.EnsurePartitions == nil {
			t.Skip("the store has no time partitions")
		}
		testPartitions(t, d)
	})
}

func testRetentionSettings(t *testing.T, s store.Backend) {
	ctx := t.Context()
	if _, _, err := s.Retention(ctx, "org_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Retention of an unknown organization: %v, want ErrNotFound", err)
	}
	if err := s.SetRetention(ctx, "org_none", 30, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRetention of an unknown organization: %v, want ErrNotFound", err)
	}
	org := orgID("RETSET", 1)
	mustCreateOrg(t, s, org, t0)
	mustCreateOrg(t, s, orgID("RETSET", 2), t0)
	if days, set, err := s.Retention(ctx, org); err != nil || set || days != 0 {
		t.Errorf("Retention before any setting = %d, %v, %v; want 0, false (the default applies)", days, set, err)
	}
	if m, err := s.RetentionSettings(ctx); err != nil || len(m) != 0 {
		t.Errorf("RetentionSettings with none set = %v, %v", m, err)
	}
	for _, days := range []int{90, 365, 30} {
		if err := s.SetRetention(ctx, org, days, t0); err != nil {
			t.Fatalf("SetRetention(%d): %v", days, err)
		}
		if got, set, err := s.Retention(ctx, org); err != nil || !set || got != days {
			t.Errorf("Retention after setting %d = %d, %v, %v", days, got, set, err)
		}
	}
	for _, bad := range []int{0, -30} {
		if err := s.SetRetention(ctx, org, bad, t0); err == nil {
			t.Errorf("SetRetention(%d) succeeded", bad)
		}
	}
	if m, err := s.RetentionSettings(ctx); err != nil || len(m) != 1 || m[org] != 30 {
		t.Errorf("RetentionSettings = %v, %v; want only %s: 30", m, err, org)
	}
	if _, set, _ := s.Retention(ctx, orgID("RETSET", 2)); set {
		t.Error("setting one organization's retention set another's")
	}
}

// retEvent is an event whose record names its position n (in its actor id
// and target id), received at received.
func retEvent(t testing.TB, org string, n int, received time.Time) store.PendingEvent {
	raw := fmt.Sprintf(`{"action":"doc.viewed","occurred_at":%q,"actor":{"id":"user_%d","type":"user","name":"Reader %d"},`+
		`"targets":[{"id":"doc_%d","type":"document"},{"id":"team_1","type":"team"}],"context":{"location":"203.0.113.7"},`+
		`"metadata":{"word":"retentionword"}}`,
		received.Add(-time.Second).UTC().Format("2006-01-02T15:04:05.000Z"), n, n, n)
	return pending(org, draft(t, []byte(raw)), received)
}

// appendAged appends one event to org per received time, in order, and
// returns the accepted events.
func appendAged(t testing.TB, s store.Backend, org string, received []time.Time) []event.Accepted {
	t.Helper()
	var out []event.Accepted
	for start := 0; start < len(received); start += 500 {
		var sub store.Submission
		for i, at := range received[start:min(start+500, len(received))] {
			sub.Events = append(sub.Events, retEvent(t, org, start+i, at))
		}
		res, err := s.Append(context.Background(), []store.Submission{sub}, received[start])
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append: %v %v", err, res[0].Err)
		}
		out = append(out, res[0].Events...)
	}
	return out
}

// ages returns n received times per age, oldest first: now − age, one
// millisecond apart.
func ages(now time.Time, n int, ages ...time.Duration) []time.Time {
	var out []time.Time
	for _, a := range ages {
		for i := range n {
			out = append(out, now.Add(-a).Add(time.Duration(i)*time.Millisecond))
		}
	}
	return out
}

const day = 24 * time.Hour

// fakeIntegrate marks org integrated from old to new with placeholder
// tiles: PruneRecords only looks at the integrated size.
func fakeIntegrate(t *testing.T, s store.Backend, org string, old, new int64) {
	t.Helper()
	var tiles []ledger.TileData
	for n := old / 256; n*256 < new; n++ {
		w := int(min(new-n*256, 256))
		tiles = append(tiles, ledger.TileData{Tile: tlog.Tile{H: 8, L: 0, N: n, W: w}, Data: make([]byte, 32*w)})
	}
	if err := s.Integrate(t.Context(), org, old, new, tiles, fmt.Appendf(nil, "note %d\n", new)); err != nil {
		t.Fatalf("Integrate(%s, %d→%d): %v", org, old, new, err)
	}
}

// storedSeqs returns the seqs of org's stored records below size.
func storedSeqs(t *testing.T, s store.Backend, org string, size int64) []int64 {
	t.Helper()
	var seqs []int64
	if err := s.ReadRecords(t.Context(), org, 0, size, func(seq int64, _ []byte) error {
		seqs = append(seqs, seq)
		return nil
	}); err != nil {
		t.Fatalf("ReadRecords(%s): %v", org, err)
	}
	return seqs
}

// searchSeqs returns the seqs of every event of org matching q, following
// cursors, after bringing search up to date.
func searchSeqs(t *testing.T, s store.Backend, q store.EventQuery) []int64 {
	t.Helper()
	indexAll(t, s, 1000)
	q.Limit = 100
	var seqs []int64
	for range 10_000 {
		page, err := s.SearchEvents(t.Context(), q)
		if err != nil {
			t.Fatalf("SearchEvents(%+v): %v", q, err)
		}
		for _, e := range page.Events {
			seqs = append(seqs, e.Seq)
		}
		if page.After == "" {
			slices.Sort(seqs)
			return seqs
		}
		q.After = page.After
	}
	t.Fatal("search pagination did not end")
	return nil
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}

// checkRetained checks that exactly seqs [first, size) of org remain, by
// every way of reading them: the log, Event by id, and search by every
// index (organization, action, actor, target type and id, free text).
func checkRetained(t *testing.T, s store.Backend, org string, accepted []event.Accepted, first int64) {
	t.Helper()
	ctx := t.Context()
	size := int64(len(accepted))
	want := seqRange(first, size)
	if got := storedSeqs(t, s, org, size); !slices.Equal(got, want) {
		t.Errorf("%s: stored seqs %v, want %d…%d", org, brief(got), first, size-1)
	}
	for _, a := range accepted {
		_, err := s.Event(ctx, a.ID)
		switch {
		case a.Seq < first && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: Event of pruned seq %d = %v, want ErrNotFound", org, a.Seq, err)
		case a.Seq >= first && err != nil:
			t.Errorf("%s: Event of retained seq %d: %v", org, a.Seq, err)
		}
	}
	for _, q := range []store.EventQuery{
		{OrganizationID: org},
		{OrganizationID: org, Order: store.OrderAsc},
		{OrganizationID: org, Actions: []string{"doc.viewed"}},
		{OrganizationID: org, ActionPrefixes: []string{"doc."}},
		{OrganizationID: org, TargetType: "team", TargetID: "team_1"},
		{OrganizationID: org, TargetType: "document"},
		{OrganizationID: org, TargetID: "team_1"},
		{OrganizationID: org, Text: "retentionword"},
	} {
		if got := searchSeqs(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s: search %+v found seqs %v, want %d…%d", org, q, brief(got), first, size-1)
		}
	}
	for _, n := range []int64{0, first - 1, first, size - 1} {
		if n < 0 || n >= size {
			continue
		}
		q := store.EventQuery{OrganizationID: org, ActorID: fmt.Sprintf("user_%d", n)}
		got := searchSeqs(t, s, q)
		if (n >= first) != (len(got) == 1) {
			t.Errorf("%s: search by the actor of seq %d found %v (first retained %d)", org, n, got, first)
		}
		q = store.EventQuery{OrganizationID: org, TargetType: "document", TargetID: fmt.Sprintf("doc_%d", n)}
		got = searchSeqs(t, s, q)
		if (n >= first) != (len(got) == 1) {
			t.Errorf("%s: search by the target of seq %d found %v (first retained %d)", org, n, got, first)
		}
	}
}

func brief(seqs []int64) string {
	if len(seqs) <= 6 {
		return fmt.Sprint(seqs)
	}
	return fmt.Sprintf("[%d %d %d … %d] (%d)", seqs[0], seqs[1], seqs[2], seqs[len(seqs)-1], len(seqs))
}

func prune(t *testing.T, s store.Backend, org string, cutoff time.Time, limit int) int {
	t.Helper()
	n, err := s.PruneRecords(t.Context(), org, cutoff, limit)
	if err != nil {
		t.Fatalf("PruneRecords(%s, %s, %d): %v", org, cutoff.Format(time.RFC3339), limit, err)
	}
	if n < 0 || n > max(limit, 0) {
		t.Fatalf("PruneRecords(%s, limit %d) = %d", org, limit, n)
	}
	return n
}

// testPrune checks PruneRecords' contract: a prefix of the log, only
// received before the cutoff, only integrated, in batches of at most limit,
// search entries with the records, other organizations untouched.
func testPrune(t *testing.T, s store.Backend) {
	ctx := t.Context()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	a, b := orgID("PRUNE", 1), orgID("PRUNE", 2)
	mustCreateOrg(t, s, a, now.Add(-200*day))
	mustCreateOrg(t, s, b, now.Add(-200*day))
	if _, err := s.PruneRecords(ctx, "org_none", now, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PruneRecords of an unknown organization: %v, want ErrNotFound", err)
	}
	if n := prune(t, s, a, now, 10); n != 0 {
		t.Errorf("PruneRecords of an empty log = %d", n)
	}
	received := ages(now, 3, 100*day, 50*day, 10*day, day) // seq 0–2, 3–5, 6–8, 9–11
	accA := appendAged(t, s, a, received)
	accB := appendAged(t, s, b, received)
	indexAll(t, s, 1000)

	// Nothing is integrated: nothing may go, however old.
	if n := prune(t, s, a, now, 100); n != 0 {
		t.Fatalf("PruneRecords before integration deleted %d records: their leaf hashes would be lost", n)
	}
	fakeIntegrate(t, s, a, 0, 5)
	fakeIntegrate(t, s, b, 0, 12)
	cutoff := now.Add(-30 * day) // seq 0–5 are older; seq 5 is not integrated
	if n := prune(t, s, a, cutoff, 0); n != 0 {
		t.Errorf("PruneRecords with limit 0 = %d", n)
	}
	if n := prune(t, s, a, cutoff, 2); n != 2 {
		t.Fatalf("first batch of 2 deleted %d", n)
	}
	checkRetained(t, s, a, accA, 2)
	if n := prune(t, s, a, cutoff, 10); n != 3 {
		t.Fatalf("second batch deleted %d records, want 3 (seq 2–4; seq 5 is not integrated)", n)
	}
	if n := prune(t, s, a, cutoff, 10); n != 0 {
		t.Fatalf("third batch deleted %d", n)
	}
	checkRetained(t, s, a, accA, 5)
	checkRetained(t, s, b, accB, 0)

	// Once integrated, seq 5 goes too; the cutoff is exclusive.
	fakeIntegrate(t, s, a, 5, 12)
	if n := prune(t, s, a, cutoff, 10); n != 1 {
		t.Fatalf("after integration: deleted %d, want 1 (seq 5)", n)
	}
	if n := prune(t, s, a, received[6], 10); n != 0 {
		t.Fatalf("cutoff at seq 6's received_at deleted %d; it is not before the cutoff", n)
	}
	if n := prune(t, s, a, received[6].Add(time.Millisecond), 10); n != 1 {
		t.Fatalf("cutoff just after seq 6's received_at deleted %d, want 1", n)
	}
	checkRetained(t, s, a, accA, 7)
	if st, err := s.LogState(ctx, a); err != nil || st.NextSeq != 12 || st.IntegratedSize != 12 {
		t.Errorf("LogState after pruning = %+v, %v; want the log size and integrated size unchanged", st, err)
	}
	if n, err := s.NextSeq(ctx, a); err != nil || n != 12 {
		t.Errorf("NextSeq after pruning = %d, %v", n, err)
	}

	// Records not yet searchable: the store may wait for the indexer,
	// but once everything is indexed and pruned, none is searchable.
	c := orgID("PRUNE", 3)
	mustCreateOrg(t, s, c, now.Add(-200*day))
	accC := appendAged(t, s, c, ages(now, 4, 90*day, 5*day))
	fakeIntegrate(t, s, c, 0, 8)
	first := prune(t, s, c, now.Add(-30*day), 100)
	indexAll(t, s, 1000)
	first += prune(t, s, c, now.Add(-30*day), 100)
	if first != 4 {
		t.Fatalf("%s: deleted %d records, want 4", c, first)
	}
	checkRetained(t, s, c, accC, 4)

	// Appending goes on after pruning, at the next seq.
	more := appendAged(t, s, a, []time.Time{now})
	if more[0].Seq != 12 {
		t.Errorf("the event after pruning got seq %d, want 12", more[0].Seq)
	}
}

// testPruneConcurrent prunes while the search indexer (when the store has
// one) indexes the same records in small batches and another organization
// keeps appending: however the two interleave, no pruned record is left
// searchable.
func testPruneConcurrent(t *testing.T, s store.Backend) {
	ctx := t.Context()
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	x, y := orgID("CONC", 1), orgID("CONC", 2)
	mustCreateOrg(t, s, x, now.Add(-200*day))
	mustCreateOrg(t, s, y, now.Add(-200*day))
	const n = 300
	accX := appendAged(t, s, x, ages(now, n, 100*day))
	fakeIntegrate(t, s, x, 0, n)

	done := make(chan struct{})
	errc := make(chan error, 2)
	go func() { // the indexer, in small batches
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			n, err := s.IndexPending(ctx, 7)
			if err != nil {
				errc <- err
				return
			}
			if n == 0 { // nothing pending now (or ever, on a backend that indexes in its ingest)
				select {
				case <-done:
				case <-time.After(time.Millisecond):
				}
			}
		}
	}()
	go func() { // ingest of another organization
		for i := 0; ; i++ {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			sub := store.Submission{Events: []store.PendingEvent{retEvent(t, y, i, now)}}
			res, err := s.Append(ctx, []store.Submission{sub}, now)
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	deleted := 0
	for range 100_000 {
		deleted += prune(t, s, x, now.Add(-30*day), 5)
		if deleted == n {
			break
		}
	}
	close(done)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if deleted != n {
		t.Fatalf("pruned %d records of %d", deleted, n)
	}
	checkRetained(t, s, x, accX, n)
}

// testSweep runs the sweeper with a controllable clock over logs the real
// integrator built, and checks what remains against signed checkpoints.
func testSweep[S store.Backend](t *testing.T, d Driver[S]) {
	ctx := t.Context()
	s := d.Open(t)
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	const perAge = 130 // several tiles per organization
	received := ages(now, perAge, 400*day, 200*day, 90*day, 45*day, 20*day, day)
	orgs := []struct {
		id    string
		days  int // 0: the default, 30
		first int64
	}{
		{orgID("SWEEP", 1), 0, 4 * perAge},
		{orgID("SWEEP", 2), 365, 1 * perAge},
		{orgID("SWEEP", 3), 60, 3 * perAge},
		{orgID("SWEEP", 4), 3650, 0},
	}
	accepted := map[string][]event.Accepted{}
	for _, o := range orgs {
		mustCreateOrg(t, s, o.id, now.Add(-500*day))
		if o.days > 0 {
			if err := s.SetRetention(ctx, o.id, o.days, now); err != nil {
				t.Fatal(err)
			}
		}
		accepted[o.id] = appendAged(t, s, o.id, received)
	}
	signer := integrateAll(t, s)
	indexAll(t, s, 1000)

	size := int64(len(received))
	type saved struct {
		checkpoint []byte
		tiles      [][]byte
		leaf0      tlog.Hash
	}
	tiles := tlog.NewTiles(ledger.TileHeight, 0, size)
	before := map[string]saved{}
	for _, o := range orgs {
		var sv saved
		var err error
		if sv.checkpoint, err = s.LatestCheckpoint(ctx, o.id); err != nil {
			t.Fatal(err)
		}
		if sv.tiles, err = s.ReadTiles(ctx, o.id, tiles); err != nil {
			t.Fatal(err)
		}
		s.ReadRecords(ctx, o.id, 0, 1, func(_ int64, rec []byte) error { sv.leaf0 = tlog.RecordHash(rec); return nil })
		before[o.id] = sv
	}

	clock := now
	sweep := d.Sweeper(s, 30, 50, func() time.Time { return clock })
	records, partitions, err := sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	var want int64
	for _, o := range orgs {
		want += o.first
	}
	if records != want || len(partitions) != 0 {
		t.Errorf("Sweep = %d records, partitions %v; want %d records deleted and no partition dropped", records, partitions, want)
	}
	for _, o := range orgs {
		checkRetained(t, s, o.id, accepted[o.id], o.first)
		sv := before[o.id]
		if ck, err := s.LatestCheckpoint(ctx, o.id); err != nil || !bytes.Equal(ck, sv.checkpoint) {
			t.Errorf("%s: the checkpoint changed with retention: %v", o.id, err)
		}
		got, err := s.ReadTiles(ctx, o.id, tiles)
		if err != nil {
			t.Fatalf("%s: ReadTiles after retention: %v", o.id, err)
		}
		for i := range tiles {
			if !bytes.Equal(got[i], sv.tiles[i]) {
				t.Errorf("%s: tile %s changed with retention", o.id, tiles[i].Path())
			}
		}
		verifyRemainder(t, s, signer, o.id, o.first, size, sv.leaf0)
	}

	// A second sweep at the same time has nothing to do.
	if records, _, err := sweep(ctx); err != nil || records != 0 {
		t.Errorf("second Sweep = %d records, %v; want nothing deleted", records, err)
	}
	// 25 days later, the default retention (30 days) reaches the
	// 20-day-old events, and 60 days the 45-day-old ones.
	clock = now.Add(25 * day)
	if records, _, err := sweep(ctx); err != nil || records != 2*perAge {
		t.Errorf("Sweep 25 days later = %d records, %v; want %d records deleted", records, err, 2*perAge)
	}
	orgs[0].first, orgs[2].first = 5*perAge, 4*perAge
	for _, o := range orgs {
		checkRetained(t, s, o.id, accepted[o.id], o.first)
		verifyRemainder(t, s, signer, o.id, o.first, size, before[o.id].leaf0)
	}
}

// integrateAll runs the real integrator until every log is integrated and
// returns its signer.
func integrateAll(t *testing.T, s store.Backend) *ledger.Signer {
	t.Helper()
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
	if err := in.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	wctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := in.WaitIdle(wctx); err != nil {
		t.Fatalf("WaitIdle: %v\n%s", err, logs.String())
	}
	pending, err := s.PendingLogs(t.Context())
	if err != nil || len(pending) != 0 {
		t.Fatalf("logs left unintegrated: %v, %v\n%s", pending, err, logs.String())
	}
	return signer
}

// verifyRemainder checks that a bundle of org's records from first on
// verifies against the signed checkpoint, that a bundle from seq 0 reports
// exactly the pruned records missing, and that the first record, pruned or
// not, is still proven in the tree by its leaf hash (leaf0).
func verifyRemainder(t *testing.T, s store.Backend, signer *ledger.Signer, org string, first, size int64, leaf0 tlog.Hash) {
	t.Helper()
	ctx := t.Context()
	var buf bytes.Buffer
	if _, err := ledger.WriteBundle(ctx, &buf, s, org, ledger.BundleOptions{From: first}); err != nil {
		t.Fatalf("%s: WriteBundle from %d: %v", org, first, err)
	}
	rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{})
	if err != nil || !rep.OK() || rep.From != first || rep.To != size || rep.Records != size-first || rep.CheckpointSize != size {
		t.Errorf("%s: the bundle of the retained records %d…%d did not verify: %v\n%s", org, first, size-1, err, rep.String())
	}
	if first > 0 {
		buf.Reset()
		if _, err := ledger.WriteBundle(ctx, &buf, s, org, ledger.BundleOptions{}); err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.Verify(&buf, signer.VerifierKey(), ledger.VerifyOptions{})
		want := fmt.Sprintf("seq 0–%d (%d records) are not in the bundle", first-1, first)
		if err == nil || rep.ProblemCount != 1 || rep.Problems[0].Kind != ledger.ProblemMissing || !bytes.Contains([]byte(rep.Problems[0].Detail), []byte(want)) {
			t.Errorf("%s: a bundle from seq 0 over %d pruned records: %v\n%s", org, first, err, rep.String())
		}
	}
	ck, err := s.LatestCheckpoint(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ledger.ParseCheckpoint(ck, signer.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := ledger.InclusionProof(ctx, s, org, 0, c.Size)
	if err != nil {
		t.Fatalf("%s: inclusion proof of seq 0 after retention: %v", org, err)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Hash, 0, leaf0); err != nil {
		t.Errorf("%s: seq 0 is no longer proven in the signed tree: %v", org, err)
	}
}

// testPartitions checks whole-partition drops: only partitions that every
// organization's retention has passed, only when integrated, and row
// deletes for the rest.
func testPartitions[S store.Backend](t *testing.T, d Driver[S]) {
	ctx := t.Context()
	s := d.Open(t)
	p, q := orgID("PART", 1), orgID("PART", 2)
	jan := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	mustCreateOrg(t, s, p, jan)
	mustCreateOrg(t, s, q, jan)
	if err := s.SetRetention(ctx, q, 60, jan); err != nil {
		t.Fatal(err)
	}
	const perMonth = 50
	var received []time.Time
	for _, at := range []time.Time{jan, jan.AddDate(0, 1, 0), jan.AddDate(0, 2, 0), jan.AddDate(0, 3, 0)} { // 10 Jan, Feb, Mar, Apr
		received = append(received, ages(at, perMonth, 0)...)
	}
	accP := appendAged(t, s, p, received)
	accQ := appendAged(t, s, q, received)
	// Partitions for January to March 2025 (April's rows stay in the
	// default partition).
	if err := d.EnsurePartitions(ctx, s, jan); err != nil {
		t.Fatal(err)
	}
	// Not integrated: nothing is dropped, however old.
	if drop, err := s.DropPartitions(ctx, jan.AddDate(1, 0, 0)); err != nil || len(drop.Partitions) != 0 || drop.Records != 0 {
		t.Fatalf("DropPartitions before integration = %+v, %v: leaf hashes would be lost", drop, err)
	}
	signer := integrateAll(t, s)
	indexAll(t, s, 1000)
	size := int64(len(received))
	var leaf0 tlog.Hash
	s.ReadRecords(ctx, p, 0, 1, func(_ int64, rec []byte) error { leaf0 = tlog.RecordHash(rec); return nil })

	// On 5 May the longest retention (60 days) has passed for January and
	// February; March is past p's 30 days but not q's 60.
	clock := time.Date(2025, 5, 5, 0, 0, 0, 0, time.UTC)
	sweep := d.Sweeper(s, 30, 0, func() time.Time { return clock })
	records, partitions, err := sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	wantParts := []string{"events_y2025m01", "events_y2025m02"}
	if !slices.Equal(partitions, wantParts) || records != 4*perMonth+perMonth {
		t.Errorf("Sweep = %d records, partitions %v; want partitions %v and %d records (two months of two organizations dropped, March of %s deleted)",
			records, partitions, wantParts, 5*perMonth, p)
	}
	checkRetained(t, s, p, accP, 3*perMonth)
	checkRetained(t, s, q, accQ, 2*perMonth)
	verifyRemainder(t, s, signer, p, 3*perMonth, size, leaf0)
	if records, partitions, err := sweep(ctx); err != nil || records != 0 || len(partitions) != 0 {
		t.Errorf("second Sweep = %d records, partitions %v, %v; want nothing done", records, partitions, err)
	}
	// Appending to a partitioned log goes on.
	if more := appendAged(t, s, p, []time.Time{clock}); more[0].Seq != size {
		t.Errorf("the event after the drop got seq %d, want %d", more[0].Seq, size)
	}
}
