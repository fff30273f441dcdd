package api

import (
	"strings"
	"testing"
)

// FuzzCreateStream: any body sent to create or update a log stream is
// answered with 201/200 or a 4xx JSON error with a message, never a 5xx or
// a panic, and a secret sent is never echoed back.
func FuzzCreateStream(f *testing.F) {
	for _, s := range []string{
		`{"type":"webhook","config":{"url":"https://siem.example/in","secret":"0123456789abcdef-SECRET"}}`,
		`{"type":"datadog","name":"dd","start":"beginning","config":{"site":"eu1","api_key":"SECRET-dd"}}`,
		`{"type":"splunk","config":{"url":"https://splunk.example:8088","token":"SECRET-hec","index":"main"}}`,
		`{"type":"s3","config":{"bucket":"audit","access_key_id":"AKIA","secret_access_key":"SECRET-s3","path_style":true}}`,
		`{"type":"syslog","config":{"address":"siem.example:6514","facility":4}}`,
		`{"type":"azure_sentinel","config":{"endpoint":"https://dce.ingest.monitor.azure.com","dcr_immutable_id":"dcr-00112233445566778899aabbccddeeff","stream_name":"Custom-T_CL","tenant_id":"t","client_id":"0f8f6f2c-5c7e-4c9e-9a59-0c2b0f2e1d3a","client_secret":"SECRET-entra"}}`,
		`{"type":"azure_sentinel","config":{"api":"data_collector","workspace_id":"b8d6a2f0-1c2e-4c8b-9d3e-7a6f5e4d3c2b","shared_key":"U0VDUkVULWtleQ=="}}`,
		`{"type":"gcs","config":{"bucket":"audit","service_account_json":{"type":"service_account","client_email":"a@b.c","private_key":"SECRET"}}}`,
		`{"type":"webhook","config":{"url":"http://169.254.169.254/","secret":"x"}}`,
		`{"type":"webhook","config":null}`, `{"type":null}`, `[]`, `{"type":"webhook","config":{"headers":{"":"x"}}}`,
		`{"name":"` + strings.Repeat("n", 300) + `","type":"webhook"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := newEnv(t, withStreams())
		org := e.org("Fuzz")
		for _, path := range []string{"/v1/organizations/" + org + "/log_streams"} {
			res := e.do("POST", path, e.admin, body)
			if res.Code >= 500 {
				t.Fatalf("%d for %q: %s", res.Code, body, res.Body)
			}
			if res.Code != 201 && !strings.Contains(res.Body.String(), `"message":"`) {
				t.Fatalf("%d without a message for %q: %s", res.Code, body, res.Body)
			}
			if res.Code == 201 && strings.Contains(body, "SECRET") && strings.Contains(res.Body.String(), "SECRET") {
				t.Fatalf("a secret echoed back: %s", res.Body)
			}
		}
	})
}
