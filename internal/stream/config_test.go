package stream_test

import (
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
