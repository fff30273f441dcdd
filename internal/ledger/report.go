package ledger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProblemKind names what is wrong with a bundle.
type ProblemKind string

// Kinds of problems Verify reports.
const (
	ProblemAltered           ProblemKind = "altered record"
	ProblemMissing           ProblemKind = "missing records"
	ProblemTruncated         ProblemKind = "truncated log"
	ProblemReordered         ProblemKind = "records out of order"
	ProblemWrongOrganization ProblemKind = "record of another organization"
	ProblemMalformed         ProblemKind = "malformed bundle"
	ProblemSignature         ProblemKind = "wrong signature or key"
	ProblemTreeMismatch      ProblemKind = "hashes do not match the checkpoint"
	ProblemInconsistent      ProblemKind = "not consistent with the older checkpoint"
	ProblemIncomplete        ProblemKind = "bundle file cut short"
)

// maxProblems bounds the problems a report lists; it still counts them all.
const maxProblems = 100

// Problem is one thing Verify found wrong. Seq and SeqEnd (inclusive) locate
// it in the log and Line in the bundle file, when they apply (else -1 / 0).
type Problem struct {
	Kind   ProblemKind
	Seq    int64
	SeqEnd int64
	Line   int64
	Detail string
}

func (p Problem) String() string { return string(p.Kind) + ": " + p.Detail }

// Report is what Verify established about a bundle.
type Report struct {
	Origin         string
	OrganizationID string
	KeyName        string // the name of the key(s) that signed the checkpoint
	// SignedBy names each key of the history that signed the checkpoint,
	// with its state ("<name>+<hash> (retired …)"); KeyDetail says so in
	// a sentence when more than one key was given.
	SignedBy       []string
	KeyDetail      string
	CheckpointSize int64
	// Checkpoint is the checkpoint note as the bundle carries it, with any
	// witness cosignatures after the log's signature.
	Checkpoint []byte
	From, To   int64 // the range of seqs the bundle covers
	Records    int64 // record lines read
	SinceSize  int64 // the older checkpoint's size, when one was given
	Since      bool
	// Subset is set for a subset bundle (an export's filtered records);
	// Selection is what it says it selected, SelectionSigned whether the
	// log key signed that for this checkpoint (bundles of earlier versions
	// are not signed).
	Subset          bool
	Selection       string
	SelectionSigned bool
	Problems        []Problem // the first maxProblems problems
	ProblemCount    int64
	// Erased are the runs of seqs absent from the bundle that its signed
	// tombstone events say an erasure deleted (erasure.go): not problems.
	Erased []Erased
}

// OK reports whether the bundle verified.
func (r *Report) OK() bool { return r.ProblemCount == 0 }

