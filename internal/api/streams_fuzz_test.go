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
