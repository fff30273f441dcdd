package portal

import (
	"encoding/json"
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
	ls, err := loadLocales()
	if err != nil {
		f.Fatal(err)
	}
	en := ls.list[0]
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
		if ef, notes := fl.exportFilter(); len(notes) == 0 && (fl.Text != "" || fl.TargetID != "" || !ef.RangeStart.Equal(fl.from)) {
			t.Fatalf("filter %+v exported as %+v", fl, ef)
		}
		histogramFor(fl, time.Now(), en)
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

// FuzzStreamForm: any posted form gives a config object or field errors,
// never a panic; an accepted form's object is a JSON object whose keys are
// the destination's settings, and its secrets are never echoed into the
// form's values.
func FuzzStreamForm(f *testing.F) {
	ls, err := loadLocales()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "type=webhook&url=https%3A%2F%2Fx.example&secret=0123456789abcdef&headers=X-A%3A+1%0AX-B%3A2",
		"type=syslog&address=h%3A514&facility=99&ca_pem=%00", "type=s3&bucket=b&path_style=on&edit=1", "type=datadog&api_key=k&site=eu1&name=%E2%80%AE",
		"type=splunk&url=a&url=b&token=%ff", "type=webhook&headers=%3Avalue", "type=nope&edit=1",
		"type=gcs&bucket=b&service_account_json=%7B%0A%22type%22%3A1%7D&edit=1", "type=azure_sentinel&api=data_collector&shared_key=k&client_secret=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		dest, ok := destination(v.Get("type"))
		if !ok {
			dest = destinations[0]
		}
		form := newForm(dest, nil, nil)
		form.Edit = v.Get("edit") != ""
		_, config, ok := parseStreamForm(ls.list[len(ls.list)-1], form, v)
		for _, ff := range form.Fields {
			if ff.secret() && ff.Value != "" {
				t.Fatalf("secret %s echoed", ff.Key)
			}
		}
		if !ok {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(config, &obj); err != nil {
			t.Fatalf("config %s: %v", config, err)
		}
		for k := range obj {
			if _, known := fieldOf(dest, k); !known {
				t.Fatalf("unknown key %q", k)
			}
		}
	})
}

func fieldOf(d destSpec, key string) (fieldSpec, bool) {
	for _, f := range d.Fields {
		if f.Key == key {
			return f, true
		}
	}
	return fieldSpec{}, false
}
