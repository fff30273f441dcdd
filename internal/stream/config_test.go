package stream_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/trailaudit/trail/internal/keyring"
	"github.com/trailaudit/trail/internal/stream"
)

func TestParseConfig(t *testing.T) {
	keys, _ := keyring.Generate()
	c := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	cases := []struct {
		typ, config string
		field       string // the first error's field; "" = valid
		public      string // Public() of a valid one
		secrets     string
	}{
		{"datadog", `{"api_key":"k"}`, "", `{"site":"us1","service":"audit-logs","source":"trail"}`, "api_key"},
		{"datadog", `{"site":"eu1","api_key":"k","tags":"env:prod"}`, "", `{"site":"eu1","service":"audit-logs","source":"trail","tags":"env:prod"}`, "api_key"},
		{"datadog", `{}`, "config.api_key", "", ""},
		{"datadog", `{"site":"mars","api_key":"k"}`, "config.site", "", ""},
		{"datadog", `{"api_key":"k","endpoint":"http://intake.example"}`, "config.endpoint", "", ""},
		{"datadog", `{"api_key":"k","apikey":"x"}`, "config.apikey", "", ""},
		{"datadog", `{"api_key":5}`, "config.api_key", "", ""},
		{"splunk", `{"url":"https://splunk.example:8088","token":"t"}`, "", `{"url":"https://splunk.example:8088","source":"trail","sourcetype":"_json"}`, "token"},
		{"splunk", `{"url":"https://splunk.example:8088/services/collector/event","token":"t"}`, "config.url", "", ""},
		{"splunk", `{"url":"https://10.0.0.5:8088","token":"t"}`, "config.url", "", ""},
		{"splunk", `{"url":"https://user:pw@splunk.example","token":"t"}`, "config.url", "", ""},
		{"s3", `{"bucket":"audit","access_key_id":"a","secret_access_key":"b"}`, "", `{"bucket":"audit","region":"us-east-1"}`, "access_key_id,secret_access_key"},
		{"s3", `{"bucket":"Bad_Bucket!","access_key_id":"a","secret_access_key":"b"}`, "config.bucket", "", ""},
		{"s3", `{"bucket":"audit","endpoint":"https://169.254.169.254","access_key_id":"a","secret_access_key":"b"}`, "config.endpoint", "", ""},
		{"webhook", `{"url":"https://siem.example/in","secret":"0123456789abcdef","headers":{"Authorization":"Bearer x"}}`, "",
			`{"url":"https://siem.example/in","format":"json","headers":{"Authorization":""}}`, "headers.Authorization,secret"},
		{"webhook", `{"url":"https://siem.example/in","secret":"short"}`, "config.secret", "", ""},
		{"webhook", `{"url":"https://siem.example/in","secret":"0123456789abcdef","format":"xml"}`, "config.format", "", ""},
		{"webhook", `{"url":"https://siem.example/in","secret":"0123456789abcdef","headers":{"Trail-Signature":"x"}}`, "config.headers", "", ""},
		{"webhook", `{"url":"https://siem.example/in","secret":"0123456789abcdef","headers":{"X":"a\r\nB: c"}}`, "config.headers", "", ""},
		{"webhook", `{"url":"http://127.0.0.1/in","secret":"0123456789abcdef"}`, "config.url", "", ""},
		{"webhook", `{"url":"https://localhost/in","secret":"0123456789abcdef"}`, "config.url", "", ""},
		{"webhook", `[]`, "config", "", ""},
		{"webhook", `{"url":"https://a.example","secret":"0123456789abcdef"} {}`, "config", "", ""},
		{"syslog", `{"address":"siem.example:6514"}`, "", `{"address":"siem.example:6514","transport":"tls","hostname":"trail","app_name":"trail","facility":13}`, ""},
		{"syslog", `{"address":"siem.example:514","transport":"tcp"}`, "config.transport", "", ""},
		{"syslog", `{"address":"siem.example"}`, "config.address", "", ""},
		{"syslog", `{"address":"siem.example:6514","facility":24}`, "config.facility", "", ""},
		{"syslog", `{"address":"siem.example:6514","ca_pem":"nope"}`, "config.ca_pem", "", ""},
		{"syslog", `{"address":"siem.example:6514","hostname":"a b"}`, "config.hostname", "", ""},
		{"kafka", `{}`, "type", "", ""},
	}
	for _, tc := range cases {
		set, err := c.Parse(tc.typ, []byte(tc.config), nil)
		if tc.field != "" {
			var ce *stream.ConfigError
			if !errors.As(err, &ce) || len(ce.Errors) == 0 || ce.Errors[0].Field != tc.field || ce.Errors[0].Message == "" {
				t.Errorf("Parse(%s, %s) = %v, want an error on %s", tc.typ, tc.config, err, tc.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s, %s): %v", tc.typ, tc.config, err)
			continue
		}
		if got := string(set.Public()); got != tc.public {
			t.Errorf("Public(%s) = %s, want %s", tc.config, got, tc.public)
		}
		if got := strings.Join(set.SecretNames(), ","); got != tc.secrets {
			t.Errorf("SecretNames(%s) = %s, want %s", tc.config, got, tc.secrets)
		}
		// Sealed for one stream, it opens for that stream only.
		sealed := c.Seal(set, "ls_1")
		back, err := c.Unseal(tc.typ, sealed, "ls_1")
		if err != nil || string(back.Public()) != tc.public {
			t.Errorf("Unseal: %v, %s", err, back.Public())
		}
		if _, err := c.Unseal(tc.typ, sealed, "ls_2"); !errors.Is(err, keyring.ErrOpen) {
			t.Errorf("Unseal for another stream = %v, want ErrOpen", err)
		}
	}
}

// TestUpdateKeepsSecrets: an update that leaves secrets out keeps them.
func TestUpdateKeepsSecrets(t *testing.T) {
	keys, _ := keyring.Generate()
	c := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	prev, err := c.Parse("splunk", []byte(`{"url":"https://a.example","token":"secret-token"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := c.Parse("splunk", []byte(`{"url":"https://b.example","index":"audit"}`), prev)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(next.Public()); got != `{"url":"https://b.example","index":"audit","source":"trail","sourcetype":"_json"}` {
		t.Errorf("Public after update = %s", got)
	}
	if strings.Join(next.SecretNames(), ",") != "token" {
		t.Errorf("the token was lost on update: secrets %v", next.SecretNames())
	}
	sealed, _ := c.Unseal("splunk", c.Seal(next, "ls_x"), "ls_x")
	raw := c.Seal(sealed, "ls_x")
	if len(raw) == 0 {
		t.Fatal("empty seal")
	}
}

// FuzzParseConfig: whatever an administrator sends, Parse answers a valid
// configuration or a *ConfigError with messages — never a panic or another
// error — and a valid one survives sealing.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"api_key":"k"}`, `{"url":"https://splunk.example:8088","token":"t"}`,
		`{"bucket":"audit","access_key_id":"a","secret_access_key":"b","path_style":true}`,
		`{"url":"https://siem.example/in","secret":"0123456789abcdef","headers":{"A":"b"},"format":"ndjson"}`,
		`{"address":"siem.example:6514","facility":3}`, `{"facility":1e400}`, `{"headers":[]}`, `null`, `{`, ``,
		`{"endpoint":"https://dce.ingest.monitor.azure.com","dcr_immutable_id":"dcr-00112233445566778899aabbccddeeff","stream_name":"Custom-T_CL","tenant_id":"t","client_id":"0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a","client_secret":"s"}`,
		`{"api":"data_collector","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"a2V5"}`,
		`{"bucket":"audit","service_account_json":{"type":"service_account","client_email":"a@b.c","private_key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"}}`,
	} {
		for _, typ := range stream.Types {
			f.Add(typ, s)
		}
	}
	keys, _ := keyring.Generate()
	c := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	f.Fuzz(func(t *testing.T, typ, config string) {
		set, err := c.Parse(typ, []byte(config), nil)
		if err != nil {
			var ce *stream.ConfigError
			if !errors.As(err, &ce) || len(ce.Errors) == 0 {
				t.Fatalf("Parse(%q, %q) = %v, want a *ConfigError", typ, config, err)
			}
			for _, fe := range ce.Errors {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("field error without a field or message: %+v", fe)
				}
			}
			return
		}
		if !json.Valid(set.Public()) {
			t.Fatalf("Public is not JSON: %s", set.Public())
		}
		back, err := c.Unseal(typ, c.Seal(set, "ls_f"), "ls_f")
		if err != nil || string(back.Public()) != string(set.Public()) {
			t.Fatalf("seal round trip: %v", err)
		}
		if _, err := c.Open(set); err != nil {
			t.Fatalf("Open of a valid configuration: %v", err)
		}
	})
}

// TestParseCloudConfig: the Azure Sentinel and Cloud Storage settings, with
// the same SSRF policy as the others (no literal internal addresses).
func TestParseCloudConfig(t *testing.T) {
	keys, _ := keyring.Generate()
	c := stream.NewCodec(stream.Policy{}, keys.Sealer(stream.SealPurpose))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	sa := serviceAccountJSON(t, key, "https://oauth2.googleapis.com/token")
	quoted := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	li := `"endpoint":"https://dce-1.eastus-1.ingest.monitor.azure.com","dcr_immutable_id":"dcr-00112233445566778899aabbccddeeff","stream_name":"Custom-TrailAudit_CL","tenant_id":"72f988bf-86f1-41af-91ab-2d7cd011db47","client_id":"0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a"`
	cases := []struct {
		typ, config string
		field       string
		public      string
		secrets     string
	}{
		{"azure_sentinel", `{` + li + `,"client_secret":"s"}`, "",
			`{"api":"logs_ingestion","cloud":"public",` + li + `}`, "client_secret"},
		{"azure_sentinel", `{` + li + `}`, "config.client_secret", "", ""},
		{"azure_sentinel", `{` + li + `,"client_secret":"s","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b"}`, "config.workspace_id", "", ""},
		{"azure_sentinel", strings.Replace(`{`+li+`,"client_secret":"s"}`, "dcr-00112233", "dcr-XX112233", 1), "config.dcr_immutable_id", "", ""},
		{"azure_sentinel", strings.Replace(`{`+li+`,"client_secret":"s"}`, "Custom-TrailAudit_CL", "Custom-a/../b", 1), "config.stream_name", "", ""},
		{"azure_sentinel", strings.Replace(`{`+li+`,"client_secret":"s"}`, "72f988bf-86f1-41af-91ab-2d7cd011db47", "a/b", 1), "config.tenant_id", "", ""},
		{"azure_sentinel", strings.Replace(`{`+li+`,"client_secret":"s"}`, "https://dce-1.eastus-1.ingest.monitor.azure.com", "https://10.1.2.3", 1), "config.endpoint", "", ""},
		{"azure_sentinel", strings.Replace(`{`+li+`,"client_secret":"s"}`, "monitor.azure.com", "monitor.azure.com/x?y", 1), "config.endpoint", "", ""},
		{"azure_sentinel", `{` + li + `,"client_secret":"s","authority":"https://169.254.169.254"}`, "config.authority", "", ""},
		{"azure_sentinel", `{` + li + `,"client_secret":"s","cloud":"mars"}`, "config.cloud", "", ""},
		{"azure_sentinel", `{"api":"data_collector","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"a2V5"}`, "",
			`{"api":"data_collector","cloud":"public","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","log_type":"TrailAudit"}`, "shared_key"},
		{"azure_sentinel", `{"api":"data_collector","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"not base64!"}`, "config.shared_key", "", ""},
		{"azure_sentinel", `{"api":"data_collector","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"a2V5","log_type":"a-b"}`, "config.log_type", "", ""},
		{"azure_sentinel", `{"api":"data_collector","workspace_id":"nope","shared_key":"a2V5"}`, "config.workspace_id", "", ""},
		{"azure_sentinel", `{"api":"legacy"}`, "config.api", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":` + quoted(sa) + `}`, "",
			`{"bucket":"audit","client_email":"` + gcsEmail + `"}`, "service_account_json"},
		// The key file inline, as a JSON object.
		{"gcs", `{"bucket":"audit","prefix":"trail/","service_account_json":` + sa + `}`, "",
			`{"bucket":"audit","prefix":"trail/","client_email":"` + gcsEmail + `"}`, "service_account_json"},
		{"gcs", `{"bucket":"audit"}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":"{}"}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":` + quoted(strings.Replace(sa, "service_account", "authorized_user", 1)) + `}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":` + quoted(serviceAccountJSON(t, small, "https://oauth2.googleapis.com/token")) + `}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":` + quoted(serviceAccountJSON(t, key, "https://169.254.169.254/token")) + `}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":` + quoted(serviceAccountJSON(t, key, "http://oauth2.example/token")) + `}`, "config.service_account_json", "", ""},
		{"gcs", `{"bucket":"Audit!","service_account_json":` + quoted(sa) + `}`, "config.bucket", "", ""},
		{"gcs", `{"bucket":"audit","endpoint":"https://[::1]:4443","service_account_json":` + quoted(sa) + `}`, "config.endpoint", "", ""},
		{"gcs", `{"bucket":"audit","service_account_json":5}`, "config.service_account_json", "", ""},
	}
	for _, tc := range cases {
		set, err := c.Parse(tc.typ, []byte(tc.config), nil)
		if tc.field != "" {
			var ce *stream.ConfigError
			if !errors.As(err, &ce) || len(ce.Errors) == 0 || ce.Errors[0].Field != tc.field || ce.Errors[0].Message == "" {
				t.Errorf("Parse(%s, %.200s) = %v, want an error on %s", tc.typ, tc.config, err, tc.field)
			} else if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error shows the key: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s, %.200s): %v", tc.typ, tc.config, err)
			continue
		}
		if got := string(set.Public()); got != tc.public {
			t.Errorf("Public(%.200s) = %s, want %s", tc.config, got, tc.public)
		}
		if got := strings.Join(set.SecretNames(), ","); got != tc.secrets {
			t.Errorf("SecretNames = %s, want %s", got, tc.secrets)
		}
		back, err := c.Unseal(tc.typ, c.Seal(set, "ls_1"), "ls_1")
		if err != nil || string(back.Public()) != tc.public {
			t.Errorf("Unseal: %v", err)
		}
		if _, err := c.Open(back); err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	// An update that leaves the key out keeps it.
	prev, _ := c.Parse("gcs", []byte(`{"bucket":"audit","service_account_json":`+quoted(sa)+`}`), nil)
	next, err := c.Parse("gcs", []byte(`{"bucket":"audit-2","prefix":"p/"}`), prev)
	if err != nil || strings.Join(next.SecretNames(), ",") != "service_account_json" {
		t.Errorf("update without the key: %v, %v", err, next)
	}
}
