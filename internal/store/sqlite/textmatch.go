package sqlite

import (
	"bytes"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The events the indexer has not reached yet are searched in Go, and must
// be found exactly as event_fts would find them once indexed. event_fts
// tokenizes with "unicode61 remove_diacritics 2 tokenchars '_'"; the
// functions here do the same from tables read off the linked SQLite
// (unicode61_tables.go, checked code point by code point by
// TestUnicode61Tables), and match a query as ftsExpression's FTS5 query
// does (checked against FTS5 by TestTextMatcherAgreesWithFTS5).

// Classes of a code point for the tokenizer.
const (
	u61Separator byte = 0 // ends a token
	u61Alnum     byte = 1 // starts or continues a token
	u61Diacritic byte = 2 // continues a token only
)

// u61ClassOf is the tokenizer's class of c.
func u61ClassOf(c rune) byte {
	if c < utf8.RuneSelf {
		if c == '_' || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z' {
			return u61Alnum
		}
		return u61Separator
	}
	i := sort.Search(len(u61Starts), func(i int) bool { return u61Starts[i] > c }) - 1
	if i < 0 {
		return u61Separator
	}
	return u61Classes[i]
}

// u61Fold is what c becomes in a token: folded to lower case and without
// its diacritics; 0 when it is dropped.
func u61Fold(c rune) rune {
	if c < utf8.RuneSelf {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	i := sort.Search(len(u61FoldFrom), func(i int) bool { return u61FoldFrom[i] >= c })
	if i < len(u61FoldFrom) && u61FoldFrom[i] == c {
		return u61FoldTo[i]
	}
	return c
}

// tokenizer splits text into folded tokens, reusing its buffers: buf holds
// the tokens one after another, ends where each stops.
type tokenizer struct {
	buf  []byte
	ends []int
}

// reset forgets the tokens held.
func (z *tokenizer) reset() { z.buf, z.ends = z.buf[:0], z.ends[:0] }

// add appends the tokens of s (valid UTF-8).
func (z *tokenizer) add(s string) {
	in := false // inside a token
	for i := 0; i < len(s); {
		c := rune(s[i])
		size := 1
		if c >= utf8.RuneSelf {
			c, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		if c < utf8.RuneSelf {
			// ASCII: the common case, without a table.
			switch {
			case 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_':
				z.buf = append(z.buf, byte(c))
			case 'A' <= c && c <= 'Z':
				z.buf = append(z.buf, byte(c)+'a'-'A')
			default:
				if in {
					z.ends = append(z.ends, len(z.buf))
					in = false
				}
				continue
			}
			in = true
			continue
		}
		switch k := u61ClassOf(c); {
		case k == u61Alnum || k == u61Diacritic && in:
			if f := u61Fold(c); f != 0 {
				z.buf = utf8.AppendRune(z.buf, f)
			}
			in = true
		case in:
			z.ends = append(z.ends, len(z.buf))
			in = false
		}
	}
	if in {
		z.ends = append(z.ends, len(z.buf))
	}
}

// n is how many tokens are held; token returns the i-th.
func (z *tokenizer) n() int { return len(z.ends) }

func (z *tokenizer) token(i int) []byte {
	start := 0
	if i > 0 {
		start = z.ends[i-1]
	}
	return z.buf[start:z.ends[i]]
}

// textQuery is free text compiled for matching in Go: each word of it a
// phrase of tokens (the last a prefix when the word ended with *), every
// one of which an event's text must contain. It is exactly ftsExpression's
// query: the same words are kept, and a word the tokenizer finds no token
// in matches nothing, as FTS5's empty phrase does.
type textQuery struct {
	phrases []textPhrase
	need    tokenBloom // the bits of every token a match must hold whole
}

type textPhrase struct {
	tokens [][]byte
	prefix bool
}

// compileText compiles free text; ok is false when no word of it is
// searchable (ftsExpression returns "").
func compileText(text string) (q textQuery, ok bool) {
	var z tokenizer
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		z.reset()
		z.add(w)
		p := textPhrase{prefix: prefix}
		for i := range z.n() {
			p.tokens = append(p.tokens, bytes.Clone(z.token(i)))
		}
		q.phrases = append(q.phrases, p)
		whole := p.tokens
		if prefix && len(whole) > 0 {
			whole = whole[:len(whole)-1]
		}
		for _, t := range whole {
			q.need.add(t)
		}
	}
	return q, len(q.phrases) > 0
}

// mayMatch reports whether a text whose tokens make bloom may match: false
// means it surely does not.
func (q *textQuery) mayMatch(bloom *tokenBloom) bool {
	for i, w := range q.need {
		if bloom[i]&w != w {
			return false
		}
	}
	return true
}

// tokenBloom is a Bloom filter of a text's tokens (512 bits, two per
// token): a query word's token that is not in it is not in the text, so
// most texts are ruled out without reading their tokens.
type tokenBloom [8]uint64

func (f *tokenBloom) add(tok []byte) {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range tok {
		h = (h ^ uint64(c)) * 1099511628211
	}
	for _, b := range [2]uint64{h & 511, h >> 32 & 511} {
		f[b>>6] |= 1 << (b & 63)
	}
}

// bloom returns the Bloom filter of the tokens held.
func (z *tokenizer) bloom() tokenBloom {
	var f tokenBloom
	for i := range z.n() {
		f.add(z.token(i))
	}
	return f
}

// matches reports whether the tokens of an event's text (z) hold every
// phrase.
func (q *textQuery) matches(z *tokenizer) bool {
	for _, p := range q.phrases {
		if !p.in(z) {
			return false
		}
	}
	return true
}

func (p *textPhrase) in(z *tokenizer) bool {
	n := len(p.tokens)
	if n == 0 {
		return false
	}
	for i := 0; i+n <= z.n(); i++ {
		ok := true
		for k, want := range p.tokens {
			got := z.token(i + k)
			if k == n-1 && p.prefix {
				ok = bytes.HasPrefix(got, want)
			} else {
				ok = bytes.Equal(got, want)
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
