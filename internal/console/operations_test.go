package console

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/event"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/ledger"
	"github.com/trailaudit/trail/internal/schema"
	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

// opsFixture is what the operations pages read in tests besides the
// store: a metrics registry with the series /metrics has.
type opsFixture struct {
	reg      *prometheus.Registry
	accepted prometheus.Counter
	held     *prometheus.GaugeVec
	manager  *streamadmin.Manager
}

// operations connects the operations pages to st, as trail serve does.
func (e *env) operations(st backend) Operations {
	keys, err := keyring.Generate()
	if err != nil {
		e.t.Fatal(err)
	}
	f := &opsFixture{reg: prometheus.NewRegistry(),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "trail_events_accepted_total", Help: "h"}),
		held:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trail_lease_held", Help: "h"}, []string{"lease", "holder"})}
	f.reg.MustRegister(f.accepted, f.held)
	f.manager = streamadmin.New(streamadmin.Config{Store: st, Log: st, Records: st,
		Codec: stream.NewCodec(stream.Policy{AllowPrivate: true}, keys.Sealer(stream.SealPurpose))})
	e.ops = f
	return Operations{Retention: st, DefaultDays: 30, Events: st, Streams: f.manager, Schemas: st,
		Ledger: st, Quorum: 1, Metrics: f.reg, Leases: st, DiskReserve: 64 << 20}
}

