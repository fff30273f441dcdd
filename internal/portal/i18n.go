package portal

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// The portal's text is translated with golang.org/x/text message catalogs.
// A message's key is its English text as the templates write it ({{T
// "Events"}}); each other language is one JSON file of key → translation
// under assets/locales/ (docs/PORTAL.md, "Adding a language"). A key a file
// lacks shows in English. Numbers are written by the language's printer,
// so they carry its separators (1,204 · 1.204).

// langCookie holds a language chosen in the portal over the browser's.
const langCookie = "trail_portal_lang"

// locale is one language the portal ships.
type locale struct {
	Tag  language.Tag
	Code string // the BCP 47 code: "en", "de"
	Name string // its name in itself, for the picker
	p    *message.Printer
}

// T translates a message; args fill its %-verbs.
func (l *locale) T(key string, args ...any) string { return l.p.Sprintf(key, args...) }

// tr translates a text that may hold values from elsewhere (a heading
// naming an organization): one with a % is left as it is, never formatted.
func (l *locale) tr(text string) string {
	if strings.Contains(text, "%") {
		return text
	}
	return l.p.Sprintf(text)
}

// locales are the shipped languages, English first (the fallback).
type locales struct {
	list    []*locale
	matcher language.Matcher
}

// loadLocales reads assets/locales/*.json into one catalog.
func loadLocales() (*locales, error) {
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	names := map[string]string{"en": "English"}
	tags := []language.Tag{language.English}
	files, err := fs.Glob(embedded, "assets/locales/*.json")
	if err != nil {
		return nil, fmt.Errorf("portal: locales: %w", err)
	}
	slices.Sort(files)
	for _, f := range files {
		code := strings.TrimSuffix(path.Base(f), ".json")
		tag, err := language.Parse(code)
		if err != nil {
			return nil, fmt.Errorf("portal: locale file %s: %w", f, err)
		}
		raw, err := embedded.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("portal: locale file %s: %w", f, err)
		}
		var msgs map[string]string
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return nil, fmt.Errorf("portal: locale file %s: %w", f, err)
		}
		name := msgs["@language"]
		if name == "" {
			return nil, fmt.Errorf("portal: locale file %s has no \"@language\" (the language's name in itself)", f)
		}
		names[code] = name
		for k, v := range msgs {
			if strings.HasPrefix(k, "@") {
				continue
			}
			if err := b.SetString(tag, k, v); err != nil {
				return nil, fmt.Errorf("portal: locale file %s, message %q: %w", f, k, err)
			}
		}
		tags = append(tags, tag)
	}
	out := &locales{matcher: language.NewMatcher(tags)}
	for _, t := range tags {
		code := t.String()
		out.list = append(out.list, &locale{Tag: t, Code: code, Name: names[code], p: message.NewPrinter(t, message.Catalog(b))})
	}
	return out, nil
}

// byCode returns the shipped language with this code, or nil.
func (ls *locales) byCode(code string) *locale {
	for _, l := range ls.list {
		if l.Code == code {
			return l
		}
	}
	return nil
}

// pick chooses the language of a request: the one chosen in the portal
// (its cookie), else the best match of the browser's Accept-Language,
// else English.
func (ls *locales) pick(r *http.Request) *locale {
	if c, err := r.Cookie(langCookie); err == nil {
		if l := ls.byCode(c.Value); l != nil {
			return l
		}
	}
	_, i := language.MatchStrings(ls.matcher, r.Header.Get("Accept-Language"))
	if i < 0 || i >= len(ls.list) {
		return ls.list[0]
	}
	return ls.list[i]
}

// chooseLanguage handles ?lang=<code> on any page: it remembers the choice
// in a cookie and sends the browser back to the page without the
// parameter. It reports whether it answered.
func (p *Portal) chooseLanguage(w http.ResponseWriter, r *http.Request) bool {
	code, ok := r.URL.Query()["lang"]
	if !ok || r.Method != http.MethodGet || len(code) != 1 {
		return false
	}
	q := r.URL.Query()
	q.Del("lang")
	back := r.URL.Path
	if len(q) > 0 {
		back += "?" + q.Encode()
	}
	if strings.HasPrefix(back, "//") {
		back = "/portal/"
	}
	if l := p.locales.byCode(code[0]); l != nil {
		http.SetCookie(w, p.cookie(r, langCookie, l.Code, 365*24*60*60))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return true
}

// phrase is a message written where the page is rendered, in its language:
// a catalog key (the English text) and the values of its verbs. Code that
// has no page at hand (the filter's checks, which the operator console
// shares) returns phrases rather than text.
type phrase struct {
	Key  string
	Args []any
}

// label is a value of a phrase that is itself a message (a field's name):
// it is translated before it fills its verb, as a value that is a phrase
// is written first.
type label string

// in writes the phrase in l's language.
func (n phrase) in(l *locale) string {
	args := make([]any, len(n.Args))
	for i, a := range n.Args {
		switch v := a.(type) {
		case label:
			a = l.tr(string(v))
		case phrase:
			a = v.in(l)
		}
		args[i] = a
	}
	return l.p.Sprintf(n.Key, args...)
}

// String writes the phrase in English, as fmt does (the operator console's
// language).
func (n phrase) String() string {
	args := make([]any, len(n.Args))
	for i, a := range n.Args {
		switch v := a.(type) {
		case label:
			a = string(v)
		case phrase:
			a = v.String()
		}
		args[i] = a
	}
	return fmt.Sprintf(n.Key, args...)
}

// phrasesIn writes phrases in l's language.
func phrasesIn(l *locale, ns []phrase) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.in(l)
	}
	return out
}

// msg is a phrase: key is a literal the catalogs translate
// (TestCatalogsComplete finds every msg, T and label of the package).
func msg(key string, args ...any) phrase { return phrase{Key: key, Args: args} }
