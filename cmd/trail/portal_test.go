package main

import (
	"bytes"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
)

// `trail portal revoke ORG_ID` ends the organization's open sessions and
// unopened links in the database a server uses, and records it in the
// organization's log; an unknown organization, or Trail's own, is a usage
// error that says where to look.
func TestPortalRevokeCommand(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	// trail runs the command words, then --data, then the rest.
	trail := func(words int, args ...string) (int, string, string) {
		t.Helper()
		full := append(append(append([]string{}, args[:words]...), "--data", dir), args[words:]...)
		var stdout, stderr bytes.Buffer
		code := run(ctx, full, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, _, errOut := trail(1, "migrate"); code != 0 {
		t.Fatalf("trail migrate: %d %q", code, errOut)
	}
	code, out, errOut := trail(2, "org", "create", "--name", "Acme")
	org := regexp.MustCompile(`org_\w+`).FindString(out)
	if code != 0 || org == "" {
		t.Fatalf("trail org create: %d %q %q", code, out, errOut)
	}

	sf := &storageFlags{Data: dir}
	st, err := openStore(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	ps := st.(store.PortalLinks)
	now := time.Now()
	opened, pending := sha256.Sum256([]byte("opened")), sha256.Sum256([]byte("pending"))
	for _, h := range [][32]byte{opened, pending} {
		if err := ps.CreatePortalLink(ctx, store.PortalLink{Hash: h, OrganizationID: org, Intent: "audit_logs", CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ps.RedeemPortalLink(ctx, opened, now); err != nil {
		t.Fatal(err)
	}
	before, err := st.NextSeq(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errOut = trail(2, "portal", "revoke", org)
	if code != 0 || !strings.Contains(out, "Ended 2 Admin Portal sessions and links of "+org+" (Acme)") {
		t.Fatalf("trail portal revoke: %d %q %q", code, out, errOut)
	}
	st, err = openStore(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, h := range [][32]byte{opened, pending} {
		if l, err := st.(store.PortalLinks).PortalLink(ctx, h); err != nil || l.EndedAt.IsZero() {
			t.Errorf("link after the revocation: %+v, %v; want it ended", l, err)
		}
	}
	if after, err := st.NextSeq(ctx, org); err != nil || after != before+1 {
		t.Errorf("the organization's log went from %d to %d events (%v); want one audit event", before, after, err)
	}

	// --user: only that admin's links (WorkOS's revoke_link).
	st, err = openStore(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := sha256.Sum256([]byte("mine")), sha256.Sum256([]byte("theirs"))
	for h, user := range map[[32]byte]string{mine: "user_42", theirs: "user_7"} {
		if err := st.(store.PortalLinks).CreatePortalLink(ctx, store.PortalLink{Hash: h, OrganizationID: org, Intent: "audit_logs",
			ExternalUserID: user, CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, errOut = trail(2, "portal", "revoke", "--user", "user_42", org)
	if code != 0 || !strings.Contains(out, "Ended 1 Admin Portal sessions and links of user_42 in "+org) {
		t.Fatalf("trail portal revoke --user: %d %q %q", code, out, errOut)
	}
	st, err = openStore(ctx, sf)
	if err != nil {
		t.Fatal(err)
	}
	for h, wantEnded := range map[[32]byte]bool{mine: true, theirs: false} {
		if l, err := st.(store.PortalLinks).PortalLink(ctx, h); err != nil || l.EndedAt.IsZero() == wantEnded {
			t.Errorf("link of %s after revoking user_42: %+v, %v; want ended %v", l.ExternalUserID, l, err, wantEnded)
		}
	}
	st.Close()

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"portal", "revoke", "org_nope"}, "no organization org_nope: see trail org list"},
		{[]string{"portal", "revoke", store.SystemOrganizationID}, "no organization org_system"},
		{[]string{"portal", "revoke"}, "give the id of the organization"},
		{[]string{"portal"}, "say what to do: trail portal revoke [--user EXTERNAL_USER_ID] ORG_ID"},
	} {
		if code, _, errOut := trail(min(2, len(c.args)), c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("trail %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
}
