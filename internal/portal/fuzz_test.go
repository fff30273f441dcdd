package portal

import (
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseFilter: any query string gives a filter or problems, never a
// panic, and a filter's own URL reads back as the same filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "from=2026-11-25&to=2026-11-26", "action=a.b&action=c.d&actor_id=u1&q=hello+world",
		"from=2026-11-25T10:00&to=2026-11-25T09:00", "after=azE6MTIz", "actor_name=%00", "q=%ff%fe", "action=" + strings.Repeat("a", 600),
		"from=2026-11-25T10:00:00.123Z&target_type=team&target_id=t%22%3C1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, problems := parseFilter(v)
		if len(problems) > 0 {
			return
		}
		for _, s := range append([]string{fl.From, fl.To, fl.ActorID, fl.ActorName, fl.TargetType, fl.TargetID, fl.Text}, fl.Actions...) {
			if !utf8.ValidString(s) || len(s) > maxFilterLen {
				t.Fatalf("accepted value %q", s)
			}
		}
		again, problems := parseFilter(fl.values())
		if len(problems) > 0 || again.link("/", "", "") != fl.link("/", "", "") || !again.from.Equal(fl.from) || !again.to.Equal(fl.to) {
			t.Fatalf("filter %+v does not round-trip through its URL: %+v %q", fl, again, problems)
		}
		_ = fl.query("org_a")
		histogramFor(fl, time.Now())
	})
}

// FuzzParseToken: only well-formed link secrets are accepted, and a new
// token always is.
func FuzzParseToken(f *testing.F) {
	f.Add(newToken())
	f.Add("ptl_" + strings.Repeat("A", 43))
	f.Add("ptl_")
	f.Add("<script>")
	f.Fuzz(func(t *testing.T, tok string) {
		if _, ok := parseToken(tok); ok && (len(tok) != 47 || !strings.HasPrefix(tok, "ptl_")) {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// FuzzSessionCookie: no cookie value but a signed one opens a session.
func FuzzSessionCookie(f *testing.F) {
	p := &Portal{cfg: Config{SessionKey: make([]byte, 32)}}
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	good := p.encodeSession(&session{Version: 1, Org: "org_a", Intent: IntentAuditLogs, ID: "abc", Expires: now.Add(time.Hour).Unix()})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add("e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := p.decodeSession(v, now)
		if err == nil && v != good && p.encodeSession(s) != v {
			t.Fatalf("accepted a cookie the portal did not issue: %q → %+v", v, s)
		}
	})
}
