package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// slot states: what the record section put at one seq of the current group.
const (
	slotEmpty   = iota
	slotRecord  // a record claiming this seq, in order: its hash is compared
	slotFlagged // a line already reported (out of order, malformed, other organization)
)

type slot struct {
	line  int64
	hash  tlog.Hash
	state uint8
}

// lineRecord is a record line whose place is not decided yet: that needs the
// seq of the line after it.
type lineRecord struct {
	line    int64
	seq     int64 // -1 when the line has no readable seq
	hash    tlog.Hash
	flagged bool
}

// streamVerifier checks the record section of a bundle, one level-0 group of
// seqs at a time.
//
// Order: each record line must carry the seq after the previous line's. When
// it does not, the next line decides: if the log continues from this record
// (next = seq+1, or a jump ahead of it further still), the seqs skipped are missing (or, going back, this is a
// repeat); otherwise this one record is out of place and stands in the slot
// of the expected seq. A swap of two records is thus two out-of-order lines,
// and a deleted record one missing seq.
//
// Content: each record's hash is compared with the leaf hash of its seq when
// the group's leaves line arrives; the leaf hashes feed the tree, which is
// checked against the checkpoint at the end.
type streamVerifier struct {
	rep       *Report
	org       string
	from, to  int64
	expected  int64
	pending   lineRecord
	hasPend   bool
	gStart    int64
	gEnd      int64
	slots     [groupSize]slot
	tree      *treeBuilder
	records   int64
	progress  func(int64)
	every     int64
	sinceLast int64
}

func newStreamVerifier(rep *Report, br *BundleReader, opts VerifyOptions) (*streamVerifier, error) {
	tree, err := newTreeBuilder(br.From, br.Left)
	if err != nil {
		return nil, err
	}
	return &streamVerifier{
		rep: rep, org: rep.OrganizationID, from: br.From, to: br.To,
		expected: br.From, gStart: br.From, gEnd: groupEnd(br.From, br.To),
		tree: tree, progress: opts.Progress, every: opts.ProgressEvery,
	}, nil
}

func (sv *streamVerifier) record(e Entry) {
	p := lineRecord{line: e.Line, seq: -1, hash: tlog.RecordHash(e.Record)}
	seq, orgOK, ok := recordKey(e.Record, sv.org)
	switch {
	case !ok:
		sv.rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: e.Line,
			Detail: fmt.Sprintf("line %s is not a Trail record (no organization_id and seq): %s", commas(e.Line), excerpt(e.Record))})
		p.flagged = true
	case !orgOK:
		sv.rep.add(Problem{Kind: ProblemWrongOrganization, Seq: seq, Line: e.Line,
			Detail: fmt.Sprintf("line %s (seq %s) is a record of another organization, not of %s", commas(e.Line), commas(seq), sv.org)})
		p.seq, p.flagged = seq, true
	default:
		p.seq = seq
	}
	if sv.hasPend {
		sv.resolve(sv.pending, p.seq, p.seq >= 0)
	}
	sv.pending, sv.hasPend = p, true
	sv.records++
	if sv.sinceLast++; sv.progress != nil && sv.sinceLast >= sv.every {
		sv.sinceLast = 0
		sv.progress(sv.records)
	}
}

// resolve places p, given the seq of the record line after it.
func (sv *streamVerifier) resolve(p lineRecord, next int64, hasNext bool) {
	e := sv.expected
	switch {
	case p.seq < 0 && hasNext && next == e:
		// A line inserted between records: it takes no seq's place.
	case p.seq == e || p.seq < 0:
		sv.place(e, p)
		sv.expected = e + 1
	case !hasNext || next == p.seq+1 || (p.seq > e && next > p.seq):
		// The log continues from this record (the next line follows it,
		// or skips ahead too, as records erased one here and one there
		// leave them): the seqs skipped stay empty (missing or erased),
		// or, going back, place reports a repeat.
		sv.place(p.seq, p)
		sv.expected = p.seq + 1
	default:
		sv.rep.add(Problem{Kind: ProblemReordered, Seq: e, SeqEnd: e, Line: p.line,
			Detail: fmt.Sprintf("line %s holds seq %s where seq %s belongs", commas(p.line), commas(p.seq), commas(e))})
		p.flagged = true
		sv.place(e, p)
		sv.expected = e + 1
	}
}

