package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/trailaudit/trail/internal/stream"
)

func TestParseTokenResponse(t *testing.T) {
	now := time.Now()
	cases := []struct {
		body    string
		token   string
		expires time.Duration
		err     string
	}{
		{`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.a.b"}`, "eyJ0.a.b", 3599 * time.Second, ""},
		{`{"access_token":"ya29.c","expires_in":3599,"token_type":"Bearer"}`, "ya29.c", 3599 * time.Second, ""},
		{`{"access_token":"x","expires_in":"3600","token_type":"bearer"}`, "x", time.Hour, ""},
		{`{"access_token":"x"}`, "x", time.Hour, ""},
		{`{"access_token":"x","expires_in":null}`, "x", time.Hour, ""},
		{`{"access_token":"x","expires_in":99999999}`, "x", 24 * time.Hour, ""},
		{`{"access_token":"x","expires_in":0}`, "", 0, "expires_in"},
		{`{"access_token":"x","expires_in":-5}`, "", 0, "expires_in"},
		{`{"access_token":"x","expires_in":1.5}`, "", 0, "expires_in"},
		{`{"access_token":"x","expires_in":"soon"}`, "", 0, "expires_in"},
		{`{"access_token":"x","token_type":"mac"}`, "", 0, "not a bearer token"},
		{`{"access_token":"a b"}`, "", 0, "printable"},
		{`{"access_token":"a\r\nX-Injected: 1"}`, "", 0, "printable"},
		{`{"access_token":""}`, "", 0, "no access_token"},
		{`{"error":"invalid_client"}`, "", 0, "no access_token"},
		{`<html>login</html>`, "", 0, "not a JSON object"},
		{`[]`, "", 0, "not a JSON object"},
		{``, "", 0, "not a JSON object"},
	}
	for _, tc := range cases {
		tok, err := stream.ParseTokenResponse([]byte(tc.body), now)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTokenResponse(%s) = %v, want an error about %s", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || tok.AccessToken != tc.token || tok.Expiry.Sub(now) != tc.expires {
			t.Errorf("ParseTokenResponse(%s) = %+v, %v; want %s for %v", tc.body, tok, err, tc.token, tc.expires)
		}
	}
}

// FuzzParseTokenResponse: whatever a token endpoint answers, the parser
// returns a token fit for an Authorization header, expiring within a day,
// or an error — never a panic.
func FuzzParseTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.a.b"}`,
		`{"access_token":"x","expires_in":"3600"}`, `{"access_token":"x","expires_in":1e400}`,
		`{"access_token":"\u0000"}`, `{"access_token":"x","token_type":null}`, `null`, `{"access_token":["x"]}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := stream.ParseTokenResponse(body, now)
		if err != nil {
			if tok.AccessToken != "" {
				t.Fatalf("a token with an error: %+v", tok)
			}
			return
		}
		if tok.AccessToken == "" || strings.ContainsAny(tok.AccessToken, " \r\n\t\x00") {
			t.Fatalf("unusable token %q", tok.AccessToken)
		}
		if d := tok.Expiry.Sub(now); d <= 0 || d > 24*time.Hour {
			t.Fatalf("expiry %v away", d)
		}
	})
}
