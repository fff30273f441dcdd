package privacy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/store/sqlite"
)

// flakySubmitter appends to the store, failing while fail is set.
type flakySubmitter struct {
	st   store.Store
	fail bool
}

func (f *flakySubmitter) Submit(ctx context.Context, s store.Submission) (store.AppendResult, error) {
	if f.fail {
		return store.AppendResult{}, errors.New("the committer is stopping")
	}
	res, err := f.st.Append(ctx, []store.Submission{s}, time.Now())
	if err != nil {
		return store.AppendResult{}, err
	}
	return res[0], nil
}

// TestErasureResumesWhereItFailed runs an erasure whose tombstone cannot
// be appended at first: the job must stay in its recording step with its
// plan (the erased records can no longer be found by searching), then
// complete once appending works, with one tombstone naming every seq.
func TestErasureResumesWhereItFailed(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "trail.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const org = "org_erase"
	now := time.Now().UTC()
	if err := st.CreateOrganization(ctx, store.Organization{ID: org, Name: "Erase", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var sub store.Submission
	for i := range 10 {
		actor := "alice"
		if i%3 == 0 {
			actor = "bob"
		}
		raw := fmt.Sprintf(`{"action":"doc.viewed","occurred_at":%q,"actor":{"id":%q,"type":"user"},"targets":[],"context":{"location":"x"}}`,
			now.Add(-time.Minute).Format(time.RFC3339), actor)
		d, err := event.ParseEvent([]byte(raw), now, event.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail, Draft: d})
	}
	if _, err := st.Append(ctx, []store.Submission{sub}, now); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := st.IndexPending(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	// Integrated with placeholder hashes: EraseRecords looks at the size.
	if err := st.Integrate(ctx, org, 0, 10, []ledger.TileData{{Tile: tlog.Tile{H: 8, L: 0, N: 0, W: 10}, Data: make([]byte, 32*10)}}, []byte("note\n")); err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.GenerateSigner("test.example")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakySubmitter{st: st, fail: true}
	e := NewEraser(st, flaky, keys, signer, EraserOptions{BatchSize: 2}, nil)
	job, created, err := e.Request(ctx, Request{OrganizationID: org, RequestID: "r1", ActorID: "alice", Reason: "GDPR"})
	if err != nil || !created {
		t.Fatalf("Request: %v %v", created, err)
	}
	if err := e.process(ctx, &job); err == nil {
		t.Fatal("the erasure completed though its tombstone could not be appended")
	}
	stored, err := st.Erasure(ctx, org, job.ID)
	if err != nil || stored.State != store.ErasureRecording || stored.Seqs != "1-2,4-5,7-8" || stored.Planned != 6 {
		t.Fatalf("after the failure the job is %+v, %v; want it recording with its plan", stored, err)
	}
	flaky.fail = false
	if err := e.process(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	done, err := st.Erasure(ctx, org, job.ID)
	if err != nil || done.State != store.ErasureCompleted || done.SealedSubject != nil || done.Tombstones != "10" {
		t.Fatalf("completed job %+v, %v", done, err)
	}
	var tomb []byte
	if err := st.ReadRecords(ctx, org, 10, 11, func(_ int64, r []byte) error { tomb = r; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"seqs":"1-2,4-5,7-8"`, `"erased_count":6`, `"action":"trail.erasure.completed"`, done.SubjectHash} {
		if !strings.Contains(string(tomb), want) {
			t.Errorf("tombstone lacks %s: %s", want, tomb)
		}
	}
	if strings.Contains(string(tomb), `"alice"`) {
		t.Errorf("tombstone names the subject: %s", tomb)
	}
}

func TestRanges(t *testing.T) {
	for _, tt := range []struct {
		seqs []int64
		want string
	}{
		{nil, ""},
		{[]int64{4}, "4"},
		{[]int64{1, 2, 3, 7, 9, 10}, "1-3,7,9-10"},
	} {
		got := FormatRanges(tt.seqs)
		back, err := ParseRanges(got)
		if got != tt.want || err != nil || fmt.Sprint(back) != fmt.Sprint(tt.seqs) && len(tt.seqs) > 0 {
			t.Errorf("FormatRanges(%v) = %q, back %v %v; want %q", tt.seqs, got, back, err, tt.want)
		}
	}
}
