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
		if got := searchQuery("", c.text); got != c.want {
			t.Errorf("searchQuery(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if got := searchQuery("pfx", "carol@example.com doc_*"); got != "('pfxcarol' <-> 'pfxexample' <-> 'pfxcom') & ('pfxdoc_':*)" {
		t.Errorf("searchQuery with a prefix = %q", got)
	}
	if got := quoteLexeme(`org:it's\`); got != `'org:it\'s\\'` {
		t.Errorf("quoteLexeme = %s", got)
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
	p := lexemePrefix("org_1")
	want := []string{p + "alice:4,6", p + "johnson:5", p + "signed_in:2", p + "user:1", p + "user_01:3"}
	if !slices.Equal(got, want) {
		t.Errorf("searchVector = %q, want %q", got, want)
	}

	// Limits: words too long to prefix are left out, positions stop at
	// 16383 and at 256 per word.
	long := strings.Repeat("x", maxLexemeBytes-prefixBytes)
	text := long + " " + strings.Repeat("w ", 20000)
	v, _ = searchVector("o", []byte(text), nil)
	for _, l := range v.Lexemes {
		if strings.HasSuffix(l.Word, long) {
			t.Errorf("a %d-byte word was kept", len(long))
		}
		if l.Word == lexemePrefix("o")+"w" {
			if n := len(l.Positions); n != maxPositions {
				t.Errorf("%d positions kept, want %d", n, maxPositions)
			}
		}
	}
}

func TestLexemePrefix(t *testing.T) {
	// The migration's trail_search_prefix computes the same in SQL
	// (TestMigrateSearchPerOrganization); different ids, however alike,
	// get different prefixes.
	seen := map[string]string{}
	for _, org := range []string{"org_1", "org_10", "org_1 ", "org_01KBXZ3J0000000000000000A", "org_01KBXZ3J0000000000000000B"} {
		p := lexemePrefix(org)
		if len(p) != prefixBytes || strings.ContainsAny(p, "%' \\") {
			t.Errorf("lexemePrefix(%q) = %q, want %d base64 characters", org, p, prefixBytes)
		}
		if o, ok := seen[p]; ok {
			t.Errorf("lexemePrefix(%q) = lexemePrefix(%q) = %q", org, o, p)
		}
		seen[p] = org
	}
}

// BenchmarkSearchVector is the Go side of an event's vector: words split,
// folded, sorted and prefixed.
func BenchmarkSearchVector(b *testing.B) {
	text := []byte("user.signed_in\nuser_000123\nAlice Johnson\nalice@example.com\nteam\nteam_42\nEngineering\n" +
		"203.0.113.7\nMozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15\n" +
		"req_0000000000149530\nsso\nokta\nsuccess")
	var words []string
	b.ReportAllocs()
	for b.Loop() {
		_, words = searchVector("org_01M94DK8ARK4AFTRQ6VH0HNH02", text, words)
	}
}
