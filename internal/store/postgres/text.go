package postgres

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Free-text search splits text into words the way the SQLite backend's FTS5
// tokenizer (unicode61 with '_' as a word character) does: runs of letters,
// digits and '_', case folded. PostgreSQL's own parser (to_tsvector) is not
// used: it keeps "carol@example.com", "203.0.113.7" or "Mozilla/5.0" as single
// tokens and splits "user_07" in two, so the same query would find other
// events than on SQLite. Words are kept as they are (no stemming, no stop
// words), as the 'simple' configuration would; the vector is built here and
// sent in binary, and the query is built here too.
//
// A query word of several parts ("carol@example.com") must match those parts
// at consecutive positions; a trailing * makes its last part a prefix.

// Limits of a tsvector (PostgreSQL's tsvector.h): words longer than
// maxLexemeBytes are not indexed (to_tsvector skips them too), positions
// above maxPosition are stored as maxPosition, a word keeps at most
// maxPositions positions, and the whole vector stays under maxVectorBytes.
const (
	maxLexemeBytes = 2047
	maxPosition    = 16383
	maxPositions   = 256
	maxVectorBytes = 1 << 19 // half of PostgreSQL's 1 MiB: far beyond any real event
)

// isWordRune reports whether r belongs to a word.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r)
}

// asciiWord marks the ASCII bytes that belong to a word.
var asciiWord = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	return t
}()

