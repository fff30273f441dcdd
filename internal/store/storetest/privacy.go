package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// runPrivacy runs the conformance suite of store.PrivacyStore: policies,
// erasure jobs (idempotent on the request id), and erasing records as
// retention deletes them (bodies and search entries gone, only when
// integrated).
func runPrivacy(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Policies", func(t *testing.T) { testPrivacyPolicies(t, open(t)) })
	t.Run("ErasureJobs", func(t *testing.T) { testErasureJobs(t, open(t)) })
	t.Run("EraseRecords", func(t *testing.T) { testEraseRecords(t, open(t)) })
	t.Run("AppendAfterErasingNewest", func(t *testing.T) { testAppendAfterErasingNewest(t, open(t)) })
	t.Run("EraseRecordsUserAgent", func(t *testing.T) { testEraseRecordsUserAgent(t, open(t)) })
}

func testPrivacyPolicies(t *testing.T, s store.Backend) {
	ctx := t.Context()
	if _, _, err := s.PrivacyPolicy(ctx, "org_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PrivacyPolicy of an unknown organization: %v, want ErrNotFound", err)
	}
	if err := s.SetPrivacyPolicy(ctx, "org_none", []byte(`{}`), t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetPrivacyPolicy of an unknown organization: %v, want ErrNotFound", err)
	}
	a, b := orgID("PRIVPOL", 1), orgID("PRIVPOL", 2)
	mustCreateOrg(t, s, a, t0)
	mustCreateOrg(t, s, b, t0)
	if doc, _, err := s.PrivacyPolicy(ctx, a); err != nil || doc != nil {
		t.Errorf("PrivacyPolicy before any = %q, %v; want none", doc, err)
	}
	for i, doc := range []string{`{"fields":{"actor.id":"hmac"}}`, `{"fields":{"metadata.email":"redact"}}`} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := s.SetPrivacyPolicy(ctx, a, []byte(doc), at); err != nil {
			t.Fatalf("SetPrivacyPolicy: %v", err)
		}
		got, updated, err := s.PrivacyPolicy(ctx, a)
		if err != nil || string(got) != doc || !updated.Equal(at) {
			t.Errorf("PrivacyPolicy = %q at %v, %v; want %q at %v", got, updated, err, doc, at)
		}
	}
	if m, err := s.PrivacyPolicies(ctx); err != nil || len(m) != 1 || string(m[a]) != `{"fields":{"metadata.email":"redact"}}` {
		t.Errorf("PrivacyPolicies = %q, %v", m, err)
	}
	if err := s.SetPrivacyPolicy(ctx, a, nil, t0); err != nil {
		t.Fatalf("removing the policy: %v", err)
	}
	if m, err := s.PrivacyPolicies(ctx); err != nil || len(m) != 0 {
		t.Errorf("PrivacyPolicies after removal = %q, %v", m, err)
	}
}

func testErasureJobs(t *testing.T, s store.Backend) {
	ctx := t.Context()
	org := orgID("ERASEJOB", 1)
	mustCreateOrg(t, s, org, t0)
	e := store.Erasure{ID: "ers_1", OrganizationID: org, RequestID: "req-1", SubjectKind: "actor", SubjectHash: "hmac:v1:k:x",
		SealedSubject: []byte("sealed"), Reason: "GDPR Art. 17", RequestedByType: "api_key", RequestedByID: "key_1", RequestedByName: "ops",
		UpTo: 10, State: store.ErasurePlanning, CreatedAt: t0}
	if _, _, err := s.CreateErasure(ctx, store.Erasure{ID: "ers_0", OrganizationID: "org_none", RequestID: "r", CreatedAt: t0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateErasure of an unknown organization: %v, want ErrNotFound", err)
	}
	got, created, err := s.CreateErasure(ctx, e)
	if err != nil || !created || got.ID != e.ID || string(got.SealedSubject) != "sealed" || !got.CreatedAt.Equal(t0) || got.UpTo != 10 {
		t.Fatalf("CreateErasure = %+v, %v, %v", got, created, err)
	}
	again := e
	again.ID, again.Reason = "ers_2", "another"
	got, created, err = s.CreateErasure(ctx, again)
	if err != nil || created || got.ID != "ers_1" || got.Reason != e.Reason {
		t.Errorf("CreateErasure with the same request id = %+v, %v, %v; want the first job", got, created, err)
	}
	if list, err := s.UnfinishedErasures(ctx); err != nil || len(list) != 1 || list[0].ID != "ers_1" {
		t.Errorf("UnfinishedErasures = %+v, %v", list, err)
	}
	e.State, e.Seqs, e.Planned, e.Erased, e.SealedSubject, e.Tombstones, e.CompletedAt = store.ErasureCompleted, "1-3,7", 4, 4, nil, "11", t0.Add(time.Hour)
	if err := s.UpdateErasure(ctx, e); err != nil {
		t.Fatalf("UpdateErasure: %v", err)
	}
	got, err = s.Erasure(ctx, org, "ers_1")
	if err != nil || got.State != store.ErasureCompleted || got.Seqs != "1-3,7" || got.Planned != 4 || got.SealedSubject != nil ||
		got.Tombstones != "11" || !got.CompletedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("Erasure after update = %+v, %v", got, err)
	}
	if list, err := s.UnfinishedErasures(ctx); err != nil || len(list) != 0 {
		t.Errorf("UnfinishedErasures after completion = %+v, %v", list, err)
	}
	if _, err := s.Erasure(ctx, orgID("ERASEJOB", 2), "ers_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organization's erasure: %v, want ErrNotFound", err)
	}
}

