package postgres

import (
	"slices"
	"strings"
	"testing"
)

func TestAppendWords(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"user.signed_in", []string{"user", "signed_in"}},
		{"carol@example.com", []string{"carol", "example", "com"}},
		{"203.0.113.7", []string{"203", "0", "113", "7"}},
		{"Mozilla/5.0 (X11; Linux x86_64)", []string{"mozilla", "5", "0", "x11", "linux", "x86_64"}},
		{"Ünïcode ÇA VA", []string{"unicode", "ca", "va"}},
		{"café naïve Ångström", []string{"cafe", "naive", "angstrom"}},
		{"  -- ", nil},
		{"日本語 テキスト", []string{"日本語", "テキスト"}},
	} {
		if got := appendWords(nil, c.text); !slices.Equal(got, c.want) {
			t.Errorf("appendWords(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestSearchQuery(t *testing.T) {
	for _, c := range []struct {
		text, want string
	}{
		{"alpha", "('alpha')"},
		{"ALPHA Johnson", "('alpha') & ('johnson')"},
		{"carol@example.com", "('carol' <-> 'example' <-> 'com')"},
		{"doc_*", "('doc_':*)"},
		{"sign* 203.0*", "('sign':*) & ('203' <-> '0':*)"},
		{`"AND OR NOT * ( )`, "('and') & ('or') & ('not')"},
		{"o'brien back\\slash", "('o' <-> 'brien') & ('back' <-> 'slash')"},
		{"*** ( ) --", ""},
		{"", ""},
	} {
		if got := searchQuery(c.text); got != c.want {
			t.Errorf("searchQuery(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if got := tenantQuery("org_1", "('alpha')"); got != "'org:org_1' & ('alpha')" {
		t.Errorf("tenantQuery = %q", got)
	}
	if got := quoteLexeme(`org:it's\`); got != `'org:it\'s\\'` {
		t.Errorf("quoteLexeme = %s", got)
	}
}

func TestTenantPrefix(t *testing.T) {
	for _, c := range []struct {
		text  string
		want  bool
		loose string
	}{
		{"org*", true, "('org':*)"},
		{"OR* alpha", true, "('or':*) & ('alpha')"},
		{"o*", true, "('o':*)"},
		{"mac.o*", true, "('mac' & 'o':*)"},
		{"orga*", false, "('orga':*)"},
		{"org", false, "('org')"},
		{"org:*", true, "('org':*)"}, // no word holds ':': this is "org*"
		{"o.mac*", false, "('o' & 'mac':*)"},
		{"x*", false, "('x':*)"},
	} {
		if got := tenantPrefix(c.text); got != c.want {
			t.Errorf("tenantPrefix(%q) = %v, want %v", c.text, got, c.want)
		}
		if got := looseQuery(c.text); got != c.loose {
			t.Errorf("looseQuery(%q) = %q, want %q", c.text, got, c.loose)
		}
	}
}

func TestSearchVector(t *testing.T) {
	v, _ := searchVector("org_1", []byte("user.signed_in\nuser_01\nAlice Johnson\nalice"), nil)
	var got []string
	for _, l := range v.Lexemes {
		var pos []string
		for _, p := range l.Positions {
			pos = append(pos, strings.TrimSpace(p.String()))
		}
		got = append(got, l.Word+":"+strings.Join(pos, ","))
	}
	want := []string{"alice:4,6", "johnson:5", "org:org_1:", "signed_in:2", "user:1", "user_01:3"}
	if !slices.Equal(got, want) {
		t.Errorf("searchVector = %q, want %q", got, want)
	}

	// Limits: words too long are left out, positions stop at 16383 and at
	// 256 per word.
	long := strings.Repeat("x", maxLexemeBytes+1)
	text := long + " " + strings.Repeat("w ", 20000)
	v, _ = searchVector("o", []byte(text), nil)
	for _, l := range v.Lexemes {
		if l.Word == long {
			t.Errorf("a %d-byte word was kept", len(long))
		}
		if l.Word == "w" {
			if n := len(l.Positions); n != maxPositions {
				t.Errorf("%d positions kept, want %d", n, maxPositions)
			}
		}
	}
}
