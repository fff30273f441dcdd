package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// runLifecycle is the conformance suite of store.OrganizationLifecycle and
// store.ArchiveStore.
func runLifecycle(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Update", func(t *testing.T) { testUpdateOrganization(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDeleteOrganization(t, open(t)) })
	t.Run("ArchiveSettings", func(t *testing.T) { testArchiveSettings(t, open(t)) })
	t.Run("ArchiveHold", func(t *testing.T) { testArchiveHold(t, open(t)) })
}

func testUpdateOrganization(t *testing.T, s store.Backend) {
	ctx := t.Context()
	a, b := orgID("UPD", 1), orgID("UPD", 2)
	mustCreateOrg(t, s, a, t0)
	other := store.Organization{ID: b, Name: "Other", ExternalID: "taken", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateOrganization(ctx, other); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(time.Hour)
	cases := []struct {
		name    string
		org     store.Organization
		wantErr error
	}{
		{"rename and set external id", store.Organization{ID: a, Name: "Renamed — ü", ExternalID: "ext-a", UpdatedAt: later}, nil},
		{"change external id", store.Organization{ID: a, Name: "Renamed — ü", ExternalID: "ext-a2", UpdatedAt: later}, nil},
		{"clear external id", store.Organization{ID: a, Name: "Renamed again", UpdatedAt: later}, nil},
		{"external id of another", store.Organization{ID: a, Name: "X", ExternalID: "taken", UpdatedAt: later}, store.ErrConflict},
		{"unknown organization", store.Organization{ID: orgID("UPD", 9), Name: "X", UpdatedAt: later}, store.ErrNotFound},
		{"system organization", store.Organization{ID: store.SystemOrganizationID, Name: "X", UpdatedAt: later}, store.ErrNotFound},
	}
	want := store.Organization{ID: a, Name: "Org " + a, CreatedAt: t0, UpdatedAt: t0}
	for _, c := range cases {
		err := s.UpdateOrganization(ctx, c.org)
		if c.wantErr != nil {
			wantErr(t, c.name, err, c.wantErr)
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		} else {
			want.Name, want.ExternalID, want.UpdatedAt = c.org.Name, c.org.ExternalID, c.org.UpdatedAt
		}
		got, err := s.Organization(ctx, a)
		if err != nil {
			t.Fatalf("%s: Organization: %v", c.name, err)
		}
		checkOrg(t, got, want)
	}
	// The freed external id can be found by nobody, then taken again.
	if _, err := s.OrganizationByExternalID(ctx, "ext-a2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OrganizationByExternalID of a replaced external id: %v, want ErrNotFound", err)
	}
}