// testAppendAfterErasingNewest erases an organization's newest records,
// those last appended to the whole store, then appends more: the new events
// take new seqs and new places in the store's order (a backend that reused
// the erased records' positions would have its indexer, which has passed
// them, skip the new events), so search and streams see every one of them.
func testAppendAfterErasingNewest(t *testing.T, s store.Backend) {
	ctx := t.Context()
	org := orgID("ERASENEW", 1)
	mustCreateOrg(t, s, org, t0)
	mustCreateStream(t, s, newStream(org, 9))
	now := time.Now().UTC().Truncate(time.Millisecond)
	appendAged(t, s, org, ages(now, 6, time.Hour))
	indexAll(t, s, 1000)
	fakeIntegrate(t, s, org, 0, 6)
	if erased, pending, err := s.EraseRecords(ctx, org, []int64{3, 4, 5}); err != nil || erased != 3 || pending != 0 {
		t.Fatalf("EraseRecords = %d erased, %d pending, %v; want 3 and 0", erased, pending, err)
	}
	for round, want := range [][]int64{{0, 1, 2, 6, 7}, {0, 1, 2, 6, 7, 8, 9}} {
		received := ages(now, 2, time.Duration(30-round)*time.Minute)
		var sub store.Submission
		for i, at := range received {
			sub.Events = append(sub.Events, retEvent(t, org, 100*round+i, at))
		}
		res, err := s.Append(ctx, []store.Submission{sub}, now)
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append after the erasure: %v %v", err, res[0].Err)
		}
		size := want[len(want)-1] + 1
		if got := res[0].Events; got[0].Seq != size-2 || got[1].Seq != size-1 {
			t.Errorf("round %d: appended seqs %d and %d, want %d and %d", round, got[0].Seq, got[1].Seq, size-2, size-1)
		}
		if got := storedSeqs(t, s, org, size); !slices.Equal(got, want) {
			t.Errorf("round %d: stored seqs %v, want %v", round, got, want)
		}
		if got := searchSeqs(t, s, store.EventQuery{OrganizationID: org}); !slices.Equal(got, want) {
			t.Errorf("round %d: search found seqs %v, want %v", round, got, want)
		}
		if got := searchSeqs(t, s, store.EventQuery{OrganizationID: org, Text: "retentionword"}); !slices.Equal(got, want) {
			t.Errorf("round %d: free-text search found seqs %v, want %v", round, got, want)
		}
		pos, err := s.StreamPositions(ctx)
		if err != nil {
			t.Fatalf("StreamPositions: %v", err)
		}
		for _, p := range pos {
			if p.ID == streamID(9) && p.LogSize != size {
				t.Errorf("round %d: the stream sees a log of %d records, want %d", round, p.LogSize, size)
			}
		}
	}
}

