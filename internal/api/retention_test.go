package api

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/store"
)

func retentionEnv(t *testing.T, def int) (*env, *atomic.Int32) {
	changed := new(atomic.Int32)
	e := newEnv(t, func(c *Config, e *env) {
		c.Retention = RetentionConfig{Store: e.st, DefaultDays: def, Changed: func() { changed.Add(1) }}
	})
	return e, changed
}

func retentionPath(org string) string { return "/organizations/" + org + "/audit_logs_retention" }

func TestRetentionGetAndPut(t *testing.T) {
	e, changed := retentionEnv(t, 60)
	org := e.org("Keeper")
	path := retentionPath(org)
	expect(t, e.do("GET", path, e.admin, ""), http.StatusOK, `{"retention_period_in_days":60}`)

	for _, tc := range []struct {
		body string
		days string
	}{
		{`{"retention_period_in_days":90}`, "90"},
		{`{"retention_period_in_days":30}`, "30"},
		{`{"retention_period_in_days":330}`, "330"},
		{`{"retention_period_in_days":3650}`, "3650"},
		{`{"retention_period_in_days":365.0}`, "365"},
		{`{"retention_period":"1_MONTH"}`, "30"},
		{`{"retention_period":"11_MONTHS"}`, "330"},
		{`{"retention_period":"1_YEAR"}`, "365"},
		{`{"retention_period":"10_YEARS"}`, "3650"},
		{`{"retention_period":"2_YEARS","retention_period_in_days":730}`, "730"},
		{`{"retention_period_in_days":null,"retention_period":"6_MONTHS"}`, "180"},
	} {
		want := `{"retention_period_in_days":` + tc.days + `}`
		expect(t, e.do("PUT", path, e.admin, tc.body), http.StatusOK, want)
		expect(t, e.do("GET", path, e.admin, ""), http.StatusOK, want)
	}
	if n := changed.Load(); n != 11 {
		t.Errorf("Changed called %d times, want once per PUT (11)", n)
	}
	if days, set, err := e.st.Retention(t.Context(), org); err != nil || !set || days != 180 {
		t.Errorf("stored retention = %d, %v, %v; want 180", days, set, err)
	}
	// Another organization still has the default.
	expect(t, e.do("GET", retentionPath(e.org("Other")), e.admin, ""), http.StatusOK, `{"retention_period_in_days":60}`)
}

func TestRetentionPutInvalid(t *testing.T) {
	e, changed := retentionEnv(t, 0)
	org := e.org("Strict")
	path := retentionPath(org)
	for _, tc := range []struct {
		body, code, field string
	}{
		{`{}`, "required", "retention_period_in_days"},
		{`{"retention_period_in_days":null}`, "required", "retention_period_in_days"},
		{`{"retention_period_in_days":45}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":360}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":0}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":-30}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":4015}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":30.5}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":1e300}`, "invalid", "retention_period_in_days"},
		{`{"retention_period_in_days":"30"}`, "invalid_type", "retention_period_in_days"},
		{`{"retention_period":"12_MONTHS"}`, "invalid", "retention_period"},
		{`{"retention_period":"1_MONTHS"}`, "invalid", "retention_period"},
		{`{"retention_period":"2_MONTH"}`, "invalid", "retention_period"},
		{`{"retention_period":"0_YEARS"}`, "invalid", "retention_period"},
		{`{"retention_period":"11_YEARS"}`, "invalid", "retention_period"},
		{`{"retention_period":"01_MONTH"}`, "invalid", "retention_period"},
		{`{"retention_period":"1_month"}`, "invalid", "retention_period"},
		{`{"retention_period":"30"}`, "invalid", "retention_period"},
		{`{"retention_period":""}`, "invalid", "retention_period"},
		{`{"retention_period":30}`, "invalid_type", "retention_period"},
		{`{"retention_period":"1_YEAR","retention_period_in_days":30}`, "invalid", "retention_period"},
		{`{"retention_days":30}`, "unknown_field", "retention_days"},
	} {
		res := e.do("PUT", path, e.admin, tc.body)
		var b errorBody
		if res.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s: got %d %s, want 422", tc.body, res.Code, res.Body)
			continue
		}
		decode(t, res, &b)
		if b.Message != "Validation failed." || len(b.Errors) != 1 || b.Errors[0].Code != tc.code || b.Errors[0].Field != tc.field || b.Errors[0].Message == "" {
			t.Errorf("%s: got %s, want Validation failed. with one error {%s %s} saying what to fix", tc.body, res.Body, tc.code, tc.field)
		}
	}
	for _, body := range []string{`not json`, `[30]`, ``} {
		if res := e.do("PUT", path, e.admin, body); res.Code != http.StatusBadRequest {
			t.Errorf("%q: got %d %s, want 400", body, res.Code, res.Body)
		}
	}
	// Nothing was stored, nothing woke the sweeper, nothing was audited.
	expect(t, e.do("GET", path, e.admin, ""), http.StatusOK, `{"retention_period_in_days":30}`)
	if n := changed.Load(); n != 0 {
		t.Errorf("Changed called %d times after invalid requests", n)
	}
	if n := e.nextSeq(org); n != 1 {
		t.Errorf("the log holds %d events, want only the organization's creation", n)
	}
}

