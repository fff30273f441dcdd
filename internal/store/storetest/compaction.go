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

	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
)

// testCompaction checks store.CheckpointCompactor and the sweeper's
// checkpoint compaction over it: listing by size across pages, deleting
// never the newest, young checkpoints kept, old ones thinned to one per
// day, and a consistency proof from a compacted size to the newest still
// verifying against the checkpoint a client kept. (Pinned checkpoints are
// checked in package retention.)
func testCompaction[S store.Backend](t *testing.T, d Driver[S]) {
	ctx := t.Context()
	s := d.Open(t)
	var cc store.CheckpointCompactor = s
	now := time.Now().UTC()
	many, few := orgID("COMPACT", 1), orgID("COMPACT", 2)
	const n = 1205 // more than a page of the compaction's walk
	mustCreateOrg(t, s, many, now)
	appendAged(t, s, many, ages(now, n, 0))
	for size := int64(1); size <= n; size++ {
		fakeIntegrate(t, s, many, size-1, size)
	}
	sizes := func(org string) []int64 {
		var out []int64
		after := int64(0)
		for {
			page, err := cc.CheckpointsAfter(ctx, org, after, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				if c.CreatedAt.IsZero() || c.CreatedAt.Sub(now) > time.Hour || now.Sub(c.CreatedAt) > time.Hour {
					t.Fatalf("%s: checkpoint %d created at %s, not about now (%s)", org, c.Size, c.CreatedAt, now)
				}
				out = append(out, c.Size)
				after = c.Size
			}
			if len(page) < 500 {
				return out
			}
		}
	}
	if got := sizes(many); len(got) != n || got[0] != 1 || got[n-1] != n || !slices.IsSorted(got) {
		t.Fatalf("CheckpointsAfter over pages: %d checkpoints %v…, want 1…%d in order", len(got), got[:min(len(got), 5)], n)
	}
	if page, err := cc.CheckpointsAfter(ctx, many, n-2, 10); err != nil || len(page) != 2 || page[0].Size != n-1 || page[1].Size != n {
		t.Errorf("CheckpointsAfter(%d) = %+v, %v; want the last two", n-2, page, err)
	}
	if page, err := cc.CheckpointsAfter(ctx, "org_none", 0, 10); err != nil || len(page) != 0 {
		t.Errorf("CheckpointsAfter of an unknown organization = %+v, %v; want none", page, err)
	}

	// The newest is never deleted; unknown sizes are ignored.
	if k, err := cc.DeleteCheckpoints(ctx, many, []int64{n, 3, n + 10}); err != nil || k != 1 {
		t.Errorf("DeleteCheckpoints(newest, 3, unknown) = %d, %v; want only 3 deleted", k, err)
	}
	if _, err := s.Checkpoint(ctx, many, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Checkpoint 3 after deleting it: %v, want ErrNotFound", err)
	}
	if ck, err := s.LatestCheckpoint(ctx, many); err != nil || string(ck) != fmt.Sprintf("note %d\n", n) {
		t.Errorf("LatestCheckpoint after a delete naming it = %q, %v", ck, err)
	}
	if k, err := cc.DeleteCheckpoints(ctx, many, nil); err != nil || k != 0 {
		t.Errorf("DeleteCheckpoints(none) = %d, %v", k, err)
	}

	// A log with real signed checkpoints: a client keeps the first one.
	mustCreateOrg(t, s, few, now)
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
	defer in.Stop()
	var kept []ledger.Checkpoint // the newest checkpoint after each round
	for round := range 3 {
		appendAged(t, s, few, ages(now, 10+round, 0))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := in.WaitIdle(wctx)
		cancel()
		if err != nil {
			t.Fatalf("WaitIdle: %v\n%s", err, logs.String())
		}
		msg, err := s.LatestCheckpoint(ctx, few)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ledger.ParseCheckpoint(msg, signer.Verifier())
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, c)
	}
	newest := kept[len(kept)-1]

	// Young checkpoints all stay.
	clock := now.Add(time.Hour)
	sweep := d.Sweeper(s, 36500, 0, func() time.Time { return clock })
	beforeMany, beforeFew := sizes(many), sizes(few)
	if _, _, err := sweep(ctx); err != nil {
		t.Fatalf("Sweep an hour later: %v", err)
	}
	if got := len(sizes(many)) + len(sizes(few)); got != len(beforeMany)+len(beforeFew) {
		t.Fatalf("a sweep an hour later left %d of %d checkpoints; want all", got, len(beforeMany)+len(beforeFew))
	}

	// 200 days later only the newest of each day stays (the newest of the
	// log always). The checkpoints were stored within a minute or so, on
	// one UTC day or across one midnight.
	clock = now.Add(200 * 24 * time.Hour)
	if _, _, err := sweep(ctx); err != nil {
		t.Fatalf("Sweep 200 days later: %v", err)
	}
	afterMany, afterFew := sizes(many), sizes(few)
	if len(afterMany)+len(afterFew) >= len(beforeMany)+len(beforeFew) {
		t.Errorf("Sweep 200 days later compacted nothing")
	}
	for _, tc := range []struct {
		org   string
		after []int64
		must  []int64
	}{
		{many, afterMany, []int64{n}},
		{few, afterFew, []int64{newest.Size}},
	} {
		for _, size := range tc.must {
			if !slices.Contains(tc.after, size) {
				t.Errorf("%s: checkpoint %d compacted away; kept %v", tc.org, size, tc.after)
			}
		}
		if len(tc.after) > len(tc.must)+1 {
			t.Errorf("%s: %d checkpoints kept after compaction (%v); want one per day", tc.org, len(tc.after), tc.after)
		}
	}
	if ck, err := s.LatestCheckpoint(ctx, many); err != nil || string(ck) != fmt.Sprintf("note %d\n", n) {
		t.Errorf("LatestCheckpoint after compaction = %q, %v", ck, err)
	}

	// A client holding the first checkpoint, compacted away, still gets a
	// consistency proof to the newest that verifies.
	first := kept[0]
	if _, err := s.Checkpoint(ctx, few, first.Size); !errors.Is(err, store.ErrNotFound) && !slices.Contains(afterFew, first.Size) {
		t.Errorf("Checkpoint %d: %v", first.Size, err)
	}
	proof, err := ledger.ConsistencyProof(ctx, s, few, first.Size, newest.Size)
	if err != nil {
		t.Fatalf("consistency proof from compacted size %d: %v", first.Size, err)
	}
	if err := tlog.CheckTree(proof, newest.Size, newest.Hash, first.Size, first.Hash); err != nil {
		t.Errorf("consistency proof from compacted size %d to %d does not verify: %v", first.Size, newest.Size, err)
	}

	// A second sweep finds nothing more to do.
	if _, _, err := sweep(ctx); err != nil || len(sizes(many)) != len(afterMany) || len(sizes(few)) != len(afterFew) {
		t.Errorf("a second sweep changed the kept checkpoints (%v)", err)
	}
}
