package sqlite

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"hash"
	"strings"

	"github.com/trailaudit/trail/internal/event"
)

// A facet is one exact-match filter value of an event (its organization,
// action, actor id, actor name, a target's type, id, or type and id
// together, a schema mismatch) turned into a token: the kind letter
// followed by 16 base32 characters (80 bits) of SHA-256 over kind,
// organization and value. It is exact (no tokenizer splits or folds the
// value), scoped to one organization, and a fixed 17 bytes however long the
// value. Queries also check the organization column of event_search, so a
// hash collision could never cross tenants; within one, two distinct
// values share a token with probability 2^-80.
//
// Facets of kinds that take few values in an organization (organization,
// action, target type, schema mismatch) are tokens of event_fts's facets
// column: every such filter is one FTS5 term, and filters combine as FTS5
// AND/OR expressions that come out in rowid (sort key) order.
//
// Facets of kinds that take about as many values as there are events
// (actor id and name, target id, target type and id) would each add a
// distinct term to every FTS5 segment, and distinct terms are what FTS5
// pays for most: with them it indexed a third fewer events a second. These
// values are whole lines of the event's free text already, so a filter on
// one finds its candidates as a phrase of the body column (case folded and
// without diacritics: a superset), and keeps the exact ones by their facet
// token in event_search.exact. A value without an ASCII letter or digit
// is not trusted to make a phrase (see hasWord); only then is its facet
// token in event_fts as well.
type facetKind byte

const (
	facetOrganization facetKind = 'o'
	facetAction       facetKind = 'a'
	facetActorID      facetKind = 'i'
	facetActorName    facetKind = 'n'
	facetTargetType   facetKind = 't'
	facetTargetID     facetKind = 'd'
	facetTarget       facetKind = 'p' // type and id of one target
	facetMismatch     facetKind = 'm'
)

// facetEncoding is lower case so that the tokenizer's case folding leaves
// tokens as written.
var facetEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// facetLen is a token's length: the kind letter and 16 base32 characters
// (80 bits, from facetHashBytes of the hash).
const (
	facetLen       = 1 + 16
	facetHashBytes = 10
)

// facetHasher computes facet tokens, reusing one SHA-256 state.
type facetHasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte // the hash's output, here so that it is not allocated per token
}

func newFacetHasher() *facetHasher { return &facetHasher{h: sha256.New()} }

// appendFacet appends the token of (kind, org, values…) to dst. Every
// string is hashed after its length, so ("a", "bc") and ("ab", "c") cannot
// meet.
func (f *facetHasher) appendFacet(dst []byte, kind facetKind, org string, values ...string) []byte {
	f.buf = append(f.buf[:0], byte(kind))
	f.buf = binary.AppendUvarint(f.buf, uint64(len(org)))
	f.buf = append(f.buf, org...)
	for _, v := range values {
		f.buf = binary.AppendUvarint(f.buf, uint64(len(v)))
		f.buf = append(f.buf, v...)
	}
	f.h.Reset()
	f.h.Write(f.buf)
	var enc [32]byte
	facetEncoding.Encode(enc[:], f.h.Sum(f.sum[:0])[:facetHashBytes])
	dst = append(dst, byte(kind))
	return append(dst, enc[:facetLen-1]...)
}

func facet(kind facetKind, org string, values ...string) string {
	return string(newFacetHasher().appendFacet(make([]byte, 0, facetLen), kind, org, values...))
}

// appendToken appends one facet token to a space-separated list.
func (f *facetHasher) appendToken(dst []byte, kind facetKind, org string, values ...string) []byte {
	if len(dst) > 0 {
		dst = append(dst, ' ')
	}
	return f.appendFacet(dst, kind, org, values...)
}

// appendFacets appends the facet tokens of one event that event_fts holds:
// those of the few-valued kinds, and those of many-valued values that make
// no phrase.
func (f *facetHasher) appendFacets(dst []byte, org string, e *indexFields, mismatch bool) []byte {
	dst = f.appendToken(dst, facetOrganization, org)
	dst = f.appendToken(dst, facetAction, org, e.action)
	if !hasWord(e.actorID) {
		dst = f.appendToken(dst, facetActorID, org, e.actorID)
	}
	if e.actorName != "" && !hasWord(e.actorName) {
		dst = f.appendToken(dst, facetActorName, org, e.actorName)
	}
	for _, t := range e.targets {
		dst = f.appendToken(dst, facetTargetType, org, t.typ)
		if !hasWord(t.id) {
			dst = f.appendToken(dst, facetTargetID, org, t.id)
		}
	}
	if mismatch {
		dst = f.appendToken(dst, facetMismatch, org)
	}
	return dst
}

// appendExact appends the facet tokens of one event's many-valued kinds,
// what event_search.exact holds.
func (f *facetHasher) appendExact(dst []byte, org string, e *indexFields) []byte {
	dst = f.appendToken(dst, facetActorID, org, e.actorID)
	if e.actorName != "" {
		dst = f.appendToken(dst, facetActorName, org, e.actorName)
	}
	for _, t := range e.targets {
		dst = f.appendToken(dst, facetTargetID, org, t.id)
		dst = f.appendToken(dst, facetTarget, org, t.typ, t.id)
	}
	return dst
}

// hasWord reports whether s has an ASCII letter or digit: then the
// full-text tokenizer surely finds a word in s, and a phrase query for s
// matches every event whose text has s as a line. Other letters count for
// nothing here, on purpose: SQLite's unicode61 tables are not Go's (a few
// characters Go calls letters make no token in SQLite), and what goes into
// the contentless FTS5 table must never change with a Go release, or
// retention would delete entries with other values than were inserted. A
// value without one keeps its facet token in FTS5, which is exact anyway.
func hasWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; 'a' <= c && c <= 'z' || '0' <= s[i] && s[i] <= '9' {
			return true
		}
	}
	return false
}

// ftsEntry is what event_fts holds for one event: its facet tokens and
// its free text. The indexer inserts it and retention deletes it with the
// same values (FTS5's 'delete' on a contentless table needs exactly what
// was inserted), so both build it from indexFields (held.go): the indexer
// from those an event waiting for it holds, retention from its record
// here.
func (f *facetHasher) ftsEntry(org string, rec *event.Record, mismatch bool) (facets []byte, text string) {
	e, _ := fieldsOf(&rec.Draft, nil, nil)
	return f.appendFacets(nil, org, &e, mismatch), e.text
}

// facetTermOf is a facet as a term of an FTS5 query on the facets column.
func facetTermOf(kind facetKind, org string, values ...string) string {
	return "facets : " + facet(kind, org, values...)
}

// quotePhrase is s as an FTS5 string: the tokenizer splits it into a
// phrase, and no character of it is syntax. FTS5's query parser stops at
// NUL, which the tokenizer treats as a separator like a space.
func quotePhrase(s string) string {
	s = strings.ReplaceAll(s, "\x00", " ")
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// anyOf is an FTS5 OR of terms, parenthesised.
func anyOf(terms []string) string {
	if len(terms) == 1 {
		return terms[0]
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}