// appendWords appends the words of text, case folded, to dst. The words
// share text's memory unless they had to be folded.
func appendWords(dst []string, text string) []string {
	// wordAt reports whether a word character starts at text[i], whether
	// it may need folding, and its length.
	wordAt := func(i int) (ok, fold bool, size int) {
		if c := text[i]; c < utf8.RuneSelf {
			return asciiWord[c], 'A' <= c && c <= 'Z', 1
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		return isWordRune(r), true, size
	}
	for i := 0; i < len(text); {
		ok, _, size := wordAt(i)
		if !ok {
			i += size
			continue
		}
		start, fold := i, false
		for i < len(text) {
			ok, f, size := wordAt(i)
			if !ok {
				break
			}
			fold = fold || f
			i += size
		}
		w := text[start:i]
		if fold {
			w = foldWord(w)
		}
		dst = append(dst, w)
	}
	return dst
}

// foldWord folds a word with upper-case or non-ASCII letters: lower case,
// and without diacritics ("Café" is "cafe"), as FTS5's unicode61 tokenizer
// with remove_diacritics does for the SQLite store.
func foldWord(w string) string {
	w = strings.ToLower(w)
	for i := 0; i < len(w); i++ {
		if w[i] >= utf8.RuneSelf {
			t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
			if out, _, err := transform.String(t, w); err == nil && out != "" {
				return out
			}
			return w
		}
	}
	return w
}

// lowerASCII is text as a string, in lower case when it is all ASCII, so
// that appendWords folds none of its words one by one (one allocation for
// the text instead of one per word with a capital). Text with other
// characters is returned as it is: its words are folded by foldWord.
func lowerASCII(text []byte) string {
	var b strings.Builder
	b.Grow(len(text))
	for _, c := range text {
		if c >= utf8.RuneSelf {
			return string(text)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// orgLexeme is the word every event's vector holds for its organization. It
// contains ':', which no word of the text can, so it never matches text; a
// query ANDs it in so that the GIN index narrows to one tenant.
func orgLexeme(org string) string { return "org:" + org }

// searchVector builds the tsvector of an event: every word of text at its
// position (1-based, consecutive across lines, as the phrase matching of
// queries expects), plus orgLexeme(org). words is scratch space, returned
// for reuse.
func searchVector(org string, text []byte, words []string) (pgtype.TSVector, []string) {
	return vectorOf(orgLexeme(org), text, words)
}

// vectorOf is searchVector with the organization's lexeme given (the
// append computes it once per organization, not once per event).
func vectorOf(orgWord string, text []byte, words []string) (pgtype.TSVector, []string) {
	words = appendWords(words[:0], lowerASCII(text))
	// Sorting the occurrences by word, then position, leaves each word's
	// positions contiguous and increasing: one backing array holds them
	// all, and lexemes come out in the byte order PostgreSQL keeps them in
	// (sending them so spares the server a sort).
	type occurrence struct {
		word string
		pos  uint16
	}
	occ := make([]occurrence, 0, len(words))
	for i, w := range words {
		if len(w) <= maxLexemeBytes {
			occ = append(occ, occurrence{w, uint16(min(i+1, maxPosition))})
		}
	}
	slices.SortFunc(occ, func(a, b occurrence) int {
		if c := strings.Compare(a.word, b.word); c != 0 {
			return c
		}
		return int(a.pos) - int(b.pos)
	})
	positions := make([]pgtype.TSVectorPosition, 0, len(occ))
	lexemes := make([]pgtype.TSVectorLexeme, 0, len(occ)/2+1)
	orgDone := false
	addOrg := func() {
		lexemes = append(lexemes, pgtype.TSVectorLexeme{Word: orgWord})
		orgDone = true
	}
	size := 0
	for i := 0; i < len(occ); {
		w := occ[i].word
		if size += len(w) + 8; size > maxVectorBytes {
			break
		}
		if !orgDone && orgWord < w {
			addOrg()
		}
		start := len(positions)
		for ; i < len(occ) && occ[i].word == w; i++ {
			// Positions past maxPosition are all stored as it, once.
			if n := len(positions) - start; n < maxPositions && (n == 0 || positions[len(positions)-1].Position < occ[i].pos) {
				positions = append(positions, pgtype.TSVectorPosition{Position: occ[i].pos})
			}
		}
		size += 2 * (len(positions) - start)
		lexemes = append(lexemes, pgtype.TSVectorLexeme{Word: w, Positions: positions[start:len(positions):len(positions)]})
	}
	if !orgDone {
		addOrg()
	}
	return pgtype.TSVector{Valid: true, Lexemes: lexemes}, words
}

// searchQuery turns free text into a tsquery (in its text form): for every
// whitespace-separated word of text that holds a letter or digit, its parts
// as a phrase, the last one a prefix if the word ends in *, all ANDed.
// Operators in the user's text are never interpreted: every part is quoted.
// It returns "" when no word of text is searchable.
func searchQuery(text string) string { return buildQuery(text, " <-> ") }

// looseQuery is searchQuery with the parts of each word ANDed instead of
// a phrase: what every match of searchQuery matches too. A phrase whose
// prefix also matches the organization's lexeme, which has no positions,
// is not reliably matched by PostgreSQL; the loose form is, and
// textRecheck then checks the phrase.
func looseQuery(text string) string { return buildQuery(text, " & ") }

// buildQuery is searchQuery with the parts of a word joined by join.
func buildQuery(text, join string) string {
	var b strings.Builder
	terms := 0
	var parts []string
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		parts = appendWords(parts[:0], w)
		if len(parts) == 0 {
			continue
		}
		if terms++; terms > 1 {
			b.WriteString(" & ")
		}
		b.WriteString("(")
		for i, p := range parts {
			if i > 0 {
				b.WriteString(join)
			}
			b.WriteString(quoteLexeme(p))
			if prefix && i == len(parts)-1 {
				b.WriteString(":*")
			}
		}
		b.WriteString(")")
	}
	if terms == 0 {
		return ""
	}
	return b.String()
}

// tenantPrefix reports whether a prefix term of the free text ("o*",
// "or*", "org*", or a phrase ending in one) also matches the organization
// lexeme every vector holds, and so every event. A word never holds ':'
// (appendWords splits there), so only a prefix of orgLexeme's "org" does.
// Such a query is checked again on the vector without that lexeme
// (textRecheck).
func tenantPrefix(text string) bool {
	var parts []string
	for _, w := range strings.Fields(text) {
		if !strings.HasSuffix(w, "*") {
			continue
		}
		parts = appendWords(parts[:0], strings.TrimRight(w, "*"))
		if len(parts) > 0 && strings.HasPrefix(orgLexeme(""), parts[len(parts)-1]) {
			return true
		}
	}
	return false
}

// textRecheck is the condition that the vector of the events row alias
// matches the tsquery placeholder query (without the organization's
// lexeme) once the organization's lexeme is taken out of it: what
// tenantPrefix's queries add to their match.
func textRecheck(alias, query string) string {
	return "ts_delete(" + alias + ".search, " + quoteSQL(orgLexeme("")) + " || " + alias + ".organization_id) @@ " + query + "::tsquery"
}

// quoteSQL quotes s as an SQL string literal.
func quoteSQL(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// tenantQuery is query ANDed with the organization's lexeme: what the GIN
// index can answer for one tenant alone.
func tenantQuery(org, query string) string {
	return quoteLexeme(orgLexeme(org)) + " & " + query
}

// quoteLexeme quotes a lexeme for tsquery input: inside single quotes, a
// quote or backslash is escaped by a backslash.
func quoteLexeme(w string) string {
	var b strings.Builder
	b.Grow(len(w) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(w); i++ {
		if w[i] == '\'' || w[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(w[i])
	}
	b.WriteByte('\'')
	return b.String()
}
