package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/store"
)

// RunPortal runs the conformance cases of store.PortalStore. open returns a
// fresh, empty, migrated store, closed when t ends.
func runPortal(t *testing.T, open func(t *testing.T) store.Backend) {
	t.Run("Links", func(t *testing.T) { testPortalLinks(t, open(t)) })
	t.Run("RedeemOnceConcurrently", func(t *testing.T) { testPortalRedeemRace(t, open(t)) })
	t.Run("Sessions", func(t *testing.T) { testPortalSessions(t, open(t)) })
	t.Run("RevokeUserLinks", func(t *testing.T) { testPortalRevokeUser(t, open(t)) })
	t.Run("Settings", func(t *testing.T) { testPortalSettings(t, open(t)) })
	for _, ix := range []indexing{indexedFully, indexedPartly, indexedNone} {
		// Like search, they include every acknowledged event, whatever
		// the indexer has reached.
		name := ""
		if ix != indexedFully {
			name = ix.String()
		}
		t.Run("Actions"+name, func(t *testing.T) { testPortalActions(t, open(t), ix) })
		t.Run("Histogram"+name, func(t *testing.T) { testPortalHistogram(t, open(t), ix) })
		t.Run("SearchHistogram"+name, func(t *testing.T) { testSearchHistogram(t, open(t), ix) })
	}
}

func linkHash(i int) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "link %d", i)) }

func testPortalLinks(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	org := mustCreateOrg(t, s, orgID("P", 1), t0).ID
	other := mustCreateOrg(t, s, orgID("P", 2), t0).ID
	link := func(i int, o string, expires time.Time) store.PortalLink {
		return store.PortalLink{Hash: linkHash(i), OrganizationID: o, Intent: "audit_logs",
			AdminEmail: fmt.Sprintf("admin%d@example.com", i), ReturnURL: "https://app.example.com/settings?x=1",
			CreatedAt: t0, ExpiresAt: expires}
	}
	exp := t0.Add(5 * time.Minute)
	for i, o := range []string{org, other, org} {
		if err := s.CreatePortalLink(ctx, link(i, o, exp)); err != nil {
			t.Fatalf("CreatePortalLink(%d): %v", i, err)
		}
	}
	err := s.CreatePortalLink(ctx, link(0, org, exp))
	wantErr(t, "CreatePortalLink of a stored hash", err, store.ErrConflict)
	err = s.CreatePortalLink(ctx, link(9, "org_does_not_exist", exp))
	wantErr(t, "CreatePortalLink for an unknown organization", err, store.ErrNotFound)

	tests := []struct {
		name    string
		hash    [32]byte
		now     time.Time
		wantErr error
		wantOrg string
	}{
		{"unknown hash", linkHash(99), t0, store.ErrNotFound, ""},
		{"expired exactly at its expiry", linkHash(0), exp, store.ErrLinkExpired, ""},
		{"expired stays unredeemed", linkHash(0), exp.Add(time.Hour), store.ErrLinkExpired, ""},
		{"first use", linkHash(1), t0.Add(time.Minute), nil, other},
		{"second use", linkHash(1), t0.Add(2 * time.Minute), store.ErrLinkUsed, ""},
		{"used, then expired: still used", linkHash(1), exp.Add(time.Hour), store.ErrLinkUsed, ""},
		{"another link of the org is independent", linkHash(2), exp.Add(-time.Millisecond), nil, org},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.RedeemPortalLink(ctx, tt.hash, tt.now)
			if tt.wantErr != nil {
				wantErr(t, "RedeemPortalLink", err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("RedeemPortalLink: %v", err)
			}
			i := slices.Index([][32]byte{linkHash(0), linkHash(1), linkHash(2)}, tt.hash)
			want := link(i, tt.wantOrg, exp)
			want.UsedAt = tt.now
			if got.Hash != want.Hash || got.OrganizationID != want.OrganizationID || got.Intent != want.Intent ||
				got.AdminEmail != want.AdminEmail || got.ReturnURL != want.ReturnURL || !got.CreatedAt.Equal(want.CreatedAt) ||
				!got.ExpiresAt.Equal(want.ExpiresAt) || !got.UsedAt.Equal(want.UsedAt) {
				t.Errorf("RedeemPortalLink = %+v, want %+v", got, want)
			}
		})
	}

	// Deleting forgets links expired before the cutoff, used or not.
	n, err := s.DeletePortalLinks(ctx, exp.Add(time.Millisecond))
	if err != nil || n != 3 {
		t.Fatalf("DeletePortalLinks = %d, %v; want 3, nil", n, err)
	}
	_, err = s.RedeemPortalLink(ctx, linkHash(0), t0)
	wantErr(t, "RedeemPortalLink after DeletePortalLinks", err, store.ErrNotFound)
}

