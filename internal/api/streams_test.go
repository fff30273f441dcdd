package api

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/access"
	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

var updateStreamGolden = flag.Bool("update-streams", false, "rewrite testdata/streams golden files")

func withStreams() envOption {
	return func(cfg *Config, e *env) {
		keys, err := keyring.Generate()
		if err != nil {
			e.t.Fatal(err)
		}
		cfg.Streams = StreamsConfig{Manager: streamadmin.New(streamadmin.Config{Store: e.st, Log: e.st, Records: e.st,
			Codec: stream.NewCodec(stream.Policy{AllowLoopback: true}, keys.Sealer(stream.SealPurpose))})}
	}
}

var (
	volatileIDs   = regexp.MustCompile(`(ls|org|evt)_[0-9A-Z]{26}`)
	volatileTimes = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`)
	volatileURL   = regexp.MustCompile(`(http://)?127\.0\.0\.1:\d+`)
	volatileNums  = regexp.MustCompile(`"(lag_seconds|duration_ms)":[0-9.]+`)
)

// streamGolden compares an answer, with ids, times and ports replaced, to
// testdata/streams/NAME.golden.
func streamGolden(t *testing.T, name string, res *httptest.ResponseRecorder) {
	t.Helper()
	body := volatileIDs.ReplaceAllString(res.Body.String(), "${1}_ID")
	body = volatileTimes.ReplaceAllString(body, `"TIME"`)
	body = volatileURL.ReplaceAllString(body, "http://RECEIVER")
	body = volatileNums.ReplaceAllString(body, `"${1}":N`)
	got := fmt.Sprintf("%d\n%s\n", res.Code, body)
	path := filepath.Join("testdata", "streams", name+".golden")
	if *updateStreamGolden {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-streams to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
	}
}

type receiver struct {
	mu     sync.Mutex
	bodies []string
	status int
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	r := &receiver{status: 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.bodies = append(r.bodies, string(b))
		w.WriteHeader(r.status)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func TestLogStreamsAPI(t *testing.T) {
	e := newEnv(t, withStreams())
	org := e.org("Acme")
	rcv, srv := newReceiver(t)
	base := "/v1/organizations/" + org + "/log_streams"
	for range 3 {
		if res := e.do("POST", "/audit_logs/events", e.admin, e.eventBody(org, "user.signed_in")); res.Code != 201 {
			t.Fatalf("ingest: %d %s", res.Code, res.Body)
		}
	}

	secret := "s3cr3t-hmac-key-0123456789"
	res := e.do("POST", base, e.admin, `{"type":"webhook","name":"SIEM","start":"beginning","config":{"url":"`+srv.URL+`","secret":"`+secret+`","headers":{"X-Token":"tok-42"}}}`)
	streamGolden(t, "created", res)
	if strings.Contains(res.Body.String(), secret) || strings.Contains(res.Body.String(), "tok-42") {
		t.Fatalf("the answer shows a secret: %s", res.Body)
	}
	var created streamJSON
	decode(t, res, &created)
	if created.LagEvents < 3 || created.Cursor != 0 {
		t.Errorf("a stream from the beginning: cursor %d, lag %d events", created.Cursor, created.LagEvents)
	}
	path := base + "/" + created.ID

	res = e.do("GET", path, e.admin, "")
	streamGolden(t, "get", res)
	res = e.do("GET", base+"?limit=5", e.admin, "")
	streamGolden(t, "list", res)

	// Update: the secret is kept when left out.
	res = e.do("PATCH", path, e.admin, `{"name":"SIEM 2","config":{"format":"ndjson"}}`)
	streamGolden(t, "updated", res)
	res = e.do("POST", path+"/pause", e.admin, "")
	streamGolden(t, "paused", res)
	res = e.do("POST", path+"/resume", e.admin, "")
	if res.Code != 200 || !strings.Contains(res.Body.String(), `"state":"active"`) {
		t.Errorf("resume: %d %s", res.Code, res.Body)
	}

	// Test: one synthetic event, signed with the kept secret.
	res = e.do("POST", path+"/test", e.admin, "")
	streamGolden(t, "test-ok", res)
	rcv.mu.Lock()
	if len(rcv.bodies) != 1 || !strings.Contains(rcv.bodies[0], `"action":"trail.log_stream.test"`) {
		t.Errorf("receiver got %q", rcv.bodies)
	}
	rcv.status = 401
	rcv.mu.Unlock()
	res = e.do("POST", path+"/test", e.admin, "")
	streamGolden(t, "test-refused", res)

	res = e.do("GET", "/organizations/"+org+"/audit_log_configuration", e.admin, "")
	streamGolden(t, "audit-log-configuration", res)

	res = e.do("DELETE", path, e.admin, "")
	if res.Code != 204 {
		t.Errorf("delete: %d %s", res.Code, res.Body)
	}
	expectError(t, e.do("GET", path, e.admin, ""), 404, "entity_not_found")

	// Every change is an audit event in the organization's log.
	got := e.search(e.admin, "/v1/events?organization_id="+org+"&action=trail.log_stream.*&order=asc", 7).actions(t)
	want := []string{"trail.log_stream.created", "trail.log_stream.updated", "trail.log_stream.paused", "trail.log_stream.resumed",
		"trail.log_stream.tested", "trail.log_stream.tested", "trail.log_stream.deleted"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit events %v, want %v", got, want)
	}
}

func TestLogStreamsAPIErrors(t *testing.T) {
	e := newEnv(t, withStreams())
	org, other := e.org("Acme"), e.org("Other")
	base := "/v1/organizations/" + org + "/log_streams"
	good := `{"type":"splunk","config":{"url":"https://splunk.example","token":"t"}}`
	res := e.do("POST", base, e.admin, good)
	var st streamJSON
	decode(t, res, &st)
	restricted, _ := e.key("other admin", []string{access.ScopeAdmin}, other)
	reader, _ := e.key("reader", []string{access.ScopeEventsRead}, "")
	cases := []struct {
		name, method, path, secret, body string
		status                           int
		code                             string
	}{
		{"unknown type", "POST", base, e.admin, `{"type":"kafka","config":{}}`, 422, "invalid_request_parameters"},
		{"missing type", "POST", base, e.admin, `{"config":{}}`, 422, "invalid_request_parameters"},
		{"missing secret", "POST", base, e.admin, `{"type":"splunk","config":{"url":"https://splunk.example"}}`, 422, "invalid_request_parameters"},
		{"unknown setting", "POST", base, e.admin, `{"type":"splunk","config":{"url":"https://splunk.example","token":"t","tokne":"x"}}`, 422, "invalid_request_parameters"},
		{"private address", "POST", base, e.admin, `{"type":"splunk","config":{"url":"https://10.1.2.3","token":"t"}}`, 422, "invalid_request_parameters"},
		{"azure without its secret", "POST", base, e.admin, `{"type":"azure_sentinel","config":{"endpoint":"https://dce.ingest.monitor.azure.com","dcr_immutable_id":"dcr-00112233445566778899aabbccddeeff","stream_name":"Custom-T_CL","tenant_id":"t","client_id":"0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a"}}`, 422, "invalid_request_parameters"},
		{"azure endpoint on a private address", "POST", base, e.admin, `{"type":"azure_sentinel","config":{"api":"data_collector","endpoint":"https://192.168.1.1","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"a2V5"}}`, 422, "invalid_request_parameters"},
		{"gcs key not a service account's", "POST", base, e.admin, `{"type":"gcs","config":{"bucket":"audit","service_account_json":{"type":"authorized_user"}}}`, 422, "invalid_request_parameters"},
		{"gcs key of the wrong type", "POST", base, e.admin, `{"type":"gcs","config":{"bucket":"audit","service_account_json":[1]}}`, 422, "invalid_request_parameters"},
		{"bad start", "POST", base, e.admin, `{"type":"splunk","start":"yesterday","config":{"url":"https://splunk.example","token":"t"}}`, 422, "invalid_request_parameters"},
		{"not JSON", "POST", base, e.admin, `{"type":`, 400, "invalid_json"},
		{"unknown field", "POST", base, e.admin, `{"type":"splunk","colour":"red"}`, 422, "invalid_request_parameters"},
		{"unknown organization", "POST", "/v1/organizations/org_nope/log_streams", e.admin, good, 404, "entity_not_found"},
		{"another organization's key", "GET", base, restricted, "", 404, "entity_not_found"},
		{"not admin", "GET", base, reader, "", 403, "forbidden"},
		{"stream of another organization", "GET", "/v1/organizations/" + other + "/log_streams/" + st.ID, e.admin, "", 404, "entity_not_found"},
		{"unknown stream", "PATCH", base + "/ls_nope", e.admin, `{}`, 404, "entity_not_found"},
		{"type change", "PATCH", base + "/" + st.ID, e.admin, `{"type":"datadog"}`, 422, "invalid_request_parameters"},
		{"empty name", "PATCH", base + "/" + st.ID, e.admin, `{"name":""}`, 422, "invalid_request_parameters"},
		{"bad list limit", "GET", base + "?limit=1000", e.admin, "", 422, "invalid_request_parameters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := e.do(c.method, c.path, c.secret, c.body)
			body := expectError(t, res, c.status, c.code)
			if body.Message == "" {
				t.Errorf("no message")
			}
		})
	}
	res = e.do("POST", base, e.admin, `{"type":"splunk","config":{"url":"https://10.1.2.3","token":"t","bogus":1}}`)
	streamGolden(t, "invalid-config", res)
	var fields struct{ Errors []fieldError }
	json.Unmarshal(res.Body.Bytes(), &fields)
	if len(fields.Errors) == 0 || !strings.HasPrefix(fields.Errors[0].Field, "config.") {
		t.Errorf("errors do not name the setting: %s", res.Body)
	}
}

// TestStreamNameOneRule: the API (create and PATCH) and the Admin Portal
// (create and edit) refuse the same names, by stream.CheckName, with a 422
// (a ConfigError for the portal) naming the field.
func TestStreamNameOneRule(t *testing.T) {
	e := newEnv(t, withStreams())
	org := e.org("Acme")
	_, rsrv := newReceiver(t)
	config := `{"url":"` + rsrv.URL + `/hook","secret":"0123456789abcdef0123"}`
	res := e.do("POST", "/v1/organizations/"+org+"/log_streams", e.admin, `{"type":"webhook","name":"S","config":`+config+`}`)
	if res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	var created struct{ ID string }
	decode(t, res, &created)
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"Splunk (prod)", true},
		{"Zoë's SIEM — 日本", true},
		{strings.Repeat("é", 200), true},
		{strings.Repeat("é", 201), false},
		{"a\x00b", false},
		{"a\rb", false},
		{"a\nb", false},
		{"a\x1b[2Jb", false},
		{"a\ab", false},
		{"a\x7fb", false},
		{"a\u0085b", false},
		{"a\u202eb", true}, // bidi and zero-width characters are refused in actions only
		{"a\u200bb", true},
		{"a\xffb", false},
	} {
		t.Run(fmt.Sprintf("%q", c.name), func(t *testing.T) {
			check := func(where string, code int, body string) {
				t.Helper()
				if c.ok && code >= 300 || !c.ok && (code != http.StatusUnprocessableEntity || !strings.Contains(body, `"field":"name"`)) {
					t.Errorf("%s: %d %s", where, code, body)
				}
			}
			// JSON cannot carry invalid UTF-8: encoding/json would replace it.
			if utf8.ValidString(c.name) {
				res := e.do("POST", "/v1/organizations/"+org+"/log_streams", e.admin, `{"type":"webhook","name":`+quote(c.name)+`,"config":`+config+`}`)
				check("API create", res.Code, res.Body.String())
				res = e.do("PATCH", "/v1/organizations/"+org+"/log_streams/"+created.ID, e.admin, `{"name":`+quote(c.name)+`}`)
				check("API PATCH", res.Code, res.Body.String())
			}
			for _, p := range []struct {
				where string
				do    func() error
			}{
				{"portal create", func() error {
					_, err := e.srv.cfg.Streams.Manager.Create(context.Background(), org, "webhook", c.name, "now", []byte(config))
					return err
				}},
				{"portal edit", func() error {
					_, err := e.srv.cfg.Streams.Manager.Update(context.Background(), org, created.ID, c.name, nil)
					return err
				}},
			} {
				err := p.do()
				var ce *stream.ConfigError
				switch {
				case c.ok && err != nil:
					t.Errorf("%s: %v", p.where, err)
				case !c.ok && (!errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0].Field != "name"):
					t.Errorf("%s: %v, want a refusal of the name", p.where, err)
				}
			}
		})
	}
}