// appendEvents stores events of action in org, occurred now, indexed;
// withRole of them carry metadata.role.
func (e *env) appendEvents(org, action string, n, withRole int) {
	e.t.Helper()
	now := e.c.cfg.Now()
	var sub store.Submission
	for i := range n {
		meta := ""
		if i < withRole {
			meta = `,"metadata":{"role":"admin"}`
		}
		raw := fmt.Sprintf(`{"action":%q,"occurred_at":%q,"actor":{"id":"u%d","type":"user"},"targets":[{"id":"t1","type":"team"}],"context":{"location":"203.0.113.7"}%s}`,
			action, now.Format(time.RFC3339Nano), i, meta)
		d, err := event.ParseEvent([]byte(raw), now, event.DefaultLimits())
		if err != nil {
			e.t.Fatalf("%v: %s", err, raw)
		}
		sub.Events = append(sub.Events, store.PendingEvent{OrganizationID: org, ID: event.NewID(now), ReceivedAt: now, Tail: d.Tail})
	}
	res, err := e.st.Append(context.Background(), []store.Submission{sub}, now)
	if err != nil || res[0].Err != nil {
		e.t.Fatalf("Append: %v %v", err, res)
	}
	for {
		n, err := e.st.IndexPending(context.Background(), 10000)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// integrate signs checkpoints over every log, as the integrator of trail
// serve does.
func (e *env) integrate() {
	e.t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "console.test")
	if err != nil {
		e.t.Fatal(err)
	}
	signer, err := ledger.NewSignerFromKey(skey)
	if err != nil {
		e.t.Fatal(err)
	}
	in, err := ledger.NewIntegrator(e.st, signer, "console.test/trail", ledger.Options{DataDir: e.t.TempDir(), Interval: time.Millisecond}, nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := in.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	defer in.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func TestOperationsPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cookie, csrf := e.signIn()
		get := func(target string) (int, string) {
			code, body, _ := e.do(req{method: "GET", target: target, cookie: cookie})
			return code, body
		}
		post := func(target string, form url.Values) (int, string, *http.Response) {
			form.Set("csrf", csrf)
			return e.do(req{method: "POST", target: target, form: form, cookie: cookie})
		}
		now := e.c.cfg.Now()
		org := store.Organization{ID: access.NewOrganizationID(now), Name: "Acme", CreatedAt: now, UpdatedAt: now}
		if err := e.st.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		e.appendEvents(org.ID, "user.signed_in", 5, 3)
		e.integrate()

		// A destination that accepts everything.
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
		defer hook.Close()
		ls, err := e.ops.manager.Create(ctx, org.ID, "webhook", "SIEM", "beginning",
			[]byte(fmt.Sprintf(`{"url":%q,"secret":"0123456789abcdef0123"}`, hook.URL+"/hook")))
		if err != nil {
			t.Fatal(err)
		}

		// The organizations list: retention, stream health, the chart.
		code, body := get("/console/organizations")
		for _, want := range []string{`<option value="30" selected>30 days</option>`, "deployment default",
			`/console/streams?org=` + org.ID, "1 stream", "5 behind", `src="/console/organizations/` + org.ID + `/rate.svg"`} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("organizations: %d, missing %q", code, want)
			}
		}
		code, svg, res := e.do(req{method: "GET", target: "/console/organizations/" + org.ID + "/rate.svg", cookie: cookie})
		if code != 200 || res.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(svg, "5 events in the last 24 hours") {
			t.Errorf("rate chart: %d %s %s", code, res.Header.Get("Content-Type"), svg)
		}

		// Retention.
		if code, _, res := post("/console/organizations/"+org.ID+"/retention", url.Values{"days": {"90"}}); code != http.StatusSeeOther ||
			!strings.Contains(res.Header.Get("Location"), "done=retention") {
			t.Fatalf("set retention: %d", code)
		}
		if days, own, err := e.st.Retention(ctx, org.ID); err != nil || !own || days != 90 {
			t.Fatalf("retention %d %v %v; want 90", days, own, err)
		}
		if _, body := get("/console/organizations?q=" + org.ID + "&done=retention"); !strings.Contains(body, `<option value="90" selected>`) ||
			!strings.Contains(body, "Retention changed.") {
			t.Errorf("after setting retention: %s", body)
		}

		// Log streams: the list, test, pause, resume.
		code, body = get("/console/streams")
		if code != 200 || !strings.Contains(body, ls.ID) || !strings.Contains(body, "SIEM") || !strings.Contains(body, "5 events") {
			t.Errorf("streams: %d %s", code, body)
		}
		if code, body, _ := post("/console/streams/"+ls.ID+"/test", url.Values{}); code != 200 || !strings.Contains(body, "Accepted") {
			t.Errorf("test: %d %s", code, body)
		}
		if code, _, _ := post("/console/streams/"+ls.ID+"/pause", url.Values{}); code != http.StatusSeeOther {
			t.Errorf("pause: %d", code)
		}
		if st, _ := e.st.Stream(ctx, ls.ID); st.State != store.StreamInactive {
			t.Errorf("after pause: %s", st.State)
		}
		if _, body := get("/console/streams?org=" + org.ID + "&state=inactive"); !strings.Contains(body, "Resume") {
			t.Errorf("a paused stream offers no resume: %s", body)
		}
		if code, _, _ := post("/console/streams/"+ls.ID+"/resume", url.Values{}); code != http.StatusSeeOther {
			t.Errorf("resume: %d", code)
		}
		if st, _ := e.st.Stream(ctx, ls.ID); st.State != store.StreamActive {
			t.Errorf("after resume: %s", st.State)
		}

		// Schemas: a first version, a preview of a second against the
		// organization's events, saving it, and the difference.
		const action = "user.signed_in"
		v1 := `{"targets":[{"type":"team"}]}`
		v2 := `{"targets":[{"type":"team"}],"metadata":{"type":"object","properties":{"role":{"type":"string"}}}}`
		if code, _, _ := post("/console/schemas/"+action, url.Values{"body": {v1}, "save": {"1"}}); code != http.StatusSeeOther {
			t.Fatalf("save v1: %d", code)
		}
		if _, body := get("/console/schemas"); !strings.Contains(body, `href="/console/schemas/user.signed_in"`) || !strings.Contains(body, "None: only the actions") {
			t.Errorf("schemas list: %s", body)
		}
		if _, body := get("/console/schemas?org=" + org.ID); !strings.Contains(body, `href="/console/schemas/user.signed_in?org=`+org.ID+`"`) ||
			!strings.Contains(body, "version 1") {
			t.Errorf("the organization's actions: %s", body)
		}
		code, body, _ = post("/console/schemas/"+action, url.Values{"body": {v2}, "org": {org.ID}, "preview": {"1"}})
		if code != 200 || !regexp.MustCompile(`<strong>3</strong> would validate against this schema and <strong class="bad">2</strong> would not`).MatchString(body) ||
			!strings.Contains(body, "Against the current version 1, 0 do not.") || !strings.Contains(body, "Save as version 2") {
			t.Fatalf("preview: %d %s", code, body)
		}
		if code, _, res := post("/console/schemas/"+action, url.Values{"body": {v2}, "org": {org.ID}, "save": {"1"}}); code != http.StatusSeeOther ||
			res.Header.Get("Location") != "/console/schemas/user.signed_in?done=created" {
			t.Fatalf("save v2: %d", code)
		}
		if sc, err := e.st.Schema(ctx, store.SchemaKindAction, action, 0); err != nil || sc.Version != 2 {
			t.Fatalf("latest schema %+v %v", sc, err)
		}
		code, body = get("/console/schemas/" + action + "?from=1&to=2")
		if code != 200 || !strings.Contains(body, `<li class="diff-added"><span class="sr-only">added: </span><code>metadata</code> the event&#39;s metadata is described, requiring metadata role (string)</li>`) {
			t.Errorf("diff: %d %s", code, body)
		}

		// The actor schema applies on top: the list shows it, and a
		// preview counts it (these actors have no email).
		if _, err := e.st.CreateSchema(ctx, store.Schema{Kind: store.SchemaKindActor, Body: []byte(`{"metadata":{"type":"object","properties":{"email":{"type":"string"}}}}`), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, body := get("/console/schemas"); !strings.Contains(body, "Version 1, created") || !strings.Contains(body, "&#34;email&#34;") {
			t.Errorf("the actor schema: %s", body)
		}
		if _, body, _ := post("/console/schemas/"+action, url.Values{"body": {v2}, "org": {org.ID}, "preview": {"1"}}); !strings.Contains(body, `<strong>0</strong> would validate`) {
			t.Errorf("a preview with the actor schema: %s", body)
		}

		// Integrity: the newest checkpoint and a witness's cosignature.
		size := int64(5)
		if err := e.st.StoreCosignatures(ctx, []ledger.Cosignature{{OrganizationID: org.ID, Size: size,
			Witness: "witness.example+01234567+AAAA", Line: "— witness.example AAAA\n"}}, nil); err != nil {
			t.Fatal(err)
		}
		code, body = get("/console/integrity")
		for _, want := range []string{`id="log-` + org.ID + `"`, "<td data-label=\"Tree size\">5</td>", "console.test (key id", "witness.example: <span class=\"good\">cosigned</span>", "1 of 1 needed", `id="log-org_system"`} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("integrity: %d, missing %q", code, want)
			}
		}

		// System: the ingest rate between two samples, this replica's
		// leases, the lease table, integration lag.
		e.c.sample()
		e.ops.accepted.Add(50)
		e.ops.held.WithLabelValues("integrator", "host-a:7").Set(1)
		e.advance(10 * time.Second)
		code, body = get("/console/system")
		for _, want := range []string{"5.0 events/s", "<code>host-a:7</code> and holds integrator", "No lease has been taken",
			"0 records in 0 logs not covered", "<svg"} {
			if code != 200 || !strings.Contains(body, want) {
				t.Errorf("system: %d, missing %q in %s", code, want, body)
			}
		}

		// Bad input: 4xx naming the field.
		bad := []struct {
			method, target string
			form           url.Values
			code           int
			field          string
		}{
			{"POST", "/console/organizations/" + org.ID + "/retention", url.Values{"days": {"31"}}, 400, "days"},
			{"POST", "/console/organizations/" + org.ID + "/retention", url.Values{}, 400, "days"},
			{"POST", "/console/organizations/org_nope/retention", url.Values{"days": {"60"}}, 404, ""},
			{"POST", "/console/organizations/" + store.SystemOrganizationID + "/retention", url.Values{"days": {"60"}}, 404, ""},
			{"GET", "/console/organizations/org_nope/rate.svg", nil, 404, "id"},
			{"GET", "/console/streams?state=broken", nil, 400, "state"},
			{"GET", "/console/streams?org=acme", nil, 400, "org"},
			{"GET", "/console/streams?after=x", nil, 400, "after"},
			{"POST", "/console/streams/ls_nope/pause", url.Values{}, 404, ""},
			{"POST", "/console/streams/ls_nope/test", url.Values{}, 404, ""},
			{"GET", "/console/schemas?action=", nil, 400, "action"},
			{"GET", "/console/schemas?action=" + strings.Repeat("a", 101), nil, 400, "action"},
			{"GET", "/console/schemas/" + strings.Repeat("a", 101), nil, 400, "action"},
			{"GET", "/console/schemas/" + action + "?from=9", nil, 400, "from"},
			{"GET", "/console/schemas/" + action + "?to=x", nil, 400, "to"},
			{"POST", "/console/schemas/" + action, url.Values{"body": {`{"targets":"x"}`}, "org": {org.ID}}, 422, "body"},
			{"POST", "/console/schemas/" + action, url.Values{"body": {`not json`}, "save": {"1"}}, 422, "body"},
			{"POST", "/console/schemas/" + action, url.Values{"body": {v2}}, 400, "org"},
			{"POST", "/console/schemas/" + action, url.Values{"body": {v2}, "org": {"org_nope"}}, 400, "org"},
			{"GET", "/console/integrity?after=x", nil, 400, "after"},
			{"GET", "/console/schemas?org=org_nope", nil, 400, "org"},
			{"GET", "/console/schemas?org=" + store.SystemOrganizationID, nil, 400, "org"},
		}
		for _, c := range bad {
			var code int
			var body string
			if c.method == "POST" {
				code, body, _ = post(c.target, c.form)
			} else {
				code, body = get(c.target)
			}
			if code != c.code || c.field != "" && !strings.Contains(body, c.field+": ") {
				t.Errorf("%s %s %v: %d, want %d naming %q: %s", c.method, c.target, c.form, code, c.code, c.field, body)
			}
		}

		logs := org.ID + "," + store.SystemOrganizationID
		want := []string{"trail.console_session.started@org_system", "trail.retention.updated@" + logs,
			"trail.log_stream.tested@" + logs, "trail.log_stream.paused@" + logs, "trail.log_stream.resumed@" + logs,
			"trail.schema.created@org_system", "trail.schema.created@org_system"}
		if got := e.actions(); !slices.Equal(got, want) {
			t.Errorf("audited\n%v\nwant\n%v", got, want)
		}
		for _, a := range e.audits {
			if a.Action == "trail.retention.updated" && (a.Metadata["retention_period_in_days"] != "90" || a.Metadata["previous_retention_period_in_days"] != "30") {
				t.Errorf("retention audit metadata %v", a.Metadata)
			}
			if a.Operator != "alice" || a.Metadata["console_session"] == "" {
				t.Errorf("%s by %q (%v), want alice with the session", a.Action, a.Operator, a.Metadata)
			}
		}
	})
}