func (sv *streamVerifier) place(seq int64, p lineRecord) {
	if seq < sv.gStart || seq >= sv.gEnd {
		var where string
		switch {
		case seq < sv.from || seq >= sv.to:
			where = fmt.Sprintf("outside the bundle's range (seq %s–%s)", commas(sv.from), commas(sv.to-1))
		case seq < sv.gStart:
			where = "after the leaf hashes of its seq were given: it is out of order"
		default:
			where = fmt.Sprintf("before the leaf hashes of seq %s–%s were given: it is out of order", commas(sv.gStart), commas(sv.gEnd-1))
		}
		sv.rep.add(Problem{Kind: ProblemReordered, Seq: seq, SeqEnd: seq, Line: p.line,
			Detail: fmt.Sprintf("line %s holds seq %s, %s", commas(p.line), commas(seq), where)})
		return
	}
	s := &sv.slots[seq-sv.gStart]
	if s.state != slotEmpty {
		sv.rep.add(Problem{Kind: ProblemReordered, Seq: seq, SeqEnd: seq, Line: p.line,
			Detail: fmt.Sprintf("seq %s appears twice (lines %s and %s)", commas(seq), commas(s.line), commas(p.line))})
		return
	}
	state := uint8(slotRecord)
	if p.flagged {
		state = slotFlagged
	}
	*s = slot{line: p.line, hash: p.hash, state: state}
}

// flush places the pending record, the last before a leaves line or the end.
func (sv *streamVerifier) flush() {
	if sv.hasPend {
		sv.resolve(sv.pending, -1, false)
		sv.hasPend = false
	}
}

// leaves closes the current group with its leaf hashes.
func (sv *streamVerifier) leaves(e Entry) error {
	sv.flush()
	if sv.gStart >= sv.to || e.First != sv.gStart || int64(len(e.Leaves)) != sv.gEnd-sv.gStart {
		return &FormatError{Line: e.Line, Msg: fmt.Sprintf("leaves line for seq %d (%d hashes) where seq %d–%d was due", e.First, len(e.Leaves), sv.gStart, sv.gEnd-1)}
	}
	for k, h := range e.Leaves {
		seq := sv.gStart + int64(k)
		if err := sv.tree.add(h); err != nil {
			return &FormatError{Line: e.Line, Msg: fmt.Sprintf("couldn't add leaf %d to the tree: %v", seq, err)}
		}
		s := &sv.slots[k]
		switch s.state {
		case slotEmpty:
			sv.rep.addMissing(seq)
		case slotRecord:
			if s.hash != h {
				sv.rep.add(Problem{Kind: ProblemAltered, Seq: seq, SeqEnd: seq, Line: s.line,
					Detail: fmt.Sprintf("seq %s (line %s) is not the record the log holds at that seq: its bytes were changed", commas(seq), commas(s.line))})
			}
		}
		*s = slot{}
	}
	sv.expected = max(sv.expected, sv.gEnd)
	sv.gStart, sv.gEnd = sv.gEnd, groupEnd(sv.gEnd, sv.to)
	return nil
}

// finish checks that every group of the range was closed.
func (sv *streamVerifier) finish() error {
	sv.flush()
	if sv.progress != nil {
		sv.progress(sv.records)
	}
	if sv.gStart < sv.to {
		return &FormatError{Msg: fmt.Sprintf("the bundle has no leaf hashes for seq %d–%d", sv.gStart, sv.to-1), Err: ErrBundleTruncated}
	}
	return nil
}

// recordKey reads organization_id and seq from a record line. Canonical
// records start {"id":"…","organization_id":"…","seq":N, and are read
// without allocating; anything else goes through encoding/json.
func recordKey(line []byte, org string) (seq int64, orgOK, ok bool) {
	rest, found := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !found {
		return recordKeyJSON(line, org)
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return recordKeyJSON(line, org)
	}
	if rest, found = bytes.CutPrefix(rest[i+1:], []byte(`,"organization_id":"`)); !found {
		return recordKeyJSON(line, org)
	}
	i = bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return recordKeyJSON(line, org)
	}
	orgOK = string(rest[:i]) == org
	if rest, found = bytes.CutPrefix(rest[i+1:], []byte(`,"seq":`)); !found {
		return recordKeyJSON(line, org)
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 18 || (n > 1 && rest[0] == '0') || n == len(rest) || (rest[n] != ',' && rest[n] != '}') {
		return recordKeyJSON(line, org)
	}
	for _, c := range rest[:n] {
		seq = seq*10 + int64(c-'0')
	}
	return seq, orgOK, true
}

func recordKeyJSON(line []byte, org string) (seq int64, orgOK, ok bool) {
	var r struct {
		Org *string      `json:"organization_id"`
		Seq *json.Number `json:"seq"`
	}
	if json.Unmarshal(line, &r) != nil || r.Org == nil || r.Seq == nil {
		return 0, false, false
	}
	seq, err := strconv.ParseInt(string(*r.Seq), 10, 64)
	if err != nil || seq < 0 {
		return 0, false, false
	}
	return seq, *r.Org == org, true
}

// excerpt quotes the start of a line for a message.
func excerpt(b []byte) string {
	if len(b) > 60 {
		return strconv.Quote(string(b[:60])) + "…"
	}
	return strconv.Quote(string(b))
}
