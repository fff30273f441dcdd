package ledger

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/trailaudit/trail/internal/event"
)

// Erasures (docs/PRIVACY.md): an erasure deletes the bodies of chosen
// records and keeps their leaf hashes, so the log still verifies; then it
// appends tombstone events naming the erased seqs, each signed with the
// log's key. Verify reads the tombstones of a bundle and reports the seqs
// they name as erased, not missing. The signature is what lets it trust a
// tombstone: any client may send an event with the tombstone's action, but
// only the deployment holds the key.

// ErasureAction is the action of tombstone events.
const ErasureAction = "trail.erasure.completed"

// erasureMagic is the first line of the text a tombstone's signature signs.
const erasureMagic = "trail-erasure v1"

// ErasureTombstone is what one tombstone event says, and what its
// signature covers.
type ErasureTombstone struct {
	OrganizationID string
	ErasureID      string
	ErasedAt       string // RFC 3339, as the record has it
	Subject        string // the subject's keyed hash
	Part           string // "1/2": this tombstone's part of the erasure
	Seqs           string // the seqs this part names, as ranges: "3-5,9"
}

// Text is what the tombstone's signature signs, as a signed note's text:
// the magic line, then each field on its own line. It cannot be taken for
// a checkpoint (its second line is not a tree size).
func (t ErasureTombstone) Text() string {
	return erasureMagic + "\n" + t.OrganizationID + "\n" + t.ErasureID + "\n" + t.ErasedAt + "\n" +
		t.Subject + "\n" + t.Part + "\n" + t.Seqs + "\n"
}

// ErasureSeqKey is the metadata key of the i-th (from 0) value of a
// tombstone's seq ranges: "seqs", "seqs_2", "seqs_3" …
func ErasureSeqKey(i int) string {
	if i == 0 {
		return "seqs"
	}
	return "seqs_" + strconv.Itoa(i+1)
}

// ParseSeqRanges reads ascending seq ranges ("3-5,9"), at most limit seqs.
func ParseSeqRanges(s string, limit int64) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	var out []int64
	last := int64(-1)
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, "-")
		lo, err := strconv.ParseInt(a, 10, 64)
		if err != nil || lo < 0 {
			return nil, fmt.Errorf("seq range %q: not a seq", r)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseInt(b, 10, 64); err != nil || hi < lo {
				return nil, fmt.Errorf("seq range %q: not a range", r)
			}
		}
		if lo <= last {
			return nil, fmt.Errorf("seq range %q: not ascending", r)
		}
		if int64(len(out))+hi-lo+1 > limit {
			return nil, fmt.Errorf("seq ranges name more than %d seqs", limit)
		}
		for q := lo; q <= hi; q++ {
			out = append(out, q)
		}
		last = hi
	}
	return out, nil
}

// Erased is a run of seqs a bundle's tombstones say were erased.
type Erased struct {
	Seq, SeqEnd int64 // inclusive
	ErasureID   string
	ErasedAt    time.Time
}

// erasureSet collects the erased seqs of a bundle's signed tombstones.
type erasureSet struct {
	keys   *KeyHistory
	org    string
	seqs   map[int64]*erasureInfo
	forged int64 // tombstone-like records whose signature did not verify
}

type erasureInfo struct {
	id string
	at time.Time
}

// maxErasedSeqs bounds the seqs a verifier remembers from tombstones.
const maxErasedSeqs = 50_000_000

// consider reads record when it is a tombstone and its signature verifies.
func (s *erasureSet) consider(record []byte) {
	if !bytes.Contains(record, []byte(`"action":"`+ErasureAction+`"`)) {
		return
	}
	rec, err := event.ParseRecord(record)
	if err != nil || rec.Action != ErasureAction || rec.OrganizationID != s.org {
		return
	}
	str := func(k string) string { v, _ := rec.Metadata[k].(string); return v }
	t := ErasureTombstone{OrganizationID: rec.OrganizationID, ErasureID: str("erasure_id"), ErasedAt: str("erased_at"),
		Subject: str("subject"), Part: str("part")}
	var vals []string
	for i := 0; ; i++ {
		v, ok := rec.Metadata[ErasureSeqKey(i)].(string)
		if !ok {
			break
		}
		vals = append(vals, v)
	}
	t.Seqs = strings.Join(vals, ",")
	if !s.signed(t, str("signature")) {
		s.forged++
		return
	}
	at, err := time.Parse(time.RFC3339Nano, t.ErasedAt)
	if err != nil {
		return
	}
	seqs, err := ParseSeqRanges(t.Seqs, maxErasedSeqs-int64(len(s.seqs)))
	if err != nil {
		return
	}
	info := &erasureInfo{id: t.ErasureID, at: at}
	if s.seqs == nil {
		s.seqs = map[int64]*erasureInfo{}
	}
	for _, q := range seqs {
		s.seqs[q] = info
	}
}

// signed reports whether sig is a signature of t's text by a key of the
// history that is not revoked.
func (s *erasureSet) signed(t ErasureTombstone, sig string) bool {
	if sig == "" || s.keys == nil {
		return false
	}
	for _, k := range s.keys.Keys {
		if k.State == KeyRevoked {
			continue
		}
		msg := t.Text() + "\n— " + k.verifier.Name() + " " + sig + "\n"
		if _, err := note.Open([]byte(msg), note.VerifierList(k.verifier)); err == nil {
			return true
		}
	}
	return false
}

// apply turns the missing runs of rep that the tombstones cover into
// erased runs (not problems). Runs past maxProblems were never listed and
// stay counted as problems.
func (s *erasureSet) apply(rep *Report) {
	if len(s.seqs) == 0 {
		return
	}
	var kept []Problem
	for _, p := range rep.Problems {
		if p.Kind != ProblemMissing {
			kept = append(kept, p)
			continue
		}
		rep.ProblemCount--
		start := p.Seq
		flushMissing := func(end int64) {
			if end >= start {
				kept = append(kept, Problem{Kind: ProblemMissing, Seq: start, SeqEnd: end, Line: -1})
				rep.ProblemCount++
			}
		}
		for q := p.Seq; q <= p.SeqEnd; q++ {
			info, ok := s.seqs[q]
			if !ok {
				continue
			}
			flushMissing(q - 1)
			start = q + 1
			if n := len(rep.Erased); n > 0 && rep.Erased[n-1].SeqEnd == q-1 && rep.Erased[n-1].ErasureID == info.id {
				rep.Erased[n-1].SeqEnd = q
			} else {
				rep.Erased = append(rep.Erased, Erased{Seq: q, SeqEnd: q, ErasureID: info.id, ErasedAt: info.at})
			}
		}
		flushMissing(p.SeqEnd)
	}
	rep.Problems = kept
}