// TestSchemaDiff: the structural difference names each change by path.
func TestSchemaDiff(t *testing.T) {
	from := `{"targets":[{"type":"team","metadata":{"type":"object","properties":{"plan":{"type":"string"}}}},{"type":"user"}],"actor":{"metadata":{"type":"object","properties":{"email":{"type":"string"}}}}}`
	to := `{"targets":[{"type":"team","metadata":{"type":"object","properties":{"plan":{"type":"number"},"seats":{"type":"number"}}}},{"type":"invoice"}],"metadata":{"type":"object","properties":{}}}`
	fd, errs := parseDef(from)
	td, errs2 := parseDef(to)
	if errs != nil || errs2 != nil {
		t.Fatal(errs, errs2)
	}
	var got []string
	for _, c := range schemaDiff(fd, td) {
		got = append(got, c.Kind+" "+c.Path+": "+c.Text)
	}
	want := []string{
		"added targets[type=invoice]: target type invoice is allowed",
		"changed targets[type=team].metadata.plan: string → number",
		"added targets[type=team].metadata.seats: required, number",
		"removed targets[type=user]: target type user is no longer allowed",
		"removed actor.metadata.email: no longer required (was string)",
		"added metadata: the event's metadata is described",
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := schemaDiff(fd, fd); len(d) != 0 {
		t.Errorf("a schema differs from itself: %v", d)
	}
}

func parseDef(s string) (*schema.Definition, []event.FieldError) {
	return schema.ParseAction([]byte(s))
}

// TestRetentionDefaultOutsideTheChoices: a deployment default the API's
// periods do not include shows as the current value, so that pressing Set
// never changes it to another one unnoticed.
func TestRetentionDefaultOutsideTheChoices(t *testing.T) {
	e := newEnv(t, backends[0].open(t))
	e.c.cfg.Operations.DefaultDays = 45
	cookie, _ := e.signIn()
	now := e.c.cfg.Now()
	org := store.Organization{ID: access.NewOrganizationID(now), Name: "Acme", CreatedAt: now, UpdatedAt: now}
	if err := e.st.CreateOrganization(context.Background(), org); err != nil {
		t.Fatal(err)
	}
	_, body, _ := e.do(req{method: "GET", target: "/console/organizations", cookie: cookie})
	if !strings.Contains(body, `<option value="" selected disabled>45 days</option>`) || strings.Contains(body, `<option value="30" selected>`) {
		t.Errorf("a 45-day default: %s", body)
	}
}