// testPortalSessions ends sessions one at a time (sign-out) and all of an
// organization's at once (revocation).
func testPortalSessions(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	org := mustCreateOrg(t, s, orgID("S", 1), t0).ID
	other := mustCreateOrg(t, s, orgID("S", 2), t0).ID
	exp := t0.Add(5 * time.Minute)
	// Links 0-3 and 6 of org, 4 of other; 3 and 6 are never redeemed, and
	// 6 expires before the revocation.
	for i, o := range map[int]string{0: org, 1: org, 2: org, 3: org, 4: other, 6: org} {
		expires := exp
		if i == 6 {
			expires = t0.Add(90 * time.Second)
		}
		l := store.PortalLink{Hash: linkHash(i), OrganizationID: o, Intent: "audit_logs", CreatedAt: t0, ExpiresAt: expires}
		if err := s.CreatePortalLink(ctx, l); err != nil {
			t.Fatalf("CreatePortalLink(%d): %v", i, err)
		}
		if i != 3 && i != 6 {
			if _, err := s.RedeemPortalLink(ctx, l.Hash, t0.Add(time.Second)); err != nil {
				t.Fatalf("RedeemPortalLink(%d): %v", i, err)
			}
		}
	}
	ended := func(i int) time.Time {
		t.Helper()
		l, err := s.PortalLink(ctx, linkHash(i))
		if err != nil {
			t.Fatalf("PortalLink(%d): %v", i, err)
		}
		return l.EndedAt
	}
	if l, err := s.PortalLink(ctx, linkHash(0)); err != nil || l.OrganizationID != org || !l.UsedAt.Equal(t0.Add(time.Second)) || !l.EndedAt.IsZero() {
		t.Fatalf("PortalLink of a redeemed link = %+v, %v", l, err)
	}
	_, err := s.PortalLink(ctx, linkHash(99))
	wantErr(t, "PortalLink of an unknown hash", err, store.ErrNotFound)

	// Sign-out: once; a second sign-out keeps the first time.
	signOut := t0.Add(time.Minute)
	if err := s.EndPortalSession(ctx, linkHash(0), signOut); err != nil {
		t.Fatalf("EndPortalSession: %v", err)
	}
	if err := s.EndPortalSession(ctx, linkHash(0), signOut.Add(time.Minute)); err != nil {
		t.Fatalf("EndPortalSession again: %v", err)
	}
	if got := ended(0); !got.Equal(signOut) {
		t.Errorf("ended at %v after two sign-outs, want the first, %v", got, signOut)
	}
	if got := ended(1); !got.IsZero() {
		t.Errorf("another session of the organization ended at %v by one sign-out", got)
	}
	wantErr(t, "EndPortalSession of a link never opened", s.EndPortalSession(ctx, linkHash(3), signOut), store.ErrNotFound)
	wantErr(t, "EndPortalSession of an unknown hash", s.EndPortalSession(ctx, linkHash(99), signOut), store.ErrNotFound)

	// Revocation: every open session of org (1 and 2), its link never
	// opened (3) and its expired one (6: its expiry may be being checked
	// against a clock read a moment earlier); not other's (4); not again the
	// session already ended (0).
	revoked := t0.Add(2 * time.Minute)
	n, err := s.EndPortalSessions(ctx, org, revoked)
	if err != nil || n != 4 {
		t.Fatalf("EndPortalSessions = %d, %v; want 4, nil", n, err)
	}
	for i, want := range map[int]time.Time{0: signOut, 1: revoked, 2: revoked, 3: revoked, 4: {}, 6: revoked} {
		if got := ended(i); !got.Equal(want) {
			t.Errorf("link %d: ended at %v, want %v", i, got, want)
		}
	}
	if n, err := s.EndPortalSessions(ctx, org, revoked.Add(time.Minute)); err != nil || n != 0 {
		t.Errorf("EndPortalSessions again = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.EndPortalSessions(ctx, "org_does_not_exist", revoked); err != nil || n != 0 {
		t.Errorf("EndPortalSessions of an unknown organization = %d, %v; want 0, nil", n, err)
	}
	// The link never opened can no longer be, though it has not expired,
	// not even with a clock read before the revocation; signing out of the
	// session it never opened finds none.
	_, err = s.RedeemPortalLink(ctx, linkHash(3), revoked)
	wantErr(t, "RedeemPortalLink of a revoked link", err, store.ErrLinkRevoked)
	_, err = s.RedeemPortalLink(ctx, linkHash(6), t0.Add(time.Minute))
	wantErr(t, "RedeemPortalLink of a revoked link, at a time before its expiry", err, store.ErrLinkRevoked)
	if l, err := s.PortalLink(ctx, linkHash(3)); err != nil || !l.UsedAt.IsZero() {
		t.Errorf("the revoked link after a redemption attempt: %+v, %v", l, err)
	}
	wantErr(t, "EndPortalSession of a revoked link never opened", s.EndPortalSession(ctx, linkHash(3), revoked), store.ErrNotFound)
	// A link issued after the revocation opens as usual.
	l := store.PortalLink{Hash: linkHash(5), OrganizationID: org, Intent: "audit_logs", CreatedAt: revoked, ExpiresAt: revoked.Add(5 * time.Minute)}
	if err := s.CreatePortalLink(ctx, l); err != nil {
		t.Fatalf("CreatePortalLink after the revocation: %v", err)
	}
	if _, err := s.RedeemPortalLink(ctx, l.Hash, revoked.Add(time.Second)); err != nil {
		t.Errorf("RedeemPortalLink of a link issued after the revocation: %v", err)
	}
}

// testPortalRevokeUser revokes one user's links (WorkOS's revoke_link): that
// user's sessions and unopened links in that organization end; another
// user's, an unnamed admin's and the same user's in another organization do
// not.
func testPortalRevokeUser(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	org := mustCreateOrg(t, s, orgID("U", 1), t0).ID
	other := mustCreateOrg(t, s, orgID("U", 2), t0).ID
	exp := t0.Add(5 * time.Minute)
	links := []struct {
		org, user string
		redeem    bool
	}{
		{org, "user_1", true},   // 0: user_1's open session
		{org, "user_1", false},  // 1: user_1's unopened link
		{org, "user_2", true},   // 2: another user
		{org, "", true},         // 3: an unnamed admin
		{other, "user_1", true}, // 4: user_1 in another organization
	}
	for i, l := range links {
		pl := store.PortalLink{Hash: linkHash(i), OrganizationID: l.org, Intent: "audit_logs", ExternalUserID: l.user,
			AdminEmail: "it@example.com", CreatedAt: t0, ExpiresAt: exp}
		if err := s.CreatePortalLink(ctx, pl); err != nil {
			t.Fatalf("CreatePortalLink(%d): %v", i, err)
		}
		if got, err := s.PortalLink(ctx, pl.Hash); err != nil || got.ExternalUserID != l.user {
			t.Fatalf("PortalLink(%d) = %+v, %v; want external user %q", i, got, err, l.user)
		}
		if l.redeem {
			if got, err := s.RedeemPortalLink(ctx, pl.Hash, t0.Add(time.Second)); err != nil || got.ExternalUserID != l.user {
				t.Fatalf("RedeemPortalLink(%d) = %+v, %v", i, got, err)
			}
		}
	}
	revoked := t0.Add(time.Minute)
	tests := []struct {
		name      string
		org, user string
		want      int64
	}{
		{"the user's links", org, "user_1", 2},
		{"again: nothing left", org, "user_1", 0},
		{"an unknown user", org, "user_9", 0},
		{"an unknown organization", "org_does_not_exist", "user_1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := s.RevokePortalLinks(ctx, tt.org, tt.user, revoked); err != nil || n != tt.want {
				t.Fatalf("RevokePortalLinks(%s, %s) = %d, %v; want %d, nil", tt.org, tt.user, n, err, tt.want)
			}
		})
	}
	if n, err := s.RevokePortalLinks(ctx, org, "", revoked); err == nil {
		t.Errorf("RevokePortalLinks without a user = %d, nil; want an error (it must not end the unnamed admins' links)", n)
	}
	for i, wantEnded := range []bool{true, true, false, false, false} {
		l, err := s.PortalLink(ctx, linkHash(i))
		if err != nil {
			t.Fatalf("PortalLink(%d): %v", i, err)
		}
		if got := !l.EndedAt.IsZero(); got != wantEnded {
			t.Errorf("link %d (%s of %s): ended = %v, want %v", i, links[i].user, links[i].org, got, wantEnded)
		}
	}
	_, err := s.RedeemPortalLink(ctx, linkHash(1), revoked)
	wantErr(t, "RedeemPortalLink of a revoked user's link", err, store.ErrLinkRevoked)
}

