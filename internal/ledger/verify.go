package ledger

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrVerificationFailed means a bundle does not prove what it claims; the
// Report says what is wrong and where.
var ErrVerificationFailed = errors.New("verification failed")

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Since is an older checkpoint note of the same log, signed by the same
	// key, that the reader already trusts. Verify then also checks that
	// the bundle's checkpoint extends it (the bundle must carry the
	// consistency proof: BundleOptions.Since).
	Since []byte
	// Keys, when set, is the log's key history: the bundle's checkpoint
	// (and Since) is accepted when signed by any of its keys that is not
	// revoked, and the verifier key argument of Verify is ignored.
	Keys *KeyHistory
	// Progress, when set, is called with the number of record lines read
	// every ProgressEvery lines (default 65,536) and once at the end.
	Progress      func(records int64)
	ProgressEvery int64
}

// Verify checks a bundle offline against a verifier key (note format) and
// reports in plain words what it proved or exactly what failed. The error is
// nil when the bundle verified, wraps ErrVerificationFailed when it did not
// (Report.Problems says why), and is something else when the key or the
// Since checkpoint given is unusable. It streams: memory does not grow with
// the number of records.
func Verify(r io.Reader, verifierKey string, opts VerifyOptions) (Report, error) {
	var rep Report
	v := opts.Keys
	if v == nil {
		var err error
		if v, err = PlainKeys(verifierKey); err != nil {
			return rep, err
		}
	}
	rep.KeyName = v.describeKeys()
	var since *Checkpoint
	if opts.Since != nil {
		c, _, err := v.OpenCheckpoint(opts.Since)
		if err != nil {
			return rep, fmt.Errorf("the older checkpoint given to compare with: %w", err)
		}
		since = &c
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 1 << 16
	}

	// A subset bundle (a filtered export) starts with its own magic line.
	bufr := bufio.NewReaderSize(r, 1<<20)
	if peek, _ := bufr.Peek(len(subsetMagic) + 1); string(peek) == subsetMagic+"\n" {
		return verifySubset(bufr, v, rep, opts)
	}
	br, err := ReadBundle(bufr)
	if err != nil {
		rep.addFatal(formatProblem(err))
		return rep, failed(&rep)
	}
	rep.From, rep.To = br.From, br.To
	ck, ok := checkBundleNote(&rep, br.Note, v)
	if !ok {
		return rep, failed(&rep)
	}
	if br.To > ck.Size {
		rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: -1,
			Detail: fmt.Sprintf("the bundle's range ends at seq %s, beyond checkpoint size %s", commas(br.To), commas(ck.Size))})
		return rep, failed(&rep)
	}

	sv, err := newStreamVerifier(&rep, br, opts)
	if err != nil {
		rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: -1, Detail: err.Error()})
		return rep, failed(&rep)
	}
	erased := &erasureSet{keys: v, org: rep.OrganizationID}
	for {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err == nil && e.Record != nil {
			sv.record(e)
			erased.consider(e.Record)
			continue
		}
		if err == nil {
			err = sv.leaves(e)
		}
		if err != nil {
			sv.flush()
			rep.Records = sv.records
			rep.addFatal(formatProblem(err))
			rep.finishMissing()
			return rep, failed(&rep)
		}
	}
	err = sv.finish()
	rep.Records = sv.records
	if err != nil {
		rep.addFatal(formatProblem(err))
		rep.finishMissing()
		return rep, failed(&rep)
	}
	if br.Records != sv.records && rep.ProblemCount == 0 {
		rep.add(Problem{Kind: ProblemMalformed, Seq: -1, Line: -1,
			Detail: fmt.Sprintf("the end line counts %s record lines but the bundle has %s", commas(br.Records), commas(sv.records))})
	}
	checkTree(&rep, sv.tree, br, ck)
	if since != nil {
		checkSince(&rep, br, ck, *since)
	}
	erased.apply(&rep)
	rep.finishMissing()
	if !rep.OK() {
		return rep, failed(&rep)
	}
	return rep, nil
}

func failed(rep *Report) error {
	if len(rep.Problems) == 0 {
		return ErrVerificationFailed
	}
	return fmt.Errorf("%w: %s", ErrVerificationFailed, rep.Problems[0])
}

func formatProblem(err error) Problem {
	var fe *FormatError
	line := int64(-1)
	if errors.As(err, &fe) {
		line = fe.Line
	}
	if errors.Is(err, ErrBundleTruncated) {
		return Problem{Kind: ProblemIncomplete, Seq: -1, Line: line, Detail: err.Error()}
	}
	return Problem{Kind: ProblemMalformed, Seq: -1, Line: line, Detail: err.Error()}
}

// checkTree checks the tree of size To computed from the bundle's hashes
// against the checkpoint: equal roots when To is the checkpoint size, else
// the consistency proof (RFC 6962 §2.1.2, tlog.CheckTree).
func checkTree(rep *Report, tree *treeBuilder, br *BundleReader, ck Checkpoint) {
	root, err := tree.root()
	if err == nil {
		switch {
		case br.To == ck.Size:
			if root != ck.Hash {
				err = errors.New("root differs")
			}
		case br.To > 0:
			err = tlog.CheckTree(br.Proof, ck.Size, ck.Hash, br.To, root)
		}
	}
	if err != nil {
		rep.add(Problem{Kind: ProblemTreeMismatch, Seq: -1, Line: -1, Detail: fmt.Sprintf(
			"the tree of seq 0–%s that the bundle's hashes give does not lead to the root signed in checkpoint size %s (%v): "+
				"the bundle's hash lines were altered, or the checkpoint is of another history; record findings above rest on those hashes",
			commas(br.To-1), commas(ck.Size), err)})
	}
}

