package portal

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/store"
	"github.com/trailaudit/trail/internal/stream"
	"github.com/trailaudit/trail/internal/streamadmin"
)

func TestParseStreamForm(t *testing.T) {
	ls, err := loadLocales()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		typ     string
		edit    bool
		form    url.Values
		want    map[string]any // the config object; nil when the form is refused
		errKey  string         // a field that must carry an error
		wantErr bool
	}{
		{name: "webhook create", typ: "webhook", form: url.Values{"name": {" Hook "}, "url": {" https://x.example/h "}, "format": {"ndjson"}, "secret": {"s3cret-s3cret-s3cret"}, "headers": {"X-A: 1\r\nX-B:2\n\n"}},
			want: map[string]any{"url": "https://x.example/h", "format": "ndjson", "secret": "s3cret-s3cret-s3cret", "headers": map[string]any{"X-A": "1", "X-B": "2"}}},
		{name: "empty fields left out on create", typ: "webhook", form: url.Values{"url": {"https://x.example"}},
			want: map[string]any{"url": "https://x.example"}},
		{name: "edit keeps empty secrets, clears other fields", typ: "webhook", edit: true, form: url.Values{"name": {"n"}, "url": {"https://x.example"}, "secret": {""}},
			want: map[string]any{"url": "https://x.example", "format": ""}},
		{name: "s3 checkbox", typ: "s3", form: url.Values{"bucket": {"b-1"}, "path_style": {"on"}},
			want: map[string]any{"bucket": "b-1", "path_style": true}},
		{name: "s3 checkbox cleared on edit", typ: "s3", edit: true, form: url.Values{"name": {"n"}, "bucket": {"b-1"}},
			want: map[string]any{"bucket": "b-1", "path_style": false, "region": "", "endpoint": "", "prefix": ""}},
		{name: "syslog facility", typ: "syslog", form: url.Values{"address": {"h:1"}, "facility": {"4"}, "ca_pem": {"-----BEGIN\nx\n"}},
			want: map[string]any{"address": "h:1", "facility": float64(4), "ca_pem": "-----BEGIN\nx\n"}},
		{name: "syslog facility cleared on edit", typ: "syslog", edit: true, form: url.Values{"name": {"n"}, "address": {"h:1"}},
			want: map[string]any{"address": "h:1", "facility": nil, "transport": "", "server_name": "", "ca_pem": "", "hostname": "", "app_name": ""}},
		{name: "facility not a number", typ: "syslog", form: url.Values{"facility": {"4x"}}, errKey: "facility", wantErr: true},
		{name: "header without colon", typ: "webhook", form: url.Values{"headers": {"X-A 1"}}, errKey: "headers", wantErr: true},
		{name: "too many headers", typ: "webhook", form: url.Values{"headers": {manyHeaders(21)}}, errKey: "headers", wantErr: true},
		{name: "newline in a one-line field", typ: "webhook", form: url.Values{"url": {"https://x\n.example"}}, errKey: "url", wantErr: true},
		{name: "control character", typ: "splunk", form: url.Values{"token": {"a\x00b"}}, errKey: "token", wantErr: true},
		{name: "field given twice", typ: "splunk", form: url.Values{"url": {"https://a", "https://b"}}, errKey: "url", wantErr: true},
		{name: "too long", typ: "syslog", form: url.Values{"ca_pem": {strings.Repeat("a", maxFormValue+1)}}, errKey: "ca_pem", wantErr: true},
		{name: "bad name", typ: "datadog", form: url.Values{"name": {"a\nb"}}, wantErr: true},
		{name: "gcs key file over several lines", typ: "gcs", form: url.Values{"bucket": {"b-1"}, "service_account_json": {"{\n  \"type\": \"service_account\"\n}\n"}},
			want: map[string]any{"bucket": "b-1", "service_account_json": "{\n  \"type\": \"service_account\"\n}\n"}},
		{name: "gcs edit keeps the key", typ: "gcs", edit: true, form: url.Values{"name": {"n"}, "bucket": {"b-1"}, "service_account_json": {""}},
			want: map[string]any{"bucket": "b-1", "prefix": "", "endpoint": ""}},
		{name: "gcs key with a control character", typ: "gcs", form: url.Values{"service_account_json": {"{\x00}"}}, errKey: "service_account_json", wantErr: true},
		{name: "azure logs ingestion", typ: "azure_sentinel", form: url.Values{"api": {"logs_ingestion"}, "cloud": {"public"}, "endpoint": {"https://dce.ingest.monitor.azure.com"},
			"dcr_immutable_id": {"dcr-1"}, "stream_name": {"Custom-T_CL"}, "tenant_id": {"t"}, "client_id": {"c"}, "client_secret": {"s"}, "shared_key": {""}},
			want: map[string]any{"api": "logs_ingestion", "cloud": "public", "endpoint": "https://dce.ingest.monitor.azure.com", "dcr_immutable_id": "dcr-1",
				"stream_name": "Custom-T_CL", "tenant_id": "t", "client_id": "c", "client_secret": "s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, _ := destination(tc.typ)
			f := newForm(dest, nil, nil)
			f.Edit = tc.edit
			_, raw, ok := parseStreamForm(ls.list[0], f, tc.form)
			if ok == tc.wantErr {
				t.Fatalf("ok = %v", ok)
			}
			if tc.errKey != "" {
				found := false
				for _, ff := range f.Fields {
					found = found || ff.Key == tc.errKey && ff.Error != ""
				}
				if !found {
					t.Errorf("no error on %s: %+v", tc.errKey, f.Fields)
				}
			}
			if tc.wantErr {
				return
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config = %s, want %v", raw, tc.want)
			}
		})
	}
}

