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
// together, a schema mismatch) turned into one full-text token of
// event_fts's facets column. Every facet filter is then one FTS5 term, and
// filters combine as FTS5 AND/OR expressions that come out in rowid (sort
// key) order.
//
// The token is the kind letter followed by 16 base32 characters (80 bits)
// of SHA-256 over kind, organization and value: exact (no tokenizer splits
// or folds the value), scoped to one organization, and a fixed 21 bytes
// however long the value. Queries also check the organization column of
// event_search, so a hash collision could never cross tenants; within one,
// two distinct values share a token with probability 2^-80.
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
	var sum [sha256.Size]byte
	var enc [32]byte
	facetEncoding.Encode(enc[:], f.h.Sum(sum[:0])[:facetHashBytes])
	dst = append(dst, byte(kind))
	return append(dst, enc[:facetLen-1]...)
}

func facet(kind facetKind, org string, values ...string) string {
	return string(newFacetHasher().appendFacet(make([]byte, 0, facetLen), kind, org, values...))
}

// appendFacets appends the space-separated facet tokens of one event.
func (f *facetHasher) appendFacets(dst []byte, org string, rec *event.Record, mismatch bool) []byte {
	add := func(kind facetKind, values ...string) {
		if len(dst) > 0 {
			dst = append(dst, ' ')
		}
		dst = f.appendFacet(dst, kind, org, values...)
	}
	add(facetOrganization)
	add(facetAction, rec.Action)
	add(facetActorID, rec.Actor.ID)
	add(facetActorName, rec.Actor.Name)
	for _, t := range rec.Targets {
		add(facetTargetType, t.Type)
		add(facetTargetID, t.ID)
		add(facetTarget, t.Type, t.ID)
	}
	if mismatch {
		add(facetMismatch)
	}
	return dst
}

// ftsEntry is what event_fts holds for one event: its facet tokens and
// its free text. The indexer inserts it and retention deletes it with the
// same values (FTS5's 'delete' on a contentless table needs exactly what
// was inserted), so both build it here, reusing the buffers given.
func (f *facetHasher) ftsEntry(facets, text []byte, org string, rec *event.Record, mismatch bool) (facetsOut, textOut []byte) {
	return f.appendFacets(facets[:0], org, rec, mismatch), rec.AppendSearchText(text[:0])
}

// facetTerm is a facet as a term of an FTS5 query on the facets column.
func facetTerm(kind facetKind, org string, values ...string) string {
	return "facets : " + facet(kind, org, values...)
}

// anyOf is an FTS5 OR of terms, parenthesised.
func anyOf(terms []string) string {
	if len(terms) == 1 {
		return terms[0]
	}
	return "(" + strings.Join(terms, " OR ") + ")"
}
