package ledger

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// verifySubset checks a subset bundle (see subsetMagic) whose first line r
// is about to read.
func verifySubset(r *bufio.Reader, v *KeyHistory, rep Report, opts VerifyOptions) (Report, error) {
	rep.Subset = true
	b := &BundleReader{r: r}
	fail := func(err error) (Report, error) {
		rep.addFatal(formatProblem(err))
		return rep, failed(&rep)
	}
	line, err := b.readLine()
	if err != nil {
		return fail(err)
	}
	if string(line) != subsetMagic {
		return fail(b.errorf("not a Trail subset bundle (the first line is not %q)", subsetMagic))
	}
	if line, err = b.readLine(); err != nil {
		return fail(err)
	}
	n, ok := intAfter(line, "checkpoint ")
	if !ok || n <= 0 || n > maxNote {
		return fail(b.errorf("want \"checkpoint <length>\""))
	}
	b.Note = make([]byte, n)
	if _, err := io.ReadFull(b.r, b.Note); err != nil {
		return fail(&FormatError{Line: b.line + 1, Msg: "checkpoint note", Err: ErrBundleTruncated})
	}
	b.line += int64(bytes.Count(b.Note, []byte("\n")))
	if line, err = b.readLine(); err != nil {
		return fail(err)
	}
	sel, ok := bytes.CutPrefix(line, []byte("selection "))
	if !ok && string(line) != "selection" {
		return fail(b.errorf("want \"selection <text>\" after the checkpoint note"))
	}
	rep.Selection = string(sel)
	if line, err = b.readLine(); err != nil {
		return fail(err)
	}
	// Bundles of earlier versions have no selection-signature line.
	selSig, signed := bytes.CutPrefix(line, []byte("selection-signature "))
	if signed {
		selSig = bytes.Clone(selSig)
		if line, err = b.readLine(); err != nil {
			return fail(err)
		}
	}
	selLine := b.line - 1 // of the selection-signature line, when there is one
	size, ok := intAfter(line, "range 0 ")
	if !ok || size < 0 {
		return fail(b.errorf("want \"range 0 <checkpoint size>\""))
	}
	rep.From, rep.To = 0, size
	if line, err = b.readLine(); err != nil {
		return fail(err)
	}
	if string(line) != "left" {
		return fail(b.errorf("want an empty \"left\" line"))
	}

	ck, ok := checkBundleNote(&rep, b.Note, v)
	if !ok {
		return rep, failed(&rep)
	}
	if signed {
		if err := checkSelection(b.Note, rep.Selection, string(selSig), v); err != nil {
			rep.add(Problem{Kind: ProblemSignature, Seq: -1, Line: selLine, Detail: err.Error()})
			return rep, failed(&rep)
		}
		rep.SelectionSigned = true
	}
	if size != ck.Size {
		rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: -1,
			Detail: fmt.Sprintf("the subset bundle's range ends at %s, not at the checkpoint size %s", commas(size), commas(ck.Size))})
		return rep, failed(&rep)
	}

	sv := &subsetVerifier{rep: &rep, tree: &treeBuilder{hashes: map[int64]tlog.Hash{}}, size: size, last: -1,
		progress: opts.Progress, every: opts.ProgressEvery}
	for {
		line, err := b.readLine()
		if err != nil {
			return fail(err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("leaves ")):
			e, err := b.leavesLine(line)
			if err == nil {
				err = sv.leaves(e)
			}
			if err != nil {
				return fail(err)
			}
		case bytes.HasPrefix(line, []byte("subtrees ")):
			if err := sv.subtrees(b, line); err != nil {
				return fail(err)
			}
		case string(line) == "proof" || bytes.HasPrefix(line, []byte("proof ")):
			if err := b.trailer(line); err != io.EOF {
				return fail(err)
			}
			return sv.finish(b, ck)
		default:
			sv.record(b.line, line)
		}
	}
}