func testDeleteOrganization(t *testing.T, s store.Backend) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a, keep := orgID("DEL", 1), orgID("DEL", 2)
	mustCreateOrg(t, s, keep, now)
	org := store.Organization{ID: a, Name: "Leaving", ExternalID: "leaving-1", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	appendAged(t, s, a, ages(now, 5, time.Hour))
	appendAged(t, s, keep, ages(now, 3, time.Hour))
	fakeIntegrate(t, s, a, 0, 5)
	fakeIntegrate(t, s, keep, 0, 3)

	// Credentials of both organizations.
	if err := s.CreateStream(ctx, newStream(a, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStream(ctx, newStream(keep, 2)); err != nil {
		t.Fatal(err)
	}
	for i, o := range []string{a, a, keep, ""} {
		if err := s.CreateAPIKey(ctx, testKey(i+1, o, now)); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range []string{a, keep} {
		l := store.PortalLink{Hash: linkHash(i + 1), OrganizationID: o, Intent: "audit_logs", AdminEmail: "admin@example.com", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreatePortalLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}

	for _, id := range []string{"org_none", store.SystemOrganizationID} {
		_, _, err := s.BeginOrganizationDeletion(ctx, store.OrganizationDeletion{OrganizationID: id, RequestedAt: now, RequestedBy: "test", Step: store.DeletionCredentials})
		wantErr(t, "BeginOrganizationDeletion("+id+")", err, store.ErrNotFound)
	}
	d := store.OrganizationDeletion{OrganizationID: a, RequestedAt: now, RequestedBy: "key_1", Reason: "contract ended", Forced: true, Step: store.DeletionCredentials}
	rec, started, err := s.BeginOrganizationDeletion(ctx, d)
	if err != nil || !started {
		t.Fatalf("BeginOrganizationDeletion = %v, %v", started, err)
	}
	if rec.Name != "Leaving" {
		t.Errorf("deletion records name %q, want Leaving", rec.Name)
	}
	// Again: the first one stands.
	again, started, err := s.BeginOrganizationDeletion(ctx, store.OrganizationDeletion{OrganizationID: a, RequestedAt: now.Add(time.Minute), RequestedBy: "key_2", Step: store.DeletionCredentials})
	if err != nil || started || again.RequestedBy != "key_1" || !again.RequestedAt.Equal(now) || !again.Forced || again.Reason != "contract ended" {
		t.Errorf("BeginOrganizationDeletion again = %+v, %v, %v; want the first one, not started", again, started, err)
	}

	// Gone for reads and ingest; its external id is free.
	if _, err := s.Organization(ctx, a); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Organization of a deleted organization: %v, want ErrNotFound", err)
	}
	if _, err := s.OrganizationByExternalID(ctx, "leaving-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OrganizationByExternalID of a deleted organization: %v, want ErrNotFound", err)
	}
	page, err := s.ListOrganizations(ctx, store.ListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page.Data {
		if o.ID == a {
			t.Errorf("ListOrganizations lists the deleted organization")
		}
	}
	if err := s.UpdateOrganization(ctx, store.Organization{ID: a, Name: "X", UpdatedAt: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOrganization of a deleted organization: %v, want ErrNotFound", err)
	}
	res, err := s.Append(ctx, []store.Submission{{Events: []store.PendingEvent{retEvent(t, a, 99, now)}}}, now)
	if err != nil || !errors.Is(res[0].Err, store.ErrNotFound) {
		t.Errorf("Append to a deleted organization = %v, %v; want the submission to fail with ErrNotFound", res, err)
	}
	if n, err := s.NextSeq(ctx, a); err != nil || n != 5 {
		t.Errorf("NextSeq of the deleted organization = %d, %v; want 5 (its log stays)", n, err)
	}
	newcomer := store.Organization{ID: orgID("DEL", 3), Name: "New", ExternalID: "leaving-1", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateOrganization(ctx, newcomer); err != nil {
		t.Errorf("CreateOrganization with the deleted organization's external id: %v", err)
	}

	pending, err := s.PendingOrganizationDeletions(ctx)
	if err != nil || len(pending) != 1 || pending[0].OrganizationID != a {
		t.Fatalf("PendingOrganizationDeletions = %+v, %v", pending, err)
	}

	// Credentials: the deleted organization's go, the other's stay.
	for round, want := range []store.CredentialsPurged{{Streams: 1, APIKeys: 2, PortalLinks: 1}, {}} {
		got, err := s.PurgeOrganizationCredentials(ctx, a, now)
		if err != nil || got != want {
			t.Errorf("PurgeOrganizationCredentials round %d = %+v, %v; want %+v", round, got, err, want)
		}
	}
	if _, err := s.Stream(ctx, streamID(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted organization's stream: %v, want ErrNotFound", err)
	}
	if _, err := s.Stream(ctx, streamID(2)); err != nil {
		t.Errorf("another organization's stream: %v", err)
	}
	for i, revoked := range []bool{true, true, false, false} {
		k, err := s.APIKey(ctx, keyID(i+1))
		if err != nil || k.RevokedAt.IsZero() == revoked {
			t.Errorf("API key %d: revoked at %v, %v; want revoked %v", i+1, k.RevokedAt, err, revoked)
		}
	}
	if _, err := s.PortalLink(ctx, linkHash(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted organization's portal link: %v, want ErrNotFound", err)
	}
	if _, err := s.PortalLink(ctx, linkHash(2)); err != nil {
		t.Errorf("another organization's portal link: %v", err)
	}

	// Records go through PruneRecords; the log state stays.
	indexAll(t, s, 10_000)
	for prune(t, s, a, now.Add(time.Hour), 2) > 0 {
	}
	if seqs := storedSeqs(t, s, a, 5); len(seqs) != 0 {
		t.Errorf("records left after pruning the deleted organization: %v", seqs)
	}
	if seqs := storedSeqs(t, s, keep, 3); len(seqs) != 3 {
		t.Errorf("the other organization's records: %v, want 3", seqs)
	}
	if st, err := s.LogState(ctx, a); err != nil || st.IntegratedSize != 5 {
		t.Errorf("LogState of the deleted organization = %+v, %v; want integrated 5", st, err)
	}

	// Finished: no longer pending, and the record says so.
	rec.Step, rec.FinalSize, rec.FinishedAt = store.DeletionDone, 5, now.Add(time.Minute)
	if err := s.UpdateOrganizationDeletion(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.PendingOrganizationDeletions(ctx); err != nil || len(pending) != 0 {
		t.Errorf("PendingOrganizationDeletions after finishing = %+v, %v", pending, err)
	}
	got, err := s.OrganizationDeletion(ctx, a)
	if err != nil || got.Step != store.DeletionDone || got.FinalSize != 5 || !got.FinishedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("OrganizationDeletion = %+v, %v", got, err)
	}
	if _, err := s.OrganizationDeletion(ctx, keep); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OrganizationDeletion of a live organization: %v, want ErrNotFound", err)
	}
	if err := s.UpdateOrganizationDeletion(ctx, store.OrganizationDeletion{OrganizationID: keep}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOrganizationDeletion of a live organization: %v, want ErrNotFound", err)
	}
}

func testArchiveSettings(t *testing.T, s store.Backend) {
	ctx := t.Context()
	a, b := orgID("ARS", 1), orgID("ARS", 2)
	mustCreateOrg(t, s, a, t0)
	mustCreateOrg(t, s, b, t0)
	on, off := true, false
	if err := s.SetArchiveSetting(ctx, "org_none", &on, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetArchiveSetting of an unknown organization: %v, want ErrNotFound", err)
	}
	steps := []struct {
		org  string
		set  *bool
		want map[string]bool
	}{
		{a, &on, map[string]bool{a: true}},
		{b, &off, map[string]bool{a: true, b: false}},
		{a, &off, map[string]bool{a: false, b: false}},
		{a, nil, map[string]bool{b: false}},
	}
	for i, st := range steps {
		if err := s.SetArchiveSetting(ctx, st.org, st.set, t0); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := s.ArchiveSettings(ctx)
		if err != nil || len(got) != len(st.want) {
			t.Fatalf("step %d: ArchiveSettings = %v, %v; want %v", i, got, err, st.want)
		}
		for k, v := range st.want {
			if got[k] != v {
				t.Errorf("step %d: ArchiveSettings = %v, want %v", i, got, st.want)
			}
		}
	}
}

// testArchiveHold checks that a held archive position bounds PruneRecords.
func testArchiveHold(t *testing.T, s store.Backend) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := orgID("ARH", 1)
	mustCreateOrg(t, s, a, now.Add(-10*day))
	appendAged(t, s, a, ages(now, 10, 5*day))
	fakeIntegrate(t, s, a, 0, 10)
	if to, held, err := s.ArchivePosition(ctx, a); err != nil || to != 0 || held {
		t.Errorf("ArchivePosition before any = %d, %v, %v", to, held, err)
	}
	if _, _, err := s.ArchivePosition(ctx, "org_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ArchivePosition of an unknown organization: %v, want ErrNotFound", err)
	}
	indexAll(t, s, 10_000)
	cutoff := now.Add(-day) // every record is due
	steps := []struct {
		to       int64
		held     bool
		wantTo   int64
		wantLeft int // records left after pruning
	}{
		{0, true, 0, 10}, // held at 0: nothing goes
		{4, true, 4, 6},  // seqs 0–3 archived: they go
		{2, true, 4, 6},  // the position never goes back
		{7, true, 7, 3},  //
		{7, false, 7, 0}, // released: retention goes on alone
	}
	for i, st := range steps {
		if err := s.SetArchivePosition(ctx, a, st.to, st.held, now); err != nil {
			t.Fatalf("step %d: SetArchivePosition: %v", i, err)
		}
		if to, held, err := s.ArchivePosition(ctx, a); err != nil || to != st.wantTo || held != st.held {
			t.Errorf("step %d: ArchivePosition = %d, %v, %v; want %d, %v", i, to, held, err, st.wantTo, st.held)
		}
		for prune(t, s, a, cutoff, 3) > 0 {
		}
		if left := storedSeqs(t, s, a, 10); len(left) != st.wantLeft {
			t.Errorf("step %d: records left %v, want %d", i, left, st.wantLeft)
		}
	}
}