func manyHeaders(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("X-H" + strings.Repeat("a", i) + ": v\n")
	}
	return b.String()
}

// The stream package's field errors land beside their fields, named by
// their labels; others are listed above the form.
func TestStreamFormErrors(t *testing.T) {
	dest, _ := destination("webhook")
	f := newForm(dest, nil, nil)
	ls, err := loadLocales()
	if err != nil {
		t.Fatal(err)
	}
	f.setErrors(ls.list[0], []stream.FieldError{{Field: "config.url", Message: "config.url must use https://."}, {Field: "name", Message: "bad name"},
		{Field: "config", Message: "config is not valid JSON."}, {Field: "config.nope", Message: "x"}})
	if f.Fields[0].Error != "URL must use https://." || f.NameError != "bad name" || len(f.Errors) != 2 || !f.HasErrors() {
		t.Fatalf("%+v", f)
	}
}

// The edit form shows the stored public settings and which secrets are set,
// never a secret's value.
func TestEditFormValues(t *testing.T) {
	st := streamadmin.Status{Stream: store.Stream{ID: "ls_1", Type: "webhook", Name: "n", Config: []byte(`{"url":"https://x.example","format":"json","headers":{"X-A":""}}`)},
		SecretNames: []string{"headers.X-A", "secret"}}
	f, ok := editForm(st)
	if !ok {
		t.Fatal("no form")
	}
	byKey := map[string]formField{}
	for _, ff := range f.Fields {
		byKey[ff.Key] = ff
	}
	if byKey["url"].Value != "https://x.example" || !byKey["secret"].SecretSet || byKey["secret"].Value != "" ||
		!byKey["headers"].SecretSet || byKey["headers"].SetNames != "X-A" {
		t.Fatalf("%+v", byKey)
	}
}

// A key file is a secret too: the edit form says it is set and shows
// nothing of it.
func TestEditFormKeyFile(t *testing.T) {
	st := streamadmin.Status{Stream: store.Stream{ID: "ls_1", Type: stream.TypeGCS, Name: "n",
		Config: []byte(`{"bucket":"b-1","client_email":"w@p.iam.gserviceaccount.com","service_account_json":"leaked?"}`)},
		SecretNames: []string{"service_account_json"}}
	f, ok := editForm(st)
	if !ok {
		t.Fatal("no form")
	}
	for _, ff := range f.Fields {
		if ff.Key == "service_account_json" && (!ff.SecretSet || ff.Value != "" || ff.Kind != kindSecretText) {
			t.Fatalf("%+v", ff)
		}
		if ff.Key == "bucket" && ff.Value != "b-1" {
			t.Fatalf("%+v", ff)
		}
	}
}

func TestExportFilter(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		query string
		want  store.ExportFilter
		note  string
	}{
		{"", store.ExportFilter{}, ""},
		{"from=2026-11-25&to=2026-11-25&action=a&action=b&actor_id=u1&actor_name=Ann&target_type=team",
			store.ExportFilter{RangeStart: day, RangeEnd: day.AddDate(0, 0, 1), Actions: []string{"a", "b"}, ActorIDs: []string{"u1"}, ActorNames: []string{"Ann"}, Targets: []string{"team"}}, ""},
		{"q=hello", store.ExportFilter{}, "search text"},
		{"target_id=t1&target_type=team", store.ExportFilter{}, "target id"},
		{"q=x&target_id=t1", store.ExportFilter{}, "search text or target id"},
	} {
		v, _ := url.ParseQuery(tc.query)
		f, problems := parseFilter(v)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		got, notes := f.exportFilter()
		if tc.note != "" {
			if len(notes) != 1 || !strings.Contains(notes[0].String(), tc.note) {
				t.Errorf("%s: notes %q", tc.query, notes)
			}
			continue
		}
		if len(notes) > 0 || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %q, want %+v", tc.query, got, notes, tc.want)
		}
	}
}

// testServiceAccountJSON is a Google service account's key file.
func testServiceAccountJSON(t *testing.T) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "writer@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"}, "", "  ")
	return string(b)
}