// subsetVerifier checks the record section of a subset bundle.
type subsetVerifier struct {
	rep      *Report
	tree     *treeBuilder
	size     int64
	last     int64 // seq of the last record line, -1 before the first
	group    []lineRecord
	records  int64
	progress func(int64)
	every    int64
	since    int64
}

func (sv *subsetVerifier) record(line int64, rec []byte) {
	sv.records++
	if sv.since++; sv.progress != nil && sv.since >= sv.every {
		sv.since = 0
		sv.progress(sv.records)
	}
	seq, orgOK, ok := recordKey(rec, sv.rep.OrganizationID)
	switch {
	case !ok:
		sv.rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: line,
			Detail: fmt.Sprintf("line %s is not a Trail record (no organization_id and seq): %s", commas(line), excerpt(rec))})
		return
	case !orgOK:
		sv.rep.add(Problem{Kind: ProblemWrongOrganization, Seq: seq, Line: line,
			Detail: fmt.Sprintf("line %s (seq %s) is a record of another organization, not of %s", commas(line), commas(seq), sv.rep.OrganizationID)})
		return
	case seq <= sv.last || seq < sv.tree.n || seq >= sv.size:
		sv.rep.add(Problem{Kind: ProblemReordered, Seq: seq, SeqEnd: seq, Line: line,
			Detail: fmt.Sprintf("line %s holds seq %s out of order (after seq %s, or outside the leaf hashes that follow)", commas(line), commas(seq), commas(sv.last))})
		return
	}
	sv.last = seq
	sv.group = append(sv.group, lineRecord{line: line, seq: seq, hash: tlog.RecordHash(rec)})
}

func (sv *subsetVerifier) leaves(e Entry) error {
	first := sv.tree.n
	if e.First != first || int64(len(e.Leaves)) != groupEnd(first, sv.size)-first {
		return &FormatError{Line: e.Line, Msg: fmt.Sprintf("leaves line for seq %d (%d hashes) where seq %d–%d was due", e.First, len(e.Leaves), first, groupEnd(first, sv.size)-1)}
	}
	for _, p := range sv.group {
		if p.seq >= first+int64(len(e.Leaves)) {
			sv.rep.add(Problem{Kind: ProblemReordered, Seq: p.seq, SeqEnd: p.seq, Line: p.line,
				Detail: fmt.Sprintf("line %s holds seq %s before the leaf hashes of seq %s–%s: it is out of order", commas(p.line), commas(p.seq), commas(first), commas(first+int64(len(e.Leaves))-1))})
			continue
		}
		if e.Leaves[p.seq-first] != p.hash {
			sv.rep.add(Problem{Kind: ProblemAltered, Seq: p.seq, SeqEnd: p.seq, Line: p.line,
				Detail: fmt.Sprintf("seq %s (line %s) is not the record the log holds at that seq: its bytes were changed", commas(p.seq), commas(p.line))})
		}
	}
	sv.group = sv.group[:0]
	for k, h := range e.Leaves {
		if err := sv.tree.add(h); err != nil {
			return &FormatError{Line: e.Line, Msg: fmt.Sprintf("couldn't add leaf %d to the tree: %v", first+int64(k), err)}
		}
	}
	return nil
}