func TestRetentionAccess(t *testing.T) {
	e, _ := retentionEnv(t, 0)
	org, other := e.org("Mine"), e.org("Theirs")
	reader, _ := e.key("org reader", []string{access.ScopeEventsRead}, org)
	orgAdmin, _ := e.key("org admin", []string{access.ScopeAdmin}, org)
	otherAdmin, _ := e.key("other admin", []string{access.ScopeAdmin}, other)
	globalReader, _ := e.key("global reader", []string{access.ScopeEventsRead}, "")
	const put = `{"retention_period_in_days":90}`
	for _, tc := range []struct {
		name, method, secret, org, body string
		status                          int
		code                            string
	}{
		{"admin reads", "GET", e.admin, org, "", 200, ""},
		{"restricted key reads its own", "GET", reader, org, "", 200, ""},
		{"restricted key, other org", "GET", reader, other, "", 404, "entity_not_found"},
		{"restricted admin, other org", "PUT", otherAdmin, org, put, 404, "entity_not_found"},
		{"restricted non-admin writes", "PUT", reader, org, put, 403, "forbidden"},
		{"unrestricted non-admin reads", "GET", globalReader, org, "", 403, "forbidden"},
		{"unrestricted non-admin writes", "PUT", globalReader, org, put, 403, "forbidden"},
		{"restricted admin writes its own", "PUT", orgAdmin, org, put, 200, ""},
		{"admin writes", "PUT", e.admin, other, put, 200, ""},
		{"no key", "GET", "", org, "", 401, "unauthorized"},
		{"unknown organization", "GET", e.admin, "org_01NOPE00000000000000000000", "", 404, "entity_not_found"},
		{"unknown organization, PUT", "PUT", e.admin, "org_01NOPE00000000000000000000", put, 404, "entity_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(tc.method, retentionPath(tc.org), tc.secret, tc.body)
			if tc.code == "" {
				if res.Code != tc.status {
					t.Fatalf("got %d %s, want %d", res.Code, res.Body, tc.status)
				}
				return
			}
			expectError(t, res, tc.status, tc.code)
		})
	}
	if _, err := e.srv.organizationRetentionDays(t.Context(), "org_01NOPE00000000000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("organizationRetentionDays of an unknown organization: %v, want ErrNotFound", err)
	}
	if d, err := e.srv.organizationRetentionDays(t.Context(), org); err != nil || d != 90 {
		t.Errorf("organizationRetentionDays = %d, %v; want 90", d, err)
	}
}

func TestRetentionAudited(t *testing.T) {
	e, _ := retentionEnv(t, 0)
	org := e.org("Audited")
	expect(t, e.do("PUT", retentionPath(org), e.admin, `{"retention_period":"2_YEARS"}`, "X-Request-ID", "req-ret"),
		http.StatusOK, `{"retention_period_in_days":730}`)
	expect(t, e.do("PUT", retentionPath(org), e.admin, `{"retention_period_in_days":60}`), http.StatusOK, `{"retention_period_in_days":60}`)
	got := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.retention.updated&order=asc", 2).records(t)
	k, err := e.st.APIKeyByHash(t.Context(), access.HashSecret(e.admin))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][2]string{{"730", "30"}, {"60", "730"}} {
		r := got[i]
		if r.Actor.Type != "api_key" || r.Actor.ID != k.ID || len(r.Targets) != 1 || r.Targets[0].Type != "organization" ||
			r.Targets[0].ID != org || r.Targets[0].Name != "Audited" ||
			r.Metadata["retention_period_in_days"] != want[0] || r.Metadata["previous_retention_period_in_days"] != want[1] {
			t.Errorf("audit event %d = %+v, want retention %s (was %s) by the admin key", i, r, want[0], want[1])
		}
	}
	if got[0].Metadata["request_id"] != "req-ret" {
		t.Errorf("audit event request_id = %v", got[0].Metadata["request_id"])
	}
	// Only the organization's log records it: it is not deployment-wide.
	if n := e.nextSeq(store.SystemOrganizationID); n != 1 {
		t.Errorf("the system log holds %d events, want only the organization's creation", n)
	}
}

func TestRetentionRoutesNeedStore(t *testing.T) {
	e := newEnv(t)
	org := e.org("Plain")
	expectError(t, e.do("GET", retentionPath(org), e.admin, ""), http.StatusNotFound, "not_found")
	if d, err := e.srv.organizationRetentionDays(t.Context(), org); err != nil || d != 30 {
		t.Errorf("organizationRetentionDays without a retention store = %d, %v; want the default 30", d, err)
	}
}