func testEraseRecords(t *testing.T, s store.Backend) {
	ctx := t.Context()
	org := orgID("ERASEREC", 1)
	mustCreateOrg(t, s, org, t0)
	now := time.Now().UTC().Truncate(time.Millisecond)
	accepted := appendAged(t, s, org, ages(now, 20, time.Hour))
	size := int64(len(accepted))
	indexAll(t, s, 1000)
	// Only the first 10 are integrated: the others must wait.
	fakeIntegrate(t, s, org, 0, 10)
	erased, pending, err := s.EraseRecords(ctx, org, []int64{2, 3, 12, 15})
	if err != nil || erased != 2 || pending != 2 {
		t.Fatalf("EraseRecords = %d erased, %d pending, %v; want 2 and 2", erased, pending, err)
	}
	fakeIntegrate(t, s, org, 10, size)
	erased, pending, err = s.EraseRecords(ctx, org, []int64{2, 3, 12, 15})
	if err != nil || erased != 2 || pending != 0 {
		t.Fatalf("EraseRecords again = %d erased, %d pending, %v; want 2 (the others gone already) and 0", erased, pending, err)
	}
	var want []int64
	for q := range size {
		if !slices.Contains([]int64{2, 3, 12, 15}, q) {
			want = append(want, q)
		}
	}
	if got := storedSeqs(t, s, org, size); !slices.Equal(got, want) {
		t.Errorf("stored seqs %v, want %v", got, want)
	}
	for _, a := range accepted {
		_, err := s.Event(ctx, a.ID)
		if gone := !slices.Contains(want, a.Seq); gone != errors.Is(err, store.ErrNotFound) {
			t.Errorf("Event of seq %d: %v", a.Seq, err)
		}
	}
	for _, q := range []store.EventQuery{
		{OrganizationID: org},
		{OrganizationID: org, ActorID: "user_12"},
		{OrganizationID: org, TargetType: "team", TargetID: "team_1"},
		{OrganizationID: org, Text: "retentionword"},
	} {
		got := searchSeqs(t, s, q)
		if q.ActorID != "" {
			if len(got) != 0 {
				t.Errorf("search %+v found erased seqs %v", q, got)
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("search %+v found %v, want %v", q, got, want)
		}
	}
	if _, _, err := s.EraseRecords(ctx, "org_none", []int64{1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EraseRecords of an unknown organization: %v, want ErrNotFound", err)
	}
}

// testEraseRecordsUserAgent erases events by the words of their user
// agents, which a backend may index once per distinct value: once the last
// event holding a value is erased, no word of it finds anything, while the
// events that share a value with an erased one are still found by it, and
// a value that comes back is found again.
func testEraseRecordsUserAgent(t *testing.T, s store.Backend) {
	ctx := t.Context()
	org := orgID("ERASEUA", 1)
	mustCreateOrg(t, s, org, t0)
	now := time.Now().UTC().Truncate(time.Millisecond)
	agents := []string{"Mozilla/5.0 Rareagent/1.0", "Mozilla/5.0 Sharedagent/2.0", "Mozilla/5.0 Sharedagent/2.0", "Mozilla/5.0 Rareagent/1.0", "Mozilla/5.0 Keptagent/3.0"}
	add := func(n int, agent string) {
		t.Helper()
		raw := fmt.Sprintf(`{"action":"doc.viewed","occurred_at":%q,"actor":{"id":"user_%d","type":"user"},"targets":[{"id":"doc_%d","type":"document"}],`+
			`"context":{"location":"203.0.113.7","user_agent":%q},"metadata":{"word":"agentword"}}`,
			now.Add(time.Duration(n)*time.Millisecond-time.Second).Format("2006-01-02T15:04:05.000Z"), n, n, agent)
		res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{pending(org, draft(t, []byte(raw)), now.Add(time.Duration(n)*time.Millisecond))}}}, now)
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append: %v %v", err, res)
		}
	}
	for i, a := range agents {
		add(i, a)
	}
	indexAll(t, s, 1000)
	fakeIntegrate(t, s, org, 0, int64(len(agents)))
	if erased, pending, err := s.EraseRecords(ctx, org, []int64{0, 1, 3}); err != nil || erased != 3 || pending != 0 {
		t.Fatalf("EraseRecords = %d erased, %d pending, %v; want 3 and 0", erased, pending, err)
	}
	cases := []struct {
		text string
		want []int64
	}{
		{"rareagent", nil},
		{"Rare*", nil},
		{"Mozilla/5.0/Rareagent", nil},
		{"203.0.113.7/mozilla/5.0/rareagent/1.0/agentword", nil},
		{"sharedagent", []int64{2}},
		{"Shared*", []int64{2}},
		{"113.7/Mozilla/5.0/Sharedagent/2.0/agentword", []int64{2}},
		{"keptagent/3", []int64{4}},
		{"mozilla", []int64{2, 4}},
		{"agentword", []int64{2, 4}},
	}
	for _, c := range cases {
		got := searchSeqs(t, s, store.EventQuery{OrganizationID: org, Text: c.text, Order: store.OrderAsc})
		if !slices.Equal(got, c.want) {
			t.Errorf("after erasing, search %q found %v, want %v", c.text, got, c.want)
		}
	}
	// The erased value comes back with a new event.
	add(len(agents), agents[0])
	indexAll(t, s, 1000)
	if got := searchSeqs(t, s, store.EventQuery{OrganizationID: org, Text: "rareagent", Order: store.OrderAsc}); !slices.Equal(got, []int64{5}) {
		t.Errorf("search for a value erased and stored again found %v, want [5]", got)
	}
}
