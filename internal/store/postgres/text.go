package postgres

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
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

// appendWords appends the words of text, case folded, to dst.
func appendWords(dst []string, text string) []string {
	for text != "" {
		i := strings.IndexFunc(text, isWordRune)
		if i < 0 {
			break
		}
		text = text[i:]
		j := strings.IndexFunc(text, func(r rune) bool { return !isWordRune(r) })
		if j < 0 {
			j = len(text)
		}
		dst = append(dst, lower(text[:j]))
		text = text[j:]
	}
	return dst
}

// lower folds case without allocating for words that are already lower-case
// ASCII, which most of an event's text is.
func lower(w string) string {
	for i := 0; i < len(w); i++ {
		if c := w[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return strings.ToLower(w)
		}
	}
	return w
}

// orgLexeme is the word every event's vector holds for its organization. It
// contains ':', which no word of the text can, so it never matches text; a
// query ANDs it in so that the GIN index narrows to one tenant.
func orgLexeme(org string) string { return "org:" + org }

// searchVector builds the tsvector of an event: every word of text at its
// position (1-based, consecutive across lines, as the phrase matching of
// queries expects), plus orgLexeme(org).
func searchVector(org string, text []byte, words []string) (pgtype.TSVector, []string) {
	words = appendWords(words[:0], string(text))
	type entry struct {
		word string
		pos  []pgtype.TSVectorPosition
	}
	byWord := make(map[string]int, len(words))
	entries := make([]entry, 0, len(words)+1)
	size := 0
	for i, w := range words {
		if len(w) > maxLexemeBytes {
			continue
		}
		pos := uint16(min(i+1, maxPosition))
		k, ok := byWord[w]
		if !ok {
			if size += len(w) + 8; size > maxVectorBytes {
				break
			}
			k = len(entries)
			byWord[w] = k
			entries = append(entries, entry{word: w})
		}
		e := &entries[k]
		if n := len(e.pos); n < maxPositions && (n == 0 || e.pos[n-1].Position < pos) {
			e.pos = append(e.pos, pgtype.TSVectorPosition{Position: pos})
			size += 2
		}
	}
	entries = append(entries, entry{word: orgLexeme(org)})
	// PostgreSQL keeps lexemes in byte order; sending them so spares the
	// server a sort.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.word, b.word) })
	v := pgtype.TSVector{Valid: true, Lexemes: make([]pgtype.TSVectorLexeme, len(entries))}
	for i, e := range entries {
		v.Lexemes[i] = pgtype.TSVectorLexeme{Word: e.word, Positions: e.pos}
	}
	return v, words
}

// searchQuery turns free text into a tsquery (in its text form): for every
// whitespace-separated word of text that holds a letter or digit, its parts
// as a phrase, the last one a prefix if the word ends in *, all ANDed.
// Operators in the user's text are never interpreted: every part is quoted.
// It returns "" when no word of text is searchable.
func searchQuery(text string) string {
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
				b.WriteString(" <-> ")
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