// subtrees reads "subtrees <first> <count> <base64>".
func (sv *subsetVerifier) subtrees(b *BundleReader, line []byte) error {
	f := bytes.Fields(line)
	if len(f) != 4 {
		return b.errorf("want \"subtrees <first seq> <count> <hashes>\"")
	}
	first, err1 := strconv.ParseInt(string(f[1]), 10, 64)
	count, err2 := strconv.ParseInt(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil || count <= 0 || count > maxSubtreesLine {
		return b.errorf("bad subtrees line header")
	}
	if first != sv.tree.n || first%groupSize != 0 || first+count*groupSize > sv.size {
		return b.errorf("subtrees line for seq %d–%d where seq %d was due", first, first+count*groupSize-1, sv.tree.n)
	}
	if len(sv.group) > 0 {
		p := sv.group[0]
		return b.errorf("record line %d (seq %d) is followed by a subtrees line, not by its leaf hashes", p.line, p.seq)
	}
	raw, err := base64.StdEncoding.DecodeString(string(f[3]))
	if err != nil || int64(len(raw)) != count*tlog.HashSize {
		return b.errorf("subtrees line does not hold %d base64 hashes", count)
	}
	for i := int64(0); i < count; i++ {
		if err := sv.tree.addSubtree(tlog.Hash(raw[i*tlog.HashSize : (i+1)*tlog.HashSize])); err != nil {
			return b.errorf("couldn't add subtree %d to the tree: %v", first/groupSize+i, err)
		}
	}
	return nil
}

func (sv *subsetVerifier) finish(b *BundleReader, ck Checkpoint) (Report, error) {
	rep := sv.rep
	rep.Records = sv.records
	if sv.progress != nil {
		sv.progress(sv.records)
	}
	if len(sv.group) > 0 || sv.tree.n != sv.size {
		rep.addFatal(Problem{Kind: ProblemIncomplete, Seq: -1, Line: -1,
			Detail: fmt.Sprintf("the bundle has no leaf or subtree hashes for seq %s–%s", commas(sv.tree.n), commas(sv.size-1))})
		return *rep, failed(rep)
	}
	if b.Records != sv.records && rep.ProblemCount == 0 {
		rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: -1,
			Detail: fmt.Sprintf("the end line counts %s record lines but the bundle has %s", commas(b.Records), commas(sv.records))})
	}
	root, err := sv.tree.root()
	if err == nil && root != ck.Hash {
		err = errors.New("root differs")
	}
	if err != nil {
		rep.add(Problem{Kind: ProblemTreeMismatch, Seq: -1, Line: -1, Detail: fmt.Sprintf(
			"the tree of seq 0–%s that the bundle's hashes give does not lead to the root signed in checkpoint size %s (%v): "+
				"the bundle's hash lines were altered, or the checkpoint is of another history; record findings above rest on those hashes",
			commas(sv.size-1), commas(ck.Size), err)})
	}
	if !rep.OK() {
		return *rep, failed(rep)
	}
	return *rep, nil
}

// addSubtree adds a complete group of groupSize leaves, given by its
// subtree hash (the stored hash at level TileHeight), as add would have
// left the tree after adding its leaves one by one: the new hash is folded
// with the left siblings waiting at each level while it is a right child.
func (tb *treeBuilder) addSubtree(h tlog.Hash) error {
	if tb.n%groupSize != 0 {
		return fmt.Errorf("a subtree cannot start at seq %d", tb.n)
	}
	level, k := TileHeight, tb.n/groupSize
	for k%2 == 1 {
		left, err := tb.ReadHashes([]int64{tlog.StoredHashIndex(level, k-1)})
		if err != nil {
			return err
		}
		h = tlog.NodeHash(left[0], h)
		level++
		k /= 2
	}
	tb.hashes[tlog.StoredHashIndex(level, k)] = h
	tb.n += groupSize
	return nil
}

// checkSelection checks a subset bundle's selection-signature: a
// signature of selectionText for the bundle's checkpoint by a key of the
// history that counts (active or retired; a revoked key's proves nothing).
func checkSelection(checkpoint []byte, selection, sig string, h *KeyHistory) error {
	text, ok := noteText(checkpoint)
	if !ok {
		return errors.New("the checkpoint is not a signed note")
	}
	var last error
	for _, k := range h.Keys {
		if k.State == KeyRevoked {
			continue
		}
		msg := selectionText(text, selection) + "\n— " + k.verifier.Name() + " " + sig + "\n"
		if _, err := note.Open([]byte(msg), note.VerifierList(k.verifier)); err == nil {
			return nil
		} else {
			last = err
		}
	}
	return fmt.Errorf("the selection line's signature does not verify with the log's keys for this checkpoint: the selection line, or its signature, was altered (%v)", last)
}