// TestStreamRefusesEmbeddedIPv4: IPv6 destinations that carry a refused
// IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible) are refused when a
// stream is created or changed, through the API and the Admin Portal.
func TestStreamRefusesEmbeddedIPv4(t *testing.T) {
	e := newEnv(t, withStreams()) // loopback allowed, private and link-local not
	org := e.org("Acme")
	_, rsrv := newReceiver(t)
	res := e.do("POST", "/v1/organizations/"+org+"/log_streams", e.admin, `{"type":"webhook","config":{"url":"`+rsrv.URL+`","secret":"0123456789abcdef0123"}}`)
	if res.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Code, res.Body)
	}
	var created struct{ ID string }
	decode(t, res, &created)
	for _, host := range []string{"[64:ff9b::a9fe:a9fe]", "[64:ff9b::a00:1]", "[64:ff9b:1::a00:1]", "[2002:a00:1::]",
		"[2002:a9fe:a9fe::]", "[::10.0.0.1]", "[::169.254.169.254]", "[2001:0:5db8:d70e:0:0:f5ff:fffe]", "[fe80::1]", "169.254.170.2"} {
		config := `{"url":"https://` + host + `/hook","secret":"0123456789abcdef0123"}`
		res := e.do("POST", "/v1/organizations/"+org+"/log_streams", e.admin, `{"type":"webhook","config":`+config+`}`)
		if res.Code != http.StatusUnprocessableEntity || !strings.Contains(res.Body.String(), `"field":"config.url"`) {
			t.Errorf("API create to %s: %d %s", host, res.Code, res.Body)
		}
		res = e.do("PATCH", "/v1/organizations/"+org+"/log_streams/"+created.ID, e.admin, `{"config":`+config+`}`)
		if res.Code != http.StatusUnprocessableEntity || !strings.Contains(res.Body.String(), `"field":"config.url"`) {
			t.Errorf("API PATCH to %s: %d %s", host, res.Code, res.Body)
		}
		var ce *stream.ConfigError
		if _, err := e.srv.cfg.Streams.Manager.Create(context.Background(), org, "webhook", "", "now", []byte(config)); !errors.As(err, &ce) || ce.Errors[0].Code != "forbidden_address" {
			t.Errorf("portal create to %s: %v", host, err)
		}
		if _, err := e.srv.cfg.Streams.Manager.Update(context.Background(), org, created.ID, "S", []byte(config)); !errors.As(err, &ce) || ce.Errors[0].Code != "forbidden_address" {
			t.Errorf("portal edit to %s: %v", host, err)
		}
	}
}