// checkSince checks that the bundle's checkpoint extends the older one.
func checkSince(rep *Report, br *BundleReader, ck, old Checkpoint) {
	rep.Since, rep.SinceSize = true, old.Size
	bad := func(format string, args ...any) {
		rep.add(Problem{Kind: ProblemInconsistent, Seq: -1, Line: -1, Detail: fmt.Sprintf(format, args...)})
	}
	switch {
	case old.Origin != ck.Origin:
		bad("your older checkpoint is of log %q, the bundle's of %q", old.Origin, ck.Origin)
	case old.Size > ck.Size:
		bad("your older checkpoint has size %s but the bundle's only %s: the log shrank (was rolled back) since you saw it",
			commas(old.Size), commas(ck.Size))
	case old.Size == ck.Size:
		if old.Hash != ck.Hash {
			bad("your older checkpoint and the bundle's both have size %s but different roots (%s, %s): two different histories were signed",
				commas(ck.Size), old.Hash, ck.Hash)
		}
	case old.Size == 0:
	case br.SinceSize != old.Size:
		bad("the bundle carries no consistency proof from size %s (export it again giving that size as since)", commas(old.Size))
	default:
		if err := tlog.CheckTree(br.SinceProof, ck.Size, ck.Hash, old.Size, old.Hash); err != nil {
			bad("checkpoint size %s does not extend your older checkpoint size %s (root %s): the log's history was rewritten since you saw it (%v)",
				commas(ck.Size), commas(old.Size), old.Hash, err)
		}
	}
}

// treeBuilder recomputes the tree of a bundle's range with tlog from the
// left hashes and the leaf hashes. It keeps only the hashes tlog will read
// again: the last hash each StoredHashes call returns (the others are right
// children, already folded into it), each dropped once read.
type treeBuilder struct {
	hashes map[int64]tlog.Hash
	n      int64 // leaves added
	buf    []tlog.Hash
}

func newTreeBuilder(from int64, left []tlog.Hash) (*treeBuilder, error) {
	tb := &treeBuilder{hashes: map[int64]tlog.Hash{}, n: from}
	// TreeHash(from) reads exactly the left hashes, in the order the
	// bundle lists them: that maps each to its stored hash index.
	used := false
	_, err := tlog.TreeHash(from, tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		used = true
		if len(indexes) != len(left) {
			return nil, fmt.Errorf("the bundle has %d left hashes, but %d are needed for a range starting at seq %s", len(left), len(indexes), commas(from))
		}
		for i, x := range indexes {
			tb.hashes[x] = left[i]
		}
		return left, nil
	}))
	if err != nil {
		return nil, err
	}
	if !used && len(left) > 0 {
		return nil, fmt.Errorf("the bundle has %d left hashes, but a range starting at seq 0 needs none", len(left))
	}
	return tb, nil
}

// ReadHashes implements tlog.HashReader. The returned slice is reused; the
// tlog functions called here do not keep it.
func (tb *treeBuilder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	tb.buf = tb.buf[:0]
	for _, x := range indexes {
		h, ok := tb.hashes[x]
		if !ok {
			return nil, fmt.Errorf("hash %d is not in the bundle", x)
		}
		delete(tb.hashes, x)
		tb.buf = append(tb.buf, h)
	}
	return tb.buf, nil
}

func (tb *treeBuilder) add(leaf tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(tb.n, leaf, tb)
	if err != nil {
		return err
	}
	tb.hashes[tlog.StoredHashIndex(0, tb.n)+int64(len(hs))-1] = hs[len(hs)-1]
	tb.n++
	return nil
}

func (tb *treeBuilder) root() (tlog.Hash, error) {
	return tlog.TreeHash(tb.n, tb)
}

// checkBundleNote checks a bundle's checkpoint note against the verifier
// and records it in rep, or records why it failed (its signature, or its
// form) and reports false.
func checkBundleNote(rep *Report, msg []byte, v *KeyHistory) (Checkpoint, bool) {
	ck, signed, err := v.OpenCheckpoint(msg)
	if err != nil {
		kind := ProblemSignature
		if errors.Is(err, ErrMalformedCheckpoint) {
			kind = ProblemMalformed
		}
		rep.add(Problem{Kind: kind, Seq: -1, Line: 3, Detail: err.Error()})
		return ck, false
	}
	rep.Origin, rep.CheckpointSize, rep.OrganizationID = ck.Origin, ck.Size, OrganizationOf(ck.Origin)
	rep.Checkpoint = msg
	rep.KeyName, rep.SignedBy = "", nil
	for _, k := range signed {
		if name := k.verifier.Name(); !strings.Contains(rep.KeyName, name) {
			rep.KeyName = strings.TrimPrefix(rep.KeyName+" and "+name, " and ")
		}
		rep.SignedBy = append(rep.SignedBy, k.Describe())
	}
	if len(v.Keys) > 1 {
		rep.KeyDetail = "Signed by key " + strings.Join(rep.SignedBy, " and key ") + "."
	}
	return ck, true
}