// testPortalRedeemRace redeems one link from many goroutines at once: exactly
// one wins.
func testPortalRedeemRace(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	org := mustCreateOrg(t, s, orgID("R", 1), t0).ID
	l := store.PortalLink{Hash: linkHash(1), OrganizationID: org, Intent: "audit_logs", CreatedAt: t0, ExpiresAt: t0.Add(5 * time.Minute)}
	if err := s.CreatePortalLink(ctx, l); err != nil {
		t.Fatalf("CreatePortalLink: %v", err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.RedeemPortalLink(ctx, l.Hash, t0.Add(time.Second)) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrLinkUsed):
			t.Errorf("RedeemPortalLink: %v, want nil or ErrLinkUsed", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent redemptions succeeded, want exactly 1", won, n)
	}
}

// portalEvent is an event of org with this action and occurred_at.
func portalEvent(org, action string, at time.Time, i int) store.PendingEvent {
	raw := fmt.Appendf(nil, `{"action":%q,"occurred_at":%q,"actor":{"id":"user_%d","type":"user"},"targets":[],"context":{"location":"203.0.113.7"}}`,
		action, at.Format(time.RFC3339Nano), i)
	d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
	if err != nil {
		panic(fmt.Sprintf("invalid test event: %v", err)) // a bug in this file
	}
	return store.PendingEvent{OrganizationID: org, ID: fmt.Sprintf("evt_01JTPORTAL%016d", i), ReceivedAt: t0, Tail: d.Tail}
}

// appendAll appends evs and indexes them as ix says (indexedPartly: the
// first half of them).
func appendAll(t *testing.T, s store.Backend, evs []store.PendingEvent, ix indexing) {
	t.Helper()
	half := len(evs) / 2
	for i, part := range [][]store.PendingEvent{evs[:half], evs[half:]} {
		res, err := s.Append(ctxOf(t), []store.Submission{{Events: part}}, t0)
		if err != nil || res[0].Err != nil {
			t.Fatalf("Append: %v %v", err, res)
		}
		if ix == indexedFully || ix == indexedPartly && i == 0 {
			indexAll(t, s, 1000)
		}
	}
}

func testPortalActions(t *testing.T, s store.Backend, ix indexing) {
	ctx := ctxOf(t)
	a := mustCreateOrg(t, s, orgID("A", 1), t0).ID
	b := mustCreateOrg(t, s, orgID("A", 2), t0).ID
	var evs []store.PendingEvent
	for i, act := range []string{"user.signed_in", "team.deleted", "user.signed_in", "a.b", "<script>é"} {
		evs = append(evs, portalEvent(a, act, t0, i))
	}
	evs = append(evs, portalEvent(b, "only.in.b", t0, 10))
	appendAll(t, s, evs, ix)

	tests := []struct {
		org   string
		limit int
		want  []string
	}{
		{a, 100, []string{"<script>é", "a.b", "team.deleted", "user.signed_in"}},
		{a, 2, []string{"<script>é", "a.b"}},
		{b, 100, []string{"only.in.b"}},
		{"org_unknown", 100, nil},
	}
	for _, tt := range tests {
		got, err := s.OrganizationActions(ctx, tt.org, tt.limit)
		if err != nil {
			t.Fatalf("OrganizationActions(%s, %d): %v", tt.org, tt.limit, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("OrganizationActions(%s, %d) = %q, want %q", tt.org, tt.limit, got, tt.want)
		}
	}
}

func testPortalHistogram(t *testing.T, s store.Backend, ix indexing) {
	ctx := ctxOf(t)
	a := mustCreateOrg(t, s, orgID("H", 1), t0).ID
	b := mustCreateOrg(t, s, orgID("H", 2), t0).ID
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	offsets := []time.Duration{ // from base
		-time.Millisecond,            // before the range
		0,                            // first bucket, at its start
		time.Hour - time.Millisecond, // first bucket, at its end
		time.Hour,                    // second bucket
		2*time.Hour + 30*time.Minute, // third
		2*time.Hour + 31*time.Minute, // third
		4 * time.Hour,                // just past the range of 4 buckets
	}
	var evs []store.PendingEvent
	for i, off := range offsets {
		evs = append(evs, portalEvent(a, "x.y", base.Add(off), i))
		evs = append(evs, portalEvent(b, "x.y", base.Add(time.Hour), 100+i)) // another org's
	}
	appendAll(t, s, evs, ix)

	tests := []struct {
		name string
		org  string
		from time.Time
		step time.Duration
		n    int
		want []int64
	}{
		{"hours", a, base, time.Hour, 4, []int64{2, 1, 2, 0}},
		{"one bucket", a, base, 4 * time.Hour, 1, []int64{5}},
		{"wider", a, base.Add(-time.Hour), time.Hour, 6, []int64{1, 2, 1, 2, 0, 1}},
		{"another org", b, base, time.Hour, 2, []int64{0, 7}},
		{"unknown org", "org_unknown", base, time.Hour, 2, []int64{0, 0}},
		{"minutes", a, base.Add(2*time.Hour + 30*time.Minute), time.Minute, 2, []int64{1, 1}},
		// Bounds far before 1970 and past what a SQLite sort key holds.
		{"centuries", a, time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), 100 * 8766 * time.Hour, 4, []int64{0, 0, 7, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.EventHistogram(ctx, tt.org, tt.from, tt.step, tt.n)
			if err != nil {
				t.Fatalf("EventHistogram: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("EventHistogram(%s, %s, %s, %d) = %v, want %v", tt.org, tt.from.Format(time.RFC3339), tt.step, tt.n, got, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		step time.Duration
		n    int
	}{{time.Hour, 0}, {time.Hour, store.MaxHistogramBuckets + 1}, {0, 4}, {time.Microsecond, 4}} {
		if _, err := s.EventHistogram(ctx, a, base, bad.step, bad.n); err == nil {
			t.Errorf("EventHistogram(step %s, n %d) = nil error, want one", bad.step, bad.n)
		}
	}
}

// testSearchHistogram: SearchHistogram counts, per bucket, exactly the
// events SearchEvents finds for the same filters (every filter: actions
// and prefixes, actor id and name, target type and id, free text, dates),
// of the one organization, whatever the indexer has reached.
func testSearchHistogram(t *testing.T, s store.Backend, ix indexing) {
	ctx := ctxOf(t)
	a := mustCreateOrg(t, s, orgID("S", 1), t0).ID
	b := mustCreateOrg(t, s, orgID("S", 2), t0).ID
	base := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	actions := []string{"user.signed_in", "user.deleted", "team.created", "invoice.paid"}
	actors := [][2]string{{"user_1", "Ann Lee"}, {"user_2", "Bob Stone"}, {"svc_9", "Billing Robot"}}
	targets := [][2]string{{"team", "team_1"}, {"team", "team_2"}, {"invoice", "inv_7"}}
	words := []string{"alpha", "bravo", "charlie"}
	at := map[string]time.Time{} // event id → occurred_at
	var evs []store.PendingEvent
	for i := range 48 {
		org, seq := a, i
		if i%7 == 6 {
			org, seq = b, 1000+i // another organization's, with the same values
		}
		when := base.Add(time.Duration(i*5)*time.Minute + time.Duration(i%3)*time.Second)
		act, actor, tg, word := actions[i%4], actors[i%3], targets[(i/2)%3], words[(i/3)%3]
		raw := fmt.Appendf(nil, `{"action":%q,"occurred_at":%q,"actor":{"id":%q,"type":"user","name":%q},"targets":[{"type":%q,"id":%q}],"metadata":{"note":"%s %d"},"context":{"location":"203.0.113.7"}}`,
			act, when.Format(time.RFC3339Nano), actor[0], actor[1], tg[0], tg[1], word, i)
		d, err := event.ParseEvent(raw, time.Now(), event.DefaultLimits())
		if err != nil {
			t.Fatalf("test event: %v", err)
		}
		id := fmt.Sprintf("evt_01JTSEARCHH%016d", seq)
		at[id] = when
		evs = append(evs, store.PendingEvent{OrganizationID: org, ID: id, ReceivedAt: t0, Tail: d.Tail})
	}
	appendAll(t, s, evs, ix)

	// want counts what SearchEvents finds, page by page.
	want := func(t *testing.T, q store.EventQuery, from time.Time, step time.Duration, n int) []int64 {
		counts := make([]int64, n)
		q.Limit = 100
		for {
			page, err := s.SearchEvents(ctx, q)
			if err != nil {
				t.Fatalf("SearchEvents: %v", err)
			}
			for _, e := range page.Events {
				if i := int(at[e.ID].Sub(from) / step); !at[e.ID].Before(from) && i < n {
					counts[i]++
				}
			}
			if page.After == "" {
				return counts
			}
			q.After = page.After
		}
	}
	tests := []struct {
		name  string
		q     store.EventQuery
		total int64 // of the 3 hours from base, in 12 buckets of 15 min
	}{
		{"all", store.EventQuery{}, 31},
		{"action", store.EventQuery{Actions: []string{"team.created"}}, 7},
		{"actions", store.EventQuery{Actions: []string{"team.created", "invoice.paid"}}, 15},
		{"prefix", store.EventQuery{ActionPrefixes: []string{"user."}}, 16},
		{"actor id", store.EventQuery{ActorID: "user_2"}, 10},
		{"actor name", store.EventQuery{ActorName: "Billing Robot"}, 11},
		{"target type", store.EventQuery{TargetType: "invoice"}, 11},
		{"target id", store.EventQuery{TargetID: "team_2"}, 10},
		{"target", store.EventQuery{TargetType: "team", TargetID: "team_1"}, 10},
		{"text", store.EventQuery{Text: "bravo"}, 11},
		{"text prefix", store.EventQuery{Text: "char*"}, 10},
		{"text and actor", store.EventQuery{Text: "alpha", ActorID: "user_1"}, 3},
		{"dates", store.EventQuery{From: base.Add(time.Hour), To: base.Add(90 * time.Minute)}, 5},
		{"combined", store.EventQuery{Actions: []string{"user.signed_in", "team.created"}, TargetType: "team", From: base.Add(20 * time.Minute)}, 8},
		{"nothing", store.EventQuery{ActorID: "user_none"}, 0},
		{"nothing searchable", store.EventQuery{Text: "--- ..."}, 0},
	}
	from, step, n := base, 15*time.Minute, 12
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.OrganizationID = a
			got, err := s.SearchHistogram(ctx, q, from, step, n)
			if err != nil {
				t.Fatalf("SearchHistogram: %v", err)
			}
			w := want(t, q, from, step, n)
			if !slices.Equal(got, w) {
				t.Errorf("SearchHistogram(%+v) = %v, SearchEvents finds %v", tt.q, got, w)
			}
			var total int64
			for _, c := range got {
				total += c
			}
			if total != tt.total {
				t.Errorf("SearchHistogram(%+v) counted %d, want %d", tt.q, total, tt.total)
			}
		})
	}
	t.Run("other organization", func(t *testing.T) {
		got, err := s.SearchHistogram(ctx, store.EventQuery{OrganizationID: b, ActorID: "user_1"}, from, step, n)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(t, store.EventQuery{OrganizationID: b, ActorID: "user_1"}, from, step, n); !slices.Equal(got, w) {
			t.Errorf("got %v, SearchEvents finds %v", got, w)
		}
	})
	for _, bad := range []struct {
		step time.Duration
		n    int
	}{{time.Hour, 0}, {time.Hour, store.MaxHistogramBuckets + 1}, {time.Microsecond, 4}} {
		if _, err := s.SearchHistogram(ctx, store.EventQuery{OrganizationID: a}, base, bad.step, bad.n); err == nil {
			t.Errorf("SearchHistogram(step %s, n %d) = nil error, want one", bad.step, bad.n)
		}
	}
}

// testPortalSettings: an organization's portal settings are stored whole,
// replaced whole, kept apart from another organization's, and refused for
// an organization that does not exist.
func testPortalSettings(t *testing.T, s store.Backend) {
	ctx := ctxOf(t)
	org := mustCreateOrg(t, s, orgID("S", 1), t0).ID
	other := mustCreateOrg(t, s, orgID("S", 2), t0).ID
	_, err := s.PortalSettings(ctx, org)
	wantErr(t, "PortalSettings before any is set", err, store.ErrNotFound)
	logo := []byte("\x89PNG\r\n\x1a\n\x00\x00 a logo's bytes, NUL and all")
	full := store.PortalSettings{OrganizationID: org, ProductName: "Acme \"Audit\" <Log>", Accent: "#0a7e3b",
		Logo: logo, LogoType: "image/png", FrameOrigins: []string{"https://app.example.com", "http://localhost:3000"},
		UpdatedAt: t0.Add(time.Minute)}
	tests := []struct {
		name string
		set  store.PortalSettings
	}{
		{"everything", full},
		{"replaced by less", store.PortalSettings{OrganizationID: org, Accent: "#123456", UpdatedAt: t0.Add(2 * time.Minute)}},
		{"everything again", full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SetPortalSettings(ctx, tt.set); err != nil {
				t.Fatalf("SetPortalSettings: %v", err)
			}
			got, err := s.PortalSettings(ctx, org)
			if err != nil {
				t.Fatalf("PortalSettings: %v", err)
			}
			want := tt.set
			if got.ProductName != want.ProductName || got.Accent != want.Accent || string(got.Logo) != string(want.Logo) ||
				got.LogoType != want.LogoType || !slices.Equal(got.FrameOrigins, want.FrameOrigins) || !got.UpdatedAt.Equal(want.UpdatedAt) {
				t.Errorf("PortalSettings = %+v, want %+v", got, want)
			}
		})
	}
	_, err = s.PortalSettings(ctx, other)
	wantErr(t, "another organization's settings", err, store.ErrNotFound)
	err = s.SetPortalSettings(ctx, store.PortalSettings{OrganizationID: "org_does_not_exist", UpdatedAt: t0})
	wantErr(t, "SetPortalSettings of an unknown organization", err, store.ErrNotFound)
}