func (r *Report) add(p Problem) {
	r.ProblemCount++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// addFatal records the problem that stopped verification: always listed.
func (r *Report) addFatal(p Problem) {
	r.ProblemCount++
	r.Problems = append(r.Problems, p)
}

// addMissing records that seq has no record, merging with a run of missing
// seqs just before it.
func (r *Report) addMissing(seq int64) {
	if n := len(r.Problems); n > 0 {
		if p := &r.Problems[n-1]; p.Kind == ProblemMissing && p.SeqEnd == seq-1 {
			p.SeqEnd = seq
			return
		}
	}
	r.add(Problem{Kind: ProblemMissing, Seq: seq, SeqEnd: seq, Line: -1})
}

// finishMissing writes the details of missing runs, calling the run that
// reaches the end of the range a truncation.
func (r *Report) finishMissing() {
	for i := range r.Problems {
		p := &r.Problems[i]
		if p.Kind != ProblemMissing {
			continue
		}
		n := p.SeqEnd - p.Seq + 1
		switch {
		case p.SeqEnd == r.To-1:
			p.Kind = ProblemTruncated
			p.Detail = fmt.Sprintf("the last %s records (seq %s–%s) are not in the bundle, but the checkpoint covers them: the log was cut short",
				commas(n), commas(p.Seq), commas(p.SeqEnd))
		case n == 1:
			p.Detail = fmt.Sprintf("seq %s is not in the bundle, but the checkpoint covers it: the record was deleted", commas(p.Seq))
		default:
			p.Detail = fmt.Sprintf("seq %s–%s (%s records) are not in the bundle, but the checkpoint covers them: the records were deleted",
				commas(p.Seq), commas(p.SeqEnd), commas(n))
		}
	}
}

// String says in plain words what was proven, or what failed.
func (r *Report) String() string {
	var b strings.Builder
	signed := fmt.Sprintf("checkpoint size %s signed by %s", commas(r.CheckpointSize), r.KeyName)
	org := r.OrganizationID
	if org == "" {
		org = "the organization"
	}
	if r.OK() && r.Subset {
		fmt.Fprintf(&b, "%s of %s are in its log under %s, each at its seq, unaltered.", plural(r.Records, "event"), org, signed)
		switch {
		case r.Selection != "" && r.SelectionSigned:
			fmt.Fprintf(&b, " The export says it selected (signed with the log key for this checkpoint): %s.", r.Selection)
		case r.Selection != "":
			fmt.Fprintf(&b, " The export says it selected (not signed: a bundle of an earlier version; do not rely on it): %s.", r.Selection)
		}
		b.WriteString(" This proves the events are authentic, not that the selection is complete: a bundle of some events cannot show which others a filter would have matched.")
		if r.KeyDetail != "" {
			b.WriteString(" " + r.KeyDetail)
		}
		return b.String()
	}
	if r.OK() {
		n := r.To - r.From - r.erasedCount()
		switch {
		case n == 0:
			fmt.Fprintf(&b, "The bundle holds no events; %s for %s is authentic.", signed, org)
		case r.From == 0 && r.To == r.CheckpointSize:
			fmt.Fprintf(&b, "%s of %s (seq 0–%s) match %s: none altered, none missing.",
				plural(n, "event"), org, commas(r.To-1), signed)
		default:
			fmt.Fprintf(&b, "%s of %s (seq %s–%s) match %s: none altered, none missing in that range.",
				plural(n, "event"), org, commas(r.From), commas(r.To-1), signed)
		}
		b.WriteString(r.erasedText())
		if r.Since {
			fmt.Fprintf(&b, " Checkpoint size %s is consistent with your older checkpoint size %s: the log only grew.",
				commas(r.CheckpointSize), commas(r.SinceSize))
		}
		if r.KeyDetail != "" {
			b.WriteString(" " + r.KeyDetail)
		}
		return b.String()
	}
	if r.Origin != "" {
		fmt.Fprintf(&b, "VERIFICATION FAILED for %s (%s): ", org, signed)
	} else {
		fmt.Fprintf(&b, "VERIFICATION FAILED (key %s): ", r.KeyName)
	}
	fmt.Fprintf(&b, "%s.", plural(r.ProblemCount, "problem"))
	for _, p := range r.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	if r.ProblemCount > int64(len(r.Problems)) {
		fmt.Fprintf(&b, "\n  … and %s more.", commas(r.ProblemCount-int64(len(r.Problems))))
	}
	if len(r.Erased) > 0 {
		b.WriteString("\n ")
		b.WriteString(r.erasedText())
	}
	return b.String()
}

// erasedCount is how many records the erased runs hold.
func (r *Report) erasedCount() int64 {
	var n int64
	for _, e := range r.Erased {
		n += e.SeqEnd - e.Seq + 1
	}
	return n
}

// erasedText lists the erased runs: " Erased (not missing): seq 3–5 by
// request ers_… at 2026-…; …". The records are absent because an erasure
// deleted them, which a tombstone signed with the log key says.
func (r *Report) erasedText() string {
	if len(r.Erased) == 0 {
		return ""
	}
	var b strings.Builder
	n := r.erasedCount()
	fmt.Fprintf(&b, " %s erased (not missing; signed tombstones in the bundle say so):", plural(n, "record"))
	for i, e := range r.Erased {
		if i == 20 {
			fmt.Fprintf(&b, " … and %d more runs", len(r.Erased)-i)
			break
		}
		if i > 0 {
			b.WriteByte(';')
		}
		seqs := "seq " + commas(e.Seq)
		if e.SeqEnd > e.Seq {
			seqs = "seq " + commas(e.Seq) + "–" + commas(e.SeqEnd)
		}
		fmt.Fprintf(&b, " %s erased by request %s at %s", seqs, e.ErasureID, e.ErasedAt.UTC().Format(time.RFC3339))
	}
	b.WriteByte('.')
	return b.String()
}

// plural returns "1 event", "2 events", "1,000 events".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return commas(n) + " " + noun + "s"
}

// commas formats n with thousands separators: 1,204,331.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
